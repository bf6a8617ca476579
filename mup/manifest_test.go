package mup

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/veraison/go-cose"
)

type fixture struct {
	vendor, server, rogue *ecdsa.PrivateKey
	image                 []byte
	state                 *DeviceState
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	for _, k := range []**ecdsa.PrivateKey{&f.vendor, &f.server, &f.rogue} {
		if *k, err = GenerateKey(); err != nil {
			t.Fatal(err)
		}
	}
	f.image = bytes.Repeat([]byte("firmware"), 10975) // 87,800 bytes, the paper's image size
	f.state = &DeviceState{UUID: "dev-1", Nonce: NewNonce(), AppID: "myno-app", Version: 3, SlotSize: 256 << 10,
		VendorKey: &f.vendor.PublicKey, ServerKey: &f.server.PublicKey}
	return f
}

func (f *fixture) extended(t *testing.T, m *VendorManifest, vendorKey, serverKey *ecdsa.PrivateKey, uuid string, nonce []byte) []byte {
	t.Helper()
	inner, err := SignVendorManifest(m, vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := SignExtendedManifest(inner, uuid, nonce, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	return ext
}

// Every attack is refused with its state code, before any firmware moves.
func TestCheckManifestAttacks(t *testing.T) {
	f := newFixture(t)
	good := NewVendorManifest(f.image, "myno-app", 4, 3, 0x4000)
	oldNonce := NewNonce()
	cases := []struct {
		name string
		ext  []byte
		want string
	}{
		{"valid", f.extended(t, good, f.vendor, f.server, "dev-1", f.state.Nonce), StateOK},
		{"replayed manifest (old nonce)", f.extended(t, good, f.vendor, f.server, "dev-1", oldNonce), StateInvalidNonce},
		{"manifest for another uuid", f.extended(t, good, f.vendor, f.server, "dev-2", f.state.Nonce), StateManifestInvalid},
		{"downgrade", f.extended(t, NewVendorManifest(f.image, "myno-app", 2, 0, 0), f.vendor, f.server, "dev-1", f.state.Nonce), StateInvalidVersion},
		{"same version", f.extended(t, NewVendorManifest(f.image, "myno-app", 3, 0, 0), f.vendor, f.server, "dev-1", f.state.Nonce), StateInvalidVersion},
		{"wrong old version", f.extended(t, NewVendorManifest(f.image, "myno-app", 5, 4, 0), f.vendor, f.server, "dev-1", f.state.Nonce), StateInvalidVersion},
		{"forged inner signature", f.extended(t, good, f.rogue, f.server, "dev-1", f.state.Nonce), StateInnerSignInvalid},
		{"forged outer signature", f.extended(t, good, f.vendor, f.rogue, "dev-1", f.state.Nonce), StateOuterSignInvalid},
		{"wrong app id", f.extended(t, NewVendorManifest(f.image, "other-app", 4, 0, 0), f.vendor, f.server, "dev-1", f.state.Nonce), StateWrongAppID},
		{"oversized image", f.extended(t, NewVendorManifest(make([]byte, 300<<10), "myno-app", 4, 0, 0), f.vendor, f.server, "dev-1", f.state.Nonce), StateImageTooBig},
		{"not CBOR", []byte{0xff, 0x00}, StateManifestInvalid},
	}
	for _, tc := range cases {
		got, vm := CheckManifest(tc.ext, f.state)
		if got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if (got == StateOK) != (vm != nil) {
			t.Errorf("%s: manifest returned with %s", tc.name, got)
		}
	}
	// A tampered outer payload fails the outer signature.
	ext := f.extended(t, good, f.vendor, f.server, "dev-1", f.state.Nonce)
	tampered := bytes.Replace(ext, []byte("dev-1"), []byte("dev-9"), 1)
	if got, _ := CheckManifest(tampered, f.state); got != StateOuterSignInvalid {
		t.Errorf("tampered: %s", got)
	}
	// A manifest with another algorithm than ES256 is refused.
	signer, _ := cose.NewSigner(cose.AlgorithmES384, mustKey384(t))
	other, _ := cose.Sign1(nil, signer, cose.Headers{Protected: cose.ProtectedHeader{cose.HeaderLabelAlgorithm: cose.AlgorithmES384}}, []byte{0xa0}, nil)
	if got, _ := CheckManifest(other, f.state); got != StateOuterSignInvalid {
		t.Errorf("ES384 manifest: %s", got)
	}
	// The slot being busy is its own state.
	busy := *f.state
	busy.SlotInUse = true
	if got, _ := CheckManifest(f.extended(t, good, f.vendor, f.server, "dev-1", f.state.Nonce), &busy); got != StateSlotInUse {
		t.Errorf("slot in use: %s", got)
	}
}

// A manifest signed by a key the vendor never certified is refused: the
// device does not accept that server key at bootstrap.
func TestServerCertificateMustChainToTheVendor(t *testing.T) {
	f := newFixture(t)
	ca, err := VendorCA(f.vendor, "vendor CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ServerCertificate(&f.server.PublicKey, "update server", ca, f.vendor, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := VerifyServerCertificate(cert, ca); err != nil || !pub.Equal(&f.server.PublicKey) {
		t.Fatalf("certified key refused: %v", err)
	}
	rogueCA, _ := VendorCA(f.rogue, "rogue CA", time.Hour)
	rogueCert, _ := ServerCertificate(&f.rogue.PublicKey, "update server", rogueCA, f.rogue, time.Hour)
	if _, err := VerifyServerCertificate(rogueCert, ca); err == nil {
		t.Fatal("a server key certified by another CA was accepted")
	}
}

func TestKeysRoundTripWithMode0600(t *testing.T) {
	dir := t.TempDir()
	k, _ := GenerateKey()
	if err := WriteKey(dir+"/k.pem", k); err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(dir + "/k.pem")
	if info.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", info.Mode().Perm())
	}
	back, err := ReadKey(dir + "/k.pem")
	if err != nil || !back.Equal(k) {
		t.Fatalf("%v", err)
	}
}

func TestSlicesAcksTokens(t *testing.T) {
	f := newFixture(t)
	slices := SplitImage(f.image, 600)
	if len(slices) != 147 || len(slices[146].Data) != 87800-146*600 {
		t.Fatalf("%d slices", len(slices))
	}
	var joined []byte
	h := sha256.New()
	for _, s := range slices {
		back, err := DecodeSlice(s.Encode())
		if err != nil || back.Index != s.Index {
			t.Fatal(err)
		}
		joined = append(joined, back.Data...)
		h.Write(back.Data)
	}
	if !bytes.Equal(joined, f.image) || !bytes.Equal(h.Sum(nil), NewVendorManifest(f.image, "a", 1, 0, 0).Digest) {
		t.Error("slices do not rebuild the image")
	}
	for _, bad := range [][]byte{nil, {0, 0, 0, 1}, make([]byte, 4+MaxSliceData+1)} {
		if _, err := DecodeSlice(bad); err == nil {
			t.Errorf("slice of %d bytes accepted", len(bad))
		}
	}
	if a, err := DecodeAck(Ack{Index: 146}.Encode()); err != nil || a.Index != 146 {
		t.Errorf("ack %v %v", a, err)
	}
	if _, err := DecodeAck([]byte{1, 2, 3}); err == nil {
		t.Error("short ack accepted")
	}
	tok := Token{UUID: "dev-1", Nonce: f.state.Nonce, Version: 3}
	back, err := DecodeToken(tok.Outputs())
	if err != nil || back.UUID != "dev-1" || !bytes.Equal(back.Nonce, tok.Nonce) || back.Version != 3 {
		t.Errorf("token %v %v", back, err)
	}
	if _, err := DecodeToken([]string{"dev-1", "0011", "3"}); err == nil {
		t.Error("a 2-byte nonce was accepted")
	}
}

// The byte formats in PROTOCOL.md are checked against the code.
func TestProtocolVectors(t *testing.T) {
	doc, err := os.ReadFile("PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	vector := func(name string) []byte {
		t.Helper()
		m := regexp.MustCompile("(?s)<!-- vector " + name + " -->\\s*```\\s*(.*?)```").FindSubmatch(doc)
		if m == nil {
			t.Fatalf("no vector %s in PROTOCOL.md", name)
		}
		b, err := hex.DecodeString(strings.Join(strings.Fields(string(m[1])), ""))
		if err != nil {
			t.Fatalf("vector %s: %v", name, err)
		}
		return b
	}
	digest := sha256.Sum256([]byte("hello firmware"))
	vm := &VendorManifest{AppID: "myno-app", LinkOffset: 0x4000, Digest: digest[:], Size: 14, Version: 4, OldVersion: 3}
	if got, _ := vm.Encode(); !bytes.Equal(got, vector("vendor-manifest")) {
		t.Errorf("vendor manifest encodes as\n%x", got)
	}
	em := &ExtendedManifest{Vendor: []byte{0xd2}, UUID: "dev-1", Nonce: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	if got, _ := em.Encode(); !bytes.Equal(got, vector("extended-manifest")) {
		t.Errorf("extended manifest encodes as\n%x", got)
	}
	if got := (Slice{Index: 2, Data: []byte("abc")}).Encode(); !bytes.Equal(got, vector("slice")) {
		t.Errorf("slice encodes as %x", got)
	}
	if got := (Ack{Index: 146}).Encode(); !bytes.Equal(got, vector("ack")) {
		t.Errorf("ack encodes as %x", got)
	}
}

func FuzzCheckManifest(f *testing.F) {
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x40, 0x40})
	key, _ := GenerateKey()
	st := &DeviceState{UUID: "d", Nonce: []byte("12345678"), AppID: "a", SlotSize: 1 << 20, VendorKey: &key.PublicKey, ServerKey: &key.PublicKey}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, vm := CheckManifest(b, st); got == StateOK || vm != nil {
			t.Fatalf("random bytes accepted as a manifest")
		}
	})
}

