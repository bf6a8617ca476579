package netconf_test

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/netconf"
)

// serveOn runs a server with user admin on ln until the test ends, and
// checks that Serve then returns nil.
func serveOn(t *testing.T, ln net.Listener, logger *slog.Logger) *netconf.Server {
	t.Helper()
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(t.TempDir(), "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := netconf.NewServer(netconf.Config{HostKey: hostKey, Logger: logger,
		Users: netconf.NewUsers(&netconf.User{Name: "admin", PasswordHash: string(hash), Groups: []string{"admin"}})})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-sctx.Done():
			t.Error("Serve did not return after Shutdown")
		}
	})
	return srv
}

// dialWithin opens a NETCONF session as admin like dialRaw, but fails
// when the SSH handshake and the server's hello take longer than d (a
// server that no longer accepts leaves the connection in the listen
// backlog, and ssh.Dial would wait for ever).
func dialWithin(t *testing.T, addr string, d time.Duration) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = conn.SetDeadline(time.Now().Add(d))
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, passwordConfig("admin", adminPass))
	if err != nil {
		conn.Close()
		t.Fatalf("ssh handshake: %v", err)
	}
	rc := netconfSession(t, ssh.NewClient(cc, chans, reqs))
	_ = conn.SetDeadline(time.Time{})
	return rc
}

// Serve keeps accepting after accept errors (EMFILE, as at the
// file-descriptor limit): a NETCONF session is established afterwards, and
// the errors are counted and logged with their cause. (Before, Serve
// returned on the first one and the server was deaf.)
func TestServeKeepsAcceptingAfterErrors(t *testing.T) {
	const failures = 5
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := testenv.FailAccepts(ln, failures)
	logs := &testenv.Warnings{}
	srv := serveOn(t, fl, slog.New(logs))
	rc := dialWithin(t, ln.Addr().String(), 10*time.Second)
	contains(t, rc.hello, "<session-id>", netconf.CapBase11)
	rc.start11()
	contains(t, rc.rpc("1", `<get/>`), "<rpc-reply", "<data")
	if n := srv.AcceptErrors(); n != failures {
		t.Errorf("AcceptErrors() = %d, want %d", n, failures)
	}
	if n := fl.Failed(); n != failures {
		t.Errorf("the listener failed %d Accepts, want %d", n, failures)
	}
	if cause := syscall.EMFILE.Error(); !logs.Contains(cause) {
		t.Errorf("no warning names the cause %q; warnings: %q", cause, logs.Lines())
	}
}

// alwaysEMFILE fails every Accept, even once closed, like a listener
// stuck at the file-descriptor limit.
type alwaysEMFILE struct{ net.Listener }

func (l alwaysEMFILE) Accept() (net.Conn, error) {
	return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: syscall.EMFILE}
}

// Shutdown ends a Serve that keeps failing to accept, and Serve returns
// nil (both checked by serveOn's cleanup).
func TestShutdownWhileAcceptFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := serveOn(t, alwaysEMFILE{ln}, testenv.Logger())
	testenv.WaitFor(t, "accept errors", func() bool { return srv.AcceptErrors() >= 3 })
}
