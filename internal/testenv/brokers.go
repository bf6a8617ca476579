package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	tls  bool // the listener speaks TLS
}

// StartMosquitto runs mosquitto on a random loopback port, open to
// anonymous clients (skipped, or failed under CI, when mosquitto is not
// installed). It is stopped when the test ends.
func StartMosquitto(t testing.TB) *Mosquitto { return StartMosquittoWith(t, MosquittoConfig{}) }

// MosquittoConfig configures StartMosquittoWith.
type MosquittoConfig struct {
	// Users, when set, are the only clients admitted (allow_anonymous
	// false), by user name and password (a password_file made with
	// mosquitto_passwd).
	Users map[string]string
	// TLS, when set, makes the listener MQTT over TLS.
	TLS *MosquittoTLS
	// PasswordFile and ACLFile, when set (myno acl export writes both),
	// are Mosquitto's password_file and acl_file, with allow_anonymous
	// false. Reload makes Mosquitto read them again.
	PasswordFile, ACLFile string
	// DynsecFile, when set, loads Mosquitto's dynamic-security plugin with
	// that configuration file (myno acl export --format mosquitto-dynsec),
	// with allow_anonymous false.
	DynsecFile string
}

// dynsecPlugin is where Debian's mosquitto package puts the plugin.
const dynsecPlugin = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

// MosquittoTLS is Mosquitto's TLS listener configuration.
type MosquittoTLS struct {
	CAFile, CertFile, KeyFile string
	// RequireCertificate admits only clients with a certificate of the CA
	// (mutual TLS).
	RequireCertificate bool
}

// StartMosquittoWith runs mosquitto on a random loopback port with cfg.
func StartMosquittoWith(t testing.TB, cfg MosquittoConfig) *Mosquitto {
	t.Helper()
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		bin = Tool(t, "mosquitto")
	}
	m := &Mosquitto{t: t, Port: FreePort(t), dir: t.TempDir(), tls: cfg.TLS != nil}
	access := "allow_anonymous true\n"
	if len(cfg.Users) > 0 {
		passwd := filepath.Join(m.dir, "passwd")
		tool := Tool(t, "mosquitto_passwd")
		for user, password := range cfg.Users {
			args := []string{"-b", passwd, user, password}
			if _, err := os.Stat(passwd); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v %s", err, out)
			}
		}
		access = fmt.Sprintf("allow_anonymous false\npassword_file %s\n", passwd)
	}
	if cfg.PasswordFile != "" {
		access = fmt.Sprintf("allow_anonymous false\npassword_file %s\n", cfg.PasswordFile)
		if cfg.ACLFile != "" {
			access += fmt.Sprintf("acl_file %s\n", cfg.ACLFile)
		}
	}
	if cfg.DynsecFile != "" {
		if _, err := os.Stat(dynsecPlugin); err != nil {
			t.Fatalf("mosquitto's dynamic-security plugin: %v (Debian package mosquitto)", err)
		}
		access = fmt.Sprintf("allow_anonymous false\nplugin %s\nplugin_opt_config_file %s\n", dynsecPlugin, cfg.DynsecFile)
	}
	if c := cfg.TLS; c != nil {
		access += fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate %t\n", c.CAFile, c.CertFile, c.KeyFile, c.RequireCertificate)
		if c.RequireCertificate && len(cfg.Users) == 0 {
			// The certificate is the credential.
			access = strings.Replace(access, "allow_anonymous true", "allow_anonymous false\nuse_identity_as_username true", 1)
		}
	}
	if os.Geteuid() == 0 {
		// Started as root, mosquitto drops to the user mosquitto, who may
		// not enter the test's private temporary directory to read the
		// password file or write the log.
		access += "user root\n"
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\n%spersistence false\nlog_dest file %s\nmax_keepalive 60\nset_tcp_nodelay true\n",
		m.Port, access, filepath.Join(m.dir, "mosquitto.log"))
	if err := os.WriteFile(filepath.Join(m.dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start(bin)
	t.Cleanup(m.Stop)
	return m
}

// Reload has Mosquitto read its password and ACL files again (SIGHUP).
// It returns once Mosquitto logged the reload.
func (m *Mosquitto) Reload() {
	m.t.Helper()
	logFile := filepath.Join(m.dir, "mosquitto.log")
	count := func() int {
		data, _ := os.ReadFile(logFile)
		return strings.Count(string(data), "Reloading config")
	}
	before := count()
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		m.t.Fatalf("mosquitto reload: %v", err)
	}
	WaitFor(m.t, "mosquitto to reload its configuration", func() bool { return count() > before })
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
func (m *Mosquitto) URL() string {
	if m.tls {
		return "mqtts://" + m.Addr()
	}
	return "mqtt://" + m.Addr()
}

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
