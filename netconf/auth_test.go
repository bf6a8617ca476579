package netconf_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/netconf"
)

func TestParseUsers(t *testing.T) {
	hash, err := netconf.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	users, err := netconf.ParseUsers([]byte("# operators\n\nadmin:" + hash + ":admin,ops\nviewer:" + hash + ":read-only\nrobot::automation\n"))
	if err != nil {
		t.Fatal(err)
	}
	admin, ok := users.Lookup("admin")
	if !ok || strings.Join(admin.Groups, ",") != "admin,ops" || admin.PasswordHash != hash {
		t.Errorf("admin %+v", admin)
	}
	if robot, ok := users.Lookup("robot"); !ok || robot.PasswordHash != "" {
		t.Errorf("key-only user %+v", robot)
	}
	for name, bad := range map[string]string{
		"missing field":  "admin:" + hash,
		"plain password": "admin:s3cret:admin",
		"duplicate user": "a::x\na::y",
		"empty name":     ":" + hash + ":x",
	} {
		if _, err := netconf.ParseUsers([]byte(bad)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func TestLoadAuthorizedKeys(t *testing.T) {
	ts := startServer(t, nil)
	key, _ := os.ReadFile(ts.keyFile)
	signer, _ := ssh.ParsePrivateKey(key)
	dir := t.TempDir()
	line := string(ssh.MarshalAuthorizedKey(signer.PublicKey()))
	if err := os.WriteFile(filepath.Join(dir, "robot"), []byte("# robot's key\n"+strings.TrimSpace(line)+" robot@ci\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	users, _ := netconf.ParseUsers([]byte("robot::automation\n"))
	if err := users.LoadAuthorizedKeys(dir); err != nil {
		t.Fatal(err)
	}
	robot, _ := users.Lookup("robot")
	if len(robot.AuthorizedKeys) != 1 {
		t.Fatalf("%d keys", len(robot.AuthorizedKeys))
	}
	if err := os.WriteFile(filepath.Join(dir, "ghost"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := users.LoadAuthorizedKeys(dir); err == nil {
		t.Errorf("keys for an unknown user accepted")
	}
	if err := users.LoadAuthorizedKeys(filepath.Join(dir, "absent")); err != nil {
		t.Errorf("a missing keys directory: %v", err)
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

// A client that offers five keys the server does not know before the
// password (ncclient with the user's SSH keys, ssh with several -i) is
// let in: six attempts per connection, as sshd (issue 16). A seventh is
// not given.
func TestAuthenticationAttempts(t *testing.T) {
	ts := startServer(t, nil)
	keys := func(n int) []ssh.Signer {
		var out []ssh.Signer
		for range n {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			s, _ := ssh.NewSignerFromKey(priv)
			out = append(out, s)
		}
		return out
	}
	// x/crypto/ssh offers each key of one PublicKeys method in turn, then
	// the password.
	cfg := passwordConfig("admin", adminPass)
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(keys(5)...), ssh.Password(adminPass)}
	c, err := ssh.Dial("tcp", ts.addr, cfg)
	if err != nil {
		t.Fatalf("five unknown keys, then the password: %v", err)
	}
	c.Close()
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(keys(6)...), ssh.Password(adminPass)}
	if c, err := ssh.Dial("tcp", ts.addr, cfg); err == nil {
		c.Close()
		t.Error("six unknown keys, then the password: let in")
	}
}
