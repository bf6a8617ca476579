package netconf_test

import (
	"net"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/failguard"
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
