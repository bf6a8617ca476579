// Command ncbench measures a NETCONF server from outside, as a client
// written with golang.org/x/crypto/ssh would see it: each session is its
// own SSH connection with the netconf subsystem, and sends the same rpc
// back to back, one at a time, waiting for each reply. It prints one JSON
// line: tool, server, sessions, rpcs (answered as expected), errors,
// seconds, rps and the p50/p90/p99 latency of single rpcs in
// microseconds, the framing used, and with -cpu-pids the servers' CPU time
// per rpc. It exits 1 when it cannot measure, 2 when rpcs failed.
//
// It is the Go half of docs/bench/external (make bench-external); the
// other half, ncbench.py, does the same with paramiko. Sessions are set
// up before the clock starts, so the SSH handshakes are not measured.
//
//	go run ./docs/bench/external/ncbench -addr 127.0.0.1:8830 -user admin -password secret -sessions 16 -duration 10s
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/docs/bench/external/nclient"
	"golang.org/x/crypto/ssh"
)

// defaultRPC is the rpc measured: a one-leaf <get> with a subtree filter,
// the version of schema ietf-netconf-monitoring (issue 17).
const defaultRPC = `<get><filter type="subtree"><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><schemas><schema><identifier>ietf-netconf-monitoring</identifier><version/></schema></schemas></netconf-state></filter></get>`

type config struct {
	addr, user, password, keyFile string
	server, tool                  string
	sessions, rpcs, warmup        int
	duration, timeout             time.Duration
	body, expect                  string
	framing                       string
	helloPause                    time.Duration
	dialParallel                  int
	cpuPIDs                       []int
}

