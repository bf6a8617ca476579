package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
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
