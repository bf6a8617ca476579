package v1

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
)

// SignatureSize is the length of a signature, r‖s, each 32 bytes
// big-endian (§4).
const SignatureSize = 64

// ErrBadSignature is wrapped by every signature that does not verify.
var ErrBadSignature = errors.New("mup/v1: signature does not verify")

// ErrInnerSignature and ErrOuterSignature say which signature of a
// manifest failed; both wrap ErrBadSignature.
var (
	ErrInnerSignature = fmt.Errorf("%w: inner signature (manufacturer key)", ErrBadSignature)
	ErrOuterSignature = fmt.Errorf("%w: outer signature (Update Server key)", ErrBadSignature)
)

// Sign signs message as MYNO's createSig does (§4): ECDSA P-256 over the
// SHA-256 of the message, the digest signed as is; it returns r‖s as 128
// lower-case hex digits. k is random (crypto/rand), so two signatures of
// one message differ: compare signatures only by verifying them.
func Sign(key *ecdsa.PrivateKey, message []byte) (string, error) {
	if err := checkPrivate(key); err != nil {
		return "", err
	}
	digest := sha256.Sum256(message)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("mup/v1: sign: %w", err)
	}
	var sig [SignatureSize]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return hex.EncodeToString(sig[:]), nil
}

// Verify checks signature, 128 hex digits of either case (r‖s), over the
// SHA-256 of message with pub (crypto/ecdsa). A signature that is not 128
// hex digits wraps ErrMalformed; one that does not verify wraps
// ErrBadSignature. MYNO's firmware skips non-hex characters when it
// decodes a signature (§3); Verify refuses them.
func Verify(pub *ecdsa.PublicKey, message []byte, signature string) error {
	if err := checkPublic(pub); err != nil {
		return err
	}
	sig, err := DecodeSignature([]byte(signature))
	if err != nil {
		return err
	}
	digest := sha256.Sum256(message)
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return ErrBadSignature
	}
	return nil
}

// DecodeSignature parses a signature's text: exactly 128 hex digits, of
// either case (createSig prints lower case; vector C sends upper case),
// into r‖s. Not canonical: upper-case input encodes back in lower case.
func DecodeSignature(b []byte) ([SignatureSize]byte, error) {
	var sig [SignatureSize]byte
	if err := checkSignatureText(b); err != nil {
		return sig, malformed("%v", err)
	}
	_, _ = hex.Decode(sig[:], b)
	return sig, nil
}

// SignInner signs the inner string with the manufacturer's key (the
// vendor's `createSig signM`) and stores the signature in InnerSignature.
func (m *Manifest) SignInner(manufacturer *ecdsa.PrivateKey) error {
	inner, err := m.EncodeInner()
	if err != nil {
		return err
	}
	sig, err := Sign(manufacturer, inner)
	if err != nil {
		return err
	}
	m.InnerSignature = sig
	return nil
}

// SignOuter signs the outer string with the Update Server's key (its
// `createSig signU`) and stores the signature in OuterSignature.
func (m *Manifest) SignOuter(updateServer *ecdsa.PrivateKey) error {
	outer, err := m.EncodeOuter()
	if err != nil {
		return err
	}
	sig, err := Sign(updateServer, outer)
	if err != nil {
		return err
	}
	m.OuterSignature = sig
	return nil
}

// Verify checks the manifest as MYNO's firmware does at START-UPDATE
// (§5): the inner signature with the manufacturer's key, then the outer
// one with the Update Server's key. A failure wraps ErrInnerSignature or
// ErrOuterSignature. Like the firmware it checks nothing else: not the
// AppId, nonce, version order or size, and there is no UUID to check.
func (m *Manifest) Verify(manufacturer, updateServer *ecdsa.PublicKey) error {
	if err := m.Validate(); err != nil {
		return err
	}
	inner, _ := m.EncodeInner()
	if err := Verify(manufacturer, inner, m.InnerSignature); err != nil {
		if errors.Is(err, ErrBadSignature) {
			return ErrInnerSignature
		}
		return err
	}
	outer, _ := m.EncodeOuter()
	if err := Verify(updateServer, outer, m.OuterSignature); err != nil {
		if errors.Is(err, ErrBadSignature) {
			return ErrOuterSignature
		}
		return err
	}
	return nil
}

// ErrKey is wrapped by the errors of a key that is missing or not P-256.
// Keys come from DecodePrivateKey, DecodePublicKey or ecdsa.GenerateKey;
// a struct filled in by hand without its point or scalar makes
// crypto/ecdsa panic (its fields X, Y and D are deprecated since Go 1.26,
// so this package does not look at them).
var ErrKey = errors.New("mup/v1: want a P-256 key")

func checkPrivate(key *ecdsa.PrivateKey) error {
	if key == nil {
		return fmt.Errorf("%w: no private key", ErrKey)
	}
	return checkPublic(&key.PublicKey)
}

func checkPublic(pub *ecdsa.PublicKey) error {
	if pub == nil || pub.Curve == nil {
		return fmt.Errorf("%w: no public key", ErrKey)
	}
	if pub.Curve != elliptic.P256() {
		return fmt.Errorf("%w: key on %s", ErrKey, pub.Curve.Params().Name)
	}
	return nil
}
