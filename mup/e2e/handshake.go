package e2e

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// Notify is the manager's retained announcement on
// <prefix>/<manager>/<device>/notify (paper Fig. 5): its certificate, a
// fresh nonce, in mode Ephemeral its ephemeral public key, and a signature
// by its certificate key over everything else.
type Notify struct {
	Mode      Mode   `cbor:"1,keyasint"`
	Cert      []byte `cbor:"2,keyasint"` // DER
	Nonce     []byte `cbor:"3,keyasint"`
	Ephemeral []byte `cbor:"4,keyasint,omitempty"` // uncompressed P-256 point
	Device    string `cbor:"5,keyasint"`           // whom it is for
	Signature []byte `cbor:"6,keyasint"`           // ASN.1 ECDSA over SHA-256
}

// Ready is the device's answer on …/ready (paper Fig. 6): its certificate,
// its nonce, its ephemeral key, and a signature over both nonces and both
// identities (and both ephemeral keys), so that it answers this notify only.
type Ready struct {
	Cert      []byte `cbor:"1,keyasint"`
	Nonce     []byte `cbor:"2,keyasint"`
	Ephemeral []byte `cbor:"3,keyasint,omitempty"`
	Signature []byte `cbor:"4,keyasint"`
}

// MaxMessage bounds a handshake message before it is decoded.
const MaxMessage = 16 << 10

var (
	encMode, _ = cbor.CoreDetEncOptions().EncMode()
	decMode, _ = cbor.DecOptions{MaxArrayElements: 16, MaxMapPairs: 16, MaxNestedLevels: 4}.DecMode()
	// ErrHandshake wraps every refused handshake message.
	ErrHandshake = errors.New("e2e: handshake refused")
)

func (n *Notify) signed() ([]byte, error) {
	c := *n
	c.Signature = nil
	return encMode.Marshal(struct {
		Label string `cbor:"1,keyasint"`
		N     Notify `cbor:"2,keyasint"`
	}{"myno-e2e-notify", c})
}

func (r *Ready) signed(n *Notify) ([]byte, error) {
	c := *r
	c.Signature = nil
	nn := *n
	return encMode.Marshal(struct {
		Label string `cbor:"1,keyasint"`
		N     Notify `cbor:"2,keyasint"`
		R     Ready  `cbor:"3,keyasint"`
	}{"myno-e2e-ready", nn, c})
}

func sign(key *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	d := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, key, d[:])
}

func newNonce() []byte {
	n := make([]byte, MinNonceSize)
	_, _ = rand.Read(n)
	return n
}

// ManagerState is what the manager keeps between its notify and the ready.
type ManagerState struct {
	Notify    *Notify
	key       *ecdsa.PrivateKey
	ephemeral *ecdh.PrivateKey
}

// NewNotify makes and signs the manager's notify for device.
func NewNotify(mode Mode, cert *x509.Certificate, key *ecdsa.PrivateKey, device string) (*ManagerState, error) {
	if mode != Static && mode != Ephemeral {
		return nil, fmt.Errorf("%w: mode %q", errArgs, mode)
	}
	st := &ManagerState{Notify: &Notify{Mode: mode, Cert: cert.Raw, Nonce: newNonce(), Device: device}, key: key}
	if mode == Ephemeral {
		eph, err := NewEphemeral()
		if err != nil {
			return nil, err
		}
		st.ephemeral, st.Notify.Ephemeral = eph, eph.PublicKey().Bytes()
	}
	msg, err := st.Notify.signed()
	if err != nil {
		return nil, err
	}
	if st.Notify.Signature, err = sign(key, msg); err != nil {
		return nil, err
	}
	return st, nil
}

// Encode renders a notify or ready as deterministic CBOR.
func (n *Notify) Encode() ([]byte, error) { return encMode.Marshal(n) }

// Encode renders the ready message.
func (r *Ready) Encode() ([]byte, error) { return encMode.Marshal(r) }

// DecodeNotify parses a notify; it does not verify it.
func DecodeNotify(b []byte) (*Notify, error) { return decodeMessage[Notify](b, "notify", ErrHandshake) }

// DecodeReady parses a ready message; it does not verify it.
func DecodeReady(b []byte) (*Ready, error) { return decodeMessage[Ready](b, "ready", ErrHandshake) }

// decodeMessage bounds and decodes one E2E message; errors wrap sentinel.
func decodeMessage[T any](b []byte, what string, sentinel error) (*T, error) {
	if len(b) > MaxMessage {
		return nil, fmt.Errorf("%w: %s of %d bytes", sentinel, what, len(b))
	}
	var m T
	if err := decMode.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", sentinel, what, err)
	}
	return &m, nil
}

