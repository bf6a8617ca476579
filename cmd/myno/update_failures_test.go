package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/ontology"
)

// updateWorld is a real bridge on its embedded broker, MUP devices in
// process, the vendor's and the Update Server's keys and certificates as
// myno keys gen makes them, and an image with its signed manifest: what
// myno update needs, for its failures (issue 16).
type updateWorld struct {
	b        *bridge.Bridge
	keys     string // vendor.key/.crt, update-server.key/.crt
	image    string // fw.bin
	manifest string // fw.bin.manifest, version 4 for devices at 3
	user     string // the Update Server's broker credentials
	password string
	devices  map[string]*devices.Device
}

// bridgeRPCTimeout is the bridge's deadline for a device's answer in
// these tests: short, so that the bridge's own timeout shows, and long
// enough for a loopback device.
const bridgeRPCTimeout = 3 * time.Second

// startUpdateWorld starts the world; prepare, if given, fills the
// bridge's data dir first.
func startUpdateWorld(t *testing.T, prepare ...func(dataDir string)) *updateWorld {
	t.Helper()
	dataDir := t.TempDir()
	for _, p := range prepare {
		p(dataDir)
	}
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dataDir,
		AdminPassword: "pw", RPCTimeout: bridgeRPCTimeout, Enrolment: access.EnrolOpen, Logger: testenv.Logger(), Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	w := &updateWorld{b: b, keys: t.TempDir(), devices: map[string]*devices.Device{}, user: "update-server"}
	if code, _, errOut := runMyno(t, "keys", "gen", "--vendor", "--out", w.keys); code != 0 {
		t.Fatalf("keys gen --vendor: %d %s", code, errOut)
	}
	if code, _, errOut := runMyno(t, "keys", "gen", "--update-server", "--out", w.keys,
		"--vendor-key", filepath.Join(w.keys, "vendor.key"), "--vendor-cert", filepath.Join(w.keys, "vendor.crt")); code != 0 {
		t.Fatalf("keys gen --update-server: %d %s", code, errOut)
	}
	store, err := access.OpenStore(b.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	if w.password, err = store.Add(w.user, access.RoleUpdateServer, access.AddOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 5000)
	rand.Read(img)
	w.image = filepath.Join(t.TempDir(), "fw.bin")
	if err := os.WriteFile(w.image, img, 0o644); err != nil {
		t.Fatal(err)
	}
	w.manifest = w.sign(t, w.image, filepath.Join(w.keys, "vendor.key"))
	return w
}

// sign has the vendor of vendorKey sign a manifest of image for version 4
// of myno-app, and returns its file.
func (w *updateWorld) sign(t *testing.T, image, vendorKey string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "fw.manifest")
	if code, _, errOut := runMyno(t, "manifest", "sign", "--image", image, "--app-id", "myno-app", "--version", "4", "--old-version", "3",
		"--vendor-key", vendorKey, "--out", out); code != 0 {
		t.Fatalf("manifest sign: %d %s", code, errOut)
	}
	return out
}

