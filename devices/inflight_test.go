package devices_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// gate is a command handler that counts how many of its calls run at once
// and holds each until release is closed or its context ends.
type gate struct {
	running, max, returned atomic.Int64
	release                chan struct{}
	once                   sync.Once
}

func newGate() *gate { return &gate{release: make(chan struct{})} }

// open lets every held handler return, and later ones pass.
func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) handle(ctx context.Context, _ *devices.Device, _ *ontology.Function, _ []string) (string, []string) {
	n := g.running.Add(1)
	for m := g.max.Load(); n > m && !g.max.CompareAndSwap(m, n); m = g.max.Load() {
	}
	select {
	case <-g.release:
	case <-ctx.Done():
	}
	g.running.Add(-1)
	g.returned.Add(1)
	return "OK", nil
}

// flood publishes n "ON" commands (QoS 1) to a led-color device as fast as
// the broker takes them; answers come to the stand-in on the returned topic.
func flood(t *testing.T, s *standIn, uuid string, proto client.Protocol, n int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	answers := wire.ResponseTopic(uuid)
	if proto == client.MQTT5 {
		answers = "flood/" + uuid + "/answers"
	}
	if err := s.tr.Subscribe(ctx, answers); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		m := client.Message{Topic: "actuator/led/" + uuid, Payload: wire.Request{ReqID: fmt.Sprintf("f%d", i), Method: "ON"}.Encode()}
		if proto == client.MQTT5 {
			m.ResponseTopic, m.CorrelationData = answers, []byte(fmt.Sprintf("f%d", i))
		}
		if err := s.tr.Publish(ctx, m, 1); err != nil {
			t.Fatal(err)
		}
	}
	return answers
}

// collectAnswers reads want answers on topic and checks each is OK, for a
// distinct flood command.
func collectAnswers(t *testing.T, s *standIn, topic string, want int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	seen := map[string]bool{}
	for len(seen) < want {
		select {
		case m := <-s.received:
			if m.Topic != topic {
				continue
			}
			reqID, value, ok := strings.Cut(string(m.Payload), ";")
			if !ok || value != "OK" || !strings.HasPrefix(reqID, "f") || seen[reqID] {
				t.Fatalf("answer %q", m.Payload)
			}
			seen[reqID] = true
		case <-deadline.C:
			t.Fatalf("%d answers of %d", len(seen), want)
		}
	}
}

// A flood of commands whose handling blocks never runs more than
// MaxInFlightCommands handlers at once: MaxWaitingCommands more wait, the
// rest is dropped and counted, and every command that waited is answered
// once handlers free up.
func TestCommandHandlersAreBounded(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, acceptAll)
	for _, tc := range []struct {
		name             string
		proto            client.Protocol
		bound, waiting   int // configured; 0 is the default
		wantBound, flood int // wantBound+wantWaiting < flood
	}{
		{"mqtt5", client.MQTT5, 4, 8, 4, 40},
		{"mqtt311", client.MQTT311, 4, 8, 4, 40},
		// The documented defaults: 16 handlers, 32 waiting.
		{"mqtt5-default", client.MQTT5, 0, 0, 16, 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate()
			defer g.open() // on failure too, before the device closes
			uuid := uuidFor(t, 0)
			d := startRegistered(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: uuid, BrokerURL: b.url, Protocol: tc.proto,
				MaxInFlightCommands: tc.bound, MaxWaitingCommands: tc.waiting, Handlers: map[string]devices.CommandHandler{"ON": g.handle}})
			answers := flood(t, s, uuid, tc.proto, tc.flood)

			// Every command arrived: the bound runs, the rest waits or
			// was dropped. (Without a bound, more than it would run.)
			testenv.WaitFor(t, "every command in hand", func() bool {
				r := int(g.running.Load())
				return r > tc.wantBound || r == tc.wantBound && d.WaitingCommands()+int(d.Dropped.Load()) == tc.flood-tc.wantBound
			})
			if r := g.running.Load(); r != int64(tc.wantBound) {
				t.Fatalf("%d handlers running at once, want the bound %d", r, tc.wantBound)
			}
			wantWaiting := tc.waiting
			if wantWaiting == 0 {
				wantWaiting = 32
			}
			if w := d.WaitingCommands(); w != wantWaiting {
				t.Errorf("%d commands waiting, want %d", w, wantWaiting)
			}
			wantDropped := tc.flood - tc.wantBound - wantWaiting
			if got := int(d.Dropped.Load()); got != wantDropped {
				t.Errorf("%d commands dropped, want %d", got, wantDropped)
			}

			g.open()
			collectAnswers(t, s, answers, tc.flood-wantDropped)
			if m := g.max.Load(); m > int64(tc.wantBound) {
				t.Errorf("up to %d handlers ran at once, bound %d", m, tc.wantBound)
			}
			if got := int(d.Commands.Load()); got != tc.flood-wantDropped {
				t.Errorf("%d commands handled, want %d", got, tc.flood-wantDropped)
			}
			if w := d.WaitingCommands(); w != 0 {
				t.Errorf("%d commands still waiting", w)
			}
		})
	}
}

// Close ends the running handlers' contexts and returns only after they
// returned and their answers were published; the waiting commands are
// dropped.
func TestCloseWaitsForCommandHandlers(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, acceptAll)
	g := newGate() // never released: the handlers end with their context
	uuid := uuidFor(t, 0)
	const bound = 4
	d := startRegistered(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: uuid, BrokerURL: b.url,
		MaxInFlightCommands: bound, Handlers: map[string]devices.CommandHandler{"ON": g.handle}})
	answers := flood(t, s, uuid, client.MQTT5, 10)
	testenv.WaitFor(t, "every command in hand", func() bool {
		r := g.running.Load()
		return r > bound || r == bound && d.WaitingCommands() == 10-bound
	})
	if r := g.running.Load(); r != bound {
		t.Fatalf("%d handlers running at once, want the bound %d", r, bound)
	}
	d.Close()
	if r, n := g.running.Load(), g.returned.Load(); r != 0 || n != bound {
		t.Fatalf("after Close: %d handlers running, %d returned; want 0 and %d", r, n, bound)
	}
	if n := d.Dropped.Load(); n != 10-bound {
		t.Errorf("%d commands dropped, want the %d waiting", n, 10-bound)
	}
	if w := d.WaitingCommands(); w != 0 {
		t.Errorf("%d commands still waiting after Close", w)
	}
	collectAnswers(t, s, answers, bound)
}