// verifySigned checks a peer certificate (one of roles) and its
// signature over msg.
func verifySigned(der []byte, ca *x509.Certificate, now time.Time, msg, sig []byte, roles ...Role) (string, *ecdsa.PublicKey, Role, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", nil, "", fmt.Errorf("%w: certificate: %v", ErrHandshake, err)
	}
	name, pub, err := VerifyPeer(cert, ca, roles[0], now)
	for _, r := range roles[1:] {
		if err == nil {
			break
		}
		name, pub, err = VerifyPeer(cert, ca, r, now)
	}
	if err != nil {
		return "", nil, "", fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	d := sha256.Sum256(msg)
	if !ecdsa.VerifyASN1(pub, d[:], sig) {
		return "", nil, "", fmt.Errorf("%w: bad signature by %s", ErrHandshake, name)
	}
	return name, pub, Role(cert.Subject.OrganizationalUnit[0]), nil
}

// Answer is the device side: it verifies the notify (for this device,
// with a known mode and a long enough nonce; signed by a certificate of
// the CA, valid now, with role manager or update-server, whose name is
// manager, the one the topic names; "" skips the name check), answers
// with a signed ready, and returns the E2E key and the signer's role.
func Answer(n *Notify, manager string, ca *x509.Certificate, cert *x509.Certificate, key *ecdsa.PrivateKey, device string, now time.Time) (*Ready, []byte, Role, error) {
	if n.Device != device || len(n.Nonce) < MinNonceSize || (n.Mode != Static && n.Mode != Ephemeral) {
		return nil, nil, "", fmt.Errorf("%w: notify for %q, mode %q, nonce %d bytes", ErrHandshake, n.Device, n.Mode, len(n.Nonce))
	}
	msg, err := n.signed()
	if err != nil {
		return nil, nil, "", err
	}
	signer, managerPub, role, err := verifySigned(n.Cert, ca, now, msg, n.Signature, RoleManager, RoleUpdateServer)
	if err != nil {
		return nil, nil, "", err
	}
	if manager != "" && signer != manager {
		// A manager certified by the same CA must not speak on another
		// manager's channel.
		return nil, nil, "", fmt.Errorf("%w: notify on %s's channel signed by %s", ErrHandshake, manager, signer)
	}
	r, k, err := answer(n, signer, managerPub, cert, key)
	return r, k, role, err
}

func answer(n *Notify, manager string, managerPub *ecdsa.PublicKey, cert *x509.Certificate, key *ecdsa.PrivateKey) (*Ready, []byte, error) {
	r := &Ready{Cert: cert.Raw, Nonce: newNonce()}
	var shared []byte
	var err error
	if n.Mode == Ephemeral {
		eph, err := NewEphemeral()
		if err != nil {
			return nil, nil, err
		}
		r.Ephemeral = eph.PublicKey().Bytes()
		if shared, err = EphemeralSecret(eph, n.Ephemeral); err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrHandshake, err)
		}
	} else if shared, err = StaticSecret(key, managerPub); err != nil {
		return nil, nil, err
	}
	rmsg, err := r.signed(n)
	if err != nil {
		return nil, nil, err
	}
	if r.Signature, err = sign(key, rmsg); err != nil {
		return nil, nil, err
	}
	k, err := DeriveKey(shared, n.Mode, Binding{Manager: manager, Device: cert.Subject.CommonName, ManagerNonce: n.Nonce, DeviceNonce: r.Nonce})
	return r, k, err
}

// Complete is the manager side: it verifies the ready (a device certified
// by the CA, the one the notify was for, signed over this notify) and
// returns the E2E key.
func (st *ManagerState) Complete(r *Ready, ca *x509.Certificate, now time.Time) ([]byte, error) {
	if len(r.Nonce) < MinNonceSize {
		return nil, fmt.Errorf("%w: device nonce of %d bytes", ErrHandshake, len(r.Nonce))
	}
	msg, err := r.signed(st.Notify)
	if err != nil {
		return nil, err
	}
	device, devicePub, _, err := verifySigned(r.Cert, ca, now, msg, r.Signature, RoleDevice)
	if err != nil {
		return nil, err
	}
	if device != st.Notify.Device {
		return nil, fmt.Errorf("%w: ready from %q, the notify was for %q", ErrHandshake, device, st.Notify.Device)
	}
	var shared []byte
	if st.Notify.Mode == Ephemeral {
		if shared, err = EphemeralSecret(st.ephemeral, r.Ephemeral); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrHandshake, err)
		}
	} else if shared, err = StaticSecret(st.key, devicePub); err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(st.Notify.Cert)
	return DeriveKey(shared, st.Notify.Mode, Binding{Manager: cert.Subject.CommonName, Device: device, ManagerNonce: st.Notify.Nonce, DeviceNonce: r.Nonce})
}