// addDevice boots a MUP device at version 3 that trusts the world's vendor
// and Update Server; change adjusts its MUP configuration, and handlers,
// keyed by function name, replace its MUP handlers.
func (w *updateWorld) addDevice(t *testing.T, uuid string, change func(*devices.MUPConfig), handlers map[string]devices.CommandHandler) *devices.Device {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-device.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	vendor, err := mup.ReadKey(filepath.Join(w.keys, "vendor.key"))
	if err != nil {
		t.Fatal(err)
	}
	server, err := mup.ReadKey(filepath.Join(w.keys, "update-server.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &vendor.PublicKey, ServerKey: &server.PublicKey}
	if change != nil {
		change(&cfg)
	}
	own := map[string]devices.CommandHandler{}
	d := devicetest.Boot(t, devices.Config{UUID: uuid, BrokerURL: w.b.BrokerURL(), Description: desc, Logger: testenv.Logger(), Handlers: own,
		Credentials: updateDeviceCredentials(uuid)},
		func(d *devices.Device) error { return d.EnableMUP(cfg) },
		func(d *devices.Device) error {
			// EnableMUP put its handlers in own, by method.
			for _, f := range d.Model().Functions {
				if h, ok := handlers[f.Name]; ok {
					own[f.Method] = h
				}
			}
			return nil
		})
	w.devices[uuid] = d
	return d
}

// updateDeviceCredentials are a device's broker credentials: its uuid and a
// token of its own, which the bridge's --enrol open binds to it.
func updateDeviceCredentials(uuid string) client.Credentials {
	return client.Credentials{Username: uuid, Password: "update-failures-token-of-" + uuid + "-0123456789"}
}

// silent answers nothing: the bridge's rpc to it times out.
func silent(ctx context.Context, _ *devices.Device, _ *ontology.Function, _ []string) (string, []string) {
	<-ctx.Done()
	return "", nil
}

// args is a myno update command line for the world's bridge and Update
// Server, with more flags.
func (w *updateWorld) args(brokerURL string, more ...string) []string {
	return append([]string{"update", "--bridge", w.b.NetconfAddr(), "--password", "pw", "--insecure-host-key", "--mqtt-url", brokerURL,
		"--mqtt-username", w.user, "--mqtt-password", w.password, "--key", filepath.Join(w.keys, "update-server.key"), "--quiet"}, more...)
}

// commands is how many commands (rpcs through the bridge) uuid handled.
func (w *updateWorld) commands(uuid string) uint64 { return w.devices[uuid].Commands.Load() }

// runTimed runs myno and returns how long it took too.
func runTimed(t *testing.T, args ...string) (code int, stdout, stderr string, took time.Duration) {
	t.Helper()
	start := time.Now()
	code, stdout, stderr = runMyno(t, args...)
	return code, stdout, stderr, time.Since(start)
}

// The baseline the failures below depart from: the same world updates a
// device, checking the manifest against vendor.crt and the key against
// update-server.crt, found beside --key.
func TestUpdateWorldUpdates(t *testing.T) {
	w := startUpdateWorld(t)
	w.addDevice(t, "upd-ok", nil, nil)
	code, out, errOut := runMyno(t, w.args(w.b.BrokerURL(), "--device", "upd-ok", "--image", w.image, "--manifest", w.manifest)...)
	if code != 0 || !strings.Contains(out, "device upd-ok runs version 4") {
		t.Fatalf("update: exit %d\n%s\n%s", code, out, errOut)
	}
	if strings.Contains(errOut, "no --vendor-cert") {
		t.Errorf("vendor.crt beside --key was not found: %s", errOut)
	}
	// Each step's time, the set-up's first, in order.
	var steps []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			if _, err := time.ParseDuration(f[1]); err == nil {
				steps = append(steps, f[0])
			}
		}
	}
	if got := strings.Join(steps, " "); !strings.HasPrefix(got, "checks broker bridge token manifest transfer") {
		t.Errorf("steps timed: %q", got)
	}
}

// A dead --mqtt-url (issue 16: the update took a token, sent the manifest
// and hung): myno update fails within --mqtt-connect-timeout, names the
// broker and the cause, and the device hears nothing, for one device and
// for a campaign.
func TestUpdateWithDeadBrokerFailsBeforeTheToken(t *testing.T) {
	w := startUpdateWorld(t)
	w.addDevice(t, "upd-1", nil, nil)
	w.addDevice(t, "upd-2", nil, nil)
	dead := fmt.Sprintf("mqtt://127.0.0.1:%d", testenv.FreePort(t))
	for name, targets := range map[string][]string{"one device": {"--device", "upd-1"}, "campaign": {"--device", "upd-1", "--device", "upd-2"}} {
		t.Run(name, func(t *testing.T) {
			args := append(w.args(dead, "--mqtt-connect-timeout", "1s", "--image", w.image, "--manifest", w.manifest), targets...)
			code, _, errOut, took := runTimed(t, args...)
			t.Logf("stderr:\n%s", errOut)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, errOut)
			}
			want := "myno: update: broker " + dead + ": no connection within 1s: "
			if !strings.Contains(errOut, want) || !strings.Contains(errOut, "connection refused") {
				t.Errorf("stderr does not say %q … connection refused:\n%s", want, errOut)
			}
			if took > 15*time.Second {
				t.Errorf("took %s with --mqtt-connect-timeout 1s", took)
			}
		})
	}
	for _, u := range []string{"upd-1", "upd-2"} {
		if n := w.commands(u); n != 0 {
			t.Errorf("%s handled %d commands, want none", u, n)
		}
	}
}

