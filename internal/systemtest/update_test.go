package systemtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/wire"
)

type world struct {
	b      *bridge.Bridge
	dev    *devices.Device
	s      *gonetconf.Session
	image  []byte
	signed []byte
	// sliceSize is the slice size of the next run (default 600).
	sliceSize int
	vendorKey *ecdsa.PrivateKey
	serverKey *ecdsa.PrivateKey
	url       string
	// rebootWait bounds the wait for the new version (0: the default).
	rebootWait time.Duration
	// modules is the Update Server's module cache, kept across the
	// world's updates as a long-lived Update Server keeps it.
	modules *updateserver.ModuleCache
	// updater is the Update Server's broker credentials.
	updater client.Credentials
}

// startBridge runs a bridge for the MUP tests: the embedded broker when
// brokerURL is empty, and the Update Server certificate to publish, if any.
func startBridge(t testing.TB, brokerURL string, serverCert []byte) *bridge.Bridge {
	t.Helper()
	// On the embedded broker every client authenticates: the devices
	// enrol with their own token (deviceCreds), the Update Server and the
	// tests' instruments are provisioned (creds).
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: t.TempDir(),
		AdminPassword: "pw", RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, MQTTURL: brokerURL, UpdateServerCert: serverCert,
		Enrolment: access.EnrolOpen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// deviceCreds are device uuid's broker credentials: its uuid and a token
// of its own, which the bridge's --enrol open binds to it on first use.
func deviceCreds(uuid string) client.Credentials {
	return client.Credentials{Username: uuid, Password: "systemtest-token-of-" + uuid + "-0123456789"}
}

// creds provisions name with role on b's embedded broker and returns its
// credentials; with an external broker (no access control of the
// bridge's) it returns none.
func creds(t testing.TB, b *bridge.Bridge, name string, role access.Role) client.Credentials {
	t.Helper()
	if b.BrokerURL() == "" {
		return client.Credentials{}
	}
	store, err := access.OpenStore(b.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.Add(name, role, access.AddOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	return client.Credentials{Username: name, Password: token}
}

// updateServerName is the Update Server's MQTT identity and, in the E2E
// tests, its certificate's common name (its E2E topics carry it).
const updateServerName = "update-server"

// startMUPDevice runs a MUP-capable device from the testdata description
// and bootstraps it; enable (EnableE2E, say) runs before it connects.
func startMUPDevice(t testing.TB, brokerURL, uuid string, cfg devices.MUPConfig, enable ...func(*devices.Device) error) *devices.Device {
	t.Helper()
	return startMUPDeviceFrom(t, "mup-device.jsonld", brokerURL, uuid, cfg, enable...)
}

// startMUPDeviceFrom is startMUPDevice with another testdata description.
func startMUPDeviceFrom(t testing.TB, description, brokerURL, uuid string, cfg devices.MUPConfig, enable ...func(*devices.Device) error) *devices.Device {
	t.Helper()
	return startMUPDeviceAs(t, description, brokerURL, uuid, deviceCreds(uuid), cfg, enable...)
}

// startMUPDeviceAs is startMUPDeviceFrom logged in with creds.
func startMUPDeviceAs(t testing.TB, description, brokerURL, uuid string, creds client.Credentials, cfg devices.MUPConfig, enable ...func(*devices.Device) error) *devices.Device {
	t.Helper()
	return startMUPDeviceWith(t, description, devices.Config{UUID: uuid, BrokerURL: brokerURL, Credentials: creds}, cfg, enable...)
}

// startMUPDeviceWith is startMUPDeviceAs with the device's configuration
// (its description read from testdata, its logger the tests').
func startMUPDeviceWith(t testing.TB, description string, devCfg devices.Config, cfg devices.MUPConfig, enable ...func(*devices.Device) error) *devices.Device {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", description))
	if err != nil {
		t.Fatal(err)
	}
	devCfg.Description, devCfg.Logger = desc, testenv.Logger()
	return bootDevice(t, devCfg, append([]func(*devices.Device) error{func(d *devices.Device) error { return d.EnableMUP(cfg) }}, enable...)...)
}

// bootDevice is devicetest.Boot.
func bootDevice(t testing.TB, devCfg devices.Config, enable ...func(*devices.Device) error) *devices.Device {
	t.Helper()
	return devicetest.Boot(t, devCfg, enable...)
}

// dialBridge opens a NETCONF session to the bridge as admin.
func dialBridge(t testing.TB, b *bridge.Bridge) *gonetconf.Session {
	t.Helper()
	s, err := gonetconf.DialSSH(b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	testenv.StacksOnFailure(t, inProcess...)
	return s
}

// inProcess names the packages whose goroutines a failed test logs
// (testenv.StacksOnFailure): the bridge, the broker and the devices run
// in the test's process.
var inProcess = []string{"myno/bridge.", "myno/netconf.", "myno/mqtt/", "myno/devices.", "myno/mup/", "mochi-mqtt/server"}

// setup runs the bridge on the embedded broker and a MUP-capable device
// at version 3; the vendor signed a manifest for version 4.
func setup(t testing.TB, brokerURL string, deviceOptions ...func(*devices.MUPConfig)) (*world, func(updateserver.FlowControl) (*updateserver.Result, error)) {
	t.Helper()
	vendorKey, _ := mup.GenerateKey()
	serverKey, _ := mup.GenerateKey()
	b := startBridge(t, brokerURL, nil)
	url := brokerURL
	if url == "" {
		url = b.BrokerURL()
	}
	mupConfig := devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10,
		VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey}
	for _, o := range deviceOptions {
		o(&mupConfig)
	}
	dev := startMUPDevice(t, url, "mup-1", mupConfig)
	s := dialBridge(t, b)
	if t, ok := t.(*testing.T); ok {
		waitFirmwareVersion(t, s, "3") // reported after the bootstrap
	}
	image := make([]byte, 87800) // the paper's image size
	rand.Read(image)
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{b: b, dev: dev, s: s, image: image, signed: signed, sliceSize: 600, vendorKey: vendorKey, serverKey: serverKey, url: url,
		modules: updateserver.NewModuleCache(), updater: creds(t, b, updateServerName, access.RoleUpdateServer)}
	run := func(flow updateserver.FlowControl) (*updateserver.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: w.signed, Image: w.image, ServerKey: serverKey,
			NETCONF: s, MQTTURL: url, MQTTCredentials: w.updater, Flow: flow, SliceSize: w.sliceSize, RebootWait: w.rebootWait, Modules: w.modules})
	}
	return w, run
}

func TestUpdateEndToEnd(t *testing.T) {
	for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
		t.Run(string(flow), func(t *testing.T) {
			w, run := setup(t, "")
			res, err := run(flow)
			if err != nil {
				t.Fatal(err)
			}
			if res.Version != 4 || w.dev.FirmwareVersion() != 4 || res.Slices != 147 {
				t.Errorf("result %+v, device version %d", res, w.dev.FirmwareVersion())
			}
			// A NETCONF <get> shows the new version (the device reports it).
			waitFirmwareVersion(t, w.s, "4")
			// The same update again is a downgrade to the same version: refused.
			_, err = run(flow)
			var ue *updateserver.UpdateError
			if !errors.As(err, &ue) || ue.State != mup.StateInvalidVersion {
				t.Errorf("second update: %v", err)
			}
		})
	}
}

