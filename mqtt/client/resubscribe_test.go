package client_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// refuseSubscribe makes the broker refuse, once armed, the next SUBSCRIBEs
// of one client: OnSubscribe turns the topic filter into an invalid one
// ('#' not last, MQTT 5 §4.7.1.2), which mochi-mqtt answers with SUBACK
// 0x8F Topic Filter invalid (0x80 Failure to a 3.1.1 client, §3.9.3)
// without subscribing. It counts the SUBACKs by outcome.
type refuseSubscribe struct {
	mqtt.HookBase
	client           string
	left             atomic.Int32 // SUBSCRIBEs still to refuse; -1 refuses all
	refused, granted atomic.Int32
}

func (h *refuseSubscribe) ID() string { return "refuse-subscribe" }

func (h *refuseSubscribe) Provides(b byte) bool {
	return b == mqtt.OnSubscribe || b == mqtt.OnSubscribed
}

func (h *refuseSubscribe) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.ID != h.client || !h.take() {
		return pk
	}
	filters := slices.Clone(pk.Filters)
	for i := range filters {
		filters[i].Filter = "#/refused"
	}
	pk.Filters = filters
	return pk
}

// take uses up one refusal, if any is left.
func (h *refuseSubscribe) take() bool {
	for {
		n := h.left.Load()
		if n == 0 {
			return false
		}
		if n < 0 || h.left.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

func (h *refuseSubscribe) OnSubscribed(cl *mqtt.Client, _ packets.Packet, codes []byte) {
	if cl.ID != h.client {
		return
	}
	for _, c := range codes {
		if c >= 0x80 {
			h.refused.Add(1)
		} else {
			h.granted.Add(1)
		}
	}
}

// subscribedAt reports whether the broker has a subscription of client
// to filter.
func subscribedAt(srv *mqtt.Server, client, filter string) bool {
	cl, ok := srv.Clients.Get(client)
	if !ok || cl.Closed() {
		return false
	}
	_, ok = cl.State.Subscriptions.Get(filter)
	return ok
}

// reconnects records, for each OnReconnect call, how many SUBSCRIBEs the
// broker had granted by then.
type reconnects struct {
	mu      sync.Mutex
	granted []int32
}

func (r *reconnects) record(n int32) { r.mu.Lock(); r.granted = append(r.granted, n); r.mu.Unlock() }

func (r *reconnects) calls() []int32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.granted)
}

// After a broker restart the client sends its SUBSCRIBEs again until the
// broker grants them, here after three refusals; then it receives what is
// published to it, and OnReconnect is called once the subscription is
// back. (Before, it resubscribed once and stayed deaf.)
func TestResubscribeRetriesUntilGranted(t *testing.T) {
	for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
		t.Run(string(proto), func(t *testing.T) {
			const (
				id       = "dev-1"
				topic    = "myno/dev-1/cmd"
				refusals = 3
			)
			refuse := &refuseSubscribe{client: id}
			e := testenv.StartEmbedded(t, broker.Config{Hooks: []mqtt.Hook{refuse}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got := make(chan string, 16)
			var rec reconnects
			c, err := client.Dial(ctx, client.Config{URL: e.URL(), ClientID: id, Protocol: proto, Logger: testenv.Logger(),
				OnMessage: func(m client.Message) {
					select {
					case got <- string(m.Payload):
					default:
					}
				},
				OnReconnect: func() { rec.record(refuse.granted.Load()) }})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if err := c.Subscribe(ctx, topic); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "OnReconnect of the first connection", func() bool { return len(rec.calls()) == 1 })
			grantedBefore := refuse.granted.Load()

			refuse.left.Store(refusals)
			e.Restart()
			testenv.WaitFor(t, "the subscription restored at the restarted broker", func() bool {
				return subscribedAt(e.Broker().Server(), id, topic)
			})
			if n := refuse.refused.Load(); n != refusals {
				t.Errorf("the broker refused %d SUBSCRIBEs, want %d", n, refusals)
			}
			if err := e.Broker().Server().Publish(topic, []byte("after restart"), false, 1); err != nil {
				t.Fatal(err)
			}
			select {
			case v := <-got:
				if v != "after restart" {
					t.Fatalf("received %q", v)
				}
			case <-ctx.Done():
				t.Fatal("nothing received after the restart")
			}
			testenv.WaitFor(t, "OnReconnect after the restart", func() bool { return len(rec.calls()) >= 2 })
			for i, n := range rec.calls()[1:] {
				if n <= grantedBefore {
					t.Errorf("OnReconnect call %d came before the subscription was granted again", i+2)
				}
			}
		})
	}
}