// result is the JSON line.
type result struct {
	Tool     string  `json:"tool"`
	Server   string  `json:"server"`
	Sessions int     `json:"sessions"`
	RPCs     int     `json:"rpcs"`
	Errors   int     `json:"errors"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50us    float64 `json:"p50_us"`
	P90us    float64 `json:"p90_us"`
	P99us    float64 `json:"p99_us"`
	Framing  string  `json:"framing"`
	// ServerCPUus is the CPU time the -cpu-pids processes (and their
	// descendants) spent while the clock ran, per rpc.
	ServerCPUus float64 `json:"server_cpu_us_per_rpc,omitempty"`
}

func main() {
	var c config
	flag.StringVar(&c.addr, "addr", "127.0.0.1:8830", "NETCONF over SSH server `host:port`")
	flag.StringVar(&c.user, "user", "admin", "SSH user")
	flag.StringVar(&c.password, "password", os.Getenv("NCBENCH_PASSWORD"), "SSH password (default $NCBENCH_PASSWORD)")
	flag.StringVar(&c.keyFile, "key", "", "SSH private key `file` (instead of, or besides, the password)")
	flag.StringVar(&c.server, "server", "", "label of the server in the JSON line (default: -addr)")
	flag.StringVar(&c.tool, "tool", "go", "label of the client in the JSON line")
	flag.IntVar(&c.sessions, "sessions", 16, "sessions in parallel, each its own SSH connection")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "how long to measure (when -rpcs is 0)")
	flag.IntVar(&c.rpcs, "rpcs", 0, "rpcs per session instead of -duration")
	flag.IntVar(&c.warmup, "warmup", 20, "rpcs per session before the clock starts")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Second, "SSH handshake timeout, and longest wait for one reply")
	flag.StringVar(&c.body, "rpc", defaultRPC, "the rpc's content (inside <rpc>); each {n} becomes the session's rpc count modulo 100, so that edits change something")
	flag.StringVar(&c.expect, "expect", "version>", "a reply must contain this element with text in it, or <ok/> (and no <rpc-error>)")
	flag.StringVar(&c.framing, "framing", "auto", "auto (1.1 chunked when the server offers base:1.1), 1.0 or 1.1")
	flag.DurationVar(&c.helloPause, "hello-pause", 50*time.Millisecond, "pause after sending our hello, before the first rpc (netconfd 2.13 fails a session whose first chunked rpc arrives in the same read as the hello)")
	flag.IntVar(&c.dialParallel, "dial-parallel", 1, "sessions set up at once (setup is not measured; netconfd 2.13 fails sessions set up together)")
	cpuPIDs := flag.String("cpu-pids", "", "comma-separated server `pids`: report the CPU time they and their descendants spend while the clock runs, per rpc (Linux /proc)")
	sequential := flag.Bool("sequential", false, "one session, sequential: the same as -sessions 1")
	flag.Parse()
	if *sequential {
		c.sessions = 1
	}
	if c.server == "" {
		c.server = c.addr
	}
	for _, f := range strings.FieldsFunc(*cpuPIDs, func(r rune) bool { return r == ',' || r == ' ' }) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ncbench: -cpu-pids:", err)
			os.Exit(1)
		}
		c.cpuPIDs = append(c.cpuPIDs, pid)
	}
	res, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ncbench:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Errors > 0 {
		os.Exit(2)
	}
}

func run(c config) (result, error) {
	if c.sessions < 1 {
		return result{}, errors.New("-sessions must be at least 1")
	}
	auth, err := authMethods(c)
	if err != nil {
		return result{}, err
	}
	nc := nclient.Config{
		Addr:       c.addr,
		User:       c.user,
		Auth:       auth,
		Timeout:    c.timeout,
		Framing:    c.framing,
		HelloPause: c.helloPause,
		ReadBuffer: 64 << 10,
	}

	// Open every session first, -dial-parallel at a time, then start the
	// clock.
	sessions := make([]*session, c.sessions)
	errs := make([]error, c.sessions)
	var wg sync.WaitGroup
	gate := make(chan struct{}, max(1, c.dialParallel))
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gate <- struct{}{}
			defer func() { <-gate }()
			var ns *nclient.Session
			if ns, errs[i] = nclient.Dial(nc); ns != nil {
				sessions[i] = &session{Session: ns}
			}
		}()
	}
	wg.Wait()
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.close()
			}
		}
	}()
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}

	// Warm-up: connections, server caches, the Go runtime.
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range c.warmup {
				if _, err := s.call(c); err != nil {
					s.err = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, s := range sessions {
		if s.err != nil {
			return result{}, fmt.Errorf("warm-up: %w", s.err)
		}
	}

	var stop atomic.Bool
	cpuBefore := treeTicks(c.cpuPIDs)
	start := time.Now()
	for _, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.rpcs > 0 {
				s.latencies = make([]time.Duration, 0, c.rpcs)
			}
			for n := 0; ; n++ {
				if c.rpcs > 0 && n >= c.rpcs || c.rpcs == 0 && stop.Load() {
					return
				}
				d, err := s.call(c)
				if err != nil {
					s.errors++
					if s.err == nil {
						s.err = err
					}
					if errors.Is(err, nclient.ErrTransport) {
						return // the session is gone
					}
					continue
				}
				s.latencies = append(s.latencies, d)
			}
		}()
	}
	if c.rpcs == 0 {
		time.Sleep(c.duration)
		stop.Store(true)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := treeTicks(c.cpuPIDs) - cpuBefore

	var all []time.Duration
	res := result{Tool: c.tool, Server: c.server, Sessions: c.sessions, Seconds: round(elapsed.Seconds(), 3), Framing: sessions[0].Framing()}
	for _, s := range sessions {
		all = append(all, s.latencies...)
		res.Errors += s.errors
		if s.err != nil {
			fmt.Fprintln(os.Stderr, "ncbench: first error of a session:", s.err)
		}
	}
	slices.Sort(all)
	res.RPCs = len(all)
	res.RPS = round(float64(len(all))/elapsed.Seconds(), 1)
	res.P50us = percentile(all, 50)
	res.P90us = percentile(all, 90)
	res.P99us = percentile(all, 99)
	if len(c.cpuPIDs) > 0 && len(all) > 0 {
		res.ServerCPUus = round(float64(cpu)/userHZ*1e6/float64(len(all)), 1)
	}
	return res, nil
}

// userHZ is the unit of the times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture Go runs on.
const userHZ = 100

// treeTicks sums the CPU time (user and system, their own and their
// reaped children's) of the processes roots and all their descendants.
// Summing the reaped children's too keeps a process that ends between two
// calls counted once: first on its own, then in its parent's.
func treeTicks(roots []int) int64 {
	if len(roots) == 0 {
		return 0
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	type proc struct {
		ppid  int
		ticks int64
	}
	procs := map[int]proc{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ... utime stime cutime cstime: fields
		// 14-17; comm may hold spaces and parentheses, so count from
		// the last ')'.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		var t int64
		for _, v := range f[11:15] {
			n, _ := strconv.ParseInt(v, 10, 64)
			t += n
		}
		procs[pid] = proc{ppid, t}
	}
	in := map[int]bool{}
	for _, r := range roots {
		in[r] = true
	}
	// Descendants: iterate until no process joins (trees are shallow).
	for changed := true; changed; {
		changed = false
		for pid, p := range procs {
			if !in[pid] && in[p.ppid] {
				in[pid], changed = true, true
			}
		}
	}
	var total int64
	for pid := range in {
		total += procs[pid].ticks
	}
	return total
}

func authMethods(c config) ([]ssh.AuthMethod, error) {
	var auth []ssh.AuthMethod
	if c.keyFile != "" {
		pem, err := os.ReadFile(c.keyFile)
		if err != nil {
			return nil, err
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.keyFile, err)
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if c.password != "" {
		auth = append(auth, ssh.Password(c.password))
	}
	if len(auth) == 0 {
		return nil, errors.New("give -password (or $NCBENCH_PASSWORD) or -key")
	}
	return auth, nil
}

// percentile is the nearest-rank percentile p of sorted, in microseconds.
func percentile(sorted []time.Duration, p float64) float64 {
	return round(float64(nclient.Percentile(sorted, p).Nanoseconds())/1e3, 1)
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// session is one measured session: its latencies and errors.
type session struct {
	*nclient.Session
	latencies []time.Duration
	errors    int
	err       error
	n         int // rpcs sent, for {n}
}

// call sends the rpc and checks its reply; it returns the latency.
func (s *session) call(c config) (time.Duration, error) {
	body := c.body
	if strings.Contains(body, "{n}") {
		s.n++
		body = strings.ReplaceAll(body, "{n}", strconv.Itoa(s.n%100))
	}
	reply, d, err := s.Call(body)
	switch {
	case err != nil:
		return 0, err
	case bytes.Contains(reply, []byte("rpc-error>")):
		return 0, fmt.Errorf("rpc-error: %.500s", reply)
	case c.expect == "<ok/>":
		if !bytes.Contains(reply, []byte("<ok/>")) {
			return 0, fmt.Errorf("reply without <ok/>: %.500s", reply)
		}
	case !hasValue(reply, c.expect):
		return 0, fmt.Errorf("reply without a non-empty %q: %.500s", c.expect, reply)
	}
	return d, nil
}

// hasValue tells whether reply has the element named by expect ("version>")
// with text in it: <version>x or <p:version>x.
func hasValue(reply []byte, expect string) bool {
	for rest := reply; ; {
		i := bytes.Index(rest, []byte(expect))
		if i < 0 {
			return false
		}
		j := i + len(expect)
		if i > 0 && rest[i-1] != '/' && j < len(rest) && rest[j] != '<' {
			return true
		}
		rest = rest[j:]
	}
}

// close ends the session politely (not measured, and not waited for
// long) unless one of its rpcs failed.
func (s *session) close() {
	if s.err != nil {
		s.Abort()
		return
	}
	s.Close()
}
