package systemtest_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
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

// A device whose first image does not come up (it boots its old version
// again) is retried after a backoff and updated by its second attempt;
// a device that refuses the update for what it is (its version) is not
// retried.
func TestCampaignRetriesADeviceThatFailedOnce(t *testing.T) {
	w, _ := setup(t, "")
	flaky := startMUPDevice(t, w.url, "flaky", devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10,
		VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey, FailedReboots: 1})
	addDevice(t, w, "newer", 9)
	cfg := campaignConfig(w, []string{"flaky", "newer"})
	cfg.Retries, cfg.RetryBackoff = 2, 100*time.Millisecond
	cfg.Update.RebootWait = time.Second
	var counts []updateserver.LiveCounts
	cfg.OnCounts = func(c updateserver.LiveCounts) { counts = append(counts, c) }
	results := updateserver.Campaign(context.Background(), cfg)
	if r := results[0]; r.Err != nil || r.Attempts != 2 || r.Result.Version != 4 {
		t.Errorf("flaky: %d attempts, %v, %+v", r.Attempts, r.Err, r.Result)
	}
	if n := flaky.FirmwareInstalls(); n != 1 || flaky.FirmwareVersion() != 4 {
		t.Errorf("flaky installed %d images, runs %d", n, flaky.FirmwareVersion())
	}
	var ue *updateserver.UpdateError
	if r := results[1]; !errors.As(r.Err, &ue) || ue.State != mup.StateInvalidVersion || r.Attempts != 1 {
		t.Errorf("newer: %d attempts, %v", r.Attempts, r.Err)
	}
	// The live counts showed the retry, and ended with one done, one failed.
	if !slices.ContainsFunc(counts, func(c updateserver.LiveCounts) bool { return c.Retrying == 1 }) {
		t.Errorf("no count showed a device waiting for its retry: %+v", counts)
	}
	if last := counts[len(counts)-1]; last != (updateserver.LiveCounts{Done: 1, Failed: 1}) {
		t.Errorf("last counts %+v", last)
	}
}

// abortWorld is a world with devices that update and devices that fail
// at once (they run a newer version), in the order of pattern: '+' for
// one that updates, '-' for one that fails.
func abortWorld(t *testing.T, pattern string) (*world, []string) {
	t.Helper()
	w, _ := setup(t, "")
	var uuids []string
	for i, c := range pattern {
		uuid := fmt.Sprintf("d%02d", i)
		version := uint32(3)
		if c == '-' {
			version = 9
		}
		addDevice(t, w, uuid, version)
		uuids = append(uuids, uuid)
	}
	return w, uuids
}

// The abort threshold stops the campaign at the first device whose
// outcome puts the failures at or over the percentage, once the minimum
// have finished: one at a time, exactly there; with updates in flight,
// those already started finish and nothing more starts.
func TestCampaignAbortThreshold(t *testing.T) {
	const pattern = "++-+-+--++++"
	// With 45 % after 5: 2 failed of 5 (40 %), of 6 (33 %), 3 of 7
	// (43 %), then 4 of 8 (50 %): it stops after d07.
	w, uuids := abortWorld(t, pattern)
	cfg := campaignConfig(w, uuids)
	cfg.Parallel, cfg.AbortPercent, cfg.AbortMinimum = 1, 45, 5
	results := updateserver.Campaign(context.Background(), cfg)
	for i, r := range results {
		switch {
		case i <= 7 && r.Skipped, i > 7 && !r.Skipped:
			t.Errorf("%s (%d): skipped %v, %v", r.UUID, i, r.Skipped, r.Err)
		case i > 7 && !strings.Contains(r.Err.Error(), "4 of 8 devices failed (50.0%, the abort threshold is 45.0% after 5)"):
			t.Errorf("%s: %v", r.UUID, r.Err)
		}
	}

	w, uuids = abortWorld(t, pattern)
	cfg = campaignConfig(w, uuids)
	cfg.Parallel, cfg.AbortPercent, cfg.AbortMinimum = 3, 45, 5
	results = updateserver.Campaign(context.Background(), cfg)
	started := 0
	for _, r := range results {
		if !r.Skipped {
			started++
		}
	}
	if c := updateserver.Tally(results); c.Skipped == 0 || started > 8+cfg.Parallel-1 {
		t.Errorf("with 3 in flight: %d started, %+v", started, c)
	}
}

