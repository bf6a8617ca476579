package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
)

// sshKeygen makes an ed25519 key pair with OpenSSH's ssh-keygen in a temp
// dir (passphrase: none, or the given one) and returns the private key's
// file; the public key is beside it (.pub).
func sshKeygen(t *testing.T, passphrase string) string {
	t.Helper()
	keygen := testenv.Tool(t, "ssh-keygen")
	key := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", passphrase, "-C", "myno-test", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return key
}

// authorize lets the key of file log in to the bridge as its admin user
// (<data-dir>/authorized_keys/<user>).
func authorize(t *testing.T, file string) func(dataDir string) {
	return func(dataDir string) {
		pub, err := os.ReadFile(file + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(dataDir, "authorized_keys")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, bridge.AdminUser), pub, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// withoutPassword is the world's myno update command line with no
// --password.
func withoutPassword(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--password" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// myno update logs in with an SSH key instead of a password (issue 17:
// each update paid a bcrypt comparison): --identity, and the keys of a
// real ssh-agent. A key the bridge does not know, an encrypted identity
// file and no credentials at all are refused, naming why.
func TestUpdateLogsInWithAKey(t *testing.T) {
	t.Setenv("SSH_AUTH_SOCK", "")
	key := sshKeygen(t, "")
	w := startUpdateWorld(t, authorize(t, key))
	w.addDevice(t, "upd-key", nil, nil)
	update := func(more ...string) (int, string, string) {
		return runMyno(t, append(withoutPassword(w.args(w.b.BrokerURL(), "--image", w.image, "--manifest", w.manifest)), more...)...)
	}

	code, out, errOut := update("--device", "upd-key", "--identity", key)
	if code != 0 || !strings.Contains(out, "device upd-key runs version 4") {
		t.Fatalf("--identity: exit %d\n%s\n%s", code, out, errOut)
	}

	stranger := sshKeygen(t, "")
	code, _, errOut = update("--device", "upd-key", "--identity", stranger)
	if code == 0 || !strings.Contains(errOut, "unable to authenticate") {
		t.Errorf("a key the bridge does not know: exit %d\n%s", code, errOut)
	}
	locked := sshKeygen(t, "a passphrase")
	code, _, errOut = update("--device", "upd-key", "--identity", locked)
	if code != 2 || !strings.Contains(errOut, "add it to ssh-agent") {
		t.Errorf("an encrypted identity: exit %d\n%s", code, errOut)
	}
	code, _, errOut = update("--device", "upd-key")
	if code != 2 || !strings.Contains(errOut, "no NETCONF credentials") {
		t.Errorf("no credentials: exit %d\n%s", code, errOut)
	}

	// The same key through ssh-agent (OpenSSH's), which holds it.
	sock := startSSHAgent(t)
	add := exec.Command(testenv.Tool(t, "ssh-add"), key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	w.addDevice(t, "upd-agent", nil, nil)
	code, out, errOut = update("--device", "upd-agent")
	if code != 0 || !strings.Contains(out, "device upd-agent runs version 4") {
		t.Fatalf("ssh-agent: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = update("--device", "upd-agent", "--no-agent")
	if code != 2 || !strings.Contains(errOut, "no NETCONF credentials") {
		t.Errorf("--no-agent: exit %d\n%s", code, errOut)
	}
}

// startSSHAgent runs OpenSSH's ssh-agent in the foreground on a socket
// of its own until the test ends, and returns the socket.
func startSSHAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "ssh-agent"), "-D", "-a", sock)
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	testenv.WaitFor(t, "ssh-agent's socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	return sock
}
