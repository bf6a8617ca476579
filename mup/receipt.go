package mup

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/veraison/go-cose"

	"github.com/myno-bridge/myno/mup/e2e"
)

// Receipt is a device's signed word that it checked an image and takes it
// as its new version: an operator's verdict must not rest on an answer
// that anyone who can publish on the device's topics can forge (issue 12;
// this goes beyond the MUP paper, whose final check is the device's token).
// It binds the device, the update attempt (the nonce of the token the
// extended manifest was signed for), the image and the version.
type Receipt struct {
	// Purpose is always ReceiptPurpose: no other signature a device key
	// makes (the E2E channel's) can be taken for a receipt.
	Purpose string `cbor:"1,keyasint"`
	UUID    string `cbor:"2,keyasint"`
	Nonce   []byte `cbor:"3,keyasint"`
	Digest  []byte `cbor:"4,keyasint"` // SHA-256 of the image, as the device computed it
	Version uint32 `cbor:"5,keyasint"`
}

// ReceiptPurpose is the first field of every receipt.
const ReceiptPurpose = "myno-mup-receipt"

// IsReceiptOutput reports whether an output of sendFirmwareImage, by its
// name in the description (and so in the device's YANG module), is where a
// device that signs receipts puts them (PROTOCOL.md, "Signed update
// receipt"). A device declares that it signs by having one.
func IsReceiptOutput(name string) bool { return strings.HasSuffix(name, "Receipt") }

// MaxReceiptBytes bounds a receipt: one certificate and a small payload.
const MaxReceiptBytes = 8192

// ErrBadReceipt is wrapped by every refusal of VerifyReceipt.
var ErrBadReceipt = errors.New("receipt refused")

// SignReceipt returns the receipt as a tagged COSE_Sign1 (RFC 9052 §4.2)
// with ES256, signed by the device key; the device certificate travels in
// the protected header as x5chain (RFC 9360 §2), so the Update Server needs
// only the CA.
func SignReceipt(r Receipt, cert *x509.Certificate, key *ecdsa.PrivateKey) ([]byte, error) {
	r.Purpose = ReceiptPurpose
	payload, err := cborEnc.Marshal(&r)
	if err != nil {
		return nil, err
	}
	signer, err := cose.NewSigner(cose.AlgorithmES256, key)
	if err != nil {
		return nil, err
	}
	headers := cose.Headers{Protected: cose.ProtectedHeader{
		cose.HeaderLabelAlgorithm: cose.AlgorithmES256,
		cose.HeaderLabelX5Chain:   cert.Raw,
	}}
	return cose.Sign1(rand.Reader, signer, headers, payload, nil)
}

// VerifyReceipt checks a receipt against what the Update Server expects
// (want: uuid, nonce, digest and version of this update), in this order:
// size, COSE_Sign1 with ES256, the certificate (chains to ca, valid at
// now, role device, P-256: e2e.VerifyPeer) names the device, the
// signature with the certificate's key, and only then the payload, field
// by field. It returns the certificate that signed.
func VerifyReceipt(raw []byte, ca *x509.Certificate, want Receipt, now time.Time) (*x509.Certificate, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadReceipt)
	}
	if len(raw) > MaxReceiptBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadReceipt, len(raw), MaxReceiptBytes)
	}
	if ca == nil {
		return nil, fmt.Errorf("%w: no CA to check the device certificate against", ErrBadReceipt)
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(raw); err != nil {
		return nil, fmt.Errorf("%w: not a COSE_Sign1: %v", ErrBadReceipt, err)
	}
	alg, err := m.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmES256 {
		return nil, fmt.Errorf("%w: algorithm %v, want ES256", ErrBadReceipt, alg)
	}
	der, ok := m.Headers.Protected[cose.HeaderLabelX5Chain].([]byte)
	if !ok {
		// A chain (an array) is not used: device certificates come
		// straight from the CA (mup/e2e).
		return nil, fmt.Errorf("%w: no single device certificate in the protected header (x5chain)", ErrBadReceipt)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: device certificate: %v", ErrBadReceipt, err)
	}
	name, pub, err := e2e.VerifyPeer(cert, ca, e2e.RoleDevice, now)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadReceipt, err)
	}
	if name != want.UUID {
		return nil, fmt.Errorf("%w: signed by the certificate of %q, not of device %q", ErrBadReceipt, name, want.UUID)
	}
	v, err := cose.NewVerifier(cose.AlgorithmES256, pub)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(nil, v); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadReceipt, err)
	}
	var got Receipt
	if err := cborDec.Unmarshal(m.Payload, &got); err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrBadReceipt, err)
	}
	switch {
	case got.Purpose != ReceiptPurpose:
		return nil, fmt.Errorf("%w: purpose %q, want %q", ErrBadReceipt, got.Purpose, ReceiptPurpose)
	case got.UUID != want.UUID:
		return nil, fmt.Errorf("%w: for device %q, not %q", ErrBadReceipt, got.UUID, want.UUID)
	case !bytes.Equal(got.Nonce, want.Nonce):
		return nil, fmt.Errorf("%w: for another update (token nonce %x, this update's is %x)", ErrBadReceipt, got.Nonce, want.Nonce)
	case len(got.Digest) != sha256.Size || !bytes.Equal(got.Digest, want.Digest):
		return nil, fmt.Errorf("%w: for image %x, not %x", ErrBadReceipt, got.Digest, want.Digest)
	case got.Version != want.Version:
		return nil, fmt.Errorf("%w: for version %d, not %d", ErrBadReceipt, got.Version, want.Version)
	}
	return cert, nil
}