// Rollout groups: a group starts only after the one before it finished
// with enough of its devices updated; a group under the threshold stops
// the campaign, and the later groups are skipped, naming why.
func TestCampaignRolloutGroupsGatedOnSuccess(t *testing.T) {
	w, uuids := abortWorld(t, "+++-++")
	var mu sync.Mutex
	finished := map[string]time.Time{}
	cfg := campaignConfig(w, uuids)
	cfg.Groups = []float64{20, 50, 100} // 2, then 1, then 3 devices
	cfg.Parallel = 4
	cfg.OnResult = func(r updateserver.DeviceResult) { mu.Lock(); finished[r.UUID] = time.Now(); mu.Unlock() }
	results := updateserver.Campaign(context.Background(), cfg)
	wantGroups := []int{1, 1, 2, 3, 3, 3}
	for i, r := range results {
		if r.Group != wantGroups[i] {
			t.Errorf("%s in group %d, want %d", r.UUID, r.Group, wantGroups[i])
		}
	}
	// Group 2 (d02) started after group 1 finished; group 3 (d03 fails)
	// started after group 2.
	if !results[2].StartedAt.After(finished["d00"]) || !results[2].StartedAt.After(finished["d01"]) ||
		!results[3].StartedAt.After(finished["d02"]) {
		t.Errorf("a group started before the one before it finished: %+v %v", results, finished)
	}
	if c := updateserver.Tally(results); c.Failed != 1 || c.Skipped != 0 {
		t.Errorf("all groups over the threshold until the last: %+v", c)
	}

	// Now group 2 fails: group 3 never starts.
	w, uuids = abortWorld(t, "++-+++")
	cfg = campaignConfig(w, uuids)
	cfg.Groups = []float64{20, 50, 100}
	results = updateserver.Campaign(context.Background(), cfg)
	for _, r := range results[3:] {
		if !r.Skipped || !strings.Contains(r.Err.Error(), "rollout group 2 updated 0 of 1 devices (0%), under the 100% the next group needs") {
			t.Errorf("%s after a failed group: %+v", r.UUID, r)
		}
	}
	for _, uuid := range uuids[3:] {
		if v := firmwareOf(t, w, uuid); v != "3" {
			t.Errorf("%s, in a group that should not start, runs %s", uuid, v)
		}
	}
}

// --rate: updates start no faster than the rate, and not much slower
// when workers are free (within 10 %).
func TestCampaignRate(t *testing.T) {
	w, uuids := abortWorld(t, "+++++++++")
	cfg := campaignConfig(w, uuids)
	cfg.Parallel, cfg.Rate = len(uuids), 240 // 4 a second
	results := updateserver.Campaign(context.Background(), cfg)
	var starts []time.Time
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.UUID, r.Err)
		}
		starts = append(starts, r.StartedAt)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	span := starts[len(starts)-1].Sub(starts[0])
	perMinute := float64(len(starts)-1) / span.Minutes()
	if perMinute > 240*1.1 || perMinute < 240*0.9 {
		t.Errorf("%d starts over %s: %.0f a minute, want 240 within 10 %%", len(starts), span, perMinute)
	}
}

// firmwareOf is the version the bridge shows for uuid.
func firmwareOf(t *testing.T, w *world, uuid string) string {
	t.Helper()
	d, err := updateserver.NewClient(w.s).Device(uuid)
	if err != nil {
		t.Fatal(err)
	}
	return d.FirmwareVersion
}

// A worker whose connection to the bridge is refused redials with
// backoff instead of failing the devices in its queue.
func TestCampaignWorkerRedialsARefusedConnection(t *testing.T) {
	w, uuids := abortWorld(t, "++++")
	cfg := campaignConfig(w, uuids)
	closed := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)) // nothing listens
	var mu sync.Mutex
	refused := 0
	bridgeDial := cfg.Dial
	cfg.Dial = func(ctx context.Context) (*gonetconf.Session, error) {
		mu.Lock()
		first := refused < 3
		if first {
			refused++
		}
		mu.Unlock()
		if first {
			return gonetconf.DialSSH(closed, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: time.Second})
		}
		return bridgeDial(ctx)
	}
	results := updateserver.Campaign(context.Background(), cfg)
	for _, r := range results {
		if r.Err != nil || r.Attempts != 1 {
			t.Errorf("%s: %d attempts, %v", r.UUID, r.Attempts, r.Err)
		}
	}
	if refused != 3 {
		t.Errorf("%d connections refused, want 3", refused)
	}
}
