package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
)

func TestMain(m *testing.M) {
	if url := os.Getenv("MYNO_TEST_FLEET_CHILD"); url != "" {
		runFleetChild(url)
		return
	}
	os.Exit(m.Run())
}

// runFleetChild runs a fleet in a process of its own (so that the
// benchmark process holds only the bridge) and says READY once every
// device is registered.
func runFleetChild(url string) {
	n, _ := strconv.Atoi(os.Getenv("MYNO_TEST_FLEET_N"))
	descFile := os.Getenv("MYNO_TEST_FLEET_DESC")
	d, err := os.ReadFile(descFile)
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	creds := fleetCreds
	if os.Getenv("MYNO_TEST_FLEET_ANONYMOUS") != "" {
		creds = nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	f, err := devices.StartFleet(ctx, devices.FleetConfig{Entries: []devices.FleetEntry{{Name: "x", Description: d, Count: n}},
		BaseUUID: os.Getenv("MYNO_TEST_FLEET_BASE"), Device: devices.Config{BrokerURL: url, BootstrapTimeout: 20 * time.Second,
			// Why a device failed goes to the benchmark's stderr.
			Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))},
		Credentials: creds, Stagger: 100 * time.Microsecond, Concurrency: 128})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	<-f.Ready()
	p := f.Progress()
	fmt.Printf("READY %d %d %d\n", p.Bootstrapped, p.Failed, p.Elapsed.Microseconds())
	bufio.NewReader(os.Stdin).ReadString('\n')
	cancel()
	f.Wait()
}

// fleetCreds gives each device of a fleet its test credentials.
func fleetCreds(uuid string) (client.Credentials, error) { return testCreds(uuid), nil }

// BenchmarkBridgeBootstrap registers 1,000 devices (one shape) through the
// embedded broker. The devices run in a child process; the RSS growth of
// this process is the bridge's cost per registered device. Run with
// -benchtime=1x.
func BenchmarkBridgeBootstrap(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("MYNO_BENCH_DEVICES")); err == nil {
		n = v
	}
	// Each device logs in with its own token, enrolled on first use
	// (--enrol open: a write of the credential file, shared by the
	// devices that enrol together), or anonymously
	// (--mqtt-allow-anonymous), for comparison. Each fleet bootstraps on
	// a fresh bridge ("first": registry empty, tokens enrolled), then
	// again on the bridge restarted over the same data ("again": the
	// registry restored, the tokens known).
	for _, mode := range []string{"token", "anonymous"} {
		b.Run("login="+mode, func(b *testing.B) {
			for b.Loop() {
				dir := b.TempDir()
				base := strconv.FormatInt(time.Now().UnixNano(), 36)
				mutate := func(c *bridge.Config) { c.MQTTAllowAnonymous = mode == "anonymous" }
				br := startBridge(b, dir, mutate)
				runtime.GC()
				before := rss(b)
				first, stop := runFleet(b, br, n, base, mode == "anonymous")
				runtime.GC()
				after := rss(b)
				stop() // the devices leave before the bridge closes
				br.Close()
				br = startBridge(b, dir, mutate)
				again, stop := runFleet(b, br, n, base, mode == "anonymous")
				stop()
				br.Close()
				b.ReportMetric(first.Seconds(), "s/first")
				b.ReportMetric(again.Seconds(), "s/again")
				b.ReportMetric(float64(after-before)/float64(n), "KiB-RSS/device")
			}
		})
	}
}

