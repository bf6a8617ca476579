package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
)

// dev is a saved device of shape for the store tests.
func dev(uuid, shape string) persistedDevice {
	return persistedDevice{UUID: uuid, Shape: shape, RegisteredAt: time.Date(2026, 12, 3, 1, 2, 3, 4, time.UTC)}
}

// stateOf renders a store's devices and descriptions, to compare.
func stateOf(st storeState) string {
	var out []string
	for _, uuid := range slices.Sorted(maps.Keys(st.devices)) {
		d := st.devices[uuid]
		out = append(out, uuid+"="+d.Shape+"/"+d.Firmware)
	}
	for _, shape := range slices.Sorted(maps.Keys(st.descriptions)) {
		out = append(out, shape+":"+st.descriptions[shape])
	}
	return strings.Join(out, " ")
}

func mustOpenStore(t *testing.T, dir string) *store {
	t.Helper()
	s, err := openStore(dir, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCommit(t *testing.T, s *store, rec journalRecord) {
	t.Helper()
	if err := s.commit(rec); err != nil {
		t.Fatal(err)
	}
}

// A save appends what changed; a description is stored once per shape
// and dropped with the last device of its shape; all of it comes back.
func TestStoreSavesWhatChanged(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("a", "S1"), dev("b", "S1")}, Descriptions: map[string]string{"S1": "desc-1"}})
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("c", "S2")}, Descriptions: map[string]string{"S2": "desc-2"}})
	fw := dev("a", "S1")
	fw.Firmware = "7"
	mustCommit(t, s, journalRecord{Put: []persistedDevice{fw}})
	if got := s.written().LastSaveBytes; got > 200 {
		t.Errorf("a firmware version took %d bytes", got)
	}
	// A device of an unknown shape without its description is refused:
	// the registry would not load again.
	if err := s.commit(journalRecord{Put: []persistedDevice{dev("d", "S3")}}); err == nil {
		t.Fatal("a device without a description was saved")
	}
	// c leaves S2, b moves to it: S1 stays for a.
	mustCommit(t, s, journalRecord{Delete: []string{"c"}, Put: []persistedDevice{dev("b", "S2")}})
	want := "a=S1/7 b=S2/ S1:desc-1 S2:desc-2"
	if got := stateOf(s.state); got != want {
		t.Fatalf("state %s, want %s", got, want)
	}
	s.close()
	s = mustOpenStore(t, dir)
	if got := stateOf(s.state); got != want {
		t.Fatalf("after reopening: %s, want %s", got, want)
	}
	// The last device of S2 goes, and so does S2's description.
	mustCommit(t, s, journalRecord{Delete: []string{"b"}})
	s.close()
	s = mustOpenStore(t, dir)
	defer s.close()
	if got := stateOf(s.state); got != "a=S1/7 S1:desc-1" {
		t.Fatalf("after the last device of S2: %s", got)
	}
}

// When the journal outgrows the snapshot, the state becomes the next
// generation's snapshot and the journal starts again; nothing is lost,
// and a reader without the lock (myno acl export) always reads a whole
// state while it happens.
func TestStoreCompacts(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	s.compactAt = 1 // compact whenever the journal is as large as the snapshot
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("d-000", "S")}, Descriptions: map[string]string{"S": strings.Repeat("x", 2000)}})

	var wg sync.WaitGroup
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			saved, err := readSaved(dir)
			if err == nil && len(saved) < last {
				err = fmt.Errorf("read %d devices after %d", len(saved), last)
			}
			if err != nil {
				readErr <- err
				return
			}
			last = len(saved)
		}
	}()
	const n = 300
	for i := 1; i < n; i++ {
		mustCommit(t, s, journalRecord{Put: []persistedDevice{dev(fmt.Sprintf("d-%03d", i), "S")}})
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-readErr:
		t.Fatalf("reader: %v", err)
	default:
	}
	st := s.written()
	t.Logf("%d saves, %d bytes; %d compactions, %d bytes", st.Saves, st.JournalBytes, st.Compactions, st.SnapshotBytes)
	if st.Compactions == 0 {
		t.Fatal("no compaction")
	}
	// Each byte appended is rewritten about once more, not n times.
	if st.SnapshotBytes > 3*st.JournalBytes+int64(4*2000) {
		t.Errorf("snapshots %d bytes for %d bytes of saves", st.SnapshotBytes, st.JournalBytes)
	}
	want := stateOf(s.state)
	s.close()
	s = mustOpenStore(t, dir)
	defer s.close()
	if got := stateOf(s.state); got != want || len(s.state.devices) != n {
		t.Fatalf("after compactions: %d devices\n%s\nwant\n%s", len(s.state.devices), got, want)
	}
	if s.gen < 2 {
		t.Errorf("generation %d", s.gen)
	}
}

