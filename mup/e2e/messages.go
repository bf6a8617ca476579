package e2e

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Kind is what an Update carries.
type Kind uint8

const (
	// KindRenewal carries a new certificate and its private key (paper
	// Fig. 7, OTA of credentials).
	KindRenewal Kind = 1
	// KindFirmwareKey carries the key of one encrypted firmware transfer.
	KindFirmwareKey Kind = 2
)

// Update is the plaintext of a sealed message on …/update.
type Update struct {
	Kind Kind   `cbor:"1,keyasint"`
	ID   []byte `cbor:"2,keyasint,omitempty"` // the manager's request id, echoed in the Status
	Cert []byte `cbor:"3,keyasint,omitempty"` // KindRenewal: DER
	Key  []byte `cbor:"4,keyasint,omitempty"` // KindRenewal: PKCS#8 DER; KindFirmwareKey: the AES-256 key
	// AppID, Version and Nonce name the update a firmware key is for: the
	// image, and the device token (MUP) of this update attempt, so that a
	// key is never used for another attempt.
	AppID   string `cbor:"5,keyasint,omitempty"`
	Version uint32 `cbor:"6,keyasint,omitempty"`
	Nonce   []byte `cbor:"7,keyasint,omitempty"`
}

// Status codes a device reports on …/update/status.
const (
	StatusOK = "OK"
	// StatusUnauthenticated: an update that did not open under the E2E key
	// (tampered, replayed, or from before the last handshake).
	StatusUnauthenticated = "UNAUTHENTICATED"
	StatusMalformed       = "MALFORMED"
	// StatusBadCertificate: the renewed certificate does not chain to the
	// CA, is not valid now, has another role or names another device.
	StatusBadCertificate = "BAD-CERTIFICATE"
	// StatusKeyMismatch: the private key does not match the certificate.
	StatusKeyMismatch = "KEY-MISMATCH"
	// StatusInstallFailed: the device could not store the credentials.
	StatusInstallFailed = "INSTALL-FAILED"
)

// Status is the plaintext of a sealed message on …/update/status.
type Status struct {
	ID     []byte `cbor:"1,keyasint,omitempty"`
	Code   string `cbor:"2,keyasint"`
	Detail string `cbor:"3,keyasint,omitempty"`
	// Installed is the SHA-256 of the certificate the device now uses.
	Installed []byte `cbor:"4,keyasint,omitempty"`
}

// ErrMalformed wraps every undecodable update or status.
var ErrMalformed = errors.New("e2e: malformed message")

// NewRequestID returns a random 16-byte request id.
func NewRequestID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}

// Encode serializes an update (deterministic CBOR).
func (u *Update) Encode() ([]byte, error) { return encMode.Marshal(u) }

// Encode serializes a status (deterministic CBOR).
func (s *Status) Encode() ([]byte, error) { return encMode.Marshal(s) }

// DecodeUpdate parses an update.
func DecodeUpdate(b []byte) (*Update, error) {
	u, err := decodeMessage[Update](b, "update", ErrMalformed)
	if err != nil {
		return nil, err
	}
	switch u.Kind {
	case KindRenewal:
		if len(u.Cert) == 0 || len(u.Key) == 0 {
			return nil, fmt.Errorf("%w: renewal without certificate or key", ErrMalformed)
		}
	case KindFirmwareKey:
		if len(u.Key) != KeySize {
			return nil, fmt.Errorf("%w: firmware key of %d bytes, want %d", ErrMalformed, len(u.Key), KeySize)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrMalformed, u.Kind)
	}
	return u, nil
}

// DecodeStatus parses a status.
func DecodeStatus(b []byte) (*Status, error) {
	s, err := decodeMessage[Status](b, "status", ErrMalformed)
	if err != nil {
		return nil, err
	}
	if s.Code == "" {
		return nil, fmt.Errorf("%w: status without code", ErrMalformed)
	}
	return s, nil
}

// NewRenewal packs a certificate and its key for KindRenewal.
func NewRenewal(cert *x509.Certificate, key *ecdsa.PrivateKey) (*Update, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Update{Kind: KindRenewal, ID: NewRequestID(), Cert: cert.Raw, Key: der}, nil
}

// CheckRenewal is the device's check of a renewal before it installs it:
// the certificate chains to the CA, is valid at now, is a device
// certificate for this device, and the key is its private key. On failure
// it returns the status code that says what failed.
func CheckRenewal(u *Update, ca *x509.Certificate, device string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, string, error) {
	cert, err := x509.ParseCertificate(u.Cert)
	if err != nil {
		return nil, nil, StatusBadCertificate, fmt.Errorf("renewed certificate: %w", err)
	}
	name, pub, err := VerifyPeer(cert, ca, RoleDevice, now)
	if err != nil {
		return nil, nil, StatusBadCertificate, err
	}
	if name != device {
		return nil, nil, StatusBadCertificate, fmt.Errorf("renewed certificate names %q, this device is %q", name, device)
	}
	k, err := x509.ParsePKCS8PrivateKey(u.Key)
	if err != nil {
		return nil, nil, StatusKeyMismatch, fmt.Errorf("renewed key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(pub) {
		return nil, nil, StatusKeyMismatch, errors.New("renewed key does not match the certificate")
	}
	return cert, key, "", nil
}
