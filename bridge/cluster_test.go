package bridge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// startInstance starts instance name of cluster c1 on the broker at url,
// its state in etcd, its data in dir ("": a new one).
func startInstance(t *testing.T, url string, etcd *testenv.Etcd, name, dir string) *bridge.Bridge {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return startBridge(t, dir, func(c *bridge.Config) {
		c.MQTTURL, c.Cluster, c.Instance = url, "c1", name
		c.Etcd = bridge.EtcdConfig{Endpoints: etcd.Endpoints(), LeaseTTL: 2 * time.Second, RequestTimeout: time.Second}
		c.HTTPListen = "127.0.0.1:0"
	})
}

func waitMembers(t *testing.T, n int, instances ...*bridge.Bridge) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d cluster members", n), func() bool {
		for _, b := range instances {
			if len(b.ClusterMembers()) != n {
				return false
			}
		}
		return true
	})
}

func waitDevices(t *testing.T, want []string, instances ...*bridge.Bridge) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d devices on every instance", len(want)), func() bool {
		for _, b := range instances {
			if !slices.Equal(b.Devices(), want) {
				return false
			}
		}
		return true
	})
}

// Three bridge instances on one broker share the devices out, follow one
// registry in etcd, and each answers rpcs for any device.
// followLags is how many lags inst's myno_cluster_follow_lag_seconds
// observed.
func followLags(t *testing.T, inst *bridge.Bridge) uint64 {
	t.Helper()
	f := testenv.ScrapeMetrics(t, inst.HTTPAddr())["myno_cluster_follow_lag_seconds"]
	if f == nil || len(f.Metric) != 1 {
		t.Fatal("no metric myno_cluster_follow_lag_seconds")
	}
	return f.Metric[0].GetHistogram().GetSampleCount()
}

