package netconf_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/netconf"
)

const (
	demoNS     = "urn:myno:test:demo"
	adminPass  = "admin-secret"
	viewerPass = "viewer-secret"
)

// demoModule is the application module the tests load: rpcs with input
// and output, a failing rpc, and rpcs to control reply order.
const demoModule = `module myno-demo {
  yang-version 1.1;
  namespace "urn:myno:test:demo";
  prefix demo;
  revision 2026-11-21 { description "Test module."; }
  container demo-state {
    config false;
    leaf greeting { type string; }
    list item { key name; leaf name { type string; } leaf value { type int32; } }
  }
  rpc echo {
    input { leaf msg { type string; } }
    output { leaf msg { type string; } }
  }
  rpc fail { }
  rpc wait { description "Answers once signal was called."; }
  rpc signal { }
  rpc emit { input { leaf n { type uint32; } } }
  notification tick { leaf n { type uint32; } }
}
`

type testServer struct {
	srv     *netconf.Server
	addr    string
	dir     string
	keyFile string // client private key for "keyuser", OpenSSH PEM
	release chan struct{}
	once    sync.Once
}

// startServer runs a server on a random loopback port with users admin
// (password), viewer (read-only, password) and keyuser (ed25519 key).
func startServer(t testing.TB, mutate func(*netconf.Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(dir, "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	hash := func(p string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(p), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sshPub, _ := ssh.NewPublicKey(pub)
	block, _ := ssh.MarshalPrivateKey(priv, "test")
	keyFile := filepath.Join(dir, "client_key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	users := netconf.NewUsers(
		&netconf.User{Name: "admin", PasswordHash: hash(adminPass), Groups: []string{"admin"}},
		&netconf.User{Name: "viewer", PasswordHash: hash(viewerPass), Groups: []string{netconf.ReadOnlyGroup}},
		&netconf.User{Name: "keyuser", Groups: []string{"admin"}, AuthorizedKeys: []ssh.PublicKey{sshPub}},
	)
	cfg := netconf.Config{
		HostKey: hostKey,
		Users:   users,
		Access:  netconf.DefaultAccess(),
		Logger:  testenv.Logger(),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := netconf.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, dir: dir, keyFile: keyFile, release: make(chan struct{})}
	mod, err := netconf.ParseModuleHeader(demoModule)
	if err != nil {
		t.Fatal(err)
	}
	srv.AddModule(mod)
	srv.Handle("myno-demo", demoNS, "echo", netconf.HandlerFunc(echoHandler))
	srv.Handle("myno-demo", demoNS, "fail", netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
		return nil, &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-timeout",
			Path: "/demo:fail", Message: "the device did not answer", Info: []*netconf.Element{netconf.NewLeaf(demoNS, "uuid", "dev-1")}}
	}))
	srv.Handle("myno-demo", demoNS, "wait", netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
		select {
		case <-ts.release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}))
	srv.Handle("myno-demo", demoNS, "signal", netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
		ts.once.Do(func() { close(ts.release) })
		return nil, nil
	}))
	srv.Handle("myno-demo", demoNS, "emit", netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
		n := "0"
		if e := req.Operation.Child(demoNS, "n"); e != nil {
			n = e.Text
		}
		srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", n)))
		return nil, nil
	}))
	srv.AddState("demo", func(ctx context.Context) ([]*netconf.Element, error) {
		return []*netconf.Element{netconf.NewNode(demoNS, "demo-state",
			netconf.NewLeaf(demoNS, "greeting", "hello <world> & co"),
			netconf.NewNode(demoNS, "item", netconf.NewLeaf(demoNS, "name", "a"), netconf.NewLeaf(demoNS, "value", "1")),
			netconf.NewNode(demoNS, "item", netconf.NewLeaf(demoNS, "name", "b"), netconf.NewLeaf(demoNS, "value", "2")),
		)}, nil
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		ts.once.Do(func() { close(ts.release) })
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ts
}

func (ts *testServer) port() string {
	_, p, _ := net.SplitHostPort(ts.addr)
	return p
}

func passwordConfig(user, pass string) *ssh.ClientConfig {
	return &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(pass)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second}
}

// rawClient is a hand-driven NETCONF client on x/crypto/ssh, for cases
// that real clients never produce.
type rawClient struct {
	t      testing.TB
	client *ssh.Client
	sess   *ssh.Session
	in     io.WriteCloser
	fr     *netconf.FrameReader
	hello  string
}

func dialRaw(t testing.TB, ts *testServer, cfg *ssh.ClientConfig) *rawClient {
	t.Helper()
	c, err := ssh.Dial("tcp", ts.addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	return netconfSession(t, c)
}

// netconfSession opens the netconf subsystem on c (closed with the test)
// and reads the server's hello.
func netconfSession(t testing.TB, c *ssh.Client) *rawClient {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("netconf"); err != nil {
		t.Fatalf("subsystem: %v", err)
	}
	rc := &rawClient{t: t, client: c, sess: sess, in: in, fr: netconf.NewFrameReader(out, 0)}
	hello, err := rc.fr.ReadMessage()
	if err != nil {
		t.Fatalf("server hello: %v", err)
	}
	rc.hello = string(hello)
	return rc
}

const clientHello11 = `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>]]>]]>`
const clientHello10 = `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.0</capability></capabilities></hello>]]>]]>`

// write sends raw bytes, framing included.
func (rc *rawClient) write(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.in, s); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// chunked frames one message in chunked framing.
func chunked(msg string) string { return fmt.Sprintf("\n#%d\n%s\n##\n", len(msg), msg) }

func (rc *rawClient) start11() { rc.write(clientHello11); rc.fr.SetFraming(netconf.FramingChunked) }

// rpc sends one rpc in chunked framing and returns the reply.
func (rc *rawClient) rpc(id, body string) string {
	rc.t.Helper()
	rc.write(chunked(`<rpc message-id="` + id + `" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + body + `</rpc>`))
	return rc.read()
}

func (rc *rawClient) read() string {
	rc.t.Helper()
	type res struct {
		msg []byte
		err error
	}
	ch := make(chan res, 1)
	go func() { m, err := rc.fr.ReadMessage(); ch <- res{m, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			rc.t.Fatalf("read: %v", r.err)
		}
		return string(r.msg)
	case <-time.After(10 * time.Second):
		rc.t.Fatal("no message within 10s")
	}
	return ""
}

// closed reports whether the server ends the session: the next read gets
// EOF (within the deadline).
func (rc *rawClient) closed() bool {
	ch := make(chan error, 1)
	go func() {
		for {
			if _, err := rc.fr.ReadMessage(); err != nil {
				ch <- err
				return
			}
		}
	}()
	select {
	case err := <-ch:
		return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || err != nil
	case <-time.After(10 * time.Second):
		return false
	}
}

// goroutineBaseline returns a check that goroutines are back to (about)
// the baseline once sessions have ended: a leak check.
func goroutineBaseline(t testing.TB) func() {
	t.Helper()
	base := runtime.NumGoroutine()
	return func() {
		t.Helper()
		testenv.WaitFor(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base+2 },
			func() string {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				return fmt.Sprintf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:n])
			})
	}
}

func contains(t testing.TB, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("missing %q in:\n%s", w, s)
		}
	}
}

func echoHandler(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
	msg := ""
	if m := req.Operation.Child(demoNS, "msg"); m != nil {
		msg = m.Text
	}
	return []*netconf.Element{netconf.NewLeaf(demoNS, "msg", msg)}, nil
}
