package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
)

// myno users edits the users file of a running bridge, which takes each
// change without a restart: a new user logs in, a reset admin password
// works (the documented way back from a lost one), a removed user no
// longer logs in, and a file that does not parse changes nothing.
func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir,
		AdminPassword: "first-pw", Logger: testenv.Logger(), Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	login := func(user, password string) bool {
		c, err := ssh.Dial("tcp", b.NetconfAddr(), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.Password(password)},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("viewer-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runMyno(t, "users", "add", "viewer", "--data-dir", dir, "--password-file", pwFile); code != 0 || !strings.Contains(out, "added viewer (groups read-only)") {
		t.Fatalf("users add: %d %s %s", code, out, errOut)
	}
	testenv.WaitFor(t, "the new user to log in", func() bool { return login("viewer", "viewer-secret") })
	if code, _, errOut := runMyno(t, "users", "add", "viewer", "--data-dir", dir); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("adding twice: %d %s", code, errOut)
	}
	code, out, _ := runMyno(t, "users", "passwd", "admin", "--data-dir", dir)
	m := regexp.MustCompile(`password (\S+) \(shown once`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("users passwd admin: %d %s", code, out)
	}
	testenv.WaitFor(t, "the reset admin password to work", func() bool { return login("admin", m[1]) })
	if login("admin", "first-pw") {
		t.Error("the old admin password still works")
	}
	if code, out, _ := runMyno(t, "users", "list", "--data-dir", dir); code != 0 || !regexp.MustCompile(`admin\s+admin\n`).MatchString(out) ||
		!regexp.MustCompile(`viewer\s+read-only\n`).MatchString(out) {
		t.Errorf("users list: %d %q", code, out)
	}
	if code, _, _ := runMyno(t, "users", "remove", "viewer", "--data-dir", dir); code != 0 {
		t.Fatal("users remove failed")
	}
	testenv.WaitFor(t, "the removed user to be refused", func() bool { return !login("viewer", "viewer-secret") })
	// A broken file is refused by the bridge, which keeps its users; the
	// CLI refuses to edit it.
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("admin:not-a-hash:admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.ReloadUsers(); err == nil || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Errorf("reload of a broken file: %v", err)
	}
	if !login("admin", m[1]) {
		t.Error("a broken users file locked the admin out")
	}
	if code, _, errOut := runMyno(t, "users", "add", "x", "--data-dir", dir); code != 1 || !strings.Contains(errOut, "not a bcrypt hash") {
		t.Errorf("editing a broken file: %d %s", code, errOut)
	}
}