func FuzzDecodeSlice(f *testing.F) {
	f.Add(Slice{Index: 7, Data: []byte("x")}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSlice(b)
		if err == nil && !bytes.Equal(s.Encode(), b) {
			t.Fatalf("round trip %x", b)
		}
	})
}

func mustKey384(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A device without a trusted Update Server key refuses every manifest
// (and does not crash on the nil key).
func TestCheckManifestWithoutServerKey(t *testing.T) {
	vk, _ := GenerateKey()
	sk, _ := GenerateKey()
	signed, _ := SignVendorManifest(NewVendorManifest([]byte("image"), "app", 2, 1, 0), vk)
	nonce := NewNonce()
	ext, _ := SignExtendedManifest(signed, "d", nonce, sk)
	var none *ecdsa.PublicKey
	for _, key := range []crypto.PublicKey{nil, none} {
		st := &DeviceState{UUID: "d", Nonce: nonce, AppID: "app", Version: 1, SlotSize: 1 << 20, VendorKey: &vk.PublicKey, ServerKey: key}
		if got, _ := CheckManifest(ext, st); got != StateOuterSignInvalid {
			t.Errorf("key %#v: %s", key, got)
		}
	}
}

// The Update Server reads the app id and version of a signed vendor
// manifest; anything that is not one is refused.
func TestDecodeSignedVendorManifest(t *testing.T) {
	f := newFixture(t)
	want := NewVendorManifest(f.image, "myno-app", 4, 3, 0x4000)
	signed, err := SignVendorManifest(want, f.vendor)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSignedVendorManifest(signed)
	if err != nil || got.AppID != "myno-app" || got.Version != 4 || got.OldVersion != 3 || got.LinkOffset != 0x4000 || !bytes.Equal(got.Digest, want.Digest) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	ext := f.extended(t, want, f.vendor, f.server, "dev-1", f.state.Nonce)
	for name, bad := range map[string][]byte{"empty": nil, "not CBOR": {0xff}, "an extended manifest": ext} {
		if _, err := DecodeSignedVendorManifest(bad); err == nil {
			t.Errorf("%s accepted as a vendor manifest", name)
		}
	}
}
