package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
)

// startHostKeyBridge runs a bridge with its own data dir (and so its own
// host key) on addr.
func startHostKeyBridge(t *testing.T, addr, password string) *bridge.Bridge {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var b *bridge.Bridge
	var err error
	// The port of a bridge just closed can be busy for a moment.
	testenv.WaitFor(t, "the bridge to listen on "+addr, func() bool {
		b, err = bridge.Start(ctx, bridge.Config{NetconfListen: addr, MQTTListen: "127.0.0.1:0", DataDir: t.TempDir(),
			AdminPassword: password, Logger: testenv.Logger(), Out: os.Stderr})
		return err == nil
	}, func() string { return err.Error() })
	return b
}

// A bridge's host key is trusted on first use; a different key on the
// same address is refused before the password is sent (host key checks
// come before user authentication, RFC 4252 §1); --known-host pins a key;
// --insecure-host-key accepts any, with a warning.
func TestHostKeyVerification(t *testing.T) {
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	first := startHostKeyBridge(t, addr, "first-pw")
	hostKey := hostKeyOf(t, addr)
	rpc := func(extra ...string) (int, string, string) {
		return runMyno(t, append([]string{"rpc", "--addr", addr, "--known-hosts", knownHosts}, append(extra, "<get/>")...)...)
	}
	code, _, errOut := rpc("--password", "first-pw")
	if code != 0 || !strings.Contains(errOut, "Trusted the host key of "+addr+" on first use") {
		t.Fatalf("first use: exit %d %s", code, errOut)
	}
	code, _, errOut = rpc("--password", "first-pw")
	if code != 0 || strings.Contains(errOut, "Trusted") {
		t.Fatalf("second use: exit %d %s", code, errOut)
	}
	first.Close()

	// Another bridge (another key) answers on the same address.
	second := startHostKeyBridge(t, addr, "second-pw")
	defer second.Close()
	code, _, errOut = rpc("--password", "second-pw")
	if code != 1 || !strings.Contains(errOut, "host key mismatch for "+addr) || !strings.Contains(errOut, knownHosts+":1") {
		t.Fatalf("changed key: exit %d %s", code, errOut)
	}
	if code, _, errOut = rpc("--password", "second-pw", "--known-host", hostKey); code != 1 || !strings.Contains(errOut, "host key mismatch") {
		t.Fatalf("pinned key of the first bridge: exit %d %s", code, errOut)
	}
	code, reply, errOut := rpc("--password", "second-pw", "--insecure-host-key")
	if code != 0 || !strings.Contains(reply, "<rpc-reply") || !strings.Contains(errOut, "warning: --insecure-host-key") {
		t.Fatalf("--insecure-host-key: exit %d %s %s", code, reply, errOut)
	}
	if kh, _ := os.ReadFile(knownHosts); strings.Count(string(kh), "\n") != 1 {
		t.Fatalf("known_hosts changed: %q", kh)
	}
	// The pinned key of the bridge that answers works.
	if code, _, errOut = rpc("--password", "second-pw", "--known-host", hostKeyOf(t, addr)); code != 0 {
		t.Fatalf("pinned key: exit %d %s", code, errOut)
	}
}

// hostKeyOf is the host key that the SSH server on addr presents, in
// authorized_keys format; the handshake stops there.
func hostKeyOf(t *testing.T, addr string) string {
	t.Helper()
	var key ssh.PublicKey
	stop := errors.New("got the key")
	_, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "nobody", Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error { key = k; return stop }})
	if !errors.Is(err, stop) || key == nil {
		t.Fatalf("host key of %s: %v", addr, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}
