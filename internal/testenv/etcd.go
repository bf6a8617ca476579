package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Etcd is a cluster of Debian's etcd (package etcd-server) on loopback,
// each member its own process with its own data dir, on free ports. The
// test's cleanup stops it.
type Etcd struct {
	t       testing.TB
	bin     string
	dir     string
	members []*etcdMember
	pki     *PKI // with TLS: the members' CA; clients must present its certificates
	scheme  string
}

type etcdMember struct {
	name         string
	client, peer int
	cmd          *exec.Cmd
	exited       chan struct{}
	log          string
}

// StartEtcd starts an n-member etcd cluster and waits until every member
// serves clients.
func StartEtcd(t testing.TB, n int) *Etcd { return startEtcd(t, n, nil) }

// StartEtcdTLS is StartEtcd with clients served over TLS only, with a
// certificate from pki required of each (--client-cert-auth); the peers
// talk plain HTTP on loopback.
func StartEtcdTLS(t testing.TB, n int, pki *PKI) *Etcd { return startEtcd(t, n, pki) }

func startEtcd(t testing.TB, n int, pki *PKI) *Etcd {
	t.Helper()
	e := &Etcd{t: t, bin: Tool(t, "etcd"), dir: t.TempDir(), pki: pki, scheme: "http"}
	if pki != nil {
		e.scheme = "https"
	}
	for i := range n {
		e.members = append(e.members, &etcdMember{name: fmt.Sprintf("m%d", i), client: FreePort(t), peer: FreePort(t)})
	}
	t.Cleanup(func() {
		for i := range e.members {
			e.Stop(i)
		}
	})
	for i := range e.members {
		e.start(i)
	}
	for i := range e.members {
		e.waitServing(i)
	}
	return e
}

// Endpoints are the members' client URLs.
func (e *Etcd) Endpoints() []string {
	var urls []string
	for _, m := range e.members {
		urls = append(urls, fmt.Sprintf("%s://127.0.0.1:%d", e.scheme, m.client))
	}
	return urls
}

// Stop ends member i (SIGTERM), waiting for it to exit.
func (e *Etcd) Stop(i int) {
	m := e.members[i]
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	m.cmd = nil
}

// Restart starts member i again on its data dir and waits until it
// serves clients (which needs a quorum of the cluster up).
func (e *Etcd) Restart(i int) {
	e.t.Helper()
	e.Stop(i)
	e.start(i)
	e.waitServing(i)
}

func (e *Etcd) start(i int) {
	e.t.Helper()
	m := e.members[i]
	var peers []string
	for _, o := range e.members {
		peers = append(peers, fmt.Sprintf("%s=http://127.0.0.1:%d", o.name, o.peer))
	}
	m.log = filepath.Join(e.dir, m.name+".log")
	logFile, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	args := []string{
		"--name", m.name, "--data-dir", filepath.Join(e.dir, m.name),
		"--listen-client-urls", fmt.Sprintf("%s://127.0.0.1:%d", e.scheme, m.client),
		"--advertise-client-urls", fmt.Sprintf("%s://127.0.0.1:%d", e.scheme, m.client),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peer),
		"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
		"--initial-cluster-token", filepath.Base(e.dir),
		// Loopback: short heartbeats and elections keep failover tests fast.
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"}
	if e.pki != nil {
		cert, key := e.pki.Peer("etcd-" + m.name)
		args = append(args, "--cert-file", cert, "--key-file", key, "--trusted-ca-file", e.pki.CAFile, "--client-cert-auth")
	}
	m.cmd = exec.Command(e.bin, args...)
	m.cmd.Stdout, m.cmd.Stderr = logFile, logFile
	if err := m.cmd.Start(); err != nil {
		logFile.Close()
		e.t.Fatalf("etcd %s: %v", m.name, err)
	}
	m.exited = make(chan struct{})
	cmd, exited := m.cmd, m.exited
	go func() { // owned by Stop, which waits for it
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
}

// waitServing waits until member i answers its health endpoint with a
// leader elected.
func (e *Etcd) waitServing(i int) {
	e.t.Helper()
	m := e.members[i]
	addr := fmt.Sprintf("127.0.0.1:%d", m.client)
	var tlsCfg *tls.Config
	if e.pki != nil {
		tlsCfg = e.ClientTLS("etcd-health")
	}
	deadline := time.Now().Add(WaitTimeout)
	for {
		if healthy(addr, tlsCfg) {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(m.log)
			e.t.Fatalf("etcd %s did not become healthy on %s:\n%s", m.name, addr, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ClientTLS is a client's TLS configuration for a cluster started with
// StartEtcdTLS: the CA, and a certificate for common name name.
func (e *Etcd) ClientTLS(name string) *tls.Config {
	e.t.Helper()
	certFile, keyFile := e.pki.Client(name)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		e.t.Fatal(err)
	}
	ca, err := os.ReadFile(e.pki.CAFile)
	if err != nil {
		e.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// healthy asks etcd's /health (true once the member has a leader), over
// TLS when tlsCfg is set.
func healthy(addr string, tlsCfg *tls.Config) bool {
	var c net.Conn
	var err error
	if tlsCfg != nil {
		c, err = tls.DialWithDialer(&net.Dialer{Timeout: 200 * time.Millisecond}, "tcp", addr, tlsCfg)
	} else {
		c, err = net.DialTimeout("tcp", addr, 200*time.Millisecond)
	}
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprintf(c, "GET /health HTTP/1.0\r\nHost: %s\r\n\r\n", addr); err != nil {
		return false
	}
	reply, _ := io.ReadAll(io.LimitReader(c, 4096)) // HTTP/1.0: the member closes
	return strings.Contains(string(reply), `"health":"true"`)
}
