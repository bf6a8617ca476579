package bridge

// The registry on disk (issue 12): a snapshot and a journal, so that a save
// costs what changed, not the whole registry.
//
//	registry.snapshot.json  {"version":3,"generation":G,"descriptions":{shape: description},"devices":[...]}
//	registry.journal        {"version":3,"generation":G}        first line
//	                        {"put":[...],"delete":[...],"descriptions":{...},"drop":[...]}   one line per save
//	registry.lock           held (flock) by the bridge that owns the data directory
//
// A save appends one line with the devices that changed, the description
// of a shape stored for the first time and the shapes no device uses any
// more, and syncs it. When the journal has grown as large as the snapshot
// (and at least compactMin), the state is written as a new snapshot of the
// next generation and the journal starts again: each byte appended is
// rewritten at most about once more, so a save costs O(changed devices),
// amortised. A line that is cut off at the journal's end (a crash during
// a save that was therefore never answered OK) is dropped; a bad line
// anywhere else stops the bridge, naming the file.
//
// Readers take no lock: myno acl export reads the registry of a running
// bridge (bbolt, which the embedded broker uses, locks its file against
// every other process, readers included). A reader that finds a journal of
// a newer generation than the snapshot it read (a compaction in between)
// reads again; a journal of an older generation is one a compaction
// replaced the snapshot of, whose records the snapshot holds.
//
// registry.json (registryVersion 2, one file rewritten whole on every
// save) is imported once and renamed registry.json.imported.

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/myno-bridge/myno/internal/atomicfile"
)

const (
	registryFile = "registry.json" // registryVersion 2, imported once
	snapshotFile = "registry.snapshot.json"
	journalFile  = "registry.journal"
	lockFile     = "registry.lock"
	// importedSuffix is appended to registry.json once imported.
	importedSuffix = ".imported"
	storeVersion   = 3
	// compactMin is the least journal size that triggers a compaction.
	compactMin = 1 << 20
	// lockTimeout bounds the wait for another process's lock.
	lockTimeout = time.Second
)

// snapshot is the snapshot file's format.
type snapshot struct {
	Version      int               `json:"version"`
	Generation   uint64            `json:"generation"`
	Descriptions map[string]string `json:"descriptions"` // by shape
	Devices      []persistedDevice `json:"devices"`
}

// journalHeader is the journal's first line.
type journalHeader struct {
	Version    int    `json:"version"`
	Generation uint64 `json:"generation"`
}

// journalRecord is one save: the devices put or deleted, the descriptions
// of shapes stored for the first time, the shapes no device uses any more.
type journalRecord struct {
	Put          []persistedDevice `json:"put,omitempty"`
	Delete       []string          `json:"delete,omitempty"`
	Descriptions map[string]string `json:"descriptions,omitempty"`
	Drop         []string          `json:"drop,omitempty"`
}

func (rec *journalRecord) empty() bool {
	return len(rec.Put) == 0 && len(rec.Delete) == 0 && len(rec.Descriptions) == 0 && len(rec.Drop) == 0
}

// storeState is the registry as saved: devices (Description empty) and
// one description per shape.
type storeState struct {
	devices      map[string]persistedDevice
	descriptions map[string]string
	refs         map[string]int // devices per shape
}

func newStoreState() storeState {
	return storeState{devices: map[string]persistedDevice{}, descriptions: map[string]string{}, refs: map[string]int{}}
}

// apply applies one journal record.
func (st *storeState) apply(rec *journalRecord) {
	for shape, desc := range rec.Descriptions {
		st.descriptions[shape] = desc
	}
	for _, uuid := range rec.Delete {
		if old, ok := st.devices[uuid]; ok {
			st.refs[old.Shape]--
			delete(st.devices, uuid)
		}
	}
	for _, p := range rec.Put {
		if old, ok := st.devices[p.UUID]; ok {
			st.refs[old.Shape]--
		}
		p.Description = ""
		st.devices[p.UUID] = p
		st.refs[p.Shape]++
	}
	for _, shape := range rec.Drop {
		delete(st.descriptions, shape)
	}
	for shape, n := range st.refs {
		if n <= 0 {
			delete(st.refs, shape)
		}
	}
}