// A save cut off by a crash (a journal line without its end) was never
// answered: it is dropped, and the journal carries on after it. A line
// that is bad anywhere else is damage: the bridge stops, naming the file.
func TestStoreJournalDamage(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("a", "S1")}, Descriptions: map[string]string{"S1": "desc-1"}})
	s.close()
	_, journal := storePaths(dir)
	good, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	torn := append(bytes.Clone(good), `{"put":[{"uuid":"b","shape":"S1","registeredAt":"2026-`...)
	if err := os.WriteFile(journal, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir)
	if got := stateOf(s.state); got != "a=S1/ S1:desc-1" {
		t.Fatalf("after a torn save: %s", got)
	}
	if data, _ := os.ReadFile(journal); !bytes.Equal(data, good) {
		t.Fatalf("the torn save was not cut off:\n%s", data)
	}
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("c", "S1")}})
	s.close()
	s = mustOpenStore(t, dir)
	if got := stateOf(s.state); got != "a=S1/ c=S1/ S1:desc-1" {
		t.Fatalf("a save after the torn one: %s", got)
	}
	s.close()

	// Damage in the middle of the journal.
	data, _ := os.ReadFile(journal)
	lines := bytes.SplitAfter(data, []byte("\n"))
	damaged := slices.Concat(lines[0], []byte("{\"put\":[{\"uu\x00\x00\n"), lines[1], lines[2])
	if err := os.WriteFile(journal, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(dir, testenv.Logger()); err == nil || !strings.Contains(err.Error(), journal) {
		t.Fatalf("a damaged journal: %v, want an error naming %s", err, journal)
	}
	if after, _ := os.ReadFile(journal); !bytes.Equal(after, damaged) {
		t.Error("the damaged journal was changed")
	}
}

