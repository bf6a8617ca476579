package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
)

func TestKeysAndManifestCommands(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runMyno(t, "keys", "gen", "--vendor", "--out", dir); code != 0 {
		t.Fatalf("vendor: %d %s", code, errOut)
	}
	if code, _, errOut := runMyno(t, "keys", "gen", "--update-server", "--out", dir,
		"--vendor-key", filepath.Join(dir, "vendor.key"), "--vendor-cert", filepath.Join(dir, "vendor.crt")); code != 0 {
		t.Fatalf("update server: %d %s", code, errOut)
	}
	for _, f := range []string{"vendor.key", "update-server.key"} {
		info, err := os.Stat(filepath.Join(dir, f))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, err, info)
		}
	}
	ca, _ := mup.ReadCertificate(filepath.Join(dir, "vendor.crt"))
	sc, _ := mup.ReadCertificate(filepath.Join(dir, "update-server.crt"))
	if _, err := mup.VerifyServerCertificate(sc, ca); err != nil {
		t.Fatalf("update server certificate: %v", err)
	}
	image := filepath.Join(dir, "fw.bin")
	os.WriteFile(image, bytes.Repeat([]byte{0xa5}, 87800), 0o644)
	code, out, errOut := runMyno(t, "manifest", "sign", "--image", image, "--app-id", "myno-app", "--version", "4",
		"--old-version", "3", "--vendor-key", filepath.Join(dir, "vendor.key"))
	if code != 0 || !strings.Contains(out, "version 4") {
		t.Fatalf("sign: %d %s %s", code, out, errOut)
	}
	// The signed manifest passes a device's check once wrapped by the server.
	signed, _ := os.ReadFile(image + ".manifest")
	vk, _ := mup.ReadKey(filepath.Join(dir, "vendor.key"))
	sk, _ := mup.ReadKey(filepath.Join(dir, "update-server.key"))
	nonce := mup.NewNonce()
	ext, err := mup.SignExtendedManifest(signed, "dev-1", nonce, sk)
	if err != nil {
		t.Fatal(err)
	}
	st := &mup.DeviceState{UUID: "dev-1", Nonce: nonce, AppID: "myno-app", Version: 3, SlotSize: 1 << 20, VendorKey: &vk.PublicKey, ServerKey: &sk.PublicKey}
	if got, _ := mup.CheckManifest(ext, st); got != mup.StateOK {
		t.Errorf("device check: %s", got)
	}
	if code, _, _ := runMyno(t, "keys", "gen", "--vendor", "--update-server", "--out", dir); code != 2 {
		t.Errorf("both roles: exit %d", code)
	}
}

func TestCACommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	if code, out, errOut := runMyno(t, "ca", "init", "--dir", dir); code != 0 || !strings.Contains(out, "ca.crt") {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runMyno(t, "ca", "init", "--dir", dir); code != 1 || !strings.Contains(errOut, "already") {
		t.Errorf("second init overwrote the CA: %d %s", code, errOut)
	}
	if code, out, errOut := runMyno(t, "ca", "issue", "--dir", dir, "--name", "device-1", "--role", "device"); code != 0 {
		t.Fatalf("issue: %d %s %s", code, out, errOut)
	}
	info, err := os.Stat(filepath.Join(dir, "device-1.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("device key: %v %v", err, info)
	}
	ca, _ := mup.ReadCertificate(filepath.Join(dir, "ca.crt"))
	cert, _ := mup.ReadCertificate(filepath.Join(dir, "device-1.crt"))
	if name, _, err := e2e.VerifyPeer(cert, ca, e2e.RoleDevice, time.Now()); err != nil || name != "device-1" {
		t.Errorf("issued certificate: %q %v", name, err)
	}
	for _, bad := range [][]string{
		{"ca", "issue", "--dir", dir, "--name", "x", "--role", "admin"},
		{"ca", "issue", "--dir", dir, "--name", "../escape"},
		{"ca", "issue", "--dir", filepath.Join(dir, "missing"), "--name", "x"},
	} {
		if code, _, _ := runMyno(t, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