// check reports a device whose shape has no description.
func (st *storeState) check(file string) error {
	for _, uuid := range slices.Sorted(maps.Keys(st.devices)) {
		d := st.devices[uuid]
		if _, ok := st.descriptions[d.Shape]; !ok || d.UUID == "" {
			return fmt.Errorf("registry %s: device %q has no description (shape %q)", file, d.UUID, d.Shape)
		}
	}
	return nil
}

// list returns the devices sorted by uuid, each with its description.
func (st *storeState) list() []persistedDevice {
	out := make([]persistedDevice, 0, len(st.devices))
	for _, d := range st.devices {
		d.Description = st.descriptions[d.Shape]
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UUID < out[j].UUID })
	return out
}

// storeStats counts what the store wrote, for tests and benchmarks.
type storeStats struct {
	Saves          int   // journal records appended
	JournalBytes   int64 // bytes appended to the journal
	LastSaveBytes  int   // bytes of the last record
	Compactions    int
	SnapshotBytes  int64 // bytes of all snapshots written
	CompactedBytes int64 // bytes of the last snapshot
}

// store is the registry's files in a data directory, owned by one bridge
// (registry.lock). Only the registry's saver uses it after open.
type store struct {
	dir, snapshot, journal string
	lock                   *os.File
	gen                    uint64
	state                  storeState
	snapshotBytes          int64
	journalBytes           int64
	compactAt              int64 // compactMin, smaller in tests
	retryCompactAt         int64 // after a compaction that failed
	// broken: an append failed half-way or a compaction did, so the
	// journal's tail is unknown: the next save compacts first.
	broken bool

	mu    sync.Mutex // stats, read by tests while the saver writes
	stats storeStats
}

// written returns what the store wrote so far.
func (s *store) written() storeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func storePaths(dir string) (snap, journal string) {
	return filepath.Join(dir, snapshotFile), filepath.Join(dir, journalFile)
}