func TestTamperedImageIsRefused(t *testing.T) {
	w, run := setup(t, "")
	w.image = bytes.Clone(w.image)
	w.image[1000] ^= 0xff // the manifest's digest no longer matches
	// The Update Server checks the image against the manifest before the
	// device hears of the update (issue 16); the device's own digest
	// check of tampered slices is tested in slices_test.go.
	_, err := run(updateserver.Windowed)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "manifest" || !errors.Is(err, updateserver.ErrLocalCheck) {
		t.Fatalf("tampered image: %v", err)
	}
	if n := w.dev.Commands.Load(); n != 0 {
		t.Errorf("the device got %d commands for a tampered image", n)
	}
	if w.dev.FirmwareVersion() != 3 {
		t.Errorf("device runs version %d after a tampered image", w.dev.FirmwareVersion())
	}
}

func TestUpdateThroughMosquitto(t *testing.T) {
	m := testenv.StartMosquitto(t)
	w, run := setup(t, m.URL())
	if _, err := run(updateserver.Windowed); err != nil {
		t.Fatal(err)
	}
	if w.dev.FirmwareVersion() != 4 {
		t.Errorf("version %d", w.dev.FirmwareVersion())
	}
}

// waitFirmwareVersion waits until the bridge's <get> shows the device's
// firmware-version.
func waitFirmwareVersion(t *testing.T, s *gonetconf.Session, want string) {
	t.Helper()
	c := updateserver.NewClient(s)
	testenv.WaitFor(t, "firmware-version "+want+" in <get>", func() bool {
		dev, err := c.Device("mup-1")
		return err == nil && dev.FirmwareVersion == want
	})
}

