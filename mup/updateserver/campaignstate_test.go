package updateserver_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/mup/updateserver"
)

// A journal written, cut by a kill in the middle of a line, and opened
// again gives each device's last entry; the cut line is dropped from the
// file, so the next line starts clean. Another campaign's journal is
// refused.
func TestStateFileResumes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "campaign.state")
	header := updateserver.NewStateHeader(updateserver.UpdateConfig{Image: []byte("image"), VendorSigned: []byte("manifest")})
	sf, entries, err := updateserver.OpenState(path, header)
	if err != nil || len(entries) != 0 {
		t.Fatalf("new: %v %v", entries, err)
	}
	steps := []error{
		sf.Started("a", 1),
		sf.Finished(updateserver.DeviceResult{UUID: "a", Attempts: 1, Result: &updateserver.Result{Version: 4, Verdict: updateserver.Verified, Signer: "a"}}),
		sf.Started("b", 1),
		sf.Finished(updateserver.DeviceResult{UUID: "b", Attempts: 1, Err: errors.New("no answer")}),
		sf.Started("b", 2),
		sf.Started("c", 1),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"uuid":"c","state":"do`) // killed while writing
	f.Close()

	sf, entries, err = updateserver.OpenState(path, header)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": updateserver.StateDone, "b": updateserver.StateStarted, "c": updateserver.StateStarted}
	for uuid, state := range want {
		if entries[uuid].State != state {
			t.Errorf("%s: %+v, want %s", uuid, entries[uuid], state)
		}
	}
	if e := entries["a"]; e.Version != 4 || e.Verdict != updateserver.Verified || e.Attempt != 1 {
		t.Errorf("a: %+v", e)
	}
	if e := entries["b"]; e.Attempt != 2 {
		t.Errorf("b: %+v", e)
	}
	if err := sf.Finished(updateserver.DeviceResult{UUID: "c", Attempts: 1, Result: &updateserver.Result{Version: 4}}); err != nil {
		t.Fatal(err)
	}
	sf.Close()
	data, _ := os.ReadFile(path)
	if _, entries, valid, err := updateserver.DecodeState(data); err != nil || valid != len(data) || entries["c"].State != updateserver.StateDone {
		t.Fatalf("after the cut line: %v %d of %d %+v\n%s", err, valid, len(data), entries["c"], data)
	}

	other := updateserver.NewStateHeader(updateserver.UpdateConfig{Image: []byte("another image"), VendorSigned: []byte("manifest")})
	if _, _, err := updateserver.OpenState(path, other); !errors.Is(err, updateserver.ErrOtherCampaign) {
		t.Fatalf("another campaign's journal: %v", err)
	}
}

func TestDecodeStateRefusesWhatIsNotAJournal(t *testing.T) {
	for name, data := range map[string]string{
		"empty":        "",
		"no header":    `{"uuid":"a","state":"done","at":"2026-12-02T00:00:00Z"}` + "\n",
		"bad record":   `{"kind":"myno-campaign/1"}` + "\n" + `{"uuid":"a","state":"maybe"}` + "\n",
		"no uuid":      `{"kind":"myno-campaign/1"}` + "\n" + `{"state":"done"}` + "\n",
		"not json":     "hello\n",
		"a long line":  `{"kind":"myno-campaign/1"}` + "\n" + strings.Repeat("x", 70000) + "\n",
		"header alone": `{"kind":"myno-campaign/1"`,
	} {
		if _, _, _, err := updateserver.DecodeState([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"kind":"myno-campaign/1","imageSha256":"ab"}` + "\n" + `{"uuid":"a","state":"done","version":4}` + "\n"))
	f.Add([]byte(`{"kind":"myno-campaign/1"}` + "\n" + `{"uuid":"a","state":"started"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, entries, valid, err := updateserver.DecodeState(data)
		if err != nil {
			return
		}
		if valid <= 0 || valid > len(data) || data[valid-1] != '\n' {
			t.Fatalf("valid %d of %d", valid, len(data))
		}
		for uuid, e := range entries {
			if uuid != e.UUID || e.UUID == "" {
				t.Fatalf("entry %q: %+v", uuid, e)
			}
		}
	})
}

func TestGroupSizes(t *testing.T) {
	for _, tc := range []struct {
		n        int
		percents []float64
		want     []int
	}{
		{100, nil, []int{100}},
		{100, []float64{1, 10, 100}, []int{1, 10, 100}},
		{50, []float64{1, 10, 100}, []int{1, 5, 50}},
		{6, []float64{20, 50, 100}, []int{2, 3, 6}},
		{3, []float64{1, 2, 100}, []int{1, 2, 3}}, // each group at least one more
		{1, []float64{1, 10, 100}, []int{1}},
		{0, []float64{50, 100}, []int{0}},
	} {
		if got := updateserver.GroupSizes(tc.n, tc.percents); !slices.Equal(got, tc.want) {
			t.Errorf("GroupSizes(%d, %v) = %v, want %v", tc.n, tc.percents, got, tc.want)
		}
	}
	for _, bad := range [][]float64{{0, 100}, {10, 5, 100}, {10, 50}, {50, 150}} {
		if updateserver.CheckGroups(bad) == nil {
			t.Errorf("CheckGroups(%v) accepted", bad)
		}
	}
}
