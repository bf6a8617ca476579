package mup

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
	"github.com/veraison/go-cose"
)

// State codes a MYNO device answers with (MUP paper, Table 2).
const (
	StateOK               = "10_OK"
	StateNoop             = "11_NOOP"
	StateError            = "12_ERROR"
	StateManifestInvalid  = "20_MANIFEST-NOT-VALID"
	StateWrongAppID       = "21_WRONG-APP-ID"
	StateInvalidNonce     = "22_INVALID-NONCE"
	StateOuterSignInvalid = "23_OUTER-SIGN-INVALID"
	StateInnerSignInvalid = "24_INNER-SIGN-INVALID"
	StateInvalidVersion   = "25_INVALID-VERSIONNR"
	StateSlotInUse        = "26_SAVESLOT-IN-USE"
	StateImageTooBig      = "27_IMAGE-TOO-BIG"
	StateImageInvalid     = "28_IMAGE-INVALID"
)

// VendorManifest describes an image; the vendor signs it (the inner
// signature). CBOR map keys are small integers (PROTOCOL.md).
type VendorManifest struct {
	AppID      string `cbor:"1,keyasint"`
	LinkOffset uint32 `cbor:"2,keyasint"`
	Digest     []byte `cbor:"3,keyasint"` // SHA-256 of the image
	Size       uint32 `cbor:"4,keyasint"`
	Version    uint32 `cbor:"5,keyasint"`
	OldVersion uint32 `cbor:"6,keyasint"` // the version it updates; 0: any
}

// ExtendedManifest binds a signed vendor manifest to one device and one
// token; the Update Server signs it (the outer signature).
type ExtendedManifest struct {
	Vendor []byte `cbor:"1,keyasint"` // the vendor's COSE_Sign1, as signed
	UUID   string `cbor:"2,keyasint"`
	Nonce  []byte `cbor:"3,keyasint"`
}

// cborEnc is the deterministic encoding (RFC 8949 §4.2.1): the same
// manifest always has the same bytes.
var cborEnc, _ = cbor.CoreDetEncOptions().EncMode()

// cborDec refuses what a manifest never holds: duplicate keys, unknown
// fields, indefinite lengths, deep nesting.
var cborDec, _ = cbor.DecOptions{
	DupMapKey:         cbor.DupMapKeyEnforcedAPF,
	ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	IndefLength:       cbor.IndefLengthForbidden,
	MaxNestedLevels:   4,
	MaxArrayElements:  16,
	MaxMapPairs:       16,
}.DecMode()

// Encode returns the manifest's canonical CBOR bytes.
func (m *VendorManifest) Encode() ([]byte, error) { return cborEnc.Marshal(m) }

// Encode returns the manifest's canonical CBOR bytes.
func (m *ExtendedManifest) Encode() ([]byte, error) { return cborEnc.Marshal(m) }

// NewVendorManifest describes an image.
func NewVendorManifest(image []byte, appID string, version, oldVersion, linkOffset uint32) *VendorManifest {
	sum := sha256.Sum256(image)
	return &VendorManifest{AppID: appID, LinkOffset: linkOffset, Digest: sum[:], Size: uint32(len(image)), Version: version, OldVersion: oldVersion}
}

// sign wraps payload in a tagged COSE_Sign1 with ES256 (RFC 9052 §4.2).
func sign(r io.Reader, key *ecdsa.PrivateKey, payload []byte) ([]byte, error) {
	signer, err := cose.NewSigner(cose.AlgorithmES256, key)
	if err != nil {
		return nil, err
	}
	headers := cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmES256}}
	return cose.Sign1(r, signer, headers, payload, nil)
}

// verify checks a COSE_Sign1 with ES256 and returns its payload. Any other
// algorithm is refused, whatever the message claims.
func verify(msg []byte, pub crypto.PublicKey) ([]byte, error) {
	if k, ok := pub.(*ecdsa.PublicKey); pub == nil || (ok && k == nil) {
		// No trusted key yet (go-cose would dereference it): refuse.
		return nil, fmt.Errorf("%w: no trusted key", errBadSignature)
	}
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(msg); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	alg, err := m.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmES256 {
		return nil, fmt.Errorf("%w: algorithm %v, want ES256", errBadSignature, alg)
	}
	v, err := cose.NewVerifier(cose.AlgorithmES256, pub)
	if err != nil {
		return nil, err
	}
	if err := m.Verify(nil, v); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadSignature, err)
	}
	return m.Payload, nil
}

