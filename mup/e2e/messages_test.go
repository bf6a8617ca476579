package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// msgFirmwareKey is a valid KindFirmwareKey update.
func msgFirmwareKey() *Update {
	return &Update{Kind: KindFirmwareKey, ID: NewRequestID(), Key: bytes.Repeat([]byte{0x5a}, KeySize), AppID: "app-1", Version: 7}
}

// msgRenewal is a valid KindRenewal update for a fresh device-1
// certificate, signed by a throwaway CA.
func msgRenewal(tb testing.TB) *Update {
	tb.Helper()
	ca, caKey, err := NewCA("ca", time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	c, k, err := Issue(ca, caKey, "device-1", RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := NewRenewal(c, k)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func msgEncode(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// msgUpdateEqual compares updates, treating a nil and an empty byte slice
// as the same (CBOR cannot tell an omitted field from an empty one).
func msgUpdateEqual(a, b *Update) bool {
	return a.Kind == b.Kind && bytes.Equal(a.ID, b.ID) && bytes.Equal(a.Cert, b.Cert) && bytes.Equal(a.Key, b.Key) &&
		a.AppID == b.AppID && a.Version == b.Version
}

func msgStatusEqual(a, b *Status) bool {
	return bytes.Equal(a.ID, b.ID) && a.Code == b.Code && a.Detail == b.Detail && bytes.Equal(a.Installed, b.Installed)
}

func TestUpdateRoundTrip(t *testing.T) {
	for name, u := range map[string]*Update{
		"renewal":              msgRenewal(t),
		"firmware key":         msgFirmwareKey(),
		"firmware key, no app": {Kind: KindFirmwareKey, ID: []byte{1}, Key: make([]byte, KeySize)},
	} {
		b, err := u.Encode()
		if err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		got, err := DecodeUpdate(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if !reflect.DeepEqual(got, u) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, u)
		}
		// Deterministic: encoding again gives the same bytes.
		if b2, _ := got.Encode(); !bytes.Equal(b, b2) {
			t.Errorf("%s: re-encoding differs:\n%x\n%x", name, b, b2)
		}
	}
}

// The wire format is fixed: integer keys, deterministic CBOR, empty
// optional fields left out.
func TestMessageWireFormat(t *testing.T) {
	s, _ := (&Status{Code: StatusOK}).Encode()
	if want := []byte{0xa1, 0x02, 0x62, 'O', 'K'}; !bytes.Equal(s, want) {
		t.Errorf("status: %x, want %x", s, want)
	}
	u, _ := (&Update{Kind: KindFirmwareKey, ID: []byte{0xaa}, Key: make([]byte, KeySize)}).Encode()
	want := append([]byte{0xa3, 0x01, 0x02, 0x02, 0x41, 0xaa, 0x04, 0x58, 0x20}, make([]byte, KeySize)...)
	if !bytes.Equal(u, want) {
		t.Errorf("update: %x, want %x", u, want)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	for name, s := range map[string]*Status{
		"full":    {ID: NewRequestID(), Code: StatusOK, Detail: "installed", Installed: bytes.Repeat([]byte{0xee}, 32)},
		"minimal": {Code: StatusMalformed},
		"failed":  {ID: []byte{1, 2}, Code: StatusKeyMismatch, Detail: "renewed key does not match the certificate"},
	} {
		b, err := s.Encode()
		if err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		got, err := DecodeStatus(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%s: decoded %+v, want %+v", name, got, s)
		}
	}
}

func TestDecodeUpdateRefusals(t *testing.T) {
	key := bytes.Repeat([]byte{1}, KeySize)
	oversized := msgFirmwareKey()
	oversized.AppID = strings.Repeat("a", MaxMessage)
	for name, b := range map[string][]byte{
		"empty":                 nil,
		"not CBOR":              {0xff, 0x00},
		"truncated":             msgEncode(t, msgFirmwareKey())[:10],
		"text":                  []byte("kind=2"),
		"array":                 msgEncode(t, []any{2, []byte{1}, key}),
		"wrong field type":      msgEncode(t, map[int]any{1: "two", 2: []byte{1}, 4: key}),
		"kind out of range":     msgEncode(t, map[int]any{1: 258, 2: []byte{1}, 4: key}),
		"oversized":             msgEncode(t, oversized),
		"oversized garbage":     make([]byte, MaxMessage+1),
		"no kind":               msgEncode(t, map[int]any{2: []byte{1}, 4: key}),
		"kind 0":                msgEncode(t, &Update{Kind: 0, ID: []byte{1}, Key: key}),
		"kind 3":                msgEncode(t, &Update{Kind: 3, ID: []byte{1}, Cert: []byte{1}, Key: key}),
		"kind 255":              msgEncode(t, &Update{Kind: 255, ID: []byte{1}, Key: key}),
		"renewal without cert":  msgEncode(t, &Update{Kind: KindRenewal, ID: []byte{1}, Key: []byte{1, 2, 3}}),
		"renewal without key":   msgEncode(t, &Update{Kind: KindRenewal, ID: []byte{1}, Cert: []byte{1, 2, 3}}),
		"renewal empty":         msgEncode(t, &Update{Kind: KindRenewal, ID: []byte{1}}),
		"renewal, empty cert":   msgEncode(t, map[int]any{1: 1, 2: []byte{1}, 3: []byte{}, 4: []byte{1}}),
		"firmware key, no key":  msgEncode(t, &Update{Kind: KindFirmwareKey, ID: []byte{1}}),
		"firmware key, AES-128": msgEncode(t, &Update{Kind: KindFirmwareKey, ID: []byte{1}, Key: key[:16]}),
		"firmware key, 31":      msgEncode(t, &Update{Kind: KindFirmwareKey, ID: []byte{1}, Key: key[:KeySize-1]}),
		"firmware key, 33":      msgEncode(t, &Update{Kind: KindFirmwareKey, ID: []byte{1}, Key: append(bytes.Clone(key), 0)}),
	} {
		u, err := DecodeUpdate(b)
		if !errors.Is(err, ErrMalformed) || u != nil {
			t.Errorf("%s: %+v, %v; want ErrMalformed", name, u, err)
		}
	}
}

// The size bound is on the encoded message: MaxMessage bytes pass, one
// more does not.
func TestDecodeUpdateSizeLimit(t *testing.T) {
	u := msgFirmwareKey()
	var b []byte
	for n := MaxMessage - 64; ; n++ {
		u.AppID = strings.Repeat("a", n)
		b = msgEncode(t, u)
		if len(b) >= MaxMessage {
			break
		}
	}
	if len(b) != MaxMessage {
		t.Fatalf("could not build a message of exactly %d bytes (%d)", MaxMessage, len(b))
	}
	if got, err := DecodeUpdate(b); err != nil || !reflect.DeepEqual(got, u) {
		t.Errorf("%d bytes: %v", len(b), err)
	}
	u.AppID += "a"
	b = msgEncode(t, u)
	if _, err := DecodeUpdate(b); !errors.Is(err, ErrMalformed) {
		t.Errorf("%d bytes: %v, want ErrMalformed", len(b), err)
	}
}

func TestDecodeStatusRefusals(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":            nil,
		"not CBOR":         {0xff, 0x00},
		"no code":          msgEncode(t, &Status{ID: []byte{1}, Detail: "fine"}),
		"empty map":        {0xa0},
		"empty code":       msgEncode(t, map[int]any{1: []byte{1}, 2: ""}),
		"wrong field type": msgEncode(t, map[int]any{2: 200}),
		"oversized":        msgEncode(t, &Status{Code: StatusOK, Detail: strings.Repeat("x", MaxMessage)}),
	} {
		s, err := DecodeStatus(b)
		if !errors.Is(err, ErrMalformed) || s != nil {
			t.Errorf("%s: %+v, %v; want ErrMalformed", name, s, err)
		}
	}
}

func TestNewRenewal(t *testing.T) {
	ca, caKey, err := NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, k, err := Issue(ca, caKey, "device-1", RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u1, err := NewRenewal(c, k)
	if err != nil {
		t.Fatal(err)
	}
	u2, _ := NewRenewal(c, k)
	if u1.Kind != KindRenewal || !bytes.Equal(u1.Cert, c.Raw) || len(u1.ID) != 16 {
		t.Fatalf("renewal %+v", u1)
	}
	if bytes.Equal(u1.ID, u2.ID) {
		t.Error("two renewals have the same request id")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(u1.Key)
	if err != nil {
		t.Fatal(err)
	}
	if pk, ok := parsed.(*ecdsa.PrivateKey); !ok || !pk.Equal(k) {
		t.Error("the renewal does not carry the certificate's key")
	}
}

func TestNewRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		id := NewRequestID()
		if len(id) != 16 {
			t.Fatalf("id of %d bytes", len(id))
		}
		if seen[string(id)] {
			t.Fatalf("id %x repeated", id)
		}
		seen[string(id)] = true
	}
}

func TestCheckRenewal(t *testing.T) {
	ca, caKey, err := NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, err := NewCA("other", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	issue := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, role Role, notBefore time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
		t.Helper()
		c, k, err := Issue(ca, caKey, name, role, notBefore, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return c, k
	}
	renewal := func(c *x509.Certificate, k *ecdsa.PrivateKey) *Update {
		t.Helper()
		u, err := NewRenewal(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	pkcs8 := func(k any) []byte {
		t.Helper()
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}

	goodCert, goodKey := issue(ca, caKey, "device-1", RoleDevice, now.Add(-time.Minute))
	t.Run("good", func(t *testing.T) {
		// Through the wire, as the device receives it.
		b, _ := renewal(goodCert, goodKey).Encode()
		u, err := DecodeUpdate(b)
		if err != nil {
			t.Fatal(err)
		}
		cert, key, code, err := CheckRenewal(u, ca, "device-1", now)
		if err != nil || code != "" {
			t.Fatalf("%q %v", code, err)
		}
		if cert == nil || !cert.Equal(goodCert) {
			t.Error("returned another certificate")
		}
		if key == nil || !key.Equal(goodKey) {
			t.Error("returned another key")
		}
	})

	withKey := func(c *x509.Certificate, key []byte) *Update {
		return &Update{Kind: KindRenewal, ID: NewRequestID(), Cert: c.Raw, Key: key}
	}
	otherP256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	wrongCA := func() *Update { return renewal(issue(other, otherKey, "device-1", RoleDevice, now.Add(-time.Minute))) }
	expired := func() *Update { return renewal(issue(ca, caKey, "device-1", RoleDevice, now.Add(-2*time.Hour))) }
	future := func() *Update { return renewal(issue(ca, caKey, "device-1", RoleDevice, now.Add(time.Hour))) }
	asManager := func() *Update { return renewal(issue(ca, caKey, "device-1", RoleManager, now.Add(-time.Minute))) }
	asServer := func() *Update { return renewal(issue(ca, caKey, "device-1", RoleUpdateServer, now.Add(-time.Minute))) }
	otherDevice := func() *Update { return renewal(issue(ca, caKey, "device-2", RoleDevice, now.Add(-time.Minute))) }
	for _, tc := range []struct {
		name string
		u    *Update
		want string
	}{
		{"cert from another CA", wrongCA(), StatusBadCertificate},
		{"expired cert", expired(), StatusBadCertificate},
		{"cert not yet valid", future(), StatusBadCertificate},
		{"cert with role manager", asManager(), StatusBadCertificate},
		{"cert with role update-server", asServer(), StatusBadCertificate},
		{"cert naming another device", otherDevice(), StatusBadCertificate},
		{"the CA certificate itself", renewal(ca, caKey), StatusBadCertificate},
		{"garbage cert bytes", &Update{Kind: KindRenewal, ID: []byte{1}, Cert: []byte("not a certificate"), Key: pkcs8(goodKey)}, StatusBadCertificate},
		{"truncated cert", withKey(&x509.Certificate{Raw: goodCert.Raw[:len(goodCert.Raw)-1]}, pkcs8(goodKey)), StatusBadCertificate},
		{"key that does not match", withKey(goodCert, pkcs8(otherP256)), StatusKeyMismatch},
		{"P-384 key", withKey(goodCert, pkcs8(p384)), StatusKeyMismatch},
		{"Ed25519 key", withKey(goodCert, pkcs8(edKey)), StatusKeyMismatch},
		{"garbage key bytes", withKey(goodCert, []byte("not a key")), StatusKeyMismatch},
		{"SEC 1 key instead of PKCS#8", withKey(goodCert, func() []byte { b, _ := x509.MarshalECPrivateKey(goodKey); return b }()), StatusKeyMismatch},
	} {
		cert, key, code, err := CheckRenewal(tc.u, ca, "device-1", now)
		if code != tc.want || err == nil || cert != nil || key != nil {
			t.Errorf("%s: code %q, err %v, cert %v, key %v; want %q and an error", tc.name, code, err, cert != nil, key != nil, tc.want)
		}
	}
	// The same good renewal is refused by another device and after expiry.
	if _, _, code, err := CheckRenewal(renewal(goodCert, goodKey), ca, "device-2", now); code != StatusBadCertificate || err == nil {
		t.Errorf("good renewal checked by device-2: %q %v", code, err)
	}
	if _, _, code, err := CheckRenewal(renewal(goodCert, goodKey), ca, "device-1", now.Add(2*time.Hour)); code != StatusBadCertificate || err == nil {
		t.Errorf("good renewal checked after expiry: %q %v", code, err)
	}
	if _, _, code, err := CheckRenewal(renewal(goodCert, goodKey), other, "device-1", now); code != StatusBadCertificate || err == nil {
		t.Errorf("good renewal checked against another CA: %q %v", code, err)
	}
}

func FuzzDecodeUpdate(f *testing.F) {
	for _, u := range []*Update{msgRenewal(f), msgFirmwareKey(), {Kind: KindFirmwareKey, Key: make([]byte, KeySize)}} {
		b, err := u.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := DecodeUpdate(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || u != nil {
				t.Fatalf("refusal %+v, %v; want ErrMalformed", u, err)
			}
			return
		}
		enc, err := u.Encode()
		if err != nil {
			t.Fatalf("decoded update does not encode: %v", err)
		}
		u2, err := DecodeUpdate(enc)
		if err != nil {
			t.Fatalf("re-encoded update refused: %v\ninput %x\nre-encoded %x", err, b, enc)
		}
		if !msgUpdateEqual(u, u2) {
			t.Fatalf("round trip changed the update:\n%+v\n%+v", u, u2)
		}
		if enc2, _ := u2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	for _, s := range []*Status{
		{ID: NewRequestID(), Code: StatusOK, Installed: bytes.Repeat([]byte{1}, 32)},
		{Code: StatusBadCertificate, Detail: "renewed certificate names \"device-2\""},
		{ID: []byte{1}, Code: StatusUnauthenticated},
	} {
		b, err := s.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeStatus(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || s != nil {
				t.Fatalf("refusal %+v, %v; want ErrMalformed", s, err)
			}
			return
		}
		if s.Code == "" {
			t.Fatal("status without code accepted")
		}
		enc, err := s.Encode()
		if err != nil {
			t.Fatalf("decoded status does not encode: %v", err)
		}
		s2, err := DecodeStatus(enc)
		if err != nil {
			t.Fatalf("re-encoded status refused: %v\ninput %x\nre-encoded %x", err, b, enc)
		}
		if !msgStatusEqual(s, s2) {
			t.Fatalf("round trip changed the status:\n%+v\n%+v", s, s2)
		}
		if enc2, _ := s2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}
