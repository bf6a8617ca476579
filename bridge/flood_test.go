package bridge_test

import (
	"context"
	"net"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// liveHeap is the heap's live bytes after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// dialFrom connects an MQTT 5 client without credentials from the
// loopback address local; on gets what it receives.
func dialFrom(t *testing.T, brokerURL, local, clientID string, on func(paho.PublishReceived) (bool, error)) *paho.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", strings.TrimPrefix(brokerURL, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){on}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho.Connect{KeepAlive: 30, ClientID: clientID, CleanStart: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("connect from %s: %v %v", local, ca, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// A bootstrap flood from one source (issue 12): one anonymous client on
// 127.0.0.2 (--mqtt-allow-anonymous lets it publish for any uuid) starts
// 20,000 descriptions of 1 KiB and ends none. Past its per-source limit
// it is told the bridge is busy; the heap holds what the limit allows,
// not the 16 MiB of the global cap; and a device logging in as itself
// from 127.0.0.1 still registers.
func TestBootstrapFloodFromOneSource(t *testing.T) {
	const n, chunk = 20000, 1024
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) {
		c.MQTTAllowAnonymous = true
		c.MaxPendingDescriptionBytes = 16 << 20
	})
	defer b.Close()
	var sample sync.Once
	var firstAnswer atomic.Value
	flood := dialFrom(t, b.BrokerURL(), "127.0.0.2", "flood", func(p paho.PublishReceived) (bool, error) {
		sample.Do(func() { firstAnswer.Store(string(p.Packet.Payload)) })
		return true, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := flood.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: wire.BootstrapResponseTopic(wire.TopicCreate, "+"), QoS: 0}}}); err != nil {
		t.Fatal(err)
	}
	before := liveHeap()
	data := strings.Repeat("x", chunk)
	for i := range n {
		uuid := "flood-" + strconv.Itoa(i)
		if _, err := flood.Publish(ctx, &paho.Publish{Topic: wire.DeviceBootstrapTopic(wire.TopicCreate, uuid), QoS: 0,
			Payload: []byte(uuid + ";" + data)}); err != nil {
			t.Fatal(err)
		}
	}
	// The broker hands a client's messages to the bridge in order, and
	// acknowledges a QoS 1 message once those before it are handed over:
	// after this one, every chunk of the flood is held or refused.
	// (A retrieve: an anonymous client may publish on no other topic.)
	if _, err := flood.Publish(ctx, &paho.Publish{Topic: wire.DeviceBootstrapTopic(wire.TopicRetrieve, "flood-done"), QoS: 1, Payload: []byte("flood-done")}); err != nil {
		t.Fatal(err)
	}
	after := liveHeap()
	grown := int64(after) - int64(before)
	t.Logf("%d held; live heap %d -> %d bytes (%+d)", b.PendingDescriptions(), before, after, grown)
	if p := b.PendingDescriptions(); p > bridge.DefaultMaxPendingPerSource {
		t.Errorf("%d descriptions held for one source", p)
	}
	// Without the per-source limit the global cap would hold 16 MiB. The
	// margin above the per-source limit is the broker's queue of QoS 0
	// refusals to the flooding client, still draining at this point (it
	// went past 6 MiB once under load).
	if grown > 9<<20 {
		t.Errorf("the flood grew the live heap by %d bytes", grown)
	}
	testenv.WaitFor(t, "an answer to the flood", func() bool { return firstAnswer.Load() != nil })
	if a, _ := firstAnswer.Load().(string); !strings.HasPrefix(a, "ERROR;bridge busy") || !strings.Contains(a, "--max-pending-per-source") {
		t.Errorf("the flood's answer: %q", a)
	}
	// A device of its own identity, from another address, registers.
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	s := session(t, b.NetconfAddr())
	reply, re := exec1(t, s, `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"><pending-descriptions/></bridge></filter></get>`)
	if re != nil {
		t.Fatal(re)
	}
	mustContain(t, reply, "<sources>1</sources>", "<max-per-source>256</max-per-source>", "<source-busy-refusals>"+strconv.Itoa(n-bridge.DefaultMaxPendingPerSource)+"</source-busy-refusals>")
}
