package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

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

// persisted is the registry file's format.
type persisted struct {
	Version int               `json:"version"`
	Devices []persistedDevice `json:"devices"`
}

type persistedDevice struct {
	UUID         string    `json:"uuid"`
	RegisteredAt time.Time `json:"registeredAt"`
	Description  string    `json:"description"`
	Firmware     string    `json:"firmware,omitempty"`
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
	return p.Devices, nil
}

// saveRegistry writes the devices atomically (temp file, fsync, rename).
func saveRegistry(dir string, devs []persistedDevice) error {
	data, err := json.MarshalIndent(persisted{Version: 1, Devices: devs}, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, registryFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, registryFile))
}

func sortStrings(s []string) { sort.Strings(s) }
