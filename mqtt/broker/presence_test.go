package broker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// Connection events: each established connection is told once up and
// once down, with a number of its own; the inline client's messages carry
// the number of the connection they came over; a connection that takes a
// client identifier's session over has another number than the one it
// replaced, whose end is told too.
func TestConnectionEvents(t *testing.T) {
	var mu sync.Mutex
	var events []broker.ConnectionEvent
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger(),
		OnConnection: func(ev broker.ConnectionEvent) { mu.Lock(); events = append(events, ev); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	got := make(chan client.Message, 4)
	inline := b.InlineClient("test-inline", func(m client.Message) { got <- m })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := inline.Subscribe(ctx, "t/#"); err != nil {
		t.Fatal(err)
	}
	seen := func(n int) []broker.ConnectionEvent {
		testenv.WaitFor(t, "connection events", func() bool { mu.Lock(); defer mu.Unlock(); return len(events) >= n })
		mu.Lock()
		defer mu.Unlock()
		return append([]broker.ConnectionEvent(nil), events...)
	}

	c1, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "dev-1", Protocol: client.MQTT311, Logger: testenv.Logger(), KeepAlive: 7 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	up := seen(1)[0]
	if !up.Up || up.Conn == 0 || up.ClientID != "dev-1" || up.KeepAlive != 7*time.Second {
		t.Fatalf("up: %+v", up)
	}
	if conn, ok := b.Connection("dev-1"); !ok || conn != up.Conn {
		t.Errorf("Connection(dev-1) = %d %v, want %d", conn, ok, up.Conn)
	}
	if err := c1.Publish(ctx, client.Message{Topic: "t/1", Payload: []byte("x")}, 1); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m.SenderConn != up.Conn {
		t.Errorf("SenderConn %d, want %d", m.SenderConn, up.Conn)
	}

	// A second connection with the same identifier, the first one still
	// open: a take-over. (The first client would reconnect and take it
	// back: close it once the take-over is told.)
	c2, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "dev-1", Protocol: client.MQTT311, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	evs := seen(3)
	var up2, down1 broker.ConnectionEvent
	for _, ev := range evs[1:3] {
		if ev.Up {
			up2 = ev
		} else {
			down1 = ev
		}
	}
	if up2.Conn == 0 || up2.Conn == up.Conn || down1.Conn != up.Conn || down1.Err != broker.ErrSessionTakenOver {
		t.Fatalf("take-over: %+v", evs)
	}
	c1.Close(ctx)
	if err := c2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Its end is told too (a DISCONNECT, or a take-over by the first
	// client reconnecting before it closed).
	testenv.WaitFor(t, "the second connection's end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			if !ev.Up && ev.Conn == up2.Conn {
				return true
			}
		}
		return false
	})
}
