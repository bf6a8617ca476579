package bridge_test

import (
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
)

// Config.NETCONF reaches the NETCONF server: with room for two sessions,
// a third admin session is refused while two are open, and taken once one
// closes.
func TestNetconfLimitsReachTheServer(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) {
		c.NETCONF = bridge.NetconfLimits{MaxSessions: 2, AdminReserve: 1}
	})
	defer b.Close()
	first, second := session(t, b.NetconfAddr()), session(t, b.NetconfAddr())
	defer second.Close()
	cfg := &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)}, HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
	if s, err := gonetconf.DialSSH(b.NetconfAddr(), cfg); err == nil {
		s.Close()
		t.Fatal("a third session was admitted with MaxSessions 2")
	}
	first.Close()
	var third *gonetconf.Session
	deadline := time.Now().Add(10 * time.Second)
	for third == nil {
		s, err := gonetconf.DialSSH(b.NetconfAddr(), cfg)
		if err == nil {
			third = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after one closed: %v", err)
		}
	}
	third.Close()
}