// runFleet bootstraps n devices in a child process through br's broker and
// returns how long until all were registered, and a stop that ends the
// child (which it waits for).
func runFleet(b *testing.B, br *bridge.Bridge, n int, base string, anonymous bool) (time.Duration, func()) {
	start := time.Now()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MYNO_TEST_FLEET_CHILD="+br.BrokerURL(), "MYNO_TEST_FLEET_N="+strconv.Itoa(n),
		"MYNO_TEST_FLEET_DESC="+filepath.Join(testenv.RepoRoot(b), "testdata", "descriptions", "led-color.jsonld"),
		"MYNO_TEST_FLEET_BASE="+base)
	if anonymous {
		cmd.Env = append(cmd.Env, "MYNO_TEST_FLEET_ANONYMOUS=1")
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { stdin.Close(); _ = cmd.Wait() }) }
	b.Cleanup(func() { _ = cmd.Process.Kill(); stop() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	elapsed := time.Since(start)
	if err != nil || !strings.HasPrefix(line, "READY ") {
		b.Fatalf("fleet: %q %v", line, err)
	}
	var ok, failed int
	fmt.Sscan(strings.TrimPrefix(line, "READY "), &ok, &failed)
	if ok != n || len(br.Devices()) < n {
		b.Fatalf("%d bootstrapped, %d failed, %d registered", ok, failed, len(br.Devices()))
	}
	return elapsed, stop
}

func rss(tb testing.TB) int64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return v
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// rpcClient is a Go NETCONF client (base:1.1, framed by the netconf
// package) for the round-trip benchmarks.
type rpcClient struct {
	fr *netconf.FrameReader
	fw *netconf.FrameWriter
	c  *ssh.Client
}

func dialRPC(tb testing.TB, addr string) *rpcClient {
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	s, _ := c.NewSession()
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.RequestSubsystem("netconf"); err != nil {
		tb.Fatal(err)
	}
	r := &rpcClient{fr: netconf.NewFrameReader(out, 0), fw: netconf.NewFrameWriter(in), c: c}
	if _, err := r.fr.ReadMessage(); err != nil {
		tb.Fatal(err)
	}
	io.WriteString(in, `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>]]>]]>`)
	r.fr.SetFraming(netconf.FramingChunked)
	r.fw.SetFraming(netconf.FramingChunked)
	return r
}

func (r *rpcClient) call(op string) (string, error) {
	if err := r.fw.WriteMessage([]byte(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + op + `</rpc>`)); err != nil {
		return "", err
	}
	m, err := r.fr.ReadMessage()
	return string(m), err
}

// BenchmarkBridgeRPC: NETCONF -> bridge -> MQTT -> device -> reply, one
// session, one rpc at a time; p50 and p99.
func BenchmarkBridgeRPC(b *testing.B) {
	br := startBridge(b, b.TempDir(), nil)
	defer br.Close()
	device(b, br.BrokerURL(), "led-color.jsonld", "bench-led", client.MQTT5)
	ns := namespace(b, "led-color.jsonld")
	c := dialRPC(b, br.NetconfAddr())
	defer c.c.Close()
	ops := []string{`<ledOn xmlns="` + ns + `"><uuidInput>bench-led</uuidInput></ledOn>`, `<ledOff xmlns="` + ns + `"><uuidInput>bench-led</uuidInput></ledOff>`}
	for i := 0; i < 50; i++ {
		c.call(ops[i%2])
	}
	lat := make([]time.Duration, 0, 1<<14)
	i := 0
	for b.Loop() {
		start := time.Now()
		reply, err := c.call(ops[i%2])
		if err != nil || !strings.Contains(reply, "<retval") {
			b.Fatalf("%v %s", err, reply)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkBridgeThroughput: 16 sessions over 100 devices, each session
// one rpc at a time; rpcs per second through the whole path.
func BenchmarkBridgeThroughput(b *testing.B) {
	const sessions, ndev = 16, 100
	br := startBridge(b, b.TempDir(), func(c *bridge.Config) { c.RPCTimeout = 10 * time.Second })
	defer br.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, _ := os.ReadFile(filepath.Join(testenv.RepoRoot(b), "testdata", "descriptions", "led-color.jsonld"))
	fleet, err := devices.StartFleet(ctx, devices.FleetConfig{Entries: []devices.FleetEntry{{Name: "led", Description: d, Count: ndev}},
		BaseUUID: "tput", Device: devices.Config{BrokerURL: br.BrokerURL(), Logger: testenv.Logger()}, Credentials: fleetCreds})
	if err != nil {
		b.Fatal(err)
	}
	<-fleet.Ready()
	ns := namespace(b, "led-color.jsonld")
	clients := make([]*rpcClient, sessions)
	for i := range clients {
		clients[i] = dialRPC(b, br.NetconfAddr())
		defer clients[i].c.Close()
	}
	// Each iteration is one rpc on each of the 16 sessions at once.
	calls := 0
	start := time.Now()
	for b.Loop() {
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for si, c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				uuid := fleet.Devices[(si*7+calls)%ndev].UUID()
				op := "ledOn"
				if calls%2 == 1 {
					op = "ledOff"
				}
				reply, err := c.call(`<` + op + ` xmlns="` + ns + `"><uuidInput>` + uuid + `</uuidInput></` + op + `>`)
				if err != nil || !strings.Contains(reply, "<retval") {
					errs <- fmt.Errorf("%v %s", err, reply)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		calls++
	}
	b.ReportMetric(float64(calls*sessions)/time.Since(start).Seconds(), "rpcs/s")
	cancel()
	fleet.Wait()
}
