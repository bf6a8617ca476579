package systemtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// encWorld is a bridge, a MUP device with E2E credentials, and an E2E
// manager, on a broker whose every relayed payload is captured.
type encWorld struct {
	*world
	m    *manager.Manager
	cap  *testenv.Capture
	hook *testenv.CuriousHook     // on the embedded broker only
	flow updateserver.FlowControl // "" is windowed
	ca   *x509.Certificate        // issues the device's certificate; checks its receipts
}

// setupEncrypted runs the world on a standalone embedded broker with a
// curious hook (mosquitto false) or on Mosquitto watched by a '#'
// subscriber (mosquitto true). The device holds a device certificate and
// signs receipts (mup-device-signed.jsonld).
func setupEncrypted(t testing.TB, onMosquitto bool, device func(*devices.MUPConfig)) *encWorld {
	t.Helper()
	return setupEncryptedFrom(t, "mup-device-signed.jsonld", onMosquitto, device)
}

// setupEncryptedFrom is setupEncrypted with another testdata description.
func setupEncryptedFrom(t testing.TB, description string, onMosquitto bool, device func(*devices.MUPConfig)) *encWorld {
	t.Helper()
	ew := &encWorld{}
	var url string
	if onMosquitto {
		m := testenv.StartMosquitto(t)
		url = m.URL()
		ew.cap = testenv.WatchAll(t, url)
	} else {
		br, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { br.Close() })
		ew.cap = testenv.NewCapture()
		ew.hook = &testenv.CuriousHook{Capture: ew.cap}
		if err := br.Server().AddHook(ew.hook, nil); err != nil {
			t.Fatal(err)
		}
		url = br.URL()
	}
	ca, caKey, err := e2e.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, role e2e.Role) *devices.E2EConfig {
		cert, key, err := e2e.Issue(ca, caKey, name, role, time.Now().Add(-time.Minute), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return &devices.E2EConfig{CA: ca, Cert: cert, Key: key}
	}
	vendorKey, _ := mup.GenerateKey()
	serverKey, _ := mup.GenerateKey()
	b := startBridge(t, url, nil)
	cfg := devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey}
	if device != nil {
		device(&cfg)
	}
	ew.ca = ca
	dev := startMUPDeviceFrom(t, description, url, "mup-1", cfg, func(d *devices.Device) error { return d.EnableE2E(*issue("mup-1", e2e.RoleDevice)) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mc := issue("update-server", e2e.RoleUpdateServer) // firmware keys only
	ew.m, err = manager.New(manager.Config{CA: ca, Cert: mc.Cert, Key: mc.Key, Logger: testenv.Logger(), ResendAfter: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.Dial(ctx, client.Config{URL: url, ClientID: "manager-" + t.Name(), Protocol: client.MQTT5, Logger: testenv.Logger(), AtMostOnce: true, OnMessage: ew.m.HandleMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	if err := ew.m.Start(ctx, tr); err != nil {
		t.Fatal(err)
	}
	s := dialBridge(t, b)
	image := make([]byte, 87800)
	rand.Read(image)
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	ew.world = &world{b: b, dev: dev, s: s, image: image, signed: signed, sliceSize: 600, vendorKey: vendorKey, serverKey: serverKey, url: url,
		modules: updateserver.NewModuleCache()}
	return ew
}

// run updates the device; with encrypt, under a fresh firmware key handed
// over the E2E channel.
func (ew *encWorld) run(encrypt bool) (*updateserver.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	flow := ew.flow
	if flow == "" {
		flow = updateserver.Windowed
	}
	cfg := updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: ew.signed, Image: ew.image, ServerKey: ew.serverKey,
		NETCONF: ew.s, MQTTURL: ew.url, MQTTCredentials: ew.updater, Flow: flow, SliceSize: ew.sliceSize, AckTimeout: 300 * time.Millisecond, MaxRetries: 3,
		Modules: ew.modules, DeviceCA: ew.ca}
	if encrypt {
		cfg.OpenKeyChannel = ew.openKeyChannel
	}
	return updateserver.Update(ctx, cfg)
}

// openKeyChannel adapts the manager's channel to the Update Server's
// KeyChannel (a nil *manager.Channel must not become a non-nil interface).
func (ew *encWorld) openKeyChannel(ctx context.Context, uuid string) (updateserver.KeyChannel, error) {
	ch, err := ew.m.OpenKeyChannel(ctx, uuid)
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// The confidential update on both brokers: the device installs the image,
// and no 32-byte window of it crossed the broker. The same update in
// plaintext shows the window check would catch it.
func TestEncryptedUpdate(t *testing.T) {
	for _, onMosquitto := range []bool{false, true} {
		name := map[bool]string{false: "embedded", true: "mosquitto"}[onMosquitto]
		t.Run(name, func(t *testing.T) {
			ew := setupEncrypted(t, onMosquitto, nil)
			res, err := ew.run(true)
			if err != nil {
				t.Fatal(err)
			}
			if ew.dev.FirmwareVersion() != 4 || res.Phases["key"] == 0 {
				t.Fatalf("version %d, phases %v", ew.dev.FirmwareVersion(), res.Phases)
			}
			if res.Verdict != updateserver.Verified || res.Signer != "mup-1" {
				t.Errorf("verdict %q signed by %q, want verified by mup-1", res.Verdict, res.Signer)
			}
			topic := "yang/update/image/mup-1"
			testenv.WaitFor(t, "the broker to relay every slice", func() bool { return len(ew.cap.On(topic)) >= res.Slices })
			if at := ew.cap.FindWindow(ew.image, 32); at >= 0 {
				t.Fatalf("the broker saw the image bytes at offset %d", at)
			}
			// The control: a plaintext update of a version 5 image is
			// visible to the same broker.
			ew.image = append(bytes.Clone(ew.image[:1000]), make([]byte, 100)...)
			rand.Read(ew.image[1000:])
			signed, err := mup.SignVendorManifest(mup.NewVendorManifest(ew.image, "myno-app", 5, 4, 0), ew.vendorKey)
			if err != nil {
				t.Fatal(err)
			}
			ew.signed = signed
			if res, err := ew.run(false); err != nil || res.Verdict != updateserver.Verified {
				t.Fatalf("plaintext update: %v, verdict %q", err, res.Verdict)
			}
			testenv.WaitFor(t, "the plaintext slices", func() bool { return ew.cap.FindWindow(ew.image, 32) >= 0 })
		})
	}
}

// A tampering broker flips a bit in one sealed slice: the device refuses
// it every time it comes, never acks past it, and the update fails before
// the image is checked; the device keeps its version.
func TestTamperedSealedSliceIsRefused(t *testing.T) {
	ew := setupEncrypted(t, false, nil)
	ew.hook.SetTamper(func(topic string, p []byte) []byte {
		if topic == "yang/update/image/mup-1" && len(p) > 40 && p[3] == 5 && p[0] == 0 && p[1] == 0 && p[2] == 0 {
			p[40] ^= 1 // slice 5
		}
		return p
	})
	_, err := ew.run(true)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "transfer" || !strings.Contains(err.Error(), "slice 5") {
		t.Fatalf("update through a tampering broker: %v", err)
	}
	if ew.dev.RefusedSlices() == 0 || ew.dev.FirmwareVersion() != 3 {
		t.Errorf("refused slices %d, version %d", ew.dev.RefusedSlices(), ew.dev.FirmwareVersion())
	}
}

// A device that requires encrypted firmware refuses a plaintext transfer.
func TestPlaintextRefusedWhenEncryptionIsRequired(t *testing.T) {
	ew := setupEncrypted(t, false, func(c *devices.MUPConfig) { c.RequireEncryptedFirmware = true })
	_, err := ew.run(false)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "transfer" {
		t.Fatalf("plaintext update: %v", err)
	}
	if ew.dev.RefusedSlices() == 0 {
		t.Error("no slice refused")
	}
	if _, err := ew.run(true); err != nil {
		t.Fatalf("the encrypted update after it: %v", err)
	}
	if ew.dev.FirmwareVersion() != 4 {
		t.Errorf("version %d", ew.dev.FirmwareVersion())
	}
}

// staleNonce sends the firmware key for another update attempt: the token
// nonce it names is not the one of this update.
type staleNonce struct{ updateserver.KeyChannel }

func (s staleNonce) SendFirmwareKey(ctx context.Context, appID string, version uint32, nonce, key []byte) error {
	return s.KeyChannel.SendFirmwareKey(ctx, appID, version, bytes.Repeat([]byte{7}, len(nonce)), key)
}

// A firmware key is bound to the update attempt (the token's nonce): a key
// for another attempt is not used, and the sealed slices are refused.
func TestFirmwareKeyIsBoundToTheAttempt(t *testing.T) {
	ew := setupEncrypted(t, false, func(c *devices.MUPConfig) { c.RequireEncryptedFirmware = true })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: ew.signed, Image: ew.image, ServerKey: ew.serverKey,
		NETCONF: ew.s, MQTTURL: ew.url, MQTTCredentials: ew.updater, Flow: updateserver.Windowed, AckTimeout: 300 * time.Millisecond, MaxRetries: 2,
		DeviceCA: ew.ca,
		OpenKeyChannel: func(ctx context.Context, uuid string) (updateserver.KeyChannel, error) {
			ch, err := ew.openKeyChannel(ctx, uuid)
			if err != nil {
				return nil, err
			}
			return staleNonce{ch}, nil
		}})
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "transfer" {
		t.Fatalf("update with a key for another attempt: %v", err)
	}
	if ew.dev.RefusedSlices() == 0 || ew.dev.FirmwareVersion() != 3 {
		t.Errorf("refused slices %d, version %d", ew.dev.RefusedSlices(), ew.dev.FirmwareVersion())
	}
}
