package v1

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/hex"
	"fmt"
)

// Keys in MYNO's form (§4): micro-ecc with big-endian numbers, so a
// private key is the 32-byte scalar and a public key the 64 bytes X‖Y of
// its point (no 0x04 prefix). MYNO compiles them into createSignature.c
// and the firmware's Keys.h as C arrays; here they travel as hex, like the
// key files of the test vectors (key-*.priv.hex, key-*.pub-xy.hex).
const (
	PrivateKeySize = 32
	PublicKeySize  = 64
)

// DecodePrivateKey parses a private key: exactly 64 hex digits of either
// case, no space or newline (trim a key file first), a scalar from 1 to
// the order of P-256 minus 1. Not canonical in case: EncodePrivateKey
// writes lower case.
func DecodePrivateKey(b []byte) (*ecdsa.PrivateKey, error) {
	if len(b) != 2*PrivateKeySize || !isHex(b, false) {
		return nil, malformed("private key %s: want %d hex digits (%d bytes)", redact(b), 2*PrivateKeySize, PrivateKeySize)
	}
	raw := make([]byte, PrivateKeySize)
	_, _ = hex.Decode(raw, b)
	key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		return nil, malformed("private key: not a P-256 scalar (zero, or not below the group order): %v", err)
	}
	return key, nil
}

// redact shows the length of a rejected private key, never its digits.
func redact(b []byte) string { return fmt.Sprintf("of %d bytes", len(b)) }

// EncodePrivateKey renders a P-256 private key as 64 lower-case hex
// digits.
func EncodePrivateKey(key *ecdsa.PrivateKey) ([]byte, error) {
	if err := checkPrivate(key); err != nil {
		return nil, err
	}
	raw, err := key.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return hex.AppendEncode(nil, raw), nil
}

// DecodePublicKey parses a public key: exactly 128 hex digits of either
// case, X‖Y, a point on P-256 (crypto/ecdsa checks it, and refuses the
// point at infinity). Not canonical in case: EncodePublicKey writes lower
// case.
func DecodePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) != 2*PublicKeySize || !isHex(b, false) {
		return nil, malformed("public key %s: want %d hex digits, X‖Y (%d bytes, no 04 prefix)", quote(b), 2*PublicKeySize, PublicKeySize)
	}
	raw := make([]byte, 1+PublicKeySize)
	raw[0] = 4 // SEC 1 §2.3.3 uncompressed
	_, _ = hex.Decode(raw[1:], b)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
	if err != nil {
		return nil, malformed("public key: not a point of P-256: %v", err)
	}
	return pub, nil
}

// EncodePublicKey renders a P-256 public key as 128 lower-case hex
// digits, X‖Y.
func EncodePublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	raw, err := pub.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKey, err)
	}
	return hex.AppendEncode(nil, raw[1:]), nil
}
