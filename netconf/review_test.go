package netconf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
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
	deadline := time.Now().Add(15 * time.Second)
	for {
		if reply := b.rpc("2", `<lock><target><running/></target></lock>`); strings.Contains(reply, "<ok/>") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed session still holds the lock")
		}
		time.Sleep(50 * time.Millisecond)
	}
	testenv.WaitFor(t, "the killed session to end", func() bool { return len(ts.srv.Sessions()) == 1 })
}

// A framing error queued behind an rpc that blocks still ends the session.
func TestFramingErrorBehindABlockedRPC(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	rc.write(chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><wait xmlns="urn:myno:test:demo"/></rpc>`))
	rc.write("\n#0\n")
	if !rc.closed() {
		t.Fatal("session not closed")
	}
	testenv.WaitFor(t, "the session to end", func() bool { return len(ts.srv.Sessions()) == 0 })
}

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

func TestDefaultAccessDeniesUsersWithoutAGroup(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	ts := startServer(t, func(c *netconf.Config) {
		c.Users = netconf.NewUsers(&netconf.User{Name: "typo", PasswordHash: string(hash), Groups: []string{"readonly"}})
	})
	rc := dialRaw(t, ts, passwordConfig("typo", "pw"))
	rc.start11()
	contains(t, rc.rpc("1", `<get/>`), "access-denied")
	contains(t, rc.rpc("2", `<echo xmlns="urn:myno:test:demo"/>`), "access-denied")
	contains(t, rc.rpc("3", `<kill-session><session-id>99</session-id></kill-session>`), "access-denied")
	contains(t, rc.rpc("4", `<close-session/>`), "<ok/>")
}

func TestHandlerPanicIsAnRPCError(t *testing.T) {
	ts := startServer(t, nil)
	ts.srv.Handle("myno-demo", demoNS, "fail", netconf.HandlerFunc(func(context.Context, *netconf.Request) ([]*netconf.Element, error) {
		panic("handler bug")
	}))
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	contains(t, rc.rpc("1", `<fail xmlns="urn:myno:test:demo"/>`), "operation-failed", "internal error")
	contains(t, rc.rpc("2", `<echo xmlns="urn:myno:test:demo"><msg>alive</msg></echo>`), "alive")
}

func TestHugeAttributesAndCommentsAreBounded(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	rc.write(chunked(`<rpc message-id="1" a="` + strings.Repeat("x", 5000) + `" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`))
	contains(t, rc.read(), "bad-attribute")
	// Text split by comments used to be appended quadratically.
	start := time.Now()
	rc.write(chunked(`<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>` +
		strings.Repeat(strings.Repeat("a", 100)+"<!---->", 20000) + `</msg></echo></rpc>`))
	if reply := rc.read(); !strings.HasPrefix(reply, "<rpc-reply") || !strings.Contains(reply[:200], `message-id="2"`) {
		t.Errorf("reply %.200s", reply)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestAuthorizedKeysWithOptionsAreRefused(t *testing.T) {
	ts := startServer(t, nil)
	key, _ := os.ReadFile(ts.keyFile)
	signer, _ := ssh.ParsePrivateKey(key)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "robot"), []byte(`from="10.0.0.1" `+string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), 0o600)
	users, _ := netconf.ParseUsers([]byte("robot::admin\n"))
	if err := users.LoadAuthorizedKeys(dir); err == nil || !strings.Contains(err.Error(), "options") {
		t.Errorf("a key with from= accepted: %v", err)
	}
}
