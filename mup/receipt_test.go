package mup

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veraison/go-cose"

	"github.com/myno-bridge/myno/mup/e2e"
)

// receiptFixture is a CA, a device certificate for "dev-1" and the
// receipt this update expects.
type receiptFixture struct {
	ca, cert *x509.Certificate
	caKey    *ecdsa.PrivateKey
	key      *ecdsa.PrivateKey
	want     Receipt
}

func newReceiptFixture(t *testing.T) receiptFixture {
	t.Helper()
	ca, caKey, err := e2e.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := e2e.Issue(ca, caKey, "dev-1", e2e.RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello firmware"))
	return receiptFixture{ca: ca, caKey: caKey, cert: cert, key: key,
		want: Receipt{UUID: "dev-1", Nonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Digest: digest[:], Version: 4}}
}

func (f receiptFixture) sign(t *testing.T, r Receipt, cert *x509.Certificate, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	raw, err := SignReceipt(r, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestReceiptVerifies(t *testing.T) {
	f := newReceiptFixture(t)
	raw := f.sign(t, f.want, f.cert, f.key)
	cert, err := VerifyReceipt(raw, f.ca, f.want, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "dev-1" {
		t.Fatalf("signer %q", cert.Subject.CommonName)
	}
}

// TestReceiptRefusals: every way a receipt can be forged, replayed or
// misdirected is refused, and says why.
func TestReceiptRefusals(t *testing.T) {
	f := newReceiptFixture(t)
	otherCA, otherCAKey, err := e2e.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, role e2e.Role, notBefore time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
		cert, key, err := e2e.Issue(ca, caKey, name, role, notBefore, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	good := f.sign(t, f.want, f.cert, f.key)
	with := func(change func(r *Receipt)) Receipt {
		r := f.want
		r.Nonce, r.Digest = bytes.Clone(r.Nonce), bytes.Clone(r.Digest)
		change(&r)
		return r
	}
	foreignCert, foreignKey := issue(otherCA, otherCAKey, "dev-1", e2e.RoleDevice, time.Now().Add(-time.Minute))
	otherDevCert, otherDevKey := issue(f.ca, f.caKey, "dev-2", e2e.RoleDevice, time.Now().Add(-time.Minute))
	managerCert, managerKey := issue(f.ca, f.caKey, "dev-1", e2e.RoleManager, time.Now().Add(-time.Minute))
	expiredCert, expiredKey := issue(f.ca, f.caKey, "dev-1", e2e.RoleDevice, time.Now().Add(-3*time.Hour))
	tampered := bytes.Clone(good)
	tampered[len(tampered)-80] ^= 1 // in the payload, before the signature
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"oversized", make([]byte, MaxReceiptBytes+1), "more than"},
		{"garbage", []byte("10_OK"), "not a COSE_Sign1"},
		{"device certificate of another CA", f.sign(t, f.want, foreignCert, foreignKey), "certificate"},
		{"another device's certificate", f.sign(t, with(func(r *Receipt) { r.UUID = "dev-2" }), otherDevCert, otherDevKey), `"dev-2"`},
		{"certificate of another role", f.sign(t, f.want, managerCert, managerKey), "role"},
		{"expired certificate", f.sign(t, f.want, expiredCert, expiredKey), "expired"},
		{"key not the certificate's", f.sign(t, f.want, f.cert, otherDevKey), "signature"},
		{"replayed from another update", f.sign(t, with(func(r *Receipt) { r.Nonce[0] ^= 1 }), f.cert, f.key), "another update"},
		{"another image", f.sign(t, with(func(r *Receipt) { r.Digest[0] ^= 1 }), f.cert, f.key), "image"},
		{"another version", f.sign(t, with(func(r *Receipt) { r.Version = 3 }), f.cert, f.key), "version 3"},
		{"tampered", tampered, ""},
		{"unsigned algorithm", es384Header(t, good), "algorithm"},
		{"no certificate", withoutCert(t, f), "x5chain"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyReceipt(c.raw, f.ca, f.want, time.Now())
			if !errors.Is(err, ErrBadReceipt) {
				t.Fatalf("err = %v, want ErrBadReceipt", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
	if _, err := VerifyReceipt(good, nil, f.want, time.Now()); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("no CA: %v", err)
	}
}

// es384Header re-signs nothing: it swaps the algorithm in the protected
// header, which also breaks the signature; the algorithm check comes first.
func es384Header(t *testing.T, raw []byte) []byte {
	t.Helper()
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(raw); err != nil {
		t.Fatal(err)
	}
	m.Headers.RawProtected = nil
	m.Headers.Protected[cose.HeaderLabelAlgorithm] = cose.AlgorithmES384
	out, err := m.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// withoutCert is a receipt signed by the right key with no certificate.
func withoutCert(t *testing.T, f receiptFixture) []byte {
	t.Helper()
	payload, err := cborEnc.Marshal(&Receipt{Purpose: ReceiptPurpose, UUID: f.want.UUID, Nonce: f.want.Nonce, Digest: f.want.Digest, Version: f.want.Version})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sign(rand.Reader, f.key, payload)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestReceiptVector checks the payload vector of PROTOCOL.md and a signed
// receipt kept in testdata (made once, with a CA valid 2026–2126) against
// the code: another implementation can test itself against both.
func TestReceiptVector(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- vector receipt-payload -->\\s*```\\s*(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("no vector receipt-payload in PROTOCOL.md")
	}
	vector, err := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello firmware"))
	want := Receipt{Purpose: ReceiptPurpose, UUID: "dev-1", Nonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}, Digest: digest[:], Version: 4}
	if got, _ := cborEnc.Marshal(&want); !bytes.Equal(got, vector) {
		t.Errorf("receipt payload encodes as\n%x", got)
	}
	caPEM, err := os.ReadFile("testdata/receipt/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(caPEM)
	ca, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/receipt/receipt.cbor")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := VerifyReceipt(raw, ca, want, at); err != nil {
		t.Fatalf("the kept receipt: %v", err)
	}
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(raw); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.Payload, vector) {
		t.Errorf("the kept receipt's payload is not the vector")
	}
	other := want
	other.Version = 5
	if _, err := VerifyReceipt(raw, ca, other, at); err == nil {
		t.Fatal("the kept receipt verified for version 5")
	}
}

// FuzzVerifyReceipt: nothing but a receipt the device key signed verifies.
func FuzzVerifyReceipt(f *testing.F) {
	ca, caKey, err := e2e.NewCA("fuzz CA", 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	cert, key, err := e2e.Issue(ca, caKey, "dev-1", e2e.RoleDevice, time.Now().Add(-time.Minute), 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	want := Receipt{UUID: "dev-1", Nonce: []byte("12345678"), Digest: digest[:], Version: 2}
	good, err := SignReceipt(want, cert, key)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	if kept, err := os.ReadFile("testdata/receipt/receipt.cbor"); err == nil {
		f.Add(kept)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if bytes.Equal(b, good) {
			return
		}
		var m cose.Sign1Message
		if m.UnmarshalCBOR(b) == nil && bytes.Equal(m.Signature, mustSignature(t, good)) {
			return // the same signature re-encoded: COSE allows other encodings of one message
		}
		if _, err := VerifyReceipt(b, ca, want, time.Now()); err == nil {
			t.Fatalf("forged receipt verified: %x", b)
		}
	})
}

func mustSignature(t *testing.T, raw []byte) []byte {
	var m cose.Sign1Message
	if err := m.UnmarshalCBOR(raw); err != nil {
		t.Fatal(err)
	}
	return m.Signature
}

// BenchmarkReceipt is what a receipt adds to an update: one signature on
// the device, one certificate check and one verification at the Update
// Server.
func BenchmarkReceipt(b *testing.B) {
	ca, caKey, err := e2e.NewCA("bench CA", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	cert, key, err := e2e.Issue(ca, caKey, "dev-1", e2e.RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha256.Sum256([]byte("image"))
	want := Receipt{UUID: "dev-1", Nonce: []byte("12345678"), Digest: digest[:], Version: 2}
	raw, err := SignReceipt(want, cert, key)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := SignReceipt(want, cert, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifyReceipt(raw, ca, want, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}
