package e2e

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"
)

func binding() Binding {
	mn, dn := make([]byte, 16), make([]byte, 16)
	rand.Read(mn)
	rand.Read(dn)
	return Binding{Manager: "manager-1", Device: "device-1", ManagerNonce: mn, DeviceNonce: dn}
}

// Both sides derive the same key in both modes, from their own secrets and
// the peer's public values only.
func TestBothSidesAgree(t *testing.T) {
	mKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b := binding()
	t.Run("static", func(t *testing.T) {
		ms, err := StaticSecret(mKey, &dKey.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		ds, _ := StaticSecret(dKey, &mKey.PublicKey)
		k1, _ := DeriveKey(ms, Static, b)
		k2, _ := DeriveKey(ds, Static, b)
		if !bytes.Equal(k1, k2) || len(k1) != KeySize {
			t.Fatalf("keys differ: %x %x", k1, k2)
		}
	})
	t.Run("ephemeral", func(t *testing.T) {
		me, _ := NewEphemeral()
		de, _ := NewEphemeral()
		ms, err := EphemeralSecret(me, de.PublicKey().Bytes())
		if err != nil {
			t.Fatal(err)
		}
		ds, _ := EphemeralSecret(de, me.PublicKey().Bytes())
		k1, _ := DeriveKey(ms, Ephemeral, b)
		k2, _ := DeriveKey(ds, Ephemeral, b)
		if !bytes.Equal(k1, k2) {
			t.Fatalf("keys differ")
		}
		// Forward secrecy: the certificate keys alone give another key.
		ss, _ := StaticSecret(mKey, &dKey.PublicKey)
		k3, _ := DeriveKey(ss, Ephemeral, b)
		if bytes.Equal(k1, k3) {
			t.Fatal("ephemeral key equals the static one")
		}
	})
}

// The key is bound to every field: changing one gives another key.
func TestKeyIsBoundToIdentitiesNoncesAndMode(t *testing.T) {
	shared := bytes.Repeat([]byte{7}, 32)
	b := binding()
	base, _ := DeriveKey(shared, Ephemeral, b)
	for name, mutate := range map[string]func(*Binding, *Mode){
		"manager":       func(x *Binding, _ *Mode) { x.Manager = "manager-2" },
		"device":        func(x *Binding, _ *Mode) { x.Device = "device-2" },
		"manager nonce": func(x *Binding, _ *Mode) { x.ManagerNonce = bytes.Repeat([]byte{1}, 16) },
		"device nonce":  func(x *Binding, _ *Mode) { x.DeviceNonce = bytes.Repeat([]byte{1}, 16) },
		"mode":          func(_ *Binding, m *Mode) { *m = Static },
		// Field boundaries are length-prefixed: moving a byte between
		// identities changes the key.
		"boundary": func(x *Binding, _ *Mode) { x.Manager, x.Device = "manager-1d", "evice-1" },
	} {
		x, m := b, Ephemeral
		mutate(&x, &m)
		k, err := DeriveKey(shared, m, x)
		if err != nil || bytes.Equal(k, base) {
			t.Errorf("%s: same key (%v)", name, err)
		}
	}
	for name, bad := range map[string]Binding{
		"short nonce": {Manager: "m", Device: "d", ManagerNonce: []byte{1}, DeviceNonce: b.DeviceNonce},
		"no manager":  {Device: "d", ManagerNonce: b.ManagerNonce, DeviceNonce: b.DeviceNonce},
	} {
		if _, err := DeriveKey(shared, Ephemeral, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A curious or tampering broker: the ciphertext does not contain the
// plaintext, and any change to it or to the aad fails to open.
func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{9}, KeySize)
	secret := []byte("-----BEGIN EC PRIVATE KEY----- device key bytes")
	aad := []byte("myno/e2e/manager-1/device-1/update#1")
	sealed, err := Seal(key, secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret[:16]) {
		t.Fatal("plaintext visible in the sealed message")
	}
	if got, err := Open(key, sealed, aad); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q %v", got, err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 1
		if _, err := Open(key, bad, aad); !errors.Is(err, ErrOpen) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	if _, err := Open(key, sealed, []byte("myno/e2e/manager-1/device-1/update#2")); !errors.Is(err, ErrOpen) {
		t.Errorf("other aad (a replay under another sequence): %v", err)
	}
	if _, err := Open(bytes.Repeat([]byte{8}, KeySize), sealed, aad); !errors.Is(err, ErrOpen) {
		t.Errorf("other key: %v", err)
	}
	if _, err := Open(key, sealed[:20], aad); !errors.Is(err, ErrOpen) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := Seal(key[:16], secret, aad); err == nil {
		t.Error("AES-128 key accepted")
	}
	if _, err := EphemeralSecret(mustEphemeral(t), []byte{4, 1, 2}); err == nil {
		t.Error("a point off the curve accepted")
	}
}

func mustEphemeral(t *testing.T) *ecdh.PrivateKey {
	k, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func FuzzOpen(f *testing.F) {
	key := bytes.Repeat([]byte{9}, KeySize)
	s, _ := Seal(key, []byte("x"), nil)
	f.Add(s)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if out, err := Open(key, b, nil); err == nil && !bytes.Equal(out, []byte("x")) {
			t.Fatalf("forged message opened: %q", out)
		}
	})
}
