package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// holdConnect is a broker hook that holds the CONNECT of the client
// identifier id whose user name is user, right after it is read, until
// release is closed.
type holdConnect struct {
	mqtt.HookBase
	id, user string
	read     chan struct{} // closed once that CONNECT is read
	release  chan struct{}
	once     sync.Once
}

func (h *holdConnect) ID() string { return "hold-connect" }

func (h *holdConnect) Provides(b byte) bool { return b == mqtt.OnPacketRead }

func (h *holdConnect) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Connect && pk.Connect.ClientIdentifier == h.id && string(pk.Connect.Username) == h.user {
		h.once.Do(func() { close(h.read) })
		<-h.release
	}
	return pk, nil
}

// recordSignal closes ch the first time a record, its message and
// attributes written as "msg k=v ...", contains text.
type recordSignal struct {
	slog.Handler
	text string
	once *sync.Once
	ch   chan struct{}
}

func (l recordSignal) Enabled(context.Context, slog.Level) bool { return true }

func (l recordSignal) Handle(ctx context.Context, r slog.Record) error {
	var b bytes.Buffer
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	if strings.Contains(b.String(), l.text) {
		l.once.Do(func() { close(l.ch) })
	}
	if l.Handler != nil && l.Handler.Enabled(ctx, r.Level) {
		return l.Handler.Handle(ctx, r)
	}
	return nil
}

func (l recordSignal) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l recordSignal) WithGroup(string) slog.Handler      { return l }

// A CONNECT whose client closed the socket before the broker read it (a
// device that gave up waiting while the bridge restored its registry with
// its connections held, and connected again) must not take the session
// over from the live connection that client opened since [MQTT-3.1.4-3]:
// mochi-mqtt would end the live connection for it, and then the dead one.
// The broker drops it; the live connection stays up and keeps receiving.
func TestConnectOfAClosedSocketLeavesTheLiveSessionAlone(t *testing.T) {
	const id = "myno-device-d1"
	dropped := make(chan struct{})
	logger := slog.New(recordSignal{Handler: testenv.Logger().Handler(), text: "before its CONNECT was answered", once: new(sync.Once), ch: dropped})
	var mu sync.Mutex
	var events []broker.ConnectionEvent
	hold := &holdConnect{id: id, user: "stale", read: make(chan struct{}), release: make(chan struct{})}
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: logger,
		Hooks: []mqtt.Hook{hold},
		OnConnection: func(ev broker.ConnectionEvent) {
			if ev.ClientID == id {
				mu.Lock()
				events = append(events, ev)
				mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	live, got := subscribed(ctx, t, b.URL(), id, "cmd/d1")
	defer live.Close(ctx)

	// The stale CONNECT: read by the broker, held there until its client
	// has closed the socket.
	raw, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: id, Keepalive: 30,
			UsernameFlag: true, Username: []byte("stale")}}
	var buf bytes.Buffer
	if err := connect.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-hold.read:
	case <-ctx.Done():
		t.Fatal("the broker never read the stale CONNECT")
	}
	raw.Close()
	close(hold.release)
	select {
	case <-dropped:
	case <-ctx.Done():
		t.Fatal("the stale CONNECT was not dropped as a closed connection")
	}

	pub, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "publisher", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.Publish(ctx, client.Message{Topic: "cmd/d1", Payload: []byte("on")}, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "on" {
			t.Fatalf("got %q", v)
		}
	case <-ctx.Done():
		t.Fatal("the live connection receives nothing")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || !events[0].Up {
		t.Fatalf("connection events of %s: %+v; want the live connection's start alone", id, events)
	}
}

// subscribed dials the broker at url as client id, subscribes to topic,
// and returns the client and the payloads it receives (the first few;
// more are dropped).
func subscribed(ctx context.Context, t *testing.T, url, id, topic string) (client.Transport, <-chan string) {
	t.Helper()
	got := make(chan string, 16)
	c, err := client.Dial(ctx, client.Config{URL: url, ClientID: id, Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) {
			select {
			case got <- string(m.Payload):
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(ctx, topic); err != nil {
		c.Close(ctx)
		t.Fatal(err)
	}
	return c, got
}
