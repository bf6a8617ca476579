package systemtest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// addDevice starts one more MUP device on the world's broker, with the
// world's keys, at the given version.
func addDevice(t testing.TB, w *world, uuid string, version uint32) *devices.Device {
	t.Helper()
	return startMUPDevice(t, w.url, uuid, devices.MUPConfig{AppID: "myno-app", Version: version, SlotSize: 256 << 10,
		VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey})
}

func campaignConfig(w *world, uuids []string) updateserver.CampaignConfig {
	return updateserver.CampaignConfig{Devices: uuids, Parallel: 2,
		Dial: func(context.Context) (*gonetconf.Session, error) {
			return gonetconf.DialSSH(w.b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
		},
		Update: updateserver.UpdateConfig{VendorSigned: w.signed, Image: w.image, ServerKey: w.serverKey, MQTTURL: w.url, MQTTCredentials: w.updater, Flow: updateserver.Windowed}}
}

func TestCampaign(t *testing.T) {
	w, _ := setup(t, "")
	addDevice(t, w, "mup-2", 3)
	addDevice(t, w, "mup-3", 4) // already runs version 4: refused with 25
	uuids, err := updateserver.NewClient(w.s).DevicesOfCategory(categoryOf(t, w))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(uuids)
	if !slices.Equal(uuids, []string{"mup-1", "mup-2", "mup-3"}) {
		t.Fatalf("devices of the category: %v", uuids)
	}
	var seen []string
	cfg := campaignConfig(w, uuids)
	done := make(chan string, len(uuids))
	cfg.OnResult = func(r updateserver.DeviceResult) { done <- r.UUID }
	results := updateserver.Campaign(context.Background(), cfg)
	close(done)
	for u := range done {
		seen = append(seen, u)
	}
	if len(seen) != 3 {
		t.Errorf("OnResult for %v", seen)
	}
	for i, r := range results {
		var ue *updateserver.UpdateError
		switch r.UUID {
		case "mup-1", "mup-2":
			if r.Err != nil || r.Result.Version != 4 {
				t.Errorf("%d %s: %+v %v", i, r.UUID, r.Result, r.Err)
			}
		case "mup-3":
			if !errors.As(r.Err, &ue) || ue.State != mup.StateInvalidVersion {
				t.Errorf("mup-3: %v", r.Err)
			}
		}
	}
}

// Once MaxFailures updates failed, the rest of the campaign is skipped.
func TestCampaignStopsAfterMaxFailures(t *testing.T) {
	w, _ := setup(t, "")
	addDevice(t, w, "old-a", 9)
	addDevice(t, w, "old-b", 9)
	cfg := campaignConfig(w, []string{"old-a", "old-b", "mup-1"})
	cfg.Parallel, cfg.MaxFailures = 1, 2
	results := updateserver.Campaign(context.Background(), cfg)
	if results[0].Err == nil || results[1].Err == nil || results[0].Skipped || results[1].Skipped {
		t.Errorf("the two old devices: %+v %+v", results[0], results[1])
	}
	if !results[2].Skipped || !errors.Is(results[2].Err, updateserver.ErrCampaignStopped) {
		t.Errorf("mup-1 after two failures: %+v", results[2])
	}
	if w.dev.FirmwareVersion() != 3 {
		t.Errorf("mup-1 was updated after the campaign stopped")
	}
}

// categoryOf reads the category the bridge shows for mup-1.
func categoryOf(t *testing.T, w *world) string {
	t.Helper()
	dev, err := updateserver.NewClient(w.s).Device("mup-1")
	if err != nil {
		t.Fatal(err)
	}
	if dev.Category == "" {
		t.Fatalf("no category for mup-1: %+v", dev)
	}
	return dev.Category
}
