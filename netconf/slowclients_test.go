package netconf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/netconf"
)

// A client that stops reading while its replies pile up cannot hold its
// session (or its lock) against kill-session.
func TestKillSessionOfAClientThatDoesNotRead(t *testing.T) {
	ts := startServer(t, func(c *netconf.Config) { c.IdleTimeout = time.Second })
	a := dialRaw(t, ts, passwordConfig("admin", adminPass))
	a.start11()
	contains(t, a.rpc("1", `<lock><target><running/></target></lock>`), "<ok/>")
	big := strings.Repeat("x", 100_000)
	for i := 0; i < 40; i++ { // about 4 MB of replies that are never read
		a.write(chunked(fmt.Sprintf(`<rpc message-id="e%d" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>%s</msg></echo></rpc>`, i, big)))
	}
	b := dialRaw(t, ts, passwordConfig("admin", adminPass))
	b.start11()
	contains(t, b.rpc("1", fmt.Sprintf(`<kill-session><session-id>%d</session-id></kill-session>`, sessionID(t, a.hello))), "<ok/>")
	testenv.WaitFor(t, "the killed session to release the lock", func() bool {
		return strings.Contains(b.rpc("2", `<lock><target><running/></target></lock>`), "<ok/>")
	})
	testenv.WaitFor(t, "the killed session to end", func() bool { return len(ts.srv.Sessions()) == 1 })
}

// An authenticated SSH connection that never opens the netconf subsystem
// is closed after the hello timeout.
func TestConnectionsWithoutSessionAreClosed(t *testing.T) {
	ts := startServer(t, func(c *netconf.Config) { c.HelloTimeout = 300 * time.Millisecond })
	c, err := ssh.Dial("tcp", ts.addr, passwordConfig("admin", adminPass))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an authenticated connection without a session stays open")
	}
}

// Clients that never say hello, go idle after it, trickle bytes
// (slowloris) or open a channel without the subsystem request lose it to
// the hello and idle timeouts, and leave no goroutine behind.
func TestSlowClients(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the hello and idle timeouts; make test runs it")
	}
	ts := startServer(t, func(c *netconf.Config) {
		c.IdleTimeout = 400 * time.Millisecond
		c.HelloTimeout = 400 * time.Millisecond
	})
	leaks := goroutineBaseline(t)
	t.Run("no hello", func(t *testing.T) {
		rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
		if !rc.closed() {
			t.Fatal("a client that never says hello keeps its session")
		}
	})
	t.Run("idle after hello", func(t *testing.T) {
		rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
		rc.start11()
		start := time.Now()
		if !rc.closed() {
			t.Fatal("an idle session stays open")
		}
		if time.Since(start) < 300*time.Millisecond {
			t.Errorf("closed after %v, before the idle timeout", time.Since(start))
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
		rc.start11()
		msg := chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`)
		closed := make(chan bool, 1)
		go func() { closed <- rc.closed() }()
		// One byte every 50 ms: the message never completes within the
		// idle timeout, so the session must end although bytes keep coming.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		deadline := time.After(10 * time.Second)
		for i := 0; ; i++ {
			select {
			case ok := <-closed:
				if !ok {
					t.Fatal("read failed without the session closing")
				}
				return
			case <-tick.C:
				if i < len(msg) {
					_, _ = rc.in.Write([]byte{msg[i]})
				}
			case <-deadline:
				t.Fatal("a slowloris client keeps its session")
			}
		}
	})
	t.Run("no subsystem request", func(t *testing.T) {
		c, err := ssh.Dial("tcp", ts.addr, passwordConfig("admin", adminPass))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- sess.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a channel without subsystem request stays open")
		}
	})
	testenv.WaitFor(t, "sessions to end", func() bool { return len(ts.srv.Sessions()) == 0 })
	leaks()
}