// openStore locks dir's registry, imports registry.json the first time,
// and reads the registry.
func openStore(dir string, log *slog.Logger) (*store, error) {
	s := &store{dir: dir, compactAt: compactMin}
	s.snapshot, s.journal = storePaths(dir)
	var err error
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	// Temporary files of a save that a crash interrupted.
	for _, f := range []string{registryFile, snapshotFile, journalFile} {
		if _, err := atomicfile.RemoveLeftovers(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	if _, err := os.Stat(s.snapshot); errors.Is(err, fs.ErrNotExist) {
		if err := s.create(log); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	rd, err := readStore(s.snapshot, s.journal, true)
	if err != nil {
		return nil, err
	}
	s.gen, s.state, s.snapshotBytes, s.journalBytes = rd.gen, rd.state, rd.snapshotBytes, rd.journalGood
	switch {
	case rd.journalStale || rd.journalMissing:
		// A compaction wrote the snapshot and stopped before the new
		// journal (the old one's records are in the snapshot), or the
		// journal is gone: start a journal for the snapshot.
		if err := s.writeJournalHeader(); err != nil {
			return nil, err
		}
		if rd.journalMissing {
			log.Warn("registry journal missing; started a new one (changes saved after the snapshot, if any, are lost)", "file", s.journal, "snapshot", s.snapshot)
		}
	case rd.journalGood < rd.journalSize:
		// A save cut off by a crash: never answered OK, so dropped.
		if err := os.Truncate(s.journal, rd.journalGood); err != nil {
			return nil, fmt.Errorf("registry %s: %w", s.journal, err)
		}
		log.Warn("registry journal: dropped an incomplete last save", "file", s.journal, "bytes", rd.journalSize-rd.journalGood)
	}
	if _, err := os.Stat(filepath.Join(dir, registryFile)); err == nil {
		log.Warn("registry.json ignored: the registry is the snapshot and journal beside it (an import interrupted before the rename, or a file put back by hand)",
			"file", filepath.Join(dir, registryFile), "snapshot", s.snapshot)
	}
	ok = true
	return s, nil
}

// lockDir takes the data directory's registry lock, waiting up to
// lockTimeout for another process to let go of it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	deadline := time.Now().Add(lockTimeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("data directory %s is in use by another bridge process (%s is locked)", dir, path)
			}
			return nil, fmt.Errorf("registry lock %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a lock held by another process
	}
}

// create makes the store of a data directory that has none: empty, or
// imported from registry.json.
func (s *store) create(log *slog.Logger) error {
	if _, err := os.Stat(s.journal); err == nil {
		return fmt.Errorf("registry %s: journal without its snapshot %s (move both away to start empty)", s.journal, s.snapshot)
	}
	legacy := filepath.Join(s.dir, registryFile)
	p, err := readLegacy(legacy)
	if err != nil {
		return err
	}
	snap := snapshot{Version: storeVersion, Generation: 1, Descriptions: map[string]string{}, Devices: []persistedDevice{}}
	if p != nil {
		snap.Descriptions, snap.Devices = p.Descriptions, p.Devices
	}
	if err := s.writeSnapshot(snap); err != nil {
		return err
	}
	s.gen = 1
	if err := s.writeJournalHeader(); err != nil {
		return err
	}
	if p == nil {
		return nil
	}
	if err := os.Rename(legacy, legacy+importedSuffix); err != nil {
		return fmt.Errorf("registry: imported %s, but: %w", legacy, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	log.Info("registry imported: the registry is now a snapshot and a journal; the old file is kept",
		"from", legacy, "to", s.snapshot, "journal", s.journal, "old", legacy+importedSuffix, "devices", len(p.Devices), "shapes", len(p.Descriptions))
	return nil
}

// readLegacy reads registry.json (registryVersion 2); nil when there is
// none. Anything but a registry this bridge wrote is an error naming the
// file: "null", "{}" or another program's JSON parse as an empty registry,
// and starting empty would lose every device.
func readLegacy(file string) (*persisted, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", file, err)
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("registry %s: %w", file, err)
	}
	if p.Version != registryVersion {
		return nil, fmt.Errorf("registry %s: version %d, want %d (not a registry this bridge wrote; move it away to start empty)", file, p.Version, registryVersion)
	}
	for i := range p.Devices {
		d := &p.Devices[i]
		if _, ok := p.Descriptions[d.Shape]; !ok || d.UUID == "" {
			return nil, fmt.Errorf("registry %s: device %q has no description (shape %q)", file, d.UUID, d.Shape)
		}
	}
	if p.Descriptions == nil {
		p.Descriptions = map[string]string{}
	}
	return &p, nil
}

// storeRead is what readStore found.
type storeRead struct {
	gen            uint64
	state          storeState
	snapshotBytes  int64
	journalSize    int64 // bytes in the journal file
	journalGood    int64 // bytes up to the end of its last complete record
	journalStale   bool  // an older generation's journal, ignored
	journalMissing bool
}

// readStore reads the snapshot and applies the journal. A reader
// (exclusive false) that finds a journal newer than the snapshot it read
// reads both again.
func readStore(snap, journal string, exclusive bool) (storeRead, error) {
	for attempt := 0; ; attempt++ {
		rd, newer, err := readStoreOnce(snap, journal)
		if err != nil {
			return storeRead{}, err
		}
		if !newer {
			return rd, nil
		}
		if exclusive || attempt >= 10 {
			return storeRead{}, fmt.Errorf("registry %s: its generation is newer than the snapshot %s's", journal, snap)
		}
	}
}

func readStoreOnce(snapFile, journalFile string) (rd storeRead, newer bool, err error) {
	data, err := os.ReadFile(snapFile)
	if err != nil {
		return rd, false, fmt.Errorf("registry %s: %w", snapFile, err)
	}
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return rd, false, fmt.Errorf("registry %s: %w", snapFile, err)
	}
	if snap.Version != storeVersion || snap.Generation == 0 {
		return rd, false, fmt.Errorf("registry %s: version %d generation %d, want version %d (not a registry this bridge wrote; move it and %s away to start empty)",
			snapFile, snap.Version, snap.Generation, storeVersion, filepath.Base(journalFile))
	}
	rd.gen, rd.snapshotBytes, rd.state = snap.Generation, int64(len(data)), newStoreState()
	rd.state.apply(&journalRecord{Put: snap.Devices, Descriptions: snap.Descriptions})
	if err := rd.state.check(snapFile); err != nil {
		return rd, false, err
	}
	f, err := os.Open(journalFile)
	if errors.Is(err, fs.ErrNotExist) {
		rd.journalMissing = true
		return rd, false, nil
	}
	if err != nil {
		return rd, false, fmt.Errorf("registry %s: %w", journalFile, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return rd, false, fmt.Errorf("registry %s: %w", journalFile, err)
		}
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		if n == 1 {
			var h journalHeader
			if !complete || json.Unmarshal(line, &h) != nil || h.Version != storeVersion || h.Generation == 0 {
				if len(line) == 0 {
					// An empty journal: a crash before its header was written.
					rd.journalStale = true
					return rd, false, nil
				}
				return rd, false, fmt.Errorf("registry %s: line 1 is not a journal header of version %d", journalFile, storeVersion)
			}
			switch {
			case h.Generation < rd.gen:
				rd.journalStale = true
				return rd, false, nil
			case h.Generation > rd.gen:
				return rd, true, nil
			}
			off += int64(len(line))
			continue
		}
		if len(line) == 0 {
			break
		}
		var rec journalRecord
		if complete && json.Unmarshal(line, &rec) == nil {
			rd.state.apply(&rec)
			off += int64(len(line))
			continue
		}
		// Only the last line may be cut off (a save never answered).
		if _, perr := br.Peek(1); perr == nil {
			return rd, false, fmt.Errorf("registry %s: line %d is not a journal record (the file is damaged; the bridge wrote it line by line)", journalFile, n)
		}
		rd.journalSize = off + int64(len(line))
		rd.journalGood = off
		if err := rd.state.check(journalFile); err != nil {
			return rd, false, err
		}
		return rd, false, nil
	}
	rd.journalSize, rd.journalGood = off, off
	if err := rd.state.check(journalFile); err != nil {
		return rd, false, err
	}
	return rd, false, nil
}

// writeSnapshot replaces the snapshot file whole and syncs the directory.
func (s *store) writeSnapshot(snap snapshot) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.snapshot, data, 0o600); err != nil {
		return fmt.Errorf("registry %s: %w", s.snapshot, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	s.snapshotBytes = int64(len(data))
	s.mu.Lock()
	s.stats.SnapshotBytes += int64(len(data))
	s.stats.CompactedBytes = int64(len(data))
	s.mu.Unlock()
	return nil
}

// writeJournalHeader replaces the journal with one for s.gen.
func (s *store) writeJournalHeader() error {
	h, _ := json.Marshal(journalHeader{Version: storeVersion, Generation: s.gen})
	h = append(h, '\n')
	if err := atomicfile.Write(s.journal, h, 0o600); err != nil {
		return fmt.Errorf("registry %s: %w", s.journal, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	s.journalBytes = int64(len(h))
	return nil
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// commit appends one save to the journal: the devices in put (with the
// description of any shape not stored yet in descriptions) and delete.
// The shapes that no device uses afterwards are dropped in the same
// record. It returns once the record is on disk.
func (s *store) commit(rec journalRecord) error {
	// Which shapes no device uses after this save.
	refs := map[string]int{}
	for _, uuid := range rec.Delete {
		if old, ok := s.state.devices[uuid]; ok {
			refs[old.Shape]--
		}
	}
	for _, p := range rec.Put {
		if old, ok := s.state.devices[p.UUID]; ok {
			refs[old.Shape]--
		}
		refs[p.Shape]++
		_, stored := s.state.descriptions[p.Shape]
		if _, given := rec.Descriptions[p.Shape]; !stored && !given {
			return fmt.Errorf("registry: device %s has shape %.12s, whose description is neither stored nor given", p.UUID, p.Shape)
		}
	}
	rec.Drop = nil
	for _, shape := range slices.Sorted(maps.Keys(refs)) {
		if s.state.refs[shape]+refs[shape] <= 0 {
			if _, stored := s.state.descriptions[shape]; stored {
				rec.Drop = append(rec.Drop, shape)
			}
		}
	}
	if rec.empty() {
		return nil
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	if s.broken {
		if err := s.compact(); err != nil {
			return err
		}
	}
	if err := s.append(line); err != nil {
		s.broken = true
		return fmt.Errorf("registry %s: %w", s.journal, err)
	}
	s.state.apply(&rec)
	s.journalBytes += int64(len(line))
	s.mu.Lock()
	s.stats.Saves++
	s.stats.JournalBytes += int64(len(line))
	s.stats.LastSaveBytes = len(line)
	s.mu.Unlock()
	if s.journalBytes >= max(s.snapshotBytes, s.compactAt, s.retryCompactAt) {
		// The record is on disk, whatever the compaction does: one that
		// failed before its snapshot was in place is tried again once the
		// journal has grown as much again; one that failed after it
		// (broken) before the next save.
		if err := s.compact(); err != nil && !s.broken {
			s.retryCompactAt = s.journalBytes + max(s.snapshotBytes, s.compactAt)
		}
	}
	return nil
}

// append writes line at the journal's end and syncs it. The journal is
// opened for each save: a journal that was moved or replaced is noticed,
// not written to after it is gone.
func (s *store) append(line []byte) error {
	f, err := os.OpenFile(s.journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() != s.journalBytes {
		err = fmt.Errorf("%d bytes, want %d (changed by someone else)", fi.Size(), s.journalBytes)
	}
	if err == nil {
		_, err = f.Write(line)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// compact writes the saved state as the snapshot of the next generation
// and starts its journal.
func (s *store) compact() error {
	snap := snapshot{Version: storeVersion, Generation: s.gen + 1, Descriptions: s.state.descriptions, Devices: s.state.list()}
	for i := range snap.Devices {
		snap.Devices[i].Description = "" // in Descriptions, once per shape
	}
	if err := s.writeSnapshot(snap); err != nil {
		return err
	}
	// From here the journal of s.gen is stale: its records are in the
	// snapshot. Until the new journal is in place, nothing is appended.
	s.gen++
	s.broken = true
	if err := s.writeJournalHeader(); err != nil {
		return err
	}
	s.broken, s.retryCompactAt = false, 0
	s.mu.Lock()
	s.stats.Compactions++
	s.mu.Unlock()
	return nil
}

// close lets go of the data directory.
func (s *store) close() {
	if s.lock != nil {
		_ = syscall.Flock(int(s.lock.Fd()), syscall.LOCK_UN)
		s.lock.Close()
		s.lock = nil
	}
}

// readSaved reads the registry of dataDir without taking its lock (a
// running bridge may own it): the snapshot and journal, or registry.json
// when there is no snapshot yet. Nothing is written.
func readSaved(dataDir string) ([]persistedDevice, error) {
	snap, journal := storePaths(dataDir)
	if _, err := os.Stat(snap); errors.Is(err, fs.ErrNotExist) {
		p, err := readLegacy(filepath.Join(dataDir, registryFile))
		if err != nil || p == nil {
			return nil, err
		}
		for i := range p.Devices {
			p.Devices[i].Description = p.Descriptions[p.Devices[i].Shape]
		}
		return p.Devices, nil
	}
	rd, err := readStore(snap, journal, false)
	if err != nil {
		return nil, err
	}
	return rd.state.list(), nil
}

// equalSaved reports whether two saved devices are the same record.
func equalSaved(a, b persistedDevice) bool {
	return a.UUID == b.UUID && a.Shape == b.Shape && a.Firmware == b.Firmware && a.RegisteredAt.Equal(b.RegisteredAt)
}