// Checked locally before anything leaves myno update, even before the
// broker (which is dead here, to show the order): an image one byte off
// its manifest, a manifest another vendor signed, a MUP v1 manifest that
// does not verify with the vendor's v1 key, and an Update Server key that
// is not its certificate's. No device hears of any.
func TestUpdateRefusesLocally(t *testing.T) {
	w := startUpdateWorld(t)
	w.addDevice(t, "upd-1", nil, nil)
	dead := fmt.Sprintf("mqtt://127.0.0.1:%d", testenv.FreePort(t))

	tampered := filepath.Join(t.TempDir(), "fw.bin")
	img, _ := os.ReadFile(w.image)
	img[len(img)/2] ^= 0x01
	if err := os.WriteFile(tampered, img, 0o644); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if code, _, errOut := runMyno(t, "keys", "gen", "--vendor", "--out", other); code != 0 {
		t.Fatalf("keys gen: %d %s", code, errOut)
	}
	if code, _, errOut := runMyno(t, "keys", "gen", "--update-server", "--out", other,
		"--vendor-key", filepath.Join(w.keys, "vendor.key"), "--vendor-cert", filepath.Join(w.keys, "vendor.crt")); code != 0 {
		t.Fatalf("keys gen: %d %s", code, errOut)
	}
	foreign := w.sign(t, w.image, filepath.Join(other, "vendor.key"))
	vectors := filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata")
	v1Manifest := filepath.Join(t.TempDir(), "fw.v1manifest")
	if code, _, errOut := runMyno(t, "manifest", "sign", "--format", "v1", "--image", w.image, "--app-id", "myno-app", "--version", "4",
		"--old-version", "3", "--vendor-key", filepath.Join(vectors, "key-updateserver.priv.hex"), "--out", v1Manifest); code != 0 {
		t.Fatalf("manifest sign --format v1: %d %s", code, errOut)
	}

	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"tampered image", []string{"--image", tampered, "--manifest", w.manifest},
			[]string{"myno: update: manifest: refused before the device heard of it: the COSE vendor manifest describes another image (5000 bytes, SHA-256 ", "not this one (5000 bytes, SHA-256 "}},
		{"another vendor", []string{"--image", w.image, "--manifest", foreign},
			[]string{"myno: update: manifest: refused before the device heard of it: the COSE vendor manifest's signature does not verify with the vendor's key: ", "verification error"}},
		{"v1 signature", []string{"--image", w.image, "--manifest", v1Manifest, "--vendor-cert", filepath.Join(vectors, "key-manufacturer.pub-xy.hex")},
			[]string{"myno: update: manifest: refused before the device heard of it: the v1 manifest's inner signature does not verify with the vendor's key: ", "signature does not verify"}},
		{"server key", []string{"--image", w.image, "--manifest", w.manifest, "--update-server-cert", filepath.Join(other, "update-server.crt")},
			[]string{"myno: update: sign: refused before the device heard of it: the Update Server key does not sign what its certificate's key verifies"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runMyno(t, w.args(dead, append(tc.args, "--device", "upd-1")...)...)
			t.Logf("stderr:\n%s", errOut)
			if code != 1 {
				t.Fatalf("exit %d, want 1:\n%s", code, errOut)
			}
			for _, want := range tc.want {
				if !strings.Contains(errOut, want) {
					t.Errorf("stderr does not say %q:\n%s", want, errOut)
				}
			}
			if strings.Contains(errOut, "broker") {
				t.Errorf("the broker was tried before the local check:\n%s", errOut)
			}
		})
	}
	// An Update Server certificate of another vendor: devices would refuse it.
	if code, _, errOut := runMyno(t, w.args(dead, "--device", "upd-1", "--image", w.image, "--manifest", w.manifest,
		"--vendor-cert", filepath.Join(other, "vendor.crt"))...); code != 2 || !strings.Contains(errOut, "--update-server-cert") ||
		!strings.Contains(errOut, "devices that trust --vendor-cert would refuse it") {
		t.Errorf("certificate of another vendor: exit %d\n%s", code, errOut)
	}
	if n := w.commands("upd-1"); n != 0 {
		t.Errorf("upd-1 handled %d commands, want none", n)
	}
}

