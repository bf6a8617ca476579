package systemtest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// issueDevice makes E2E device credentials for uuid under ca.
func issueDevice(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, uuid string) devices.E2EConfig {
	t.Helper()
	cert, key, err := e2e.Issue(ca, caKey, uuid, e2e.RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return devices.E2EConfig{CA: ca, Cert: cert, Key: key}
}

// The attack of issue 12: a client that answers a device's MUP rpcs can
// claim any outcome. Whoever answers for a device whose module declares a
// receipt must sign it with a key the operator's CA certified for that
// device: a device certificate from another CA, or no receipt at all, fails
// the update (on today's main both "succeeded"); the real device, beside
// them, is verified. On the embedded broker (open enrolment) and on
// Mosquitto (anonymous clients).
func TestForgedUpdateSuccessIsRefused(t *testing.T) {
	for _, onMosquitto := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "mosquitto"}[onMosquitto], func(t *testing.T) {
			url := ""
			if onMosquitto {
				url = testenv.StartMosquitto(t).URL()
			}
			b := startBridge(t, url, nil)
			if url == "" {
				url = b.BrokerURL()
			}
			ca, caKey, err := e2e.NewCA("operator CA", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			rogueCA, rogueKey, err := e2e.NewCA("operator CA", time.Hour) // the same name, another key
			if err != nil {
				t.Fatal(err)
			}
			vendorKey, _ := mup.GenerateKey()
			serverKey, _ := mup.GenerateKey()
			// Public keys: anyone may know them, and a forger that checks
			// manifests like a device answers every step as one would.
			cfg := devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 64 << 10, VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey}
			startMUPDeviceFrom(t, "mup-device-signed.jsonld", url, "forger-rogue-ca", cfg,
				func(d *devices.Device) error {
					return d.EnableE2E(issueDevice(t, rogueCA, rogueKey, "forger-rogue-ca"))
				})
			startMUPDeviceFrom(t, "mup-device-signed.jsonld", url, "forger-no-key", cfg)
			startMUPDeviceFrom(t, "mup-device-signed.jsonld", url, "real-device", cfg,
				func(d *devices.Device) error { return d.EnableE2E(issueDevice(t, ca, caKey, "real-device")) })
			s := dialBridge(t, b)
			image := make([]byte, 6000)
			rand.Read(image)
			signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendorKey)
			if err != nil {
				t.Fatal(err)
			}
			updater := creds(t, b, updateServerName, access.RoleUpdateServer)
			update := func(uuid string) (*updateserver.Result, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				return updateserver.Update(ctx, updateserver.UpdateConfig{UUID: uuid, VendorSigned: signed, Image: image, ServerKey: serverKey,
					NETCONF: s, MQTTURL: url, MQTTCredentials: updater, Flow: updateserver.Windowed, DeviceCA: ca})
			}
			for _, c := range []struct{ uuid, want string }{
				{"forger-rogue-ca", "certificate signed by unknown authority"},
				{"forger-no-key", "the reply carries none"},
			} {
				res, err := update(c.uuid)
				var ue *updateserver.UpdateError
				if !errors.As(err, &ue) || ue.Step != "receipt" || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("%s: %v, want a failure at step receipt saying %q", c.uuid, err, c.want)
				}
				if res.Verdict != "" {
					t.Errorf("%s: verdict %q", c.uuid, res.Verdict)
				}
			}
			res, err := update("real-device")
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != updateserver.Verified || res.Signer != "real-device" || res.Version != 4 {
				t.Fatalf("the real device: verdict %q signer %q version %d", res.Verdict, res.Signer, res.Version)
			}
		})
	}
}

// A device whose module declares no receipt cannot sign: its update is
// "unverified" and succeeds; with RequireReceipt it fails before anything
// reaches the device.
func TestUnverifiedUpdate(t *testing.T) {
	w, run := setup(t, "")
	res, err := run(updateserver.Windowed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != updateserver.Unverified || res.Signer != "" {
		t.Fatalf("verdict %q signer %q, want unverified", res.Verdict, res.Signer)
	}
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(w.image, "myno-app", 5, 4, 0), w.vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: signed, Image: w.image, ServerKey: w.serverKey,
		NETCONF: w.s, MQTTURL: w.url, MQTTCredentials: w.updater, RequireReceipt: true})
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "receipt" || !strings.Contains(err.Error(), updateserver.UnverifiedReason) {
		t.Fatalf("with RequireReceipt: %v", err)
	}
	if w.dev.FirmwareVersion() != 4 {
		t.Errorf("device version %d, want 4 (untouched by the refused update)", w.dev.FirmwareVersion())
	}
}

// A device that proved a device certificate on the E2E channel holds a
// key: if its module declares no receipt, the update stops before any
// firmware byte is published.
func TestDeviceWithAKeyMustSign(t *testing.T) {
	ew := setupEncryptedFrom(t, "mup-device.jsonld", false, nil)
	_, err := ew.run(true)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "receipt" || !strings.Contains(err.Error(), "declares no receipt") {
		t.Fatalf("update: %v", err)
	}
	if n := len(ew.cap.On("yang/update/image/mup-1")); n != 0 {
		t.Errorf("%d slices published", n)
	}
	if ew.dev.FirmwareVersion() != 3 {
		t.Errorf("version %d", ew.dev.FirmwareVersion())
	}
}

// A device that declares receipts needs a CA to check them: without one the
// update fails before anything reaches the device.
func TestReceiptNeedsACA(t *testing.T) {
	ew := setupEncrypted(t, false, nil)
	ew.ca = nil
	_, err := ew.run(false)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "receipt" || !strings.Contains(err.Error(), "no CA") {
		t.Fatalf("update: %v", err)
	}
	if ew.dev.FirmwareVersion() != 3 {
		t.Errorf("version %d", ew.dev.FirmwareVersion())
	}
}

// A campaign counts verified, unverified and failed devices apart: a
// device that signs, one that cannot, one that refuses (already at the
// version), and one whose answers are forged (a certificate of another CA).
func TestCampaignCountsVerdicts(t *testing.T) {
	w, _ := setup(t, "") // mup-1 cannot sign
	ca, caKey, err := e2e.NewCA("operator CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogueCA, rogueKey, err := e2e.NewCA("rogue CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cfg := devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey}
	startMUPDeviceFrom(t, "mup-device-signed.jsonld", w.url, "signs", cfg,
		func(d *devices.Device) error { return d.EnableE2E(issueDevice(t, ca, caKey, "signs")) })
	startMUPDeviceFrom(t, "mup-device-signed.jsonld", w.url, "forged", cfg,
		func(d *devices.Device) error { return d.EnableE2E(issueDevice(t, rogueCA, rogueKey, "forged")) })
	addDevice(t, w, "at-4", 4)
	c := campaignConfig(w, []string{"mup-1", "signs", "forged", "at-4"})
	c.Update.DeviceCA = ca
	results := updateserver.Campaign(context.Background(), c)
	got := updateserver.Tally(results)
	if want := (updateserver.Counts{Verified: 1, Unverified: 1, Failed: 2}); got != want {
		for _, r := range results {
			t.Logf("%s: %+v %v", r.UUID, r.Result, r.Err)
		}
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if results[1].Result.Verdict != updateserver.Verified || results[0].Result.Verdict != updateserver.Unverified {
		t.Errorf("verdicts %q %q", results[1].Result.Verdict, results[0].Result.Verdict)
	}
}
