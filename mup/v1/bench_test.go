package v1

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"
)

// The device verifies two signatures per update; the Update Server signs
// one (the vendor the other) and sends 600-byte slices.

// benchManifest is a signed manifest of an 87,800-byte image (the MUP
// paper's) and the two public keys.
func benchManifest(b *testing.B) (m Manifest, vendor, server *ecdsa.PublicKey) {
	vk := mustGenerate(b, elliptic.P256())
	sk := mustGenerate(b, elliptic.P256())
	m, err := NewManifest(make([]byte, 87800), "APP", 0, 2, 1)
	if err != nil {
		b.Fatal(err)
	}
	m.Nonce = 123456
	if err := m.SignInner(vk); err != nil {
		b.Fatal(err)
	}
	if err := m.SignOuter(sk); err != nil {
		b.Fatal(err)
	}
	return m, &vk.PublicKey, &sk.PublicKey
}

func BenchmarkSign(b *testing.B) {
	key := mustGenerate(b, elliptic.P256())
	m, _, _ := benchManifest(b)
	outer, _ := m.EncodeOuter()
	for b.Loop() {
		if _, err := Sign(key, outer); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	m, _, server := benchManifest(b)
	outer, _ := m.EncodeOuter()
	for b.Loop() {
		if err := Verify(server, outer, m.OuterSignature); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkManifestVerify is the device's work at START-UPDATE: both
// strings, both signatures.
func BenchmarkManifestVerify(b *testing.B) {
	m, vendor, server := benchManifest(b)
	for b.Loop() {
		if err := m.Verify(vendor, server); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSliceEncode(b *testing.B) {
	s := Slice{Index: 146, Data: make([]byte, SliceSize)}
	buf := make([]byte, 0, MaxSliceLen)
	b.SetBytes(SliceSize)
	for b.Loop() {
		var err error
		if buf, err = s.Append(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSliceDecode(b *testing.B) {
	payload, _ := Slice{Index: 146, Data: make([]byte, SliceSize)}.Encode()
	b.SetBytes(SliceSize)
	for b.Loop() {
		if _, err := DecodeSlice(payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAckDecode(b *testing.B) {
	ack := []byte("146,OK")
	for b.Loop() {
		if _, err := DecodeAck(ack); err != nil {
			b.Fatal(err)
		}
	}
}