func testCluster(t *testing.T, url string) {
	etcd := testenv.StartEtcd(t, 3)
	a, b := startInstance(t, url, etcd, "a", ""), startInstance(t, url, etcd, "b", "")
	defer b.Close()
	waitMembers(t, 2, a, b)

	var uuids []string
	var devs []*devices.Device
	for i := range 12 {
		uuid := fmt.Sprintf("dev-%02d", i)
		file, proto := "led-color.jsonld", client.MQTT5
		if i%2 == 1 {
			file, proto = "relay-sensors.jsonld", client.MQTT311 // answers on response/<uuid>, seen by every instance
		}
		devs = append(devs, device(t, url, file, uuid, proto))
		uuids = append(uuids, uuid)
	}
	waitDevices(t, uuids, a, b)
	// Each bootstrap was answered once, and both instances had a share.
	if na, nb := a.ClusterAnswered(), b.ClusterAnswered(); na == 0 || nb == 0 || na+nb != 12 {
		t.Errorf("bootstraps answered: a %d, b %d; want a share each, 12 in all", na, nb)
	}
	// Each instance observes the lag of every registration the other took
	// (just after holding it).
	testenv.WaitFor(t, "each instance to observe the other's registrations' lags",
		func() bool { return followLags(t, a) == b.ClusterAnswered() && followLags(t, b) == a.ClusterAnswered() },
		func() string {
			return fmt.Sprintf("follow lags observed: a %d, b %d; want b's %d and a's %d registrations",
				followLags(t, a), followLags(t, b), b.ClusterAnswered(), a.ClusterAnswered())
		})

	// Both instances call the same devices at once, MQTT 5 and 3.1.1: each
	// answer reaches the instance that asked.
	ledNS, relayNS := namespace(t, "led-color.jsonld"), namespace(t, "relay-sensors.jsonld")
	var wg sync.WaitGroup
	for _, inst := range []*bridge.Bridge{a, b} {
		s := session(t, inst.NetconfAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10 {
				op := `<relayOn xmlns="` + relayNS + `"><uuidInput>dev-01</uuidInput></relayOn>`
				if i%2 == 1 {
					op = `<setColor xmlns="` + ledNS + `"><uuidInput>dev-00</uuidInput><input_1_Color>green</input_1_Color></setColor>`
				}
				reply, re := exec1(t, s, op)
				if re != nil {
					t.Errorf("%s: %v", op, re)
					return
				}
				if !strings.Contains(reply, ">OK</retval>") && !strings.Contains(reply, ">NOOP</retval>") {
					t.Errorf("%s: %s", op, reply)
				}
			}
		}()
	}
	wg.Wait()
	if la, lb := a.LateAnswers(), b.LateAnswers(); la != 0 || lb != 0 {
		t.Errorf("answers taken for another instance's: a %d, b %d", la, lb)
	}

	// A third instance reads the registry from etcd.
	c := startInstance(t, url, etcd, "c", "")
	defer c.Close()
	waitMembers(t, 3, a, b, c)
	waitDevices(t, uuids, c)
	if lc := followLags(t, c); lc != 0 {
		t.Errorf("c observed %d follow lags for registrations it listed, older than itself", lc)
	}
	reply, re := exec1(t, session(t, c.NetconfAddr()), `<relayOn xmlns="`+relayNS+`"><uuidInput>dev-03</uuidInput></relayOn>`)
	if re != nil {
		t.Fatalf("rpc through the new instance: %v", re)
	}
	mustContain(t, reply, "</retval>")

	// A delete, answered by the owner, reaches every instance.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if answer, err := devs[3].Delete(ctx); err != nil || answer != "OK" {
		t.Fatalf("delete: %q %v", answer, err)
	}
	uuids = slices.Delete(uuids, 3, 4)
	devs = slices.Delete(devs, 3, 4)
	waitDevices(t, uuids, a, b, c)

	// An instance that leaves hands its devices over: every device
	// bootstraps again and is answered by b or c.
	answeredBefore := b.ClusterAnswered() + c.ClusterAnswered()
	a.Close()
	waitMembers(t, 2, b, c)
	for _, d := range devs {
		// A deadline per bootstrap: under a loaded -race run the steps
		// above can take most of ctx's 30 s (seen in CI).
		bctx, bcancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := d.Bootstrap(bctx)
		bcancel()
		if err != nil {
			t.Fatalf("bootstrap after a left: %v", err)
		}
	}
	if got := b.ClusterAnswered() + c.ClusterAnswered() - answeredBefore; got != uint64(len(devs)) {
		t.Errorf("after a left, b and c answered %d of %d bootstraps", got, len(devs))
	}
	waitDevices(t, uuids, b, c)
}

func TestClusterOnEmbeddedBroker(t *testing.T) {
	br, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	testCluster(t, br.URL())
}

func TestClusterOnMosquitto(t *testing.T) {
	testCluster(t, testenv.StartMosquitto(t).URL())
}

// An instance needs a shared broker, etcd, and names that fit in a topic
// level.
func TestClusterConfigErrors(t *testing.T) {
	etcd := bridge.EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}}
	for _, c := range []bridge.Config{
		{Cluster: "c1", Etcd: etcd},                    // the embedded broker
		{Cluster: "c1", MQTTURL: "mqtt://127.0.0.1:1"}, // no etcd
		{Cluster: "c/1", MQTTURL: "mqtt://127.0.0.1:1", Etcd: etcd},
		{Cluster: "c1", Instance: "a+", MQTTURL: "mqtt://127.0.0.1:1", Etcd: etcd},
		{Cluster: "c1", Instance: "a:b", MQTTURL: "mqtt://127.0.0.1:1", Etcd: etcd},
	} {
		c.NetconfListen, c.DataDir, c.Logger, c.AdminPassword = "127.0.0.1:0", t.TempDir(), testenv.Logger(), adminPassword
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		b, err := bridge.Start(ctx, c)
		cancel()
		if err == nil {
			b.Close()
			t.Errorf("cluster %q instance %q on %q, etcd %v: started", c.Cluster, c.Instance, c.MQTTURL, c.Etcd.Endpoints)
		}
	}
}