// A snapshot or journal that is not the bridge's stops it, naming the
// file; a journal left by a compaction that stopped half-way (older than
// the snapshot) is replaced, one newer than the snapshot is damage.
func TestStoreRefusesWhatItDidNotWrite(t *testing.T) {
	for _, content := range []string{"not json", "null", "{}", `{"version": 2, "devices": []}`,
		`{"version": 3, "generation": 1, "devices": [{"uuid": "x", "shape": "nope"}]}`} {
		dir := t.TempDir()
		snap, _ := storePaths(dir)
		if err := os.WriteFile(snap, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := openStore(dir, testenv.Logger()); err == nil || !strings.Contains(err.Error(), snap) {
			t.Errorf("snapshot %s: %v, want an error naming the file", content, err)
		}
		if _, err := readSaved(dir); err == nil {
			t.Errorf("snapshot %s: read", content)
		}
	}

	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("a", "S1")}, Descriptions: map[string]string{"S1": "desc-1"}})
	s.close()
	_, journal := storePaths(dir)
	data, _ := os.ReadFile(journal)
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{`{"version":3,"generation":0}`, false},
		{`{"version":3,"generation":2}`, false}, // newer than the snapshot
		{`garbage`, false},
	} {
		_, rest, _ := bytes.Cut(data, []byte("\n"))
		if err := os.WriteFile(journal, slices.Concat([]byte(tc.header+"\n"), rest), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := openStore(dir, testenv.Logger()); err == nil || !strings.Contains(err.Error(), journal) {
			t.Errorf("journal header %s: %v, want an error naming the file", tc.header, err)
		}
	}

	// A compaction that wrote the snapshot of generation 2 and stopped:
	// the journal of generation 1 is in the snapshot already.
	if err := os.WriteFile(journal, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir)
	if err := s.compact(); err != nil {
		t.Fatal(err)
	}
	s.close()
	if err := os.WriteFile(journal, data, 0o600); err != nil { // generation 1 again
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir)
	defer s.close()
	if got := stateOf(s.state); got != "a=S1/ S1:desc-1" {
		t.Fatalf("after a half-done compaction: %s", got)
	}
	if now, _ := os.ReadFile(journal); !bytes.HasPrefix(now, []byte(`{"version":3,"generation":2}`)) {
		t.Errorf("journal not restarted for generation 2: %s", now)
	}

	// A journal without its snapshot.
	lone := t.TempDir()
	_, j := storePaths(lone)
	if err := os.WriteFile(j, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStore(lone, testenv.Logger()); err == nil || !strings.Contains(err.Error(), j) {
		t.Errorf("journal without snapshot: %v", err)
	}
}

// One bridge per data directory: another one is told, within about a
// second, that the directory is in use.
func TestStoreIsOneBridgesAtATime(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	start := time.Now()
	_, err := openStore(dir, testenv.Logger())
	if err == nil || !strings.Contains(err.Error(), "in use by another bridge process") {
		t.Fatalf("second open: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refused after %s", d)
	}
	s.close()
	s = mustOpenStore(t, dir)
	s.close()
}

// registry.json, the format before the snapshot and journal, is imported
// once, as it is (devices the start-up checks refuse included: the bridge
// keeps those as invalid), and renamed registry.json.imported.
func TestStoreImportsRegistryJSON(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	old := persisted{Version: registryVersion, Descriptions: map[string]string{"S1": "desc-1", "S2": "desc-2"},
		Devices: []persistedDevice{{UUID: "a", Shape: "S1", RegisteredAt: at, Firmware: "3"}, {UUID: "b", Shape: "S2", RegisteredAt: at}}}
	data, _ := json.Marshal(old)
	legacy := filepath.Join(dir, registryFile)
	if err := os.WriteFile(legacy, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := openStore(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := stateOf(s.state); got != "a=S1/3 b=S2/ S1:desc-1 S2:desc-2" {
		t.Fatalf("imported: %s", got)
	}
	s.close()
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("registry.json still there: %v", err)
	}
	if kept, _ := os.ReadFile(legacy + importedSuffix); !bytes.Equal(kept, data) {
		t.Error("registry.json.imported is not the old file")
	}
	if !strings.Contains(logs.String(), "registry imported") {
		t.Errorf("no log of the import:\n%s", logs.String())
	}
	// Imported once: a registry.json put back is not imported again.
	if err := os.WriteFile(legacy, []byte("null"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = mustOpenStore(t, dir)
	defer s.close()
	if got := stateOf(s.state); got != "a=S1/3 b=S2/ S1:desc-1 S2:desc-2" {
		t.Fatalf("after reopening: %s", got)
	}
}

// A failed save leaves the journal as it was: an append cut short is
// undone by the compaction that comes first in the next save.
func TestStoreAfterAFailedSave(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenStore(t, dir)
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("a", "S1")}, Descriptions: map[string]string{"S1": "desc-1"}})
	_, journal := storePaths(dir)
	// Someone else appends half a line: the store notices the size.
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"put":[{"uuid":"x"`)
	f.Close()
	if err := s.commit(journalRecord{Put: []persistedDevice{dev("b", "S1")}}); err == nil {
		t.Fatal("saved into a journal someone else changed")
	}
	mustCommit(t, s, journalRecord{Put: []persistedDevice{dev("c", "S1")}})
	if s.written().Compactions != 1 {
		t.Errorf("%d compactions, want the one before the save after the failed one", s.written().Compactions)
	}
	s.close()
	s = mustOpenStore(t, dir)
	defer s.close()
	if got := stateOf(s.state); got != "a=S1/ c=S1/ S1:desc-1" {
		t.Fatalf("after a failed save: %s", got)
	}
}
