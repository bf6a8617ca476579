package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

func TestBootstrapLimits(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) {
		c.MaxDescriptionBytes = 4000
		c.MaxChunks = 20
		c.AssemblyTimeout = 400 * time.Millisecond
	})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answers := make(chan client.Message, 16)
	// Each uuid is a device of its own, connected on its first message:
	// only a device may send its bootstrap chunks, and read its answers.
	devs := map[string]client.Transport{}
	defer func() {
		for _, tr := range devs {
			tr.Close(ctx)
		}
	}()
	as := func(url, uuid string) client.Transport {
		t.Helper()
		if tr, ok := devs[uuid]; ok {
			return tr
		}
		tr := dialAsDevice(t, ctx, url, uuid, func(m client.Message) { answers <- m })
		devs[uuid] = tr
		if err := tr.Subscribe(ctx, wire.BootstrapResponseTopic(wire.TopicCreate, uuid)); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	send := func(uuid, chunk string) {
		t.Helper()
		if err := as(b.BrokerURL(), uuid).Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: wire.Chunk{UUID: uuid, Data: []byte(chunk)}.Encode()}, 1); err != nil {
			t.Fatal(err)
		}
	}
	end := func(uuid string) {
		as(b.BrokerURL(), uuid).Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: wire.Chunk{UUID: uuid, End: true}.Encode()}, 1)
	}
	seen := map[string]string{} // answers by uuid, in whatever order they come
	expect := func(uuid, want string) {
		t.Helper()
		for {
			if got, ok := seen[uuid]; ok {
				if !strings.HasPrefix(got, want) {
					t.Errorf("%s: answer %q, want %q", uuid, got, want)
				}
				return
			}
			select {
			case m := <-answers:
				seen[m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]] = string(m.Payload)
			case <-ctx.Done():
				t.Fatalf("%s: no answer", uuid)
			}
		}
	}
	send("too-big", strings.Repeat("x", 4001))
	expect("too-big", "ERROR;description larger than 4000 bytes")
	for i := 0; i < 21; i++ {
		send("too-many", "x")
	}
	expect("too-many", "ERROR;more than 20 chunks")
	end("lone-end")
	expect("lone-end", "ERROR;END without a description")
	send("slow", `{"@context": {}`)
	// The rest never comes: once the chunk is in, the assembly must expire
	// (after 400 ms).
	waitPending := func(n int) {
		t.Helper()
		testenv.WaitFor(t, fmt.Sprintf("%d pending descriptions", n), func() bool { return b.PendingDescriptions() == n },
			func() string { return fmt.Sprintf("pending: %d", b.PendingDescriptions()) })
	}
	waitPending(1)
	waitPending(0)
	end("slow")
	expect("slow", "ERROR;END without a description")
	send("not-json", "{{{")
	end("not-json")
	expect("not-json", "ERROR;not JSON")
	// Interleaved devices each get their own description.
	d1, d2 := desc(t, "led-color.jsonld"), desc(t, "rgb-lamp.jsonld")
	b2 := startBridge(t, t.TempDir(), nil)
	defer b2.Close()
	c1, c2 := wire.SplitDescription("il-1", d1, 500), wire.SplitDescription("il-2", d2, 500)
	for i := 0; i < max(len(c1), len(c2)); i++ {
		for _, cs := range [][]wire.Chunk{c1, c2} {
			if i < len(cs) {
				as(b2.BrokerURL(), cs[i].UUID).Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: cs[i].Encode()}, 1)
			}
		}
	}
	expect("il-1", "OK")
	expect("il-2", "OK")
	if m1, _ := b2.ModuleOf("il-1"); !strings.HasPrefix(m1, "myno-led-color-1-") {
		t.Errorf("il-1 module %q", m1)
	}
}

// bootstrapOnce connects device uuid with description desc and returns
// what its one bootstrap attempt got.
func bootstrapOnce(t *testing.T, ctx context.Context, url, uuid string, desc []byte) error {
	t.Helper()
	d, err := devices.NewRaw(devices.Config{Description: desc, UUID: uuid, BrokerURL: url, Logger: testenv.Logger(),
		BootstrapTimeout: 5 * time.Second, BootstrapAttempts: 1, Credentials: testCreds(uuid)})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	return d.Bootstrap(ctx)
}

// A description that claims another device's sensor topic is refused: it
// would take that device's readings over (and, deleted, unsubscribe them).
// The device that owns the topic keeps its readings.
func TestDescriptionClaimingAnotherDevicesSensorTopic(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	device(t, b.BrokerURL(), "relay-sensors.jsonld", "relay-owner", client.MQTT5)
	thief := bytes.ReplaceAll(desc(t, "relay-sensors.jsonld"), []byte("sensor/temperature/%s"), []byte("sensor/temperature/relay-owner"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := bootstrapOnce(t, ctx, b.BrokerURL(), "relay-thief", thief)
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "belongs to device relay-owner") {
		t.Fatalf("bootstrap: %v, want ERROR;... belongs to device relay-owner", err)
	}
	if got := b.Devices(); !slices.Equal(got, []string{"relay-owner"}) {
		t.Fatalf("devices %v", got)
	}
	// The owner's readings still reach its state (the broker and the
	// bridge take them from the owner only: a second connection of it).
	pub := dialAsDevice(t, ctx, b.BrokerURL(), "relay-owner", nil)
	defer pub.Close(ctx)
	if err := pub.Publish(ctx, client.Message{Topic: "sensor/temperature/relay-owner", Payload: []byte("21.5")}, 1); err != nil {
		t.Fatal(err)
	}
	s := session(t, b.NetconfAddr())
	testenv.WaitFor(t, "the owner's reading in <get>", func() bool {
		reply, _ := exec1(t, s, `<get/>`)
		return strings.Contains(reply, "<uuid>relay-owner</uuid>") && strings.Contains(reply, "<value>21.5</value>")
	})
}
