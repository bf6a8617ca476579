package updateserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/myno-bridge/myno/mup"
	v1 "github.com/myno-bridge/myno/mup/v1"
)

// Journal records a campaign as it runs, so that a campaign killed half
// way can resume (CampaignConfig.Journal, Resume). Each call returns once
// the record is durable.
type Journal interface {
	// Started is called before a device's attempt starts.
	Started(uuid string, attempt int) error
	// Finished is called with a device's outcome: updated or failed.
	Finished(r DeviceResult) error
}

// A device's state in a campaign's journal.
const (
	StateStarted = "started" // an attempt began and did not end (or the journal was cut)
	StateDone    = "done"    // updated
	StateFailed  = "failed"  // failed, retries spent
)

// StateEntry is the last record of a device in a campaign's journal.
type StateEntry struct {
	UUID     string    `json:"uuid"`
	State    string    `json:"state"`
	Attempt  int       `json:"attempt,omitempty"`
	Version  uint32    `json:"version,omitempty"`
	Protocol Protocol  `json:"protocol,omitempty"`
	Verdict  Verdict   `json:"verdict,omitempty"`
	Signer   string    `json:"signer,omitempty"`
	Error    string    `json:"error,omitempty"`
	At       time.Time `json:"at"`
}

// StateHeader is a journal's first line: which campaign it records. A
// journal resumes only the campaign of the same image and manifests.
type StateHeader struct {
	Kind        string    `json:"kind"` // stateKind
	Image       string    `json:"imageSha256"`
	Manifests   string    `json:"manifestsSha256"`
	Created     time.Time `json:"created"`
	Description string    `json:"description,omitempty"`
}

const stateKind = "myno-campaign/1"

// NewStateHeader names the campaign of cfg: its image and manifests.
func NewStateHeader(cfg UpdateConfig) StateHeader {
	image := sha256.Sum256(cfg.Image)
	m := sha256.New()
	m.Write(cfg.VendorSigned)
	m.Write([]byte{0})
	m.Write(cfg.V1Manifest)
	return StateHeader{Kind: stateKind, Image: hex.EncodeToString(image[:]), Manifests: hex.EncodeToString(m.Sum(nil)), Created: time.Now().UTC()}
}

// ErrOtherCampaign is wrapped by OpenState's error for a journal of
// another campaign.
var ErrOtherCampaign = errors.New("the state file records another campaign")

// maxStateLine bounds a journal line (a record is a few hundred bytes;
// an error message is cut at 1 KiB).
const maxStateLine = 64 << 10

// DecodeState reads a journal: its header and each device's last entry.
// A last line without its newline (the campaign was killed while writing
// it) is left out; valid is the length of the lines kept.
func DecodeState(data []byte) (h StateHeader, entries map[string]StateEntry, valid int, err error) {
	entries = map[string]StateEntry{}
	for n := 0; len(data) > 0; n++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // cut: not written whole
		}
		line := data[:i]
		if len(line) > maxStateLine {
			return h, nil, 0, fmt.Errorf("line %d: %d bytes, longer than any record (%d)", n+1, len(line), maxStateLine)
		}
		if n == 0 {
			if err := json.Unmarshal(line, &h); err != nil || h.Kind != stateKind {
				return h, nil, 0, fmt.Errorf("not a campaign state file (want a %s header): %.80q", stateKind, line)
			}
		} else {
			var e StateEntry
			if err := json.Unmarshal(line, &e); err != nil || e.UUID == "" ||
				(e.State != StateStarted && e.State != StateDone && e.State != StateFailed) {
				return h, nil, 0, fmt.Errorf("line %d: not a campaign record: %.80q", n+1, line)
			}
			entries[e.UUID] = e
		}
		valid += i + 1
		data = data[i+1:]
	}
	if valid == 0 {
		return h, nil, 0, errors.New("empty: no campaign header")
	}
	return h, entries, valid, nil
}

