package e2e

import (
	"strings"
	"testing"
	"time"
)

func TestVerifyPeer(t *testing.T) {
	ca, caKey, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, otherKey, _ := NewCA("other CA", time.Hour)
	now := time.Now()
	dev, _, err := Issue(ca, caKey, "device-1", RoleDevice, now.Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	name, pub, err := VerifyPeer(dev, ca, RoleDevice, now)
	if err != nil || name != "device-1" || pub == nil {
		t.Fatalf("genuine device: %q %v", name, err)
	}
	foreign, _, _ := Issue(other, otherKey, "device-1", RoleDevice, now.Add(-time.Minute), time.Hour)
	expired, _, _ := Issue(ca, caKey, "device-1", RoleDevice, now.Add(-2*time.Hour), time.Hour)
	future, _, _ := Issue(ca, caKey, "device-1", RoleDevice, now.Add(time.Hour), time.Hour)
	manager, _, _ := Issue(ca, caKey, "manager-1", RoleManager, now.Add(-time.Minute), time.Hour)
	for _, tc := range []struct {
		name string
		err  string
		run  func() error
	}{
		{"another CA", "unknown authority", func() error { _, _, err := VerifyPeer(foreign, ca, RoleDevice, now); return err }},
		{"expired", "expired", func() error { _, _, err := VerifyPeer(expired, ca, RoleDevice, now); return err }},
		{"not yet valid", "not yet valid", func() error { _, _, err := VerifyPeer(future, ca, RoleDevice, now); return err }},
		{"wrong role", "role", func() error { _, _, err := VerifyPeer(manager, ca, RoleDevice, now); return err }},
		{"unknown role", "unknown role", func() error { _, _, err := Issue(ca, caKey, "x", "admin", now, time.Hour); return err }},
	} {
		if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}
