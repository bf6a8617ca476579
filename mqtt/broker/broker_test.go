package broker_test

import (
	"context"
	"log/slog"
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

// The embedded broker keeps retained messages in the data dir.
func TestEmbeddedBrokerPersistsRetainedMessages(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", DataDir: dir, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "pub", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishRetained(ctx, client.Message{Topic: "myno/e2e/notify", Payload: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	pub.Close(ctx)
	b2 := restarted(t, b, addr, dir)
	got := make(chan string, 1)
	sub, err := client.Dial(ctx, client.Config{URL: b2.URL(), ClientID: "sub", Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) { got <- string(m.Payload) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	if err := sub.Subscribe(ctx, "myno/e2e/notify"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "kept" {
			t.Errorf("retained %q", v)
		}
	case <-ctx.Done():
		t.Fatal("the retained message did not survive the restart")
	}
}

// reconnectRace is a broker hook that holds the old connection's session
// cleanup (its OnUnsubscribed, between mochi's "does the session end" check
// and its delete by client ID) until a new connection with the same ID has
// been established, or until the broker says that CONNECT waits. Without
// AwaitSessionEnd, the cleanup then deletes the new connection.
type reconnectRace struct {
	mqtt.HookBase
	id          string
	connects    atomic.Int32
	held        atomic.Bool
	newConnect  chan struct{} // the second CONNECT has been read
	established chan struct{} // the second connection is established
	waiting     chan struct{} // the broker logged that the CONNECT waits
}

func (h *reconnectRace) ID() string { return "reconnect-race" }

func (h *reconnectRace) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnUnsubscribed || b == mqtt.OnSessionEstablished
}

func (h *reconnectRace) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect && pk.Connect.ClientIdentifier == h.id && h.connects.Add(1) == 2 {
		close(h.newConnect)
	}
	return pk, nil
}

func (h *reconnectRace) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID == h.id && h.connects.Load() == 2 {
		close(h.established)
	}
}

func (h *reconnectRace) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID != h.id || !cl.Closed() || !h.held.CompareAndSwap(false, true) {
		return
	}
	<-h.newConnect
	select {
	case <-h.established:
	case <-h.waiting:
	case <-time.After(10 * time.Second): // a safety net: the test fails below
	}
}

// logSignal closes a channel the first time a log message contains text.
type logSignal struct {
	slog.Handler
	text string
	once *sync.Once
	ch   chan struct{}
}

func (l logSignal) Enabled(context.Context, slog.Level) bool { return true }

func (l logSignal) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, l.text) {
		l.once.Do(func() { close(l.ch) })
	}
	if l.Handler != nil {
		return l.Handler.Handle(ctx, r)
	}
	return nil
}

func (l logSignal) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logSignal) WithGroup(string) slog.Handler      { return l }

// A client that disconnects and connects again at once (a device
// rebooting) keeps receiving what is published to it, even when its new
// CONNECT arrives while the broker is still ending the old session.
func TestEmbeddedBrokerReconnectWhileOldSessionEnds(t *testing.T) {
	race := &reconnectRace{id: "device-1", newConnect: make(chan struct{}), established: make(chan struct{}), waiting: make(chan struct{})}
	logger := slog.New(logSignal{Handler: testenv.Logger().Handler(), text: "previous session to end", once: new(sync.Once), ch: race.waiting})
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Server().AddHook(race, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	old, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: race.id, Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Subscribe(ctx, "cmd/device-1"); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The new CONNECT must come while the old session's cleanup runs (the
	// race): under load the broker may not have read the DISCONNECT yet,
	// and a CONNECT then takes the live session over instead, another path.
	testenv.WaitFor(t, "the old session's cleanup to begin", race.held.Load)
	fresh, got := subscribed(ctx, t, b.URL(), race.id, "cmd/device-1")
	defer fresh.Close(ctx)
	pub, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "publisher", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	// Published until it arrives or the deadline passes: one lost message
	// is not yet the failure, never receiving any is.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := pub.Publish(ctx, client.Message{Topic: "cmd/device-1", Payload: []byte("on")}, 1); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-got:
			if v != "on" {
				t.Fatalf("got %q", v)
			}
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("the reconnected client receives nothing: the old session's cleanup removed it")
		}
	}
}