var (
	errMalformed    = errors.New("malformed")
	errBadSignature = errors.New("bad signature")
)

// SignVendorManifest returns the vendor's COSE_Sign1 over the manifest.
func SignVendorManifest(m *VendorManifest, vendorKey *ecdsa.PrivateKey) ([]byte, error) {
	payload, err := m.Encode()
	if err != nil {
		return nil, err
	}
	return sign(rand.Reader, vendorKey, payload)
}

// SignExtendedManifest binds a signed vendor manifest to a device token and
// returns the Update Server's COSE_Sign1 over it.
func SignExtendedManifest(vendorSigned []byte, uuid string, nonce []byte, serverKey *ecdsa.PrivateKey) ([]byte, error) {
	payload, err := (&ExtendedManifest{Vendor: vendorSigned, UUID: uuid, Nonce: nonce}).Encode()
	if err != nil {
		return nil, err
	}
	return sign(rand.Reader, serverKey, payload)
}

// DecodeSignedVendorManifest reads the vendor manifest inside a vendor's
// COSE_Sign1 (RFC 9052 §4.2) without checking the signature: the Update
// Server needs the app id and version it announces, and the device checks
// the signature (CheckManifest). Its payload is decoded as strictly as the
// device decodes it.
func DecodeSignedVendorManifest(signed []byte) (*VendorManifest, error) {
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(signed); err != nil {
		return nil, fmt.Errorf("%w: vendor manifest: %v", errMalformed, err)
	}
	var vm VendorManifest
	if err := cborDec.Unmarshal(m.Payload, &vm); err != nil {
		return nil, fmt.Errorf("%w: vendor manifest payload: %v", errMalformed, err)
	}
	return &vm, nil
}

// DeviceState is what a device knows when it checks a manifest.
type DeviceState struct {
	UUID      string
	Nonce     []byte // the nonce of the token it handed out; single use
	AppID     string
	Version   uint32
	SlotSize  uint32 // the largest image it can store
	VendorKey crypto.PublicKey
	ServerKey crypto.PublicKey // from the Update Server certificate received at bootstrap
	SlotInUse bool
}

// CheckManifest is the device's check of an extended manifest, cheapest
// first as in the MUP paper: outer signature, uuid and nonce, inner
// signature, app id, version, size. It returns the MYNO state code and, on
// success, the vendor manifest.
func CheckManifest(ext []byte, st *DeviceState) (string, *VendorManifest) {
	payload, err := verify(ext, st.ServerKey)
	if err != nil {
		if errors.Is(err, errMalformed) {
			return StateManifestInvalid, nil
		}
		return StateOuterSignInvalid, nil
	}
	var em ExtendedManifest
	if err := cborDec.Unmarshal(payload, &em); err != nil {
		return StateManifestInvalid, nil
	}
	if em.UUID != st.UUID {
		return StateManifestInvalid, nil
	}
	if len(st.Nonce) == 0 || !bytes.Equal(em.Nonce, st.Nonce) {
		return StateInvalidNonce, nil // a replayed or foreign token
	}
	inner, err := verify(em.Vendor, st.VendorKey)
	if err != nil {
		if errors.Is(err, errMalformed) {
			return StateManifestInvalid, nil
		}
		return StateInnerSignInvalid, nil
	}
	var vm VendorManifest
	if err := cborDec.Unmarshal(inner, &vm); err != nil || len(vm.Digest) != sha256.Size {
		return StateManifestInvalid, nil
	}
	if vm.AppID != st.AppID {
		return StateWrongAppID, nil
	}
	if vm.Version <= st.Version || (vm.OldVersion != 0 && vm.OldVersion != st.Version) {
		return StateInvalidVersion, nil
	}
	if st.SlotInUse {
		return StateSlotInUse, nil
	}
	if vm.Size > st.SlotSize {
		return StateImageTooBig, nil
	}
	return StateOK, &vm
}
