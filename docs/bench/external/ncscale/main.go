// Command ncscale is the measuring client of docs/bench/external/scale.sh
// (make bench-scale, issue 17): it looks at a bridge from outside, over
// NETCONF (SSH, golang.org/x/crypto/ssh) and over its /metrics page, and
// prints one JSON line per measurement. It does not import the bridge.
//
//	ncscale metric -url http://127.0.0.1:9830/metrics -name myno_devices_registered -want 10000 -since $t0
//	ncscale get    -addr 127.0.0.1:8830 -password PW -runs 5
//	ncscale ready  -addr 127.0.0.1:8830 -password PW -since $t0 -want 10000
//	ncscale rpcs   -addr 127.0.0.1:8830 -password PW -base bench-scale -shapes NS:RPC:COUNT,... -sessions 16 -duration 10s
//	ncscale rpcs   ... -sweep -since $t0 -duration 120s   (every device once)
//
// -since is a wall-clock start in Unix nanoseconds (bash: ${EPOCHREALTIME/./}000):
// the times reported are counted from it, not from ncscale's own start.
// The NETCONF sessions are ncbench's (package nclient): one rpc at a
// time, base:1.1 chunked framing when the server offers it.
package main

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/docs/bench/external/nclient"
	"golang.org/x/crypto/ssh"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ncscale metric|get|ready|rpcs [flags] (ncscale CMD -h)")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var out any
	var err error
	switch cmd {
	case "metric":
		out, err = cmdMetric(args)
	case "get":
		out, err = cmdGet(args)
	case "ready":
		out, err = cmdReady(args)
	case "rpcs":
		out, err = cmdRPCs(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if out != nil {
		line, _ := json.Marshal(out)
		fmt.Println(string(line))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ncscale "+cmd+":", err)
		os.Exit(1)
	}
}

// since parses -since (Unix nanoseconds; 0: now).
func since(ns int64) time.Time {
	if ns == 0 {
		return time.Now()
	}
	return time.Unix(0, ns)
}

func ms(d time.Duration) float64 { return round(float64(d.Nanoseconds())/1e6, 1) }

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// --- metric: poll /metrics until a gauge reaches a value ----------------

type metricResult struct {
	Metric  string  `json:"metric"`
	Want    float64 `json:"want"`
	Reached bool    `json:"reached"`
	MS      float64 `json:"ms,omitempty"` // since -since, when reached
	Last    float64 `json:"last"`
	// Progress is the value at each whole second after -since, for
	// seeing stalls.
	Progress []float64 `json:"progress"`
	Errors   int       `json:"fetch_errors"`
}

func cmdMetric(args []string) (any, error) {
	fs := flag.NewFlagSet("metric", flag.ExitOnError)
	url := fs.String("url", "", "the bridge's /metrics `URL`")
	name := fs.String("name", "myno_devices_registered", "metric `name` (a gauge without labels)")
	want := fs.Float64("want", 0, "wait until the metric is at least this")
	sinceNS := fs.Int64("since", 0, "start, Unix nanoseconds (0: now)")
	timeout := fs.Duration("timeout", 120*time.Second, "give up after this long, counted from -since")
	interval := fs.Duration("interval", 100*time.Millisecond, "poll period")
	_ = fs.Parse(args)
	start := since(*sinceNS)
	res := metricResult{Metric: *name, Want: *want, Progress: []float64{}}
	hc := &http.Client{Timeout: 2 * time.Second}
	nextMark := start.Add(time.Second)
	for {
		v, err := scrape(hc, *url, *name)
		now := time.Now()
		if err != nil {
			res.Errors++
		} else {
			res.Last = v
		}
		for !now.Before(nextMark) {
			res.Progress = append(res.Progress, res.Last)
			nextMark = nextMark.Add(time.Second)
		}
		if err == nil && v >= *want {
			res.Reached, res.MS = true, ms(now.Sub(start))
			return res, nil
		}
		if now.Sub(start) >= *timeout {
			return res, nil // not reached: the caller reports "timeout"
		}
		time.Sleep(*interval)
	}
}

func scrape(hc *http.Client, url, name string) (float64, error) {
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(rest), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no %s", url, name)
}

// --- get: the whole <get/>, a few times ---------------------------------

type getResult struct {
	Runs    []float64 `json:"runs_ms"`
	P50     float64   `json:"p50_ms"`
	Max     float64   `json:"max_ms"`
	Bytes   int       `json:"reply_bytes"`
	Devices int       `json:"devices"` // <device> elements in the last reply
	Online  int       `json:"online"`  // of them, <online>true</online>
}

var (
	deviceTag = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?device>`)
	onlineTag = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?online>true<`)
)