// The data dir keeps the subscriptions of sessions that outlive their
// connection, and no others: not those of sessions that end with it (a
// write per device subscription, for nothing), nor the inline client's
// (they came back after a restart as an ordinary client named "inline",
// whose deliveries the access control refused).
func TestEmbeddedBrokerStoresOnlyLastingSubscriptions(t *testing.T) {
	dir := t.TempDir()
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", DataDir: dir, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inline := b.InlineClient("bridge-inline", func(client.Message) {})
	if err := inline.Subscribe(ctx, "response/+"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, topic string
		expiry    time.Duration
	}{{"lasting", "keep/x", 5 * time.Minute}, {"passing", "gone/x", 0}, {"changed", "was/x", 5 * time.Minute}} {
		cl, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: c.id, Protocol: client.MQTT5, SessionExpiry: c.expiry, Logger: testenv.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.Subscribe(ctx, c.topic); err != nil {
			t.Fatal(err)
		}
		// A clean DISCONNECT: a lasting session stays, a passing one ends.
		if err := cl.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A client whose lasting session is followed by one that ends with
	// its connection leaves nothing behind.
	changed, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "changed", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	// The broker reads a client's first packet after its session is
	// established (the store's hook has run): a SUBACK says it is done.
	if err := changed.Subscribe(ctx, "was/y"); err != nil {
		t.Fatal(err)
	}
	changed.Close(ctx)
	b2 := restarted(t, b, addr, dir)
	if _, ok := b2.Server().Clients.Get("changed"); ok {
		t.Error("a lasting session replaced by a passing one was restored")
	}
	subscribers := func(topic string) []string {
		var ids []string
		for id := range b2.Server().Topics.Subscribers(topic).Subscriptions {
			ids = append(ids, id)
		}
		return ids
	}
	if got := subscribers("keep/x"); len(got) != 1 || got[0] != "lasting" {
		t.Errorf("keep/x subscribers after a restart: %v, want [lasting]", got)
	}
	if got := subscribers("gone/x"); len(got) != 0 {
		t.Errorf("gone/x subscribers after a restart: %v, want none", got)
	}
	// Only the lasting session's client was stored, and comes back.
	if _, ok := b2.Server().Clients.Get("lasting"); !ok {
		t.Error("the lasting session's client was not restored")
	}
	if _, ok := b2.Server().Clients.Get("passing"); ok {
		t.Error("a session that ended with its connection was restored")
	}
	if got := subscribers("response/1"); len(got) != 0 {
		t.Errorf("response/1 subscribers after a restart: %v, want none (the inline client subscribes again itself)", got)
	}
}

// With HoldConnections the broker accepts no client until Admit (the
// bridge restores its registry first); the inline client works meanwhile.
func TestHoldConnectionsUntilAdmit(t *testing.T) {
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger(), HoldConnections: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.InlineClient("bridge-inline", func(client.Message) {}).Subscribe(ctx, "response/+"); err != nil {
		t.Fatalf("inline client while held: %v", err)
	}
	held, stop := context.WithTimeout(ctx, 700*time.Millisecond)
	_, err = client.Dial(held, client.Config{URL: b.URL(), ClientID: "early", Logger: testenv.Logger()})
	stop()
	if err == nil {
		t.Fatal("a client connected before Admit")
	}
	b.Admit()
	b.Admit() // twice is harmless
	c, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "after", Logger: testenv.Logger()})
	if err != nil {
		t.Fatalf("after Admit: %v", err)
	}
	c.Close(ctx)
}

// restarted closes b and starts an open broker again on its address and
// data dir, closed when the test ends.
func restarted(t *testing.T, b *broker.Broker, addr, dir string) *broker.Broker {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: addr, DataDir: dir, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	return b2
}
