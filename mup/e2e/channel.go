// Package e2e is the cryptographic core of the end-to-end channel between
// the update manager and a device through a broker that relays but must
// not read or forge (Chien & Wang, Electronics 2022; DESIGN.md §E2E):
// key agreement (static or ephemeral ECDH on P-256), the HKDF-SHA256 key
// bound to both identities and both nonces, and AES-256-GCM sealing with
// associated data. Pure functions: bytes in, bytes out; the MQTT exchange
// (notify, ready, update, update/status) is built on top.
package e2e

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Mode is how the two sides agree on the shared secret.
type Mode string

const (
	// Static is ECDH of the two certificate keys, as in the paper: no
	// forward secrecy (a stolen certificate key opens past sessions).
	Static Mode = "static"
	// Ephemeral is ECDH of fresh keys, each signed by its side's
	// certificate key: forward secrecy. The default.
	Ephemeral Mode = "ephemeral"
)

// KeySize is the AES-256 key length.
const KeySize = 32

// MinNonceSize bounds the handshake nonces from below.
const MinNonceSize = 16

var (
	// ErrOpen is returned for a sealed message that does not authenticate:
	// tampered, replayed under other associated data, or for another key.
	ErrOpen = errors.New("e2e: message does not authenticate")
	errArgs = errors.New("e2e: bad arguments")
)

// Identities and nonces that the key is bound to. The same values must be
// given on both sides, in these roles.
type Binding struct {
	Manager, Device           string // certificate subjects
	ManagerNonce, DeviceNonce []byte
}

// info renders the binding as HKDF info: length-prefixed fields, so that no
// two different bindings give the same bytes.
func (b Binding) info(mode Mode) ([]byte, error) {
	if len(b.ManagerNonce) < MinNonceSize || len(b.DeviceNonce) < MinNonceSize || b.Manager == "" || b.Device == "" {
		return nil, fmt.Errorf("%w: identities and nonces of at least %d bytes are required", errArgs, MinNonceSize)
	}
	out := []byte("myno-e2e-v1")
	for _, f := range [][]byte{[]byte(mode), []byte(b.Manager), []byte(b.Device), b.ManagerNonce, b.DeviceNonce} {
		out = binary.BigEndian.AppendUint32(out, uint32(len(f)))
		out = append(out, f...)
	}
	return out, nil
}

// DeriveKey is the E2E key: HKDF-SHA256 (RFC 5869) of the ECDH shared
// secret, with the binding as info.
func DeriveKey(shared []byte, mode Mode, b Binding) ([]byte, error) {
	info, err := b.info(mode)
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, shared, nil, string(info), KeySize)
}

// StaticSecret is ECDH of our certificate key and the peer's certificate
// public key (mode Static).
func StaticSecret(own *ecdsa.PrivateKey, peer *ecdsa.PublicKey) ([]byte, error) {
	if own == nil || peer == nil {
		return nil, fmt.Errorf("%w: missing key", errArgs)
	}
	priv, err := own.ECDH()
	if err != nil {
		return nil, fmt.Errorf("e2e: own key: %w", err)
	}
	pub, err := peer.ECDH()
	if err != nil {
		return nil, fmt.Errorf("e2e: peer key: %w", err)
	}
	return priv.ECDH(pub)
}

// NewEphemeral makes a fresh P-256 key for one handshake (mode Ephemeral).
func NewEphemeral() (*ecdh.PrivateKey, error) { return ecdh.P256().GenerateKey(rand.Reader) }

// EphemeralSecret is ECDH of our ephemeral key and the peer's ephemeral
// public key (uncompressed point), which the caller has checked is signed
// by the peer's certificate key.
func EphemeralSecret(own *ecdh.PrivateKey, peerPoint []byte) ([]byte, error) {
	pub, err := ecdh.P256().NewPublicKey(peerPoint)
	if err != nil {
		return nil, fmt.Errorf("%w: peer ephemeral key: %v", errArgs, err)
	}
	return own.ECDH(pub)
}

// Sealer is AES-256-GCM under one key, prepared once: what Seal and Open
// do, for many messages under the same key (a session, a firmware
// transfer).
type Sealer struct{ aead cipher.AEAD }

// NewSealer prepares the cipher of a KeySize-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Overhead is what sealing adds: the nonce and the tag.
func (s *Sealer) Overhead() int { return s.aead.NonceSize() + s.aead.Overhead() }

// Seal encrypts plaintext under a random 12-byte nonce: nonce, then
// ciphertext and tag. aad is authenticated, not sent.
func (s *Sealer) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, aad), nil
}

// Open reverses Seal; any change to the message or the aad gives ErrOpen.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrOpen, len(sealed))
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// Seal encrypts with AES-256-GCM: a random 12-byte nonce, then the
// ciphertext and tag. aad (for example the topic and a sequence number, or
// a slice index) is authenticated, not sent.
func Seal(key, plaintext, aad []byte) ([]byte, error) {
	s, err := NewSealer(key)
	if err != nil {
		return nil, err
	}
	return s.Seal(plaintext, aad)
}

// Open reverses Seal; any change to the message or the aad gives ErrOpen.
func Open(key, sealed, aad []byte) ([]byte, error) {
	s, err := NewSealer(key)
	if err != nil {
		return nil, err
	}
	return s.Open(sealed, aad)
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: key of %d bytes, want %d", errArgs, len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
