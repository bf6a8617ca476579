package devices_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/wire"
)

func TestMain(m *testing.M) {
	if os.Getenv("MYNO_TEST_BROKER_CHILD") == "1" {
		runBrokerChild()
		return
	}
	os.Exit(m.Run())
}

// runBrokerChild is the embedded broker in a process of its own, with an
// inline client that accepts every bootstrap: the fleet benchmark then
// measures the devices' memory alone.
func runBrokerChild() {
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger()})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	srv := b.Server()
	_ = srv.Subscribe(wire.TopicCreate, 1, func(cl *mqtt.Client, sub packets.Subscription, pk packets.Packet) {
		c, err := wire.DecodeChunk(pk.Payload)
		if err != nil || !c.End {
			return
		}
		_ = srv.Publish(wire.BootstrapResponseTopic(wire.TopicCreate, c.UUID), []byte(wire.AnswerOK), false, 1)
	})
	fmt.Println("ADDR", b.Addr())
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	b.Close()
}

func startBrokerChild(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MYNO_TEST_BROKER_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		tb.Fatalf("broker child: %q %v", line, err)
	}
	return "mqtt://" + strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
}

func TestFleet(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, acceptAll)
	dir := t.TempDir()
	root := filepath.Join("..", "testdata", "descriptions")
	fleetFile := filepath.Join(dir, "fleet.txt")
	abs := func(n string) string { p, _ := filepath.Abs(filepath.Join(root, n)); return p }
	os.WriteFile(fleetFile, []byte(fmt.Sprintf("# a small fleet\n%s:10\n%s:10 # relays\n%s:10\n", abs("led-color.jsonld"), abs("relay-sensors.jsonld"), abs("mup-device.jsonld"))), 0o644)
	entries, err := devices.ParseFleetFile(fleetFile)
	if err != nil {
		t.Fatal(err)
	}
	var reports []devices.FleetProgress
	ctx, cancel := context.WithCancel(context.Background())
	fleet, err := devices.StartFleet(ctx, devices.FleetConfig{
		Entries: entries, BaseUUID: "fleet-test",
		Device:   devices.Config{BrokerURL: b.url, Logger: testenv.Logger()},
		Progress: func(p devices.FleetProgress) { reports = append(reports, p) }, ProgressEvery: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-fleet.Ready():
	case <-time.After(30 * time.Second):
		t.Fatalf("fleet not ready: %v", fleet.Progress())
	}
	p := fleet.Progress()
	if p.Total != 30 || p.Bootstrapped != 30 || p.Failed != 0 || p.Connected != 30 {
		t.Errorf("progress %v", p)
	}
	seen := map[string]bool{}
	for _, d := range fleet.Devices {
		if !wire.ValidUUID(d.UUID()) || seen[d.UUID()] {
			t.Errorf("uuid %q", d.UUID())
		}
		seen[d.UUID()] = true
		if s.endCount(d.UUID()) != 1 {
			t.Errorf("%s bootstrapped %d times", d.UUID(), s.endCount(d.UUID()))
		}
	}
	if devices.DeriveUUID("fleet-test", 3) != fleet.Devices[3].UUID() {
		t.Errorf("uuids are not derived from the base")
	}
	cancel()
	fleet.Wait()
	testenv.WaitFor(t, "final progress report", func() bool { return len(reports) > 0 })
}

func rssKiB(tb testing.TB) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// BenchmarkFleetBootstrap bootstraps 1,000 devices (the led description,
// 4054-byte chunks) against the embedded broker, which runs in a child
// process so that memory figures are the devices' own. Run it with
// -benchtime=1x.
func BenchmarkFleetBootstrap(b *testing.B) {
	const n = 1000
	url := startBrokerChild(b)
	desc := readDescription(b, "led-color.jsonld")
	for b.Loop() {
		runtime.GC()
		before := rssKiB(b)
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		ctx, cancel := context.WithCancel(context.Background())
		start := time.Now()
		fleet, err := devices.StartFleet(ctx, devices.FleetConfig{
			Entries: []devices.FleetEntry{{Name: "led", Description: desc, Count: n}}, BaseUUID: fmt.Sprint("bench-", time.Now().UnixNano()),
			Device: devices.Config{BrokerURL: url, Logger: testenv.Logger()}, Stagger: 100 * time.Microsecond, Concurrency: 128,
		})
		if err != nil {
			b.Fatal(err)
		}
		<-fleet.Ready()
		elapsed := time.Since(start)
		if p := fleet.Progress(); p.Bootstrapped != n {
			b.Fatalf("progress %v", p)
		}
		runtime.GC()
		after := rssKiB(b)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.Logf("rss %d -> %d KiB, heap+stack %d -> %d KiB", before, after, (ms0.HeapInuse+ms0.StackInuse)>>10, (ms.HeapInuse+ms.StackInuse)>>10)
		b.ReportMetric(elapsed.Seconds(), "s/1000-devices")
		b.ReportMetric(float64(after-before)/n, "KiB-RSS/device")
		b.ReportMetric(float64(int64(ms.HeapInuse+ms.StackInuse)-int64(ms0.HeapInuse+ms0.StackInuse))/1024/n, "KiB-heap+stack/device")
		b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/device")
		if path := os.Getenv("MYNO_FLEET_HEAPPROFILE"); path != "" {
			f, _ := os.Create(path)
			pprof.WriteHeapProfile(f)
			f.Close()
		}
		cancel()
		fleet.Wait()
	}
}

// A fleet's connects do not wait for its bootstraps: with nobody
// answering them (the bridge still busy registering others), every device
// of the fleet still connects, Concurrency at a time, while at most
// Concurrency bootstraps wait. (Connect and bootstrap shared one slot:
// 10,000 devices took as long to connect as to register.)
func TestFleetConnectsWhileBootstrapsWait(t *testing.T) {
	b := embeddedBroker(t)
	desc, err := os.ReadFile(filepath.Join("..", "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := devices.StartFleet(ctx, devices.FleetConfig{
		Entries: []devices.FleetEntry{{Name: "led-color.jsonld", Description: desc, Count: 12}}, BaseUUID: "fleet-wait", Concurrency: 2,
		Device: devices.Config{BrokerURL: b.url, Logger: testenv.Logger(), BootstrapTimeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "all 12 devices connected", func() bool { return fleet.Progress().Connected == 12 },
		func() string { return fleet.Progress().String() })
	if p := fleet.Progress(); p.Bootstrapped != 0 || p.Failed != 0 {
		t.Errorf("nobody answers bootstraps, yet: %v", p)
	}
	cancel()
	fleet.Wait()
}