func cmdGet(args []string) (any, error) {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	c := sessionFlags(fs)
	runs := fs.Int("runs", 5, "rpcs, one after another on one session")
	rpc := fs.String("rpc", "<get/>", "the rpc's content")
	_ = fs.Parse(args)
	s, err := dial(c)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := getResult{}
	for range *runs {
		t := time.Now()
		reply, _, err := s.Call(*rpc)
		d := time.Since(t)
		if err != nil {
			return res, err
		}
		res.Runs = append(res.Runs, ms(d))
		res.Bytes = len(reply)
		res.Devices = len(deviceTag.FindAllIndex(reply, -1))
		res.Online = len(onlineTag.FindAllIndex(reply, -1))
	}
	sorted := slices.Clone(res.Runs)
	slices.Sort(sorted)
	res.P50, res.Max = sorted[(len(sorted)-1)/2], sorted[len(sorted)-1]
	return res, nil
}

// --- ready: how long until NETCONF answers, after a (re)start ------------

type readyResult struct {
	// AnsweredMS: the first <get> answered (session set up, hello, reply),
	// since -since.
	AnsweredMS float64 `json:"answered_ms,omitempty"`
	// Devices is the registry's device count in that first answer;
	// FullMS is when it first showed -want devices.
	Devices int     `json:"devices"`
	FullMS  float64 `json:"full_ms,omitempty"`
	Tries   int     `json:"tries"`
	Timeout bool    `json:"timeout,omitempty"`
	LastErr string  `json:"last_error,omitempty"`
}

// registryCount is a one-leaf <get>: the registry's device count.
const registryCount = `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"><registry><devices/></registry></bridge></filter></get>`

var devicesLeaf = regexp.MustCompile(`<([A-Za-z_][\w.-]*:)?devices>(\d+)<`)

