package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/mup/e2e"
)

// demoE2EManager is the manager name of the demo's E2E channel.
const demoE2EManager = "demo-manager"

// prepareDemoE2E creates (once) the demo's E2E CA in <data-dir>/e2e, with
// a manager certificate and one certificate per device, and returns the
// device's E2E configuration: a renewal replaces its files, so a restarted
// demo keeps the renewed credentials.
func prepareDemoE2E(dataDir, device string) (string, *devices.E2EConfig, error) {
	dir := filepath.Join(dataDir, "e2e")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	if _, err := os.Stat(p("ca.key")); errors.Is(err, fs.ErrNotExist) {
		ca, caKey, err := e2e.NewCA("MYNO demo E2E CA", 10*365*24*time.Hour)
		if err != nil {
			return "", nil, err
		}
		if err := writePair(dir, "ca", caKey, ca); err != nil {
			return "", nil, err
		}
		for _, c := range []struct {
			name string
			role e2e.Role
		}{{demoE2EManager, e2e.RoleManager}, {device, e2e.RoleDevice}} {
			cert, key, err := e2e.Issue(ca, caKey, c.name, c.role, time.Now().Add(-time.Minute), 365*24*time.Hour)
			if err != nil {
				return "", nil, err
			}
			file := c.name
			if c.role == e2e.RoleManager {
				file = "manager"
			}
			if err := writePair(dir, file, key, cert); err != nil {
				return "", nil, err
			}
		}
	}
	cfg, err := loadE2EDevice(p(device+".crt"), p(device+".key"), p("ca.crt"), e2e.DefaultPrefix)
	return dir, cfg, err
}
