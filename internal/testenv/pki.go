package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for TLS tests, its files in a
// temporary directory.
type PKI struct {
	t      testing.TB
	dir    string
	name   string
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	serial atomic.Int64
	// CAFile is the CA certificate (PEM).
	CAFile string
}

// NewPKI makes a CA named name.
func NewPKI(t testing.TB, name string) *PKI {
	t.Helper()
	p := &PKI{t: t, dir: t.TempDir(), name: name}
	p.key = p.newKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	if p.cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	p.CAFile = p.write(name+"-ca.pem", "CERTIFICATE", der)
	p.serial.Store(1)
	return p
}

func (p *PKI) newKey() *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	return key
}

func (p *PKI) write(name, kind string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// Server issues a server certificate for 127.0.0.1 and returns its
// certificate and key files.
func (p *PKI) Server(name string) (certFile, keyFile string) {
	return p.issue(name, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
}

// Client issues a client certificate with common name name.
func (p *PKI) Client(name string) (certFile, keyFile string) {
	return p.issue(name, x509.ExtKeyUsageClientAuth, nil)
}

// Peer issues a certificate for 127.0.0.1 that serves and is also a
// client's (etcd's gateway dials its own client URL with it).
func (p *PKI) Peer(name string) (certFile, keyFile string) {
	return p.issue(name, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}, x509.ExtKeyUsageClientAuth)
}

func (p *PKI) issue(name string, usage x509.ExtKeyUsage, ips []net.IP, more ...x509.ExtKeyUsage) (string, string) {
	p.t.Helper()
	key := p.newKey()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: append([]x509.ExtKeyUsage{usage}, more...)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(p.name+"-"+name+".pem", "CERTIFICATE", der), p.write(p.name+"-"+name+".key", "PRIVATE KEY", keyDER)
}