// A device that accepts the image but never comes back with the new
// version is reported as a timeout at the reboot step.
func TestDeviceThatNeverRebootsTimesOut(t *testing.T) {
	w, run := setup(t, "", func(c *devices.MUPConfig) { c.NeverReboots = true })
	w.rebootWait = 500 * time.Millisecond
	res, err := run(updateserver.Windowed)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "reboot" {
		t.Fatalf("want a reboot timeout, got %v", err)
	}
	if res.State != mup.StateOK || res.Version != 3 || w.dev.FirmwareVersion() != 3 {
		t.Errorf("result %+v, device version %d", res, w.dev.FirmwareVersion())
	}
	if !strings.Contains(err.Error(), "reboot") {
		t.Errorf("error does not name the step: %v", err)
	}
}

// Mosquitto restarts mid-transfer (every session and subscription lost):
// the Update Server, the bridge and the device reconnect, the transfer
// resumes from the last acknowledged slice and the update completes.
func TestBrokerRestartMidTransfer(t *testing.T) {
	m := testenv.StartMosquitto(t)
	w, _ := setup(t, m.URL())
	restarted := false
	var resumedFrom int
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: w.signed, Image: w.image, ServerKey: w.serverKey,
		NETCONF: w.s, MQTTURL: w.url, MQTTCredentials: w.updater, Flow: updateserver.Windowed, SliceSize: 600, AckTimeout: 500 * time.Millisecond, MaxRetries: 40,
		Progress: func(acked, total, _ int) {
			if acked >= total/2 && !restarted {
				restarted = true
				resumedFrom = acked
				m.Restart()
			}
		}})
	if err != nil {
		t.Fatalf("update across a broker restart: %v", err)
	}
	if !restarted || res.Version != 4 || w.dev.FirmwareVersion() != 4 {
		t.Fatalf("restarted %v, result %+v, device %d", restarted, res, w.dev.FirmwareVersion())
	}
	t.Logf("restart after %d acknowledged slices; %d resent; phases %v", resumedFrom, res.Resent, res.Phases)
	// Resumed, not restarted: far fewer slices were sent again than had
	// been acknowledged before the restart.
	if res.Resent >= resumedFrom {
		t.Errorf("%d slices resent after %d were acknowledged: the transfer started over", res.Resent, resumedFrom)
	}
}

// The device restarts mid-transfer and loses its RAM state (nonce,
// manifest, partial image): the Update Server reports the transfer step
// failing, nothing is installed, and a new update from the start succeeds.
func TestDeviceRestartMidTransfer(t *testing.T) {
	w, run := setup(t, "")
	restarted := false
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var fresh *devices.Device
	_, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: w.signed, Image: w.image, ServerKey: w.serverKey,
		NETCONF: w.s, MQTTURL: w.url, MQTTCredentials: w.updater, Flow: updateserver.Windowed, SliceSize: 600, AckTimeout: 200 * time.Millisecond, MaxRetries: 3,
		Progress: func(acked, total, _ int) {
			if acked >= total/2 && !restarted {
				restarted = true
				w.dev.Close()
				fresh = addDevice(t, w, "mup-1", 3) // the same device, rebooted into version 3
			}
		}})
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "transfer" {
		t.Fatalf("want a failed transfer, got %v", err)
	}
	if fresh.FirmwareVersion() != 3 {
		t.Fatalf("restarted device runs %d", fresh.FirmwareVersion())
	}
	w.dev = fresh
	res, err := run(updateserver.Windowed)
	if err != nil || res.Version != 4 || fresh.FirmwareVersion() != 4 {
		t.Fatalf("update after the restart: %+v %v", res, err)
	}
}

