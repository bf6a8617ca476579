package systemtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// A `myno update` campaign with --state, killed (SIGKILL) while an update
// is in flight, resumes when the same command runs again: the devices it
// updated are not updated again, the one in flight is asked its version
// first, the others are updated; every device installs the image once.
// The device whose transfer was cut holds its update slot until the
// transfer stalls (26_SAVESLOT-IN-USE, retried with backoff).
func TestCampaignKilledAndResumedUpdatesNoDeviceTwice(t *testing.T) {
	bin := buildMyno(t)
	w, _ := setup(t, "")
	fleet := map[string]*devices.Device{"mup-1": w.dev}
	uuids := []string{"mup-1"}
	for i := range 6 {
		uuid := fmt.Sprintf("r%d", i)
		fleet[uuid] = startMUPDevice(t, w.url, uuid, devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10,
			VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey, TransferStall: time.Second})
		uuids = append(uuids, uuid)
	}
	dir := t.TempDir()
	file := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	keyFile := filepath.Join(dir, "update-server.key")
	if err := mup.WriteKey(keyFile, w.serverKey); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "campaign.state")
	args := []string{"update", "--bridge", w.b.NetconfAddr(), "--user", "admin", "--password", "pw", "--no-agent",
		"--known-hosts", filepath.Join(dir, "known_hosts"), "--mqtt-url", w.url,
		"--mqtt-username", w.updater.Username, "--mqtt-password-file", file("mqtt.password", []byte(w.updater.Password)),
		"--image", file("fw.bin", w.image), "--manifest", file("fw.cose", w.signed), "--key", keyFile, "--ca-dir", dir,
		"--parallel", "1", "--rate", "300/min", "--retries", "5", "--retry-backoff", "500ms", "--state", state, "--json", "--quiet"}
	for _, u := range uuids {
		args = append(args, "--device", u)
	}

	// The first run: killed once three devices are done and the fourth
	// has started.
	first := startProcess(t, bin, args)
	lastLine := func() (done int, last updateserver.StateEntry) {
		data, _ := os.ReadFile(state)
		lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
		for _, l := range lines[1:] {
			var e updateserver.StateEntry
			if json.Unmarshal(l, &e) == nil && e.State == updateserver.StateDone {
				done++
			}
		}
		_ = json.Unmarshal(lines[len(lines)-1], &last)
		return done, last
	}
	testenv.WaitFor(t, "three devices done and the fourth started", func() bool {
		done, last := lastLine()
		return done == 3 && last.State == updateserver.StateStarted
	})
	_ = first.Process.Kill()
	_ = first.Wait()
	doneBefore, inFlight := lastLine()
	t.Logf("killed with %d done, %s in flight", doneBefore, inFlight.UUID)

	// The same command again finishes the campaign.
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("resumed campaign: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "resuming the campaign of "+state) {
		t.Errorf("the resumed run does not say so:\n%s", stderr.String())
	}
	var report struct {
		Counts  updateserver.Counts
		Devices []struct {
			UUID, Result string
			Resumed      bool
			Attempts     int
			Version      uint32
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("--json: %v\n%s", err, stdout.String())
	}
	if report.Counts.Unverified+report.Counts.Verified != len(uuids) || len(report.Devices) != len(uuids) {
		t.Errorf("report: %s", stdout.String())
	}
	resumed := 0
	for _, d := range report.Devices {
		if d.Resumed {
			resumed++
		}
		if d.Version != 4 {
			t.Errorf("%s: %+v", d.UUID, d)
		}
	}
	if resumed != 3 {
		t.Errorf("%d devices reported as updated by the earlier run, want 3:\n%s", resumed, stdout.String())
	}
	for uuid, d := range fleet {
		if n, v := d.FirmwareInstalls(), d.FirmwareVersion(); n != 1 || v != 4 {
			t.Errorf("%s installed %d images and runs version %d; want one install of 4", uuid, n, v)
		}
	}
}