// StateFile is a Journal in a file of JSON lines: a StateHeader, then a
// StateEntry per start and outcome, each line written and synced before
// the campaign goes on.
type StateFile struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	size   int64 // the whole lines written
	broken error // a write failed: the file is back at size, and takes no more
}

// OpenState opens the journal at path: a new one with header, or an
// existing one of the same campaign, whose entries it returns (for
// CampaignConfig.Resume). A line cut by a kill is dropped from the file.
func OpenState(path string, header StateHeader) (*StateFile, map[string]StateEntry, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("campaign state %s: %w", path, err)
	}
	sf := &StateFile{f: f, path: path}
	data, err := io.ReadAll(io.LimitReader(f, 256<<20))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("campaign state %s: %w", path, err)
	}
	if !bytes.Contains(data, []byte("\n")) {
		// New, or killed while its header was written: start it over.
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("campaign state %s: %w", path, err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("campaign state %s: %w", path, err)
		}
		line, _ := json.Marshal(header)
		if err := sf.append(line); err != nil {
			f.Close()
			return nil, nil, err
		}
		return sf, map[string]StateEntry{}, nil
	}
	h, entries, valid, err := DecodeState(data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("campaign state %s: %w", path, err)
	}
	if h.Image != header.Image || h.Manifests != header.Manifests {
		f.Close()
		return nil, nil, fmt.Errorf("campaign state %s: %w (image SHA-256 %.12s…, manifests %.12s…), not this one (%.12s…, %.12s…): give another --state",
			path, ErrOtherCampaign, h.Image, h.Manifests, header.Image, header.Manifests)
	}
	if valid < len(data) {
		if err := f.Truncate(int64(valid)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("campaign state %s: dropping a cut line: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(valid), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("campaign state %s: %w", path, err)
	}
	sf.size = int64(valid)
	return sf, entries, nil
}

// Path is the file's path.
func (s *StateFile) Path() string { return s.path }

// Started records an attempt's start.
func (s *StateFile) Started(uuid string, attempt int) error {
	return s.record(StateEntry{UUID: uuid, State: StateStarted, Attempt: attempt, At: time.Now().UTC()})
}

// Finished records an outcome.
func (s *StateFile) Finished(r DeviceResult) error {
	e := StateEntry{UUID: r.UUID, State: StateDone, Attempt: r.Attempts, At: time.Now().UTC()}
	if r.Err != nil {
		e.State, e.Error = StateFailed, r.Err.Error()
		if len(e.Error) > 1024 {
			e.Error = e.Error[:1024]
		}
	}
	if r.Result != nil {
		e.Version, e.Protocol, e.Verdict, e.Signer = r.Result.Version, r.Result.Protocol, r.Result.Verdict, r.Result.Signer
	}
	return s.record(e)
}

func (s *StateFile) record(e StateEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return s.append(line)
}

// append writes one line and syncs it. A line that cannot be written
// whole is cut off again, and the file takes no more lines: a later one
// glued to a partial line would make the file unreadable.
func (s *StateFile) append(line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return s.broken
	}
	w := bufio.NewWriterSize(s.f, len(line)+1)
	w.Write(line)
	w.WriteByte('\n')
	err := w.Flush()
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		s.broken = fmt.Errorf("campaign state %s: %w", s.path, err)
		if terr := s.f.Truncate(s.size); terr == nil {
			_, _ = s.f.Seek(s.size, io.SeekStart)
		}
		return s.broken
	}
	s.size += int64(len(line)) + 1
	return nil
}

// Close closes the file.
func (s *StateFile) Close() error { return s.f.Close() }

// TargetVersions are the versions cfg's manifests install (one per
// protocol given).
func TargetVersions(cfg UpdateConfig) []uint32 {
	var out []uint32
	if len(cfg.VendorSigned) > 0 {
		if vm, err := mup.DecodeSignedVendorManifest(cfg.VendorSigned); err == nil {
			out = append(out, vm.Version)
		}
	}
	if len(cfg.V1Manifest) > 0 {
		if m, err := v1.DecodeVendorFile(cfg.V1Manifest); err == nil {
			out = append(out, m.Version)
		}
	}
	return out
}
