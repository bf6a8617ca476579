package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Mosquitto is a mosquitto broker process started for a test.
type Mosquitto struct {
	t    testing.TB
	Port int
	dir  string
	cmd  *exec.Cmd
}

// StartMosquitto runs mosquitto on a random loopback port (skipped, or
// failed under CI, when mosquitto is not installed). It is stopped when the
// test ends.
func StartMosquitto(t testing.TB) *Mosquitto {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		bin = Tool(t, "mosquitto")
	}
	m := &Mosquitto{t: t, Port: FreePort(t), dir: t.TempDir()}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest file %s\nmax_keepalive 60\nset_tcp_nodelay true\n",
		m.Port, filepath.Join(m.dir, "mosquitto.log"))
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start(bin)
	t.Cleanup(m.Stop)
	return m
}

func (m *Mosquitto) start(bin string) {
	m.t.Helper()
	m.cmd = exec.Command(bin, "-c", filepath.Join(m.dir, "mosquitto.conf"))
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("mosquitto: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", m.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(m.dir, "mosquitto.log"))
			m.t.Fatalf("mosquitto did not listen on %s: %v\n%s", m.Addr(), err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is host:port.
func (m *Mosquitto) Addr() string { return fmt.Sprintf("127.0.0.1:%d", m.Port) }

// URL is the mqtt:// URL.
func (m *Mosquitto) URL() string { return "mqtt://" + m.Addr() }

// Stop ends the broker.
func (m *Mosquitto) Stop() {
	if m.cmd == nil || m.cmd.Process == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	_ = m.cmd.Wait()
	m.cmd = nil
}

// Restart stops the broker and starts it again on the same port.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		bin = Tool(m.t, "mosquitto")
	}
	m.Stop()
	m.start(bin)
}