// Every step has a deadline, which its error names: a token the bridge
// does not answer within --rpc-timeout, a device that does not answer the
// bridge within its own --rpc-timeout, slices nobody acknowledges, a
// device that never reports the new version.
func TestUpdateStepDeadlines(t *testing.T) {
	w := startUpdateWorld(t)
	w.addDevice(t, "upd-silent", nil, map[string]devices.CommandHandler{"getDeviceToken": silent})
	w.addDevice(t, "upd-noack", func(c *devices.MUPConfig) { c.RequireEncryptedFirmware = true }, nil)
	w.addDevice(t, "upd-stuck", func(c *devices.MUPConfig) { c.NeverReboots = true }, nil)
	for _, tc := range []struct {
		name   string
		device string
		flags  []string
		want   *regexp.Regexp
		within time.Duration
	}{
		{"rpc deadline", "upd-silent", []string{"--rpc-timeout", "1s"},
			regexp.MustCompile(`myno: update upd-silent: getDeviceToken: netconf getDeviceToken: no answer within 1s \(the NETCONF session is closed\)`), 10 * time.Second},
		{"the bridge's deadline", "upd-silent", nil,
			regexp.MustCompile(`myno: update upd-silent: getDeviceToken: netconf getDeviceToken: rpc-error operation-failed \(device-timeout\): device upd-silent did not answer GET-DEVICE-TOKEN within 3s`), 15 * time.Second},
		{"ack deadline", "upd-noack", []string{"--ack-timeout", "200ms", "--ack-retries", "2"},
			regexp.MustCompile(`myno: update upd-noack: transfer: no acknowledgement of slice 0 within 600ms \(3 tries of 200ms\)`), 10 * time.Second},
		{"reboot deadline", "upd-stuck", []string{"--reboot-wait", "1s"},
			regexp.MustCompile(`myno: update upd-stuck: reboot: the device does not report the new version 4 within 1s \(it reports 3\)`), 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut, took := runTimed(t, w.args(w.b.BrokerURL(), append(tc.flags, "--device", tc.device, "--image", w.image, "--manifest", w.manifest)...)...)
			t.Logf("stderr:\n%s", errOut)
			if code != 1 || !tc.want.MatchString(errOut) {
				t.Errorf("exit %d, want 1 and %q:\n%s", code, tc.want, errOut)
			}
			if took > tc.within {
				t.Errorf("took %s", took)
			}
		})
	}
	// The silent device was asked for tokens, and nothing else.
	if n := w.commands("upd-silent"); n != 2 {
		t.Errorf("upd-silent handled %d commands, want the 2 token requests", n)
	}
	if w.devices["upd-noack"].RefusedSlices() == 0 {
		t.Error("upd-noack refused no slice: the ack deadline was not the device's doing")
	}
}