func cmdReady(args []string) (any, error) {
	fs := flag.NewFlagSet("ready", flag.ExitOnError)
	c := sessionFlags(fs)
	sinceNS := fs.Int64("since", 0, "start, Unix nanoseconds (0: now)")
	want := fs.Int("want", 0, "also wait until the registry shows this many devices")
	wait := fs.Duration("wait", 60*time.Second, "give up after this long, counted from -since")
	_ = fs.Parse(args)
	start := since(*sinceNS)
	res := readyResult{}
	var s *nclient.Session
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	for {
		res.Tries++
		err := func() error {
			if s == nil {
				var err error
				if s, err = dial(c); err != nil {
					s = nil
					return err
				}
			}
			reply, _, err := s.Call(registryCount)
			if err != nil {
				s.Close()
				s = nil
				return err
			}
			m := devicesLeaf.FindSubmatch(reply)
			if m == nil {
				return fmt.Errorf("no registry count in %.300s", reply)
			}
			n, _ := strconv.Atoi(string(m[2]))
			now := time.Since(start)
			if res.AnsweredMS == 0 {
				res.AnsweredMS, res.Devices = ms(now), n
			}
			if n >= *want {
				res.FullMS = ms(now)
				return nil
			}
			return fmt.Errorf("registry shows %d devices", n)
		}()
		if err == nil {
			return res, nil
		}
		res.LastErr = err.Error()
		if time.Since(start) >= *wait {
			res.Timeout = true
			return res, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- rpcs: device rpcs on random devices ---------------------------------

type rpcsResult struct {
	Sessions int     `json:"sessions"`
	RPCs     int     `json:"rpcs"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Devices  int     `json:"devices"`      // the uuids drawn from
	Distinct int     `json:"distinct_hit"` // of them, answered at least once
	FirstErr string  `json:"first_error,omitempty"`
	// With -sweep: every device once; when it started and ended (since
	// -since), and the devices not tried before -duration ran out.
	SweepStartMS float64 `json:"sweep_start_ms,omitempty"`
	SweepEndMS   float64 `json:"sweep_end_ms,omitempty"`
	Untried      int     `json:"untried,omitempty"`
	// With -full-get-every: the whole <get/>s of one more session during
	// the measurement, their median and longest time.
	FullGets   int     `json:"full_gets,omitempty"`
	FullGetP50 float64 `json:"full_get_p50_ms,omitempty"`
	FullGetMax float64 `json:"full_get_max_ms,omitempty"`
	FullGetErr string  `json:"full_get_error,omitempty"`
}

// deriveUUID is devices.DeriveUUID, the i-th uuid of a fleet with base
// uuid base (myno device --count/--fleet --uuid base): a name-based
// UUID (SHA-1, version 5 layout) of base + "/" + i.
func deriveUUID(base string, i int) string {
	sum := sha1.Sum([]byte(base + "/" + strconv.Itoa(i)))
	sum[6] = (sum[6] & 0x0f) | 0x50
	sum[8] = (sum[8] & 0x3f) | 0x80
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

type target struct{ ns, rpc, uuid string }

func cmdRPCs(args []string) (any, error) {
	fs := flag.NewFlagSet("rpcs", flag.ExitOnError)
	c := sessionFlags(fs)
	base := fs.String("base", "bench-scale", "the fleet's base uuid (myno device --uuid)")
	shapes := fs.String("shapes", "", "the fleet's entries in order, `NAMESPACE:RPC:COUNT,...`: COUNT devices of the module NAMESPACE, sent RPC (input: uuidInput only)")
	sessions := fs.Int("sessions", 16, "sessions in parallel")
	duration := fs.Duration("duration", 10*time.Second, "how long to measure")
	warmup := fs.Int("warmup", 20, "rpcs per session before the clock starts")
	seed := fs.Uint64("seed", 17, "random seed of the device choice")
	sweep := fs.Bool("sweep", false, "send the rpc to every device once (in fleet order, spread over the sessions) instead of to random ones for -duration; -duration caps it")
	sinceNS := fs.Int64("since", 0, "with -sweep: report its start and end counted from this (Unix nanoseconds)")
	fullGetEvery := fs.Duration("full-get-every", 0, "meanwhile, one more session sends a whole <get/> this often (0: none)")
	_ = fs.Parse(args)
	if *sweep {
		*warmup = 0
	}
	var targets []target
	n := 0
	for _, e := range strings.Split(*shapes, ",") {
		// The namespace holds colons: the last two fields are rpc and count.
		i := strings.LastIndexByte(e, ':')
		j := strings.LastIndexByte(e[:max(i, 0)], ':')
		if i < 0 || j < 0 {
			return nil, fmt.Errorf("-shapes: %q: want NAMESPACE:RPC:COUNT", e)
		}
		count, err := strconv.Atoi(e[i+1:])
		if err != nil {
			return nil, fmt.Errorf("-shapes: %q: %v", e, err)
		}
		for range count {
			targets = append(targets, target{ns: e[:j], rpc: e[j+1 : i], uuid: deriveUUID(*base, n)})
			n++
		}
	}
	if len(targets) == 0 {
		return nil, errors.New("-shapes: no devices")
	}
	all := make([]*nclient.Session, *sessions)
	var wg sync.WaitGroup
	errs := make([]error, *sessions)
	for i := range all {
		// One after another: the SSH handshakes are not what is measured.
		all[i], errs[i] = dial(c)
	}
	defer func() {
		for _, s := range all {
			if s != nil {
				s.Close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	body := func(t target) string {
		return `<` + t.rpc + ` xmlns="` + t.ns + `"><uuidInput>` + t.uuid + `</uuidInput></` + t.rpc + `>`
	}
	check := func(reply []byte) error {
		if bytes.Contains(reply, []byte("rpc-error>")) {
			return fmt.Errorf("rpc-error: %.400s", reply)
		}
		if !bytes.Contains(reply, []byte("retval")) {
			return fmt.Errorf("reply without retval: %.400s", reply)
		}
		return nil
	}
	type worker struct {
		lat    []time.Duration
		errors int
		first  error
		hit    map[int]bool
	}
	workers := make([]*worker, *sessions)
	var stop atomic.Bool
	var next atomic.Int64 // -sweep: the next device
	var ready sync.WaitGroup
	ready.Add(*sessions)
	startGate := make(chan struct{})
	for i, s := range all {
		w := &worker{hit: map[int]bool{}}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(*seed, uint64(i)))
			for range *warmup {
				k := r.IntN(len(targets))
				reply, _, err := s.Call(body(targets[k]))
				if err == nil {
					err = check(reply)
				}
				if err != nil && w.first == nil {
					w.first = err
				}
			}
			ready.Done()
			<-startGate
			for !stop.Load() {
				k := r.IntN(len(targets))
				if *sweep {
					if k = int(next.Add(1) - 1); k >= len(targets) {
						return
					}
				}
				t := time.Now()
				reply, _, err := s.Call(body(targets[k]))
				d := time.Since(t)
				if err == nil {
					err = check(reply)
				}
				if err != nil {
					w.errors++
					if w.first == nil {
						w.first = err
					}
					if errors.Is(err, nclient.ErrTransport) {
						return
					}
					continue
				}
				w.lat = append(w.lat, d)
				w.hit[k] = true
			}
		}()
	}
	// -full-get-every: a whole <get/> on a session of its own, on a
	// ticker, while the rpcs are measured.
	var getter sync.WaitGroup
	var getLat []time.Duration
	var getErr error
	if *fullGetEvery > 0 {
		gs, err := dial(c)
		if err != nil {
			return nil, err
		}
		defer gs.Close()
		getter.Add(1)
		go func() {
			defer getter.Done()
			<-startGate
			tick := time.NewTicker(*fullGetEvery)
			defer tick.Stop()
			for !stop.Load() {
				t := time.Now()
				_, _, err := gs.Call("<get/>")
				if err != nil {
					getErr = err
					return
				}
				getLat = append(getLat, time.Since(t))
				<-tick.C
			}
		}()
	}
	ready.Wait()
	begin := time.Now()
	close(startGate)
	if *sweep {
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(*duration):
		}
	} else {
		time.Sleep(*duration)
	}
	stop.Store(true)
	wg.Wait() // the rpcs in flight are counted, and so is their time
	elapsed := time.Since(begin)
	getter.Wait()
	res := rpcsResult{Sessions: *sessions, Seconds: round(elapsed.Seconds(), 3), Devices: len(targets)}
	if len(getLat) > 0 {
		slices.Sort(getLat)
		res.FullGets, res.FullGetP50, res.FullGetMax = len(getLat), ms(getLat[(len(getLat)-1)/2]), ms(getLat[len(getLat)-1])
	}
	if getErr != nil {
		res.FullGetErr = getErr.Error()
	}
	if *sweep {
		t0 := since(*sinceNS)
		res.SweepStartMS, res.SweepEndMS = ms(begin.Sub(t0)), ms(begin.Add(elapsed).Sub(t0))
		res.Untried = max(0, len(targets)-int(next.Load()))
	}
	var lat []time.Duration
	hit := map[int]bool{}
	for _, w := range workers {
		lat = append(lat, w.lat...)
		res.Errors += w.errors
		if w.first != nil && res.FirstErr == "" {
			res.FirstErr = w.first.Error()
		}
		for k := range w.hit {
			hit[k] = true
		}
	}
	slices.Sort(lat)
	res.RPCs, res.Distinct = len(lat), len(hit)
	res.RPS = round(float64(len(lat))/elapsed.Seconds(), 1)
	pct := func(p float64) float64 { return ms(nclient.Percentile(lat, p)) }
	res.P50, res.P90, res.P99, res.Max = pct(50), pct(90), pct(99), pct(100)
	return res, nil
}

// --- NETCONF over SSH: one session ---------------------------------------

type config struct {
	addr, user, password string
	timeout              time.Duration
}

func sessionFlags(fs *flag.FlagSet) *config {
	c := &config{}
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8830", "NETCONF over SSH `host:port`")
	fs.StringVar(&c.user, "user", "admin", "SSH user")
	fs.StringVar(&c.password, "password", os.Getenv("NCBENCH_PASSWORD"), "SSH password (default $NCBENCH_PASSWORD)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "SSH handshake timeout, and longest wait for one reply")
	return c
}

func dial(c *config) (*nclient.Session, error) {
	return nclient.Dial(nclient.Config{
		Addr:       c.addr,
		User:       c.user,
		Auth:       []ssh.AuthMethod{ssh.Password(c.password)},
		Timeout:    c.timeout,
		ReadBuffer: 256 << 10,
		IDWindow:   400,
	})
}
