package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

// device is a registered device.
type device struct {
	UUID         string
	Description  []byte
	RegisteredAt time.Time
	model        *ontology.Device // bound to the UUID
	template     *ontology.Device
	module       *moduleEntry
	lastSeen     time.Time
	firmware     string
	readings     map[string]reading // by sensor (YANG name)
	topics       []string           // telemetry subscriptions
}

type reading struct {
	value string
	at    time.Time
}

// moduleEntry is a generated module and the devices that use it.
type moduleEntry struct {
	mod     *yang.Module
	devices map[string]bool
}

// persisted is the registry file's format. Devices of one shape share
// one stored description.
type persisted struct {
	Version      int               `json:"version"`
	Descriptions map[string]string `json:"descriptions"` // by shape
	Devices      []persistedDevice `json:"devices"`
}

type persistedDevice struct {
	UUID         string    `json:"uuid"`
	RegisteredAt time.Time `json:"registeredAt"`
	Shape        string    `json:"shape"`
	Firmware     string    `json:"firmware,omitempty"`
	Description  string    `json:"-"`
}

const registryFile = "registry.json"

// loadRegistry reads the persisted devices; a missing file is empty.
func loadRegistry(dir string) ([]persistedDevice, error) {
	data, err := os.ReadFile(filepath.Join(dir, registryFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p persisted
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("registry %s: %w", filepath.Join(dir, registryFile), err)
	}
	for i := range p.Devices {
		p.Devices[i].Description = p.Descriptions[p.Devices[i].Shape]
	}
	return p.Devices, nil
}

// saveRegistry writes the devices atomically (temp file, fsync, rename).
func saveRegistry(dir string, devs []persistedDevice) error {
	p := persisted{Version: 2, Descriptions: map[string]string{}, Devices: devs}
	for _, d := range devs {
		p.Descriptions[d.Shape] = d.Description
	}
	data, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, registryFile), data, 0o600)
}

func sortStrings(s []string) { sort.Strings(s) }

// saver writes the registry in the background and lets callers wait until
// their change is on disk; changes that arrive while a write is under way
// go out together in the next one (group commit).
type saver struct {
	mu        sync.Mutex
	cond      *sync.Cond
	requested uint64
	saved     uint64
	err       error
	closed    bool
	write     func() error
}

func newSaver(write func() error) *saver {
	s := &saver{write: write}
	s.cond = sync.NewCond(&s.mu)
	go s.loop()
	return s
}

// save returns once a write that includes the caller's change has finished.
func (s *saver) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requested++
	mine := s.requested
	s.cond.Broadcast()
	for s.saved < mine && !s.closed {
		s.cond.Wait()
	}
	return s.err
}

func (s *saver) loop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for s.saved == s.requested && !s.closed {
			s.cond.Wait()
		}
		if s.closed {
			return
		}
		target := s.requested
		s.mu.Unlock()
		err := s.write()
		s.mu.Lock()
		s.saved, s.err = target, err
		s.cond.Broadcast()
	}
}

func (s *saver) close() {
	s.mu.Lock()
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
}
