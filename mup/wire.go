package mup

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/myno-bridge/myno/mup/e2e"
)

// MinNonceBytes is the shortest nonce a token may carry.
const MinNonceBytes = 8

// Token is a device token: who, which single-use nonce, which version now
// (the outputs of getDeviceToken).
type Token struct {
	UUID    string
	Nonce   []byte
	Version uint32
}

// NewNonce returns a fresh random nonce.
func NewNonce() []byte {
	n := make([]byte, 16)
	_, _ = rand.Read(n)
	return n
}

// Outputs renders the token as the getDeviceToken outputs: uuid, nonce in
// hex, version.
func (t Token) Outputs() []string {
	return []string{t.UUID, hex.EncodeToString(t.Nonce), strconv.FormatUint(uint64(t.Version), 10)}
}

// DecodeToken reads the getDeviceToken outputs.
func DecodeToken(outputs []string) (Token, error) {
	if len(outputs) != 3 {
		return Token{}, fmt.Errorf("%w: token has %d fields, want uuid, nonce, version", errMalformed, len(outputs))
	}
	nonce, err := hex.DecodeString(outputs[1])
	if err != nil || len(nonce) < MinNonceBytes {
		return Token{}, fmt.Errorf("%w: nonce must be at least %d bytes of hex", errMalformed, MinNonceBytes)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(outputs[2]), 10, 32)
	if err != nil {
		return Token{}, fmt.Errorf("%w: version %q", errMalformed, outputs[2])
	}
	return Token{UUID: outputs[0], Nonce: nonce, Version: uint32(v)}, nil
}

// Slice is one piece of the image on the firmware topic: a 4-byte
// big-endian index, then the bytes (PROTOCOL.md).
type Slice struct {
	Index uint32
	Data  []byte
}

// MaxSliceData bounds the bytes of one slice.
const MaxSliceData = 64 << 10

// Encode renders the slice.
func (s Slice) Encode() []byte {
	out := make([]byte, 4+len(s.Data))
	binary.BigEndian.PutUint32(out, s.Index)
	copy(out[4:], s.Data)
	return out
}

// DecodeSlice parses a slice.
func DecodeSlice(b []byte) (Slice, error) {
	if len(b) < 5 {
		return Slice{}, fmt.Errorf("%w: slice of %d bytes", errMalformed, len(b))
	}
	if len(b)-4 > MaxSliceData {
		return Slice{}, fmt.Errorf("%w: slice data over %d bytes", errMalformed, MaxSliceData)
	}
	return Slice{Index: binary.BigEndian.Uint32(b), Data: b[4:]}, nil
}

// SplitImage cuts an image into slices of size bytes.
func SplitImage(image []byte, size int) []Slice {
	var out []Slice
	for i := 0; len(image) > 0; i++ {
		n := min(size, len(image))
		out = append(out, Slice{Index: uint32(i), Data: image[:n]})
		image = image[n:]
	}
	return out
}

// Ack acknowledges every slice up to and including Index (cumulative).
type Ack struct{ Index uint32 }

// Encode renders the ack: 4 bytes, big-endian.
func (a Ack) Encode() []byte {
	out := make([]byte, 4)
	binary.BigEndian.PutUint32(out, a.Index)
	return out
}

// DecodeAck parses an ack.
func DecodeAck(b []byte) (Ack, error) {
	if len(b) != 4 {
		return Ack{}, fmt.Errorf("%w: ack of %d bytes, want 4", errMalformed, len(b))
	}
	return Ack{Index: binary.BigEndian.Uint32(b)}, nil
}

// Encrypted slices (issue 7, confidential firmware). With a firmware key —
// fresh for each update, handed to the device over the E2E channel — a
// slice's data is
//
//	nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes)
//
// with associated data "myno-fw-slice" || index (4 bytes, big-endian): the
// broker can neither read a slice nor move one to another position. The
// index stays in the clear (the device acks it), and the manifest digest
// still covers the plaintext image.
const sliceLabel = "myno-fw-slice"

// SealedSliceOverhead is what encryption adds to a slice's data.
const SealedSliceOverhead = 12 + 16

func sliceAAD(index uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(sliceLabel), index)
}

// SliceCipher seals and opens the slices of one encrypted transfer.
type SliceCipher struct{ sealer *e2e.Sealer }

// NewSliceCipher prepares the cipher of a 32-byte firmware key.
func NewSliceCipher(key []byte) (*SliceCipher, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("firmware key of %d bytes, want 32", len(key))
	}
	sealer, err := e2e.NewSealer(key)
	if err != nil {
		return nil, err
	}
	return &SliceCipher{sealer: sealer}, nil
}

// Seal encrypts a slice under a random nonce.
func (c *SliceCipher) Seal(s Slice) (Slice, error) {
	sealed, err := c.sealer.Seal(s.Data, sliceAAD(s.Index))
	if err != nil {
		return Slice{}, err
	}
	return Slice{Index: s.Index, Data: sealed}, nil
}

// ErrSliceOpen is returned for a sealed slice that does not authenticate:
// changed in flight, moved to another index, or sealed under another key.
var ErrSliceOpen = errors.New("mup: sealed slice does not authenticate")

// Open authenticates and decrypts a sealed slice.
func (c *SliceCipher) Open(s Slice) (Slice, error) {
	plain, err := c.sealer.Open(s.Data, sliceAAD(s.Index))
	if err != nil {
		return Slice{}, fmt.Errorf("%w: slice %d of %d bytes", ErrSliceOpen, s.Index, len(s.Data))
	}
	return Slice{Index: s.Index, Data: plain}, nil
}