// A topic unsubscribed while its resubscription is being refused is not
// restored; the others are.
func TestResubscribeSkipsUnsubscribedTopic(t *testing.T) {
	for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
		t.Run(string(proto), func(t *testing.T) {
			const id = "dev-2"
			refuse := &refuseSubscribe{client: id}
			e := testenv.StartEmbedded(t, broker.Config{Hooks: []mqtt.Hook{refuse}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var rec reconnects
			c, err := client.Dial(ctx, client.Config{URL: e.URL(), ClientID: id, Protocol: proto, Logger: testenv.Logger(),
				OnReconnect: func() { rec.record(refuse.granted.Load()) }})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			for _, topic := range []string{"keep", "drop"} {
				if err := c.Subscribe(ctx, topic); err != nil {
					t.Fatal(err)
				}
			}
			testenv.WaitFor(t, "OnReconnect of the first connection", func() bool { return len(rec.calls()) == 1 })

			refuse.left.Store(-1)
			e.Restart()
			testenv.WaitFor(t, "both resubscriptions refused", func() bool { return refuse.refused.Load() >= 2 })
			if err := c.Unsubscribe(ctx, "drop"); err != nil {
				t.Fatal(err)
			}
			refuse.left.Store(0)
			testenv.WaitFor(t, "OnReconnect after the restart", func() bool { return len(rec.calls()) == 2 })
			srv := e.Broker().Server()
			if !subscribedAt(srv, id, "keep") {
				t.Error("topic keep not restored")
			}
			if subscribedAt(srv, id, "drop") {
				t.Error("topic drop restored after it was unsubscribed")
			}
		})
	}
}

// Close stops a resubscription that the broker keeps refusing, and waits
// for its goroutine.
func TestCloseStopsResubscription(t *testing.T) {
	for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
		t.Run(string(proto), func(t *testing.T) {
			const id = "dev-3"
			refuse := &refuseSubscribe{client: id}
			e := testenv.StartEmbedded(t, broker.Config{Hooks: []mqtt.Hook{refuse}})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, client.Config{URL: e.URL(), ClientID: id, Protocol: proto, Logger: testenv.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Subscribe(ctx, "t"); err != nil {
				t.Fatal(err)
			}
			refuse.left.Store(-1)
			e.Restart()
			testenv.WaitFor(t, "resubscription refused twice", func() bool { return refuse.refused.Load() >= 2 })
			if err := c.Close(ctx); err != nil {
				t.Fatalf("close: %v", err)
			}
			// Close has waited for the resubscription; the goroutine that
			// waited for it on Close's behalf may still be on its way out.
			testenv.WaitFor(t, "no resubscription goroutine after Close", func() bool { return resubscriberStacks() == "" },
				func() string { return "still running:\n" + resubscriberStacks() })
		})
	}
}

// resubscriberStacks returns the stacks of goroutines in the client's
// resubscription, "" when there are none.
func resubscriberStacks() string {
	return strings.Join(testenv.Stacks("client.(*resubscriber)"), "\n\n")
}

// A plain Mosquitto restart: the client reconnects, subscribes again and
// receives what is published to it.
func TestResubscribeAfterMosquittoRestart(t *testing.T) {
	m := testenv.StartMosquitto(t)
	for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
		t.Run(string(proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := "myno/restart/" + string(proto)
			got := make(chan string, 16)
			var reconnected atomic.Int32
			sub, err := client.Dial(ctx, client.Config{URL: m.URL(), ClientID: "sub-" + string(proto), Protocol: proto, Logger: testenv.Logger(),
				OnMessage: func(m client.Message) {
					select {
					case got <- string(m.Payload):
					default:
					}
				},
				OnReconnect: func() { reconnected.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close(ctx)
			if err := sub.Subscribe(ctx, topic); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "OnReconnect of the first connection", func() bool { return reconnected.Load() == 1 })
			m.Restart()
			// OnReconnect comes once the subscription is granted again.
			testenv.WaitFor(t, "OnReconnect after the restart", func() bool { return reconnected.Load() == 2 })
			pub, err := client.Dial(ctx, client.Config{URL: m.URL(), ClientID: "pub-" + string(proto), Protocol: client.MQTT5, Logger: testenv.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close(ctx)
			if err := pub.Publish(ctx, client.Message{Topic: topic, Payload: []byte("after restart")}, 1); err != nil {
				t.Fatal(err)
			}
			select {
			case v := <-got:
				if v != "after restart" {
					t.Fatalf("received %q", v)
				}
			case <-ctx.Done():
				t.Fatal("nothing received after the restart")
			}
		})
	}
}
