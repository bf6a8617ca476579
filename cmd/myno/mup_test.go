package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	v1 "github.com/myno-bridge/myno/mup/v1"
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

// MUP v1 keys and manifests (issue 14): keys made, imported and exported
// in MYNO's form (the vector keys round-trip), and a v1 vendor manifest
// whose inner signature verifies with the vendor's public key.
func TestV1KeysAndManifest(t *testing.T) {
	dir := t.TempDir()
	vectors := filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata")
	if code, _, errOut := runMyno(t, "keys", "gen", "--vendor", "--format", "v1", "--out", dir); code != 0 {
		t.Fatalf("gen v1: %d %s", code, errOut)
	}
	checkMode(t, filepath.Join(dir, "vendor.priv.hex"), 0o600)
	gen, err := readV1Key(filepath.Join(dir, "vendor.priv.hex"))
	if err != nil {
		t.Fatal(err)
	}
	pubText, _ := os.ReadFile(filepath.Join(dir, "vendor.pub-xy.hex"))
	if pub, err := v1.DecodePublicKey(bytes.TrimSpace(pubText)); err != nil || !pub.Equal(&gen.PublicKey) {
		t.Fatalf("vendor.pub-xy.hex is not the key's: %v", err)
	}
	// The vector's manufacturer key: import to PEM, export back.
	pem := filepath.Join(dir, "manufacturer.pem")
	code, out, errOut := runMyno(t, "keys", "import", "--v1-key", filepath.Join(vectors, "key-manufacturer.priv.hex"), "--out", pem)
	wantPub, _ := os.ReadFile(filepath.Join(vectors, "key-manufacturer.pub-xy.hex"))
	if code != 0 || !strings.Contains(strings.ToLower(out), strings.ToLower(string(bytes.TrimSpace(wantPub)))) {
		t.Fatalf("import: %d %s %s", code, out, errOut)
	}
	checkMode(t, pem, 0o600)
	if code, _, errOut := runMyno(t, "keys", "export", "--key", pem, "--name", "back", "--out", dir); code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	orig, _ := os.ReadFile(filepath.Join(vectors, "key-manufacturer.priv.hex"))
	back, _ := os.ReadFile(filepath.Join(dir, "back.priv.hex"))
	if !strings.EqualFold(string(bytes.TrimSpace(orig)), string(bytes.TrimSpace(back))) {
		t.Fatalf("exported key %q, want the imported %q", back, orig)
	}
	// A v1 vendor manifest signed with the vector's hex key.
	image := filepath.Join(vectors, "test-image-500.bin")
	manifest := filepath.Join(dir, "fw.v1manifest")
	if code, out, errOut := runMyno(t, "manifest", "sign", "--format", "v1", "--image", image, "--app-id", "APP", "--version", "2",
		"--old-version", "1", "--vendor-key", filepath.Join(vectors, "key-manufacturer.priv.hex"), "--out", manifest); code != 0 || !strings.Contains(out, "MUP v1") {
		t.Fatalf("sign v1: %d %s %s", code, out, errOut)
	}
	file, _ := os.ReadFile(manifest)
	m, err := v1.DecodeVendorFile(file)
	if err != nil {
		t.Fatal(err)
	}
	img, _ := os.ReadFile(image)
	inner, _ := m.EncodeInner()
	pub, _ := v1.DecodePublicKey(bytes.TrimSpace(wantPub))
	if m.Hash != sha256.Sum256(img) || m.Version != 2 || v1.Verify(pub, inner, m.InnerSignature) != nil {
		t.Fatalf("v1 manifest %+v does not describe the image or does not verify", m)
	}
	if code, _, _ := runMyno(t, "manifest", "sign", "--format", "v2", "--image", image, "--app-id", "APP", "--version", "2", "--vendor-key", pem); code != 2 {
		t.Errorf("--format v2: exit %d", code)
	}
}

// The CLI end to end for MUP v1, with MYNO's key files as they are (the
// vector keys, hex): myno device with a MYNO MUP description speaks v1
// (and refuses to start without the keys it checks manifests with),
// myno manifest sign --format v1 makes the vendor file, and myno update
// finds the protocol in the device's module and updates it through the
// bridge, reporting it unverified.
func TestV1UpdateCommands(t *testing.T) {
	vectors := filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata")
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-v1-device.jsonld")
	m := testenv.StartMosquitto(t)
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", DataDir: t.TempDir(), MQTTURL: m.URL(),
		AdminPassword: "pw", Logger: testenv.Logger(), Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if code, _, errOut := runMyno(t, "device", "--description", desc, "--uuid", "cli-v1", "--mqtt-url", m.URL()); code != 2 ||
		!strings.Contains(errOut, "--mup-vendor-key and --mup-server-key") {
		t.Fatalf("v1 device without keys: exit %d %s", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var devOut, devErr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"myno", "device", "--description", desc, "--uuid", "cli-v1", "--mqtt-url", m.URL(), "--telemetry-interval", "0",
			"--mup-vendor-key", filepath.Join(vectors, "key-manufacturer.pub-xy.hex"), "--mup-server-key", filepath.Join(vectors, "key-updateserver.pub-xy.hex"),
			"--firmware-version", "6"}, &devOut, &devErr)
	}()
	testenv.WaitFor(t, "the v1 device to register", func() bool { return strings.Contains(devErr.String(), "device registered") }, devErr.String)

	dir := t.TempDir()
	image, manifest := filepath.Join(vectors, "test-image-2000.bin"), filepath.Join(dir, "fw.v1manifest")
	if code, _, errOut := runMyno(t, "manifest", "sign", "--format", "v1", "--image", image, "--app-id", "MYNO-APP-7", "--version", "7",
		"--old-version", "6", "--vendor-key", filepath.Join(vectors, "key-manufacturer.priv.hex"), "--out", manifest); code != 0 {
		t.Fatalf("sign v1: %d %s", code, errOut)
	}
	update := []string{"update", "--bridge", b.NetconfAddr(), "--password", "pw", "--insecure-host-key", "--mqtt-url", m.URL(), "--device", "cli-v1",
		"--image", image, "--manifest", manifest, "--key", filepath.Join(vectors, "key-updateserver.priv.hex"), "--quiet"}
	code, out, errOut := runMyno(t, update...)
	if code != 0 || !strings.Contains(out, "device cli-v1 runs version 7 (MUP v1, 4 slices, 0 resent): unverified: the device cannot sign") {
		t.Fatalf("update: exit %d\n%s\n%s", code, out, errOut)
	}
	// Forcing the other protocol fails, and says where.
	if code, _, errOut := runMyno(t, append(update, "--protocol", "cose")...); code != 1 || !strings.Contains(errOut, "no COSE vendor manifest") {
		t.Errorf("--protocol cose: exit %d %s", code, errOut)
	}
	if code, _, errOut := runMyno(t, append(update, "--protocol", "v2")...); code != 2 || !strings.Contains(errOut, "want auto, v1 or cose") {
		t.Errorf("--protocol v2: exit %d %s", code, errOut)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("device exit %d:\n%s", code, devErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("device did not stop")
	}
}