// The device takes the Update Server key only from a certificate that
// verifies against its vendor CA: a certificate from another CA, published
// by the bridge, leaves it refusing manifests; the genuine one, published
// retained afterwards, makes the update work.
func TestUpdateServerCertificateFromTheBridge(t *testing.T) {
	vendorKey, _ := mup.GenerateKey()
	vendorCA, _ := mup.VendorCA(vendorKey, "vendor", time.Hour)
	serverKey, _ := mup.GenerateKey()
	genuine, _ := mup.ServerCertificate(&serverKey.PublicKey, "update server", vendorCA, vendorKey, time.Hour)
	rogueKey, _ := mup.GenerateKey()
	rogueCA, _ := mup.VendorCA(rogueKey, "rogue", time.Hour)
	rogue, _ := mup.ServerCertificate(&serverKey.PublicKey, "update server", rogueCA, rogueKey, time.Hour)
	pemOf := func(c *x509.Certificate) []byte {
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}

	b := startBridge(t, "", pemOf(rogue))
	dev := startMUPDevice(t, b.BrokerURL(), "mup-1", devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10,
		VendorKey: &vendorKey.PublicKey, VendorCA: vendorCA})
	s := dialBridge(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	image := make([]byte, 20000)
	rand.Read(image)
	signed, _ := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendorKey)
	updater := creds(t, b, updateServerName, access.RoleUpdateServer)
	update := func() (*updateserver.Result, error) {
		return updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: signed, Image: image, ServerKey: serverKey,
			NETCONF: s, MQTTURL: b.BrokerURL(), MQTTCredentials: updater, Flow: updateserver.Windowed})
	}
	_, err := update()
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "sendExtendedManifest" || dev.TrustsUpdateServer() {
		t.Fatalf("with a rogue certificate: %v (trusts %v)", err, dev.TrustsUpdateServer())
	}
	// The certificate topic is the bridge's to write (a device is refused,
	// see the bridge's access tests): an operator fixes it as a bridge.
	pub, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "cert-publisher", Protocol: client.MQTT5, Logger: testenv.Logger(),
		Credentials: creds(t, b, "operator", access.RoleBridge)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	if err := pub.PublishRetained(ctx, client.Message{Topic: wire.TopicUpdateServerCert, Payload: pemOf(genuine)}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the genuine certificate to be taken", dev.TrustsUpdateServer)
	if res, err := update(); err != nil || res.Version != 4 {
		t.Fatalf("with the genuine certificate: %+v %v", res, err)
	}
}

// A device whose description puts the firmware on a topic of its own is
// updated through the bridge: the Update Server reads the topic from the
// device's module (the mqtt-input-topic extension of sendFirmwareImage),
// as the device reads it from its description, and the slices go there
// alone. A device of the usual description on the same bridge keeps its
// own topic.
func TestUpdateFollowsTheDescriptionsFirmwareTopic(t *testing.T) {
	w, run := setup(t, "")
	watched := testenv.WatchAllWith(t, w.url, creds(t, w.b, "watcher", access.RoleBridge))
	dev := startMUPDeviceFrom(t, "mup-device-firmware-topic.jsonld", w.url, "mup-own", devices.MUPConfig{AppID: "myno-app", Version: 3,
		SlotSize: 256 << 10, VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-own", VendorSigned: w.signed, Image: w.image, ServerKey: w.serverKey,
		NETCONF: w.s, MQTTURL: w.url, MQTTCredentials: w.updater, Flow: updateserver.Windowed})
	if err != nil {
		t.Fatal(err)
	}
	const own = "firmware/mup-own/slices"
	if res.Topic != own || res.Version != 4 || dev.FirmwareVersion() != 4 {
		t.Fatalf("result %+v, device version %d", res, dev.FirmwareVersion())
	}
	testenv.WaitFor(t, "the broker to relay every slice on "+own, func() bool { return len(watched.On(own)) >= res.Slices })
	if n := len(watched.On("yang/update/image/mup-own")); n != 0 {
		t.Errorf("%d slices on the default topic", n)
	}
	res, err = run(updateserver.Windowed)
	if err != nil || res.Topic != "yang/update/image/mup-1" || w.dev.FirmwareVersion() != 4 {
		t.Fatalf("the device with the usual topic: %+v %v", res, err)
	}
}
