package v1

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

// A vendor file round-trips, keeps a signature that verifies, and refuses
// what is not exactly two lines of the right shape.
func TestVendorFile(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManifest([]byte("firmware"), "APP", 0, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SignInner(key); err != nil {
		t.Fatal(err)
	}
	file, err := m.EncodeVendorFile()
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeVendorFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if back != m {
		t.Fatalf("round trip: %+v, want %+v", back, m)
	}
	inner, _ := back.EncodeInner()
	if err := Verify(&key.PublicKey, inner, back.InnerSignature); err != nil {
		t.Fatalf("the kept signature: %v", err)
	}
	for name, bad := range map[string][]byte{
		"empty":             nil,
		"no final newline":  bytes.TrimSuffix(file, []byte("\n")),
		"a third line":      append(bytes.Clone(file), "x\n"...),
		"short signature":   bytes.Replace(file, []byte(m.InnerSignature), []byte("abcd"), 1),
		"five inner values": bytes.Replace(file, []byte("APP;"), nil, 1),
		"oversized":         bytes.Repeat([]byte("a"), maxVendorFile+1),
	} {
		if _, err := DecodeVendorFile(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzDecodeVendorFile(f *testing.F) {
	f.Add([]byte("APP;0;" + string(bytes.Repeat([]byte("a"), 64)) + ";8;2;1\n" + string(bytes.Repeat([]byte("b"), 128)) + "\n"))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeVendorFile(b)
		if err != nil {
			return
		}
		again, err := m.EncodeVendorFile()
		if err != nil {
			t.Fatalf("accepted %q does not encode: %v", b, err)
		}
		if _, err := DecodeVendorFile(again); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", again, err)
		}
	})
}