// A device deleted while an instance is down stays deleted when that
// instance starts again on its old data (issue 18: with retained
// messages, it came back).
func TestClusterDeleteWhileAnInstanceIsDown(t *testing.T) {
	url := testenv.StartMosquitto(t).URL()
	etcd := testenv.StartEtcd(t, 3)
	bDir := t.TempDir()
	a, b := startInstance(t, url, etcd, "a", ""), startInstance(t, url, etcd, "b", bDir)
	defer a.Close()
	waitMembers(t, 2, a, b)
	gone := device(t, url, "led-color.jsonld", "gone-1", client.MQTT5)
	device(t, url, "relay-sensors.jsonld", "kept-1", client.MQTT5)
	waitDevices(t, []string{"gone-1", "kept-1"}, a, b)

	b.Close()
	waitMembers(t, 1, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if answer, err := gone.Delete(ctx); err != nil || answer != "OK" {
		t.Fatalf("delete: %q %v", answer, err)
	}
	waitDevices(t, []string{"kept-1"}, a)

	b = startInstance(t, url, etcd, "b", bDir)
	defer b.Close()
	waitMembers(t, 2, a, b)
	waitDevices(t, []string{"kept-1"}, a, b)
}

// Without an etcd quorum an instance keeps serving the devices it knows,
// refuses new registrations with ERROR, and /readyz says it is
// read-only; with the quorum back, registrations are accepted again.
func TestClusterWithoutEtcdQuorum(t *testing.T) {
	url := testenv.StartMosquitto(t).URL()
	etcd := testenv.StartEtcd(t, 3)
	a := startInstance(t, url, etcd, "a", "")
	defer a.Close()
	waitMembers(t, 1, a)
	device(t, url, "relay-sensors.jsonld", "known-1", client.MQTT5)
	waitDevices(t, []string{"known-1"}, a)

	etcd.Stop(1)
	etcd.Stop(2)
	readyz := func() string {
		resp, err := http.Get("http://" + a.HTTPAddr() + "/readyz")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, body)
	}
	testenv.WaitFor(t, "/readyz to say read-only", func() bool { return strings.HasPrefix(readyz(), "200 ready, cluster store unavailable") },
		func() string { return readyz() })
	metric := func(name string) float64 {
		f := testenv.ScrapeMetrics(t, a.HTTPAddr())[name]
		if f == nil || len(f.Metric) != 1 {
			t.Fatalf("no metric %s", name)
		}
		return f.Metric[0].GetGauge().GetValue()
	}
	if w, n := metric("myno_cluster_writable"), metric("myno_cluster_members"); w != 0 || n != 1 {
		t.Errorf("without quorum: myno_cluster_writable %v, myno_cluster_members %v", w, n)
	}

	// A known device is served.
	relayNS := namespace(t, "relay-sensors.jsonld")
	if reply, re := exec1(t, session(t, a.NetconfAddr()), `<relayOn xmlns="`+relayNS+`"><uuidInput>known-1</uuidInput></relayOn>`); re != nil ||
		!strings.Contains(reply, "</retval>") {
		t.Fatalf("rpc to a known device without quorum: %v %s", re, reply)
	}
	// A new one is refused, and not registered.
	d, err := devices.New(devices.Config{Description: desc(t, "led-color.jsonld"), UUID: "new-1", BrokerURL: url, Logger: testenv.Logger(),
		Credentials: testCreds("new-1"), Protocol: client.MQTT5})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Bootstrap(ctx); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("bootstrap without quorum: %v", err)
	}
	if devs := a.Devices(); !slices.Equal(devs, []string{"known-1"}) {
		t.Fatalf("devices without quorum: %v", devs)
	}

	etcd.Restart(1)
	testenv.WaitFor(t, "/readyz to say ready", func() bool { return readyz() == "200 ready\n" }, func() string { return readyz() })
	if w := metric("myno_cluster_writable"); w != 1 {
		t.Errorf("with the quorum back: myno_cluster_writable %v", w)
	}
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatalf("bootstrap with the quorum back: %v", err)
	}
	waitDevices(t, []string{"known-1", "new-1"}, a)
}
