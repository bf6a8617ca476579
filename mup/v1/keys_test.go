package v1

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
)

func mustGenerate(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyRoundTrip(t *testing.T) {
	for range 50 {
		k := mustGenerate(t, elliptic.P256())
		priv, err := EncodePrivateKey(k)
		if err != nil || len(priv) != 2*PrivateKeySize {
			t.Fatalf("%d digits, %v", len(priv), err)
		}
		pub, err := EncodePublicKey(&k.PublicKey)
		if err != nil || len(pub) != 2*PublicKeySize {
			t.Fatalf("%d digits, %v", len(pub), err)
		}
		k2, err := DecodePrivateKey(priv)
		if err != nil || !k2.Equal(k) {
			t.Fatalf("private key does not round-trip: %v", err)
		}
		p2, err := DecodePublicKey(pub)
		if err != nil || !p2.Equal(&k.PublicKey) {
			t.Fatalf("public key does not round-trip: %v", err)
		}
		// Upper case is accepted, and written back in lower case.
		if p3, err := DecodePublicKey([]byte(strings.ToUpper(string(pub)))); err != nil || !p3.Equal(p2) {
			t.Fatalf("upper-case public key: %v", err)
		}
		if k3, err := DecodePrivateKey([]byte(strings.ToUpper(string(priv)))); err != nil || !k3.Equal(k) {
			t.Fatalf("upper-case private key: %v", err)
		}
	}
}

func TestDecodeKeysRefuse(t *testing.T) {
	k := mustGenerate(t, elliptic.P256())
	pub, _ := EncodePublicKey(&k.PublicKey)
	priv, _ := EncodePrivateKey(k)
	n := elliptic.P256().Params().N
	order := hex.EncodeToString(n.FillBytes(make([]byte, 32)))
	orderPlus := hex.EncodeToString(new(big.Int).Add(n, big.NewInt(1)).FillBytes(make([]byte, 32)))
	// A point off the curve: Y with its last bit flipped, Y±1 (for this
	// X only Y and p-Y are on the curve, and p-Y = Y±1 only if 2Y = p∓1).
	offCurve := []byte(string(pub))
	offCurve[127] = "1032547698badcfe"[strings.IndexByte("0123456789abcdef", offCurve[127])]
	for _, tc := range []struct{ in, why string }{
		{"", "want 64 hex digits"},
		{string(priv[:62]), "want 64 hex digits"},
		{string(priv) + "00", "want 64 hex digits"},
		{string(priv) + "\n", "want 64 hex digits"},
		{" " + string(priv[1:]), "want 64 hex digits"},
		{"0x" + string(priv[2:]), "want 64 hex digits"},
		{strings.Repeat("0", 64), "not a P-256 scalar"},
		{order, "not a P-256 scalar"},
		{orderPlus, "not a P-256 scalar"},
		{strings.Repeat("f", 64), "not a P-256 scalar"},
		{string(pub), "want 64 hex digits"},
	} {
		_, err := DecodePrivateKey([]byte(tc.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("private %.20q: %v, want %q", tc.in, err, tc.why)
		}
		if err != nil && len(tc.in) >= 64 && strings.Contains(err.Error(), tc.in[:16]) {
			t.Errorf("the error shows the private key: %v", err)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"", "want 128 hex digits"},
		{"04" + string(pub), "want 128 hex digits"},
		{string(pub[:126]), "want 128 hex digits"},
		{string(pub) + "\n", "want 128 hex digits"},
		{string(pub[:64]), "want 128 hex digits"},
		{string(pub[:127]) + "x", "want 128 hex digits"},
		{string(offCurve), "not a point of P-256"},
		{strings.Repeat("0", 128), "not a point of P-256"},
		{strings.Repeat("f", 128), "not a point of P-256"},
	} {
		_, err := DecodePublicKey([]byte(tc.in))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("public %.20q: %v, want %q", tc.in, err, tc.why)
		}
	}
}

func TestEncodeKeysRefuse(t *testing.T) {
	k384 := mustGenerate(t, elliptic.P384())
	if _, err := EncodePrivateKey(k384); !errors.Is(err, ErrKey) {
		t.Errorf("P-384 private key: %v", err)
	}
	if _, err := EncodePublicKey(&k384.PublicKey); !errors.Is(err, ErrKey) {
		t.Errorf("P-384 public key: %v", err)
	}
	if _, err := EncodePrivateKey(nil); !errors.Is(err, ErrKey) {
		t.Errorf("nil private key: %v", err)
	}
	if _, err := EncodePublicKey(nil); !errors.Is(err, ErrKey) {
		t.Errorf("nil public key: %v", err)
	}
}

func TestSignVerify(t *testing.T) {
	k := mustGenerate(t, elliptic.P256())
	other := mustGenerate(t, elliptic.P256())
	msg := []byte("APP;0;" + hash64 + ";1999;2;1")
	s1, err := Sign(k, msg)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := Sign(k, msg)
	if len(s1) != SignatureHexLen || strings.ToLower(s1) != s1 {
		t.Fatalf("signature %q: want 128 lower-case hex digits", s1)
	}
	if s1 == s2 {
		t.Error("two signatures of one message are equal: k is not random")
	}
	for _, s := range []string{s1, s2, strings.ToUpper(s1)} {
		if err := Verify(&k.PublicKey, msg, s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	// ECDSA signatures are malleable: (r, n-s) verifies too. Nothing in
	// MUP v1 may depend on a signature's bytes.
	raw, _ := DecodeSignature([]byte(s1))
	sv := new(big.Int).SetBytes(raw[32:])
	sv.Sub(elliptic.P256().Params().N, sv)
	sv.FillBytes(raw[32:])
	if err := Verify(&k.PublicKey, msg, hex.EncodeToString(raw[:])); err != nil {
		t.Errorf("(r, n-s): %v", err)
	}

	if err := Verify(&other.PublicKey, msg, s1); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
	if err := Verify(&k.PublicKey, append(msg, ';'), s1); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other message: %v", err)
	}
	flipped := []byte(s1)
	if flipped[10] == '0' {
		flipped[10] = '1'
	} else {
		flipped[10] = '0'
	}
	if err := Verify(&k.PublicKey, msg, string(flipped)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("changed digit: %v", err)
	}
	n := hex.EncodeToString(elliptic.P256().Params().N.FillBytes(make([]byte, 32)))
	for _, bad := range []string{strings.Repeat("0", 128), strings.Repeat("0", 64) + s1[64:], s1[:64] + strings.Repeat("0", 64), n + s1[64:], strings.Repeat("f", 128)} {
		if err := Verify(&k.PublicKey, msg, bad); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, bad := range []string{"", s1[:126], s1 + "00", s1[:127] + "z", " " + s1[1:]} {
		if err := Verify(&k.PublicKey, msg, bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	k384 := mustGenerate(t, elliptic.P384())
	for _, pub := range []*ecdsa.PublicKey{nil, {}, &k384.PublicKey} {
		if err := Verify(pub, msg, s1); !errors.Is(err, ErrKey) {
			t.Errorf("key %v: %v", pub, err)
		}
	}
	for _, key := range []*ecdsa.PrivateKey{nil, {}, k384} {
		if _, err := Sign(key, msg); !errors.Is(err, ErrKey) {
			t.Errorf("Sign with %v: %v", key, err)
		}
	}
}

func TestManifestSignVerify(t *testing.T) {
	vendor := mustGenerate(t, elliptic.P256())
	server := mustGenerate(t, elliptic.P256())
	m, err := NewManifest([]byte("hello firmware"), "myno-app", 0x4000, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SignOuter(server); !errors.Is(err, ErrMalformed) {
		t.Errorf("outer signature before the inner one: %v", err)
	}
	if err := m.SignInner(vendor); err != nil {
		t.Fatal(err)
	}
	m.Nonce = 123456
	if err := m.SignOuter(server); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(&vendor.PublicKey, &server.PublicKey); err != nil {
		t.Fatal(err)
	}
	// Anything the outer string covers, changed, fails the outer
	// signature; anything the inner string covers fails the inner one.
	for name, tc := range map[string]struct {
		change func(*Manifest)
		want   error
	}{
		"version":              {func(m *Manifest) { m.Version++ }, ErrInnerSignature},
		"hash":                 {func(m *Manifest) { m.Hash[0] ^= 1 }, ErrInnerSignature},
		"nonce":                {func(m *Manifest) { m.Nonce++ }, ErrOuterSignature},
		"inner signature case": {func(m *Manifest) { m.InnerSignature = strings.ToUpper(m.InnerSignature) }, ErrOuterSignature},
		"outer signature":      {func(m *Manifest) { m.OuterSignature = m.InnerSignature }, ErrOuterSignature},
		"malformed":            {func(m *Manifest) { m.OuterSignature = "" }, ErrMalformed},
	} {
		c := m
		tc.change(&c)
		if err := c.Verify(&vendor.PublicKey, &server.PublicKey); !errors.Is(err, tc.want) {
			t.Errorf("%s changed: %v, want %v", name, err, tc.want)
		}
	}
	if err := m.Verify(nil, &server.PublicKey); !errors.Is(err, ErrKey) {
		t.Errorf("no vendor key: %v", err)
	}
}
