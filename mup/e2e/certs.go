package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"
)

// Role is what a certificate is for; it is carried as the subject's
// organizational unit and checked by the peer.
type Role string

const (
	RoleManager      Role = "manager"
	RoleDevice       Role = "device"
	RoleUpdateServer Role = "update-server"
)

// Roles lists the roles a certificate can have.
var Roles = []Role{RoleManager, RoleDevice, RoleUpdateServer}

// NewCA makes a self-signed P-256 CA certificate and its key.
func NewCA(name string, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serialNumber(), Subject: pkix.Name{CommonName: name, Organization: []string{"MYNO E2E CA"}},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(validity),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// Issue makes a certificate for name in role, with a new P-256 key,
// signed by the CA; notBefore lets tests make expired certificates.
func Issue(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, role Role, notBefore time.Time, validity time.Duration) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	if !slices.Contains(Roles, role) {
		return nil, nil, fmt.Errorf("e2e: unknown role %q", role)
	}
	if name == "" {
		return nil, nil, errors.New("e2e: a certificate needs a name")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serialNumber(), Subject: pkix.Name{CommonName: name, OrganizationalUnit: []string{string(role)}},
		NotBefore: notBefore, NotAfter: notBefore.Add(validity), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

// VerifyPeer checks a peer's certificate: it chains to the CA, is valid at
// now, has the expected role and a P-256 key. It returns the peer's name
// and key.
func VerifyPeer(cert, ca *x509.Certificate, want Role, now time.Time) (string, *ecdsa.PublicKey, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "", nil, fmt.Errorf("e2e: peer certificate: %w", err)
	}
	if !slices.Equal(cert.Subject.OrganizationalUnit, []string{string(want)}) {
		return "", nil, fmt.Errorf("e2e: peer certificate %q has role %v, want %s", cert.Subject.CommonName, cert.Subject.OrganizationalUnit, want)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return "", nil, errors.New("e2e: peer certificate: not a P-256 key")
	}
	return cert.Subject.CommonName, pub, nil
}

func serialNumber() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
