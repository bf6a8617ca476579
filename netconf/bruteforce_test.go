package netconf_test

import (
	"net"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/failguard"
	"github.com/myno-bridge/myno/netconf"
)

// dialFrom opens an SSH connection to ts from the loopback address local
// (127.0.0.2, ...), so that limits per source apply as in production.
func dialFrom(ts *testServer, local string, cfg *ssh.ClientConfig) error {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: cfg.Timeout}
	conn, err := d.Dial("tcp", ts.addr)
	if err != nil {
		return err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, ts.addr, cfg)
	if err != nil {
		conn.Close()
		return err
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

// Password guessing (issue 12: about 11 guesses a second, no slowdown):
// past a few failures, an address is refused even the right password for
// a while; other addresses are not.
func TestPasswordGuessingIsSlowed(t *testing.T) {
	ts := startServer(t, nil)
	attacker := "127.0.0.2"
	wrong := passwordConfig("admin", "guess")
	wrong.Auth = []ssh.AuthMethod{ssh.Password("guess")} // one try per connection
	for i := range failguard.DefaultFree + 1 {
		if err := dialFrom(ts, attacker, wrong); err == nil {
			t.Fatalf("guess %d admitted", i)
		}
	}
	if err := dialFrom(ts, attacker, passwordConfig("admin", adminPass)); err == nil {
		t.Error("the right password was admitted from an address that is locked out")
	}
	if err := dialFrom(ts, "127.0.0.1", passwordConfig("admin", adminPass)); err != nil {
		t.Errorf("the admin from another address: %v", err)
	}
}

// openSessions opens NETCONF sessions as cfg's user until one is refused
// or n are open, and returns how many opened; they close with the test.
func openSessions(t *testing.T, ts *testServer, cfg *ssh.ClientConfig, n int) int {
	t.Helper()
	c, err := ssh.Dial("tcp", ts.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for i := range n {
		sess, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		if err := sess.RequestSubsystem("netconf"); err != nil {
			return i
		}
	}
	return n
}

// Session lockout (issue 12: a user with no group opened 64 sessions and
// the admin was refused): one user not in group admin has at most
// MaxUserSessions, and the last AdminReserve sessions are for admins only.
func TestSessionLimitsKeepRoomForAdmins(t *testing.T) {
	t.Run("per user", func(t *testing.T) {
		ts := startServer(t, func(c *netconf.Config) { c.MaxSessions, c.AdminReserve, c.MaxUserSessions = 8, 2, 5 })
		if got := openSessions(t, ts, passwordConfig("viewer", viewerPass), 10); got != 5 {
			t.Errorf("viewer opened %d sessions, want the per-user limit 5", got)
		}
		if got := openSessions(t, ts, passwordConfig("admin", adminPass), 1); got != 1 {
			t.Error("the admin was refused")
		}
	})
	t.Run("admin reserve", func(t *testing.T) {
		ts := startServer(t, func(c *netconf.Config) { c.MaxSessions, c.AdminReserve, c.MaxUserSessions = 8, 2, 16 })
		if got := openSessions(t, ts, passwordConfig("viewer", viewerPass), 10); got != 6 {
			t.Errorf("viewer opened %d sessions, want 6 (8 less the 2 kept for admins)", got)
		}
		if got := openSessions(t, ts, passwordConfig("admin", adminPass), 3); got != 2 {
			t.Errorf("the admin opened %d sessions, want the 2 kept for admins", got)
		}
	})
}
