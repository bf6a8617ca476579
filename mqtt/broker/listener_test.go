package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// The broker keeps accepting after accept errors (here EMFILE, as at the
// file-descriptor limit): a client connects and gets its messages
// afterwards, the errors are counted and logged with their cause. (With
// mochi's listeners.TCP the first error ended the accept loop.)
func TestBrokerKeepsAcceptingAfterErrors(t *testing.T) {
	const failures = 5
	var fl *testenv.FailingListener
	logs := &testenv.Warnings{}
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: slog.New(logs),
		WrapListener: func(ln net.Listener) net.Listener { fl = testenv.FailAccepts(ln, failures); return fl }})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := net.ResolveTCPAddr("tcp", b.Addr()); err != nil || strings.HasSuffix(b.Addr(), ":0") {
		t.Fatalf("Addr %q is not the address listened on", b.Addr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan string, 1)
	c, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "after-emfile", Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) {
			select {
			case got <- string(m.Payload):
			default:
			}
		}})
	if err != nil {
		t.Fatalf("no connection after %d accept errors: %v", failures, err)
	}
	defer c.Close(ctx)
	if err := c.Subscribe(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if err := b.Server().Publish("t", []byte("hello"), false, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "hello" {
			t.Fatalf("received %q", v)
		}
	case <-ctx.Done():
		t.Fatal("message not received")
	}
	if n := b.AcceptErrors(); n != failures {
		t.Errorf("AcceptErrors() = %d, want %d", n, failures)
	}
	if n := fl.Failed(); n != failures {
		t.Errorf("the listener failed %d Accepts, want %d", n, failures)
	}
	if cause := syscall.EMFILE.Error(); !logs.Contains(cause) {
		t.Errorf("no warning names the cause %q; warnings: %q", cause, logs.Lines())
	}
}

// acceptSignal sends on accepted after each connection it accepts.
type acceptSignal struct {
	net.Listener
	accepted chan struct{}
}

func (l acceptSignal) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		select {
		case l.accepted <- struct{}{}:
		default:
		}
	}
	return c, err
}

// Close returns at once although a connection has not sent its CONNECT
// (mochi-mqtt would wait for it up to 15 s, past Close's 5 s bound), and
// closes that connection; the broker then starts again on its port.
func TestBrokerCloseWithIdleConnection(t *testing.T) {
	accepted := make(chan struct{}, 1)
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger(),
		WrapListener: func(ln net.Listener) net.Listener { return acceptSignal{ln, accepted} }})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not accept the connection")
	}
	if err := b.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The broker closed the idle connection: a read ends before its deadline.
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("idle connection still open after Close: %v", err)
	}
	b2, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: b.Addr(), Logger: testenv.Logger()})
	if err != nil {
		t.Fatalf("restart on %s: %v", b.Addr(), err)
	}
	defer b2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: b2.URL(), ClientID: "c", Protocol: client.MQTT311, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// A connection that sends garbage is ended with a warning that says what
// happened and why, never mochi-mqtt's own `level=WARN msg=""` (its
// listeners log establish errors with an empty message).
func TestMalformedConnectionIsLoggedWithItsCause(t *testing.T) {
	logs := &testenv.Warnings{}
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// A CONNECT whose protocol name is "MQXX" (MQTT 5 §3.1.2.1), empty
	// client identifier.
	if _, err := conn.Write([]byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'X', 'X', 0x05, 0x02, 0x00, 0x3c, 0x00, 0x00, 0x00}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "a warning about the malformed connection", func() bool {
		for _, l := range logs.Lines() {
			if strings.HasPrefix(l, "mqtt connection ended with an error: ") {
				return true
			}
		}
		return false
	}, func() string { return strings.Join(logs.Lines(), "\n") })
	for _, l := range logs.Lines() {
		if l == "" || strings.HasPrefix(l, ":") {
			t.Errorf("a warning without a message: %q", l)
		}
	}
}

// A client that stops reading fills its queue of pending writes
// (MaxPendingWrites); what does not fit is dropped, counted and logged,
// not lost without a word, and the broker stays up for others.
func TestSlowReaderDropsAreCountedAndLogged(t *testing.T) {
	logs := &testenv.Warnings{}
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: slog.New(logs), MaxPendingWrites: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	conn, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// MQTT 3.1.1 CONNECT (client "slow") and SUBSCRIBE to "f" at QoS 0,
	// then read the CONNACK and SUBACK and nothing more.
	connect := []byte{0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 4, 's', 'l', 'o', 'w'}
	subscribe := []byte{0x82, 6, 0, 1, 0, 1, 'f', 0}
	if _, err := conn.Write(append(connect, subscribe...)); err != nil {
		t.Fatal(err)
	}
	acks := make([]byte, 4+5)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, acks); err != nil || acks[0] != 0x20 || acks[4] != 0x90 {
		t.Fatalf("connack and suback: % x %v", acks, err)
	}
	payload := make([]byte, 64<<10)
	testenv.WaitFor(t, "messages to the slow reader dropped", func() bool {
		for range 64 {
			if err := b.Server().Publish("f", payload, false, 0); err != nil {
				t.Fatal(err)
			}
		}
		return b.DroppedMessages() > 0
	})
	testenv.WaitFor(t, "a warning naming the client", func() bool {
		for _, l := range logs.Lines() {
			if strings.HasPrefix(l, "mqtt message dropped: the client reads too slowly") {
				return true
			}
		}
		return false
	}, func() string { return strings.Join(logs.Lines(), "\n") })
	// Another client is still served.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	other, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "other", Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	other.Close(ctx)
}

// BenchmarkClientMemory is the live heap one connected client (a bare
// MQTT 3.1.1 connection, as a device's) takes in the broker, with
// mochi-mqtt's default queue of pending writes (8,192) and the broker's
// (DefaultMaxPendingWrites).
//
//	go test ./mqtt/broker -run '^$' -bench BenchmarkClientMemory -benchtime 1x
func BenchmarkClientMemory(b *testing.B) {
	const clients = 500
	for _, pending := range []int32{8192, broker.DefaultMaxPendingWrites} {
		b.Run(fmt.Sprintf("pending=%d", pending), func(b *testing.B) {
			for b.Loop() {
				br, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger(), MaxPendingWrites: pending})
				if err != nil {
					b.Fatal(err)
				}
				before := liveHeap()
				var conns []net.Conn
				for i := range clients {
					c, err := net.Dial("tcp", br.Addr())
					if err != nil {
						b.Fatal(err)
					}
					id := fmt.Sprintf("c%05d", i)
					pkt := append([]byte{0x10, byte(12 + len(id)), 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(id))}, id...)
					if _, err := c.Write(pkt); err != nil {
						b.Fatal(err)
					}
					ack := make([]byte, 4)
					if _, err := io.ReadFull(c, ack); err != nil {
						b.Fatal(err)
					}
					conns = append(conns, c)
				}
				b.ReportMetric(float64(liveHeap()-before)/clients/1024, "KiB/client")
				for _, c := range conns {
					c.Close()
				}
				br.Close()
			}
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
