package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

type party struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

type pki struct {
	ca                       *x509.Certificate
	manager, device, device2 party
	rogueManager, asManager  party // another CA's manager; a device cert used as a manager
}

func newPKI(t *testing.T) pki {
	t.Helper()
	ca, caKey, err := NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, _ := NewCA("other", time.Hour)
	now := time.Now().Add(-time.Minute)
	issue := func(ca *x509.Certificate, k *ecdsa.PrivateKey, name string, role Role) party {
		c, key, err := Issue(ca, k, name, role, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return party{c, key}
	}
	return pki{ca: ca, manager: issue(ca, caKey, "manager-1", RoleManager), device: issue(ca, caKey, "device-1", RoleDevice),
		device2: issue(ca, caKey, "device-2", RoleDevice), rogueManager: issue(other, otherKey, "manager-1", RoleManager),
		asManager: issue(ca, caKey, "manager-1", RoleDevice)}
}

// The whole handshake through the wire encoding, in both modes: both sides
// hold the same key, and a second handshake gives a different one.
func TestHandshake(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	for _, mode := range []Mode{Static, Ephemeral} {
		t.Run(string(mode), func(t *testing.T) {
			run := func() ([]byte, []byte) {
				st, err := NewNotify(mode, p.manager.cert, p.manager.key, "device-1")
				if err != nil {
					t.Fatal(err)
				}
				wire, _ := st.Notify.Encode()
				n, err := DecodeNotify(wire)
				if err != nil {
					t.Fatal(err)
				}
				r, devKey, _, err := Answer(n, "", p.ca, p.device.cert, p.device.key, "device-1", now)
				if err != nil {
					t.Fatal(err)
				}
				rw, _ := r.Encode()
				r2, err := DecodeReady(rw)
				if err != nil {
					t.Fatal(err)
				}
				mgrKey, err := st.Complete(r2, p.ca, now)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(devKey, mgrKey) {
					t.Fatal("the sides hold different keys")
				}
				return devKey, wire
			}
			k1, _ := run()
			k2, _ := run()
			if bytes.Equal(k1, k2) {
				t.Error("two handshakes gave the same key (nonces not fresh)")
			}
		})
	}
}

// The notify's signer may be a manager or an update server; Answer says
// which, so that the device can decide what each may send.
func TestAnswerReturnsTheSignersRole(t *testing.T) {
	ca, caKey, err := NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dc, dk, _ := Issue(ca, caKey, "device-1", RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	for _, role := range []Role{RoleManager, RoleUpdateServer} {
		c, k, _ := Issue(ca, caKey, "signer", role, time.Now().Add(-time.Minute), time.Hour)
		st, err := NewNotify(Static, c, k, "device-1")
		if err != nil {
			t.Fatal(err)
		}
		_, _, got, err := Answer(st.Notify, "signer", ca, dc, dk, "device-1", time.Now())
		if err != nil || got != role {
			t.Errorf("%s: role %q, %v", role, got, err)
		}
	}
}

func TestHandshakeAttacks(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	notify := func(m party, device string) *ManagerState {
		st, err := NewNotify(Ephemeral, m.cert, m.key, device)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	answer := func(n *Notify, d party, name string) error {
		_, _, _, err := Answer(n, "", p.ca, d.cert, d.key, name, now)
		return err
	}
	cases := map[string]func() error{
		"notify for another device": func() error { return answer(notify(p.manager, "device-2").Notify, p.device, "device-1") },
		"manager from another CA":   func() error { return answer(notify(p.rogueManager, "device-1").Notify, p.device, "device-1") },
		"device cert posing as manager": func() error {
			return answer(notify(p.asManager, "device-1").Notify, p.device, "device-1")
		},
		"notify changed in flight": func() error {
			n := notify(p.manager, "device-1").Notify
			n.Nonce[0] ^= 1
			return answer(n, p.device, "device-1")
		},
		"ephemeral key swapped by the broker": func() error {
			n := notify(p.manager, "device-1").Notify
			eph, _ := NewEphemeral()
			n.Ephemeral = eph.PublicKey().Bytes()
			return answer(n, p.device, "device-1")
		},
		"expired notify certificate": func() error {
			_, _, _, err := Answer(notify(p.manager, "device-1").Notify, "", p.ca, p.device.cert, p.device.key, "device-1", now.Add(2*time.Hour))
			return err
		},
		"ready replayed to a new notify": func() error {
			old := notify(p.manager, "device-1")
			r, _, _, err := Answer(old.Notify, "", p.ca, p.device.cert, p.device.key, "device-1", now)
			if err != nil {
				return nil // the setup failed: report as accepted
			}
			fresh := notify(p.manager, "device-1")
			_, err = fresh.Complete(r, p.ca, now)
			return err
		},
		"ready from another device": func() error {
			st := notify(p.manager, "device-1")
			r, _, _, err := Answer(st.Notify, "", p.ca, p.device2.cert, p.device2.key, "device-1", now)
			if err != nil {
				return nil
			}
			_, err = st.Complete(r, p.ca, now)
			return err
		},
		"ready changed in flight": func() error {
			st := notify(p.manager, "device-1")
			r, _, _, _ := Answer(st.Notify, "", p.ca, p.device.cert, p.device.key, "device-1", now)
			r.Nonce[0] ^= 1
			_, err := st.Complete(r, p.ca, now)
			return err
		},
		"a certified manager on another manager's channel": func() error {
			_, _, _, err := Answer(notify(p.manager, "device-1").Notify, "manager-2", p.ca, p.device.cert, p.device.key, "device-1", now)
			return err
		},
		"oversized notify": func() error { _, err := DecodeNotify(make([]byte, MaxMessage+1)); return err },
		"garbage ready":    func() error { _, err := DecodeReady([]byte{0xff, 0x00}); return err },
	}
	for name, run := range cases {
		if err := run(); !errors.Is(err, ErrHandshake) {
			t.Errorf("%s: %v, want ErrHandshake", name, err)
		}
	}
}

func FuzzDecodeNotify(f *testing.F) {
	p := newPKIForFuzz(f)
	st, _ := NewNotify(Ephemeral, p.cert, p.key, "device-1")
	b, _ := st.Notify.Encode()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := DecodeNotify(b)
		if err == nil {
			_, _ = n.Encode()
		}
	})
}

func newPKIForFuzz(f *testing.F) party {
	ca, caKey, _ := NewCA("ca", time.Hour)
	c, k, err := Issue(ca, caKey, "manager-1", RoleManager, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	return party{c, k}
}
