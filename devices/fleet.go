package devices

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
)

// DeriveUUID makes the i-th UUID of a fleet from a base UUID: a name-based
// UUID (SHA-1, RFC 9562 §5.5 layout), stable for the same base and index.
func DeriveUUID(base string, i int) string {
	sum := sha1.Sum([]byte(base + "/" + strconv.Itoa(i)))
	sum[6] = (sum[6] & 0x0f) | 0x50 // version 5
	sum[8] = (sum[8] & 0x3f) | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// FleetEntry is one kind of device in a fleet.
type FleetEntry struct {
	Name        string // for progress and logs, usually the file name
	Description []byte
	Count       int
}

// ParseFleetFile reads "description:count" lines (paths relative to the
// fleet file; '#' starts a comment).
func ParseFleetFile(path string) ([]FleetEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []FleetEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ':')
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: want description:count", path, n)
		}
		count, err := strconv.Atoi(strings.TrimSpace(line[i+1:]))
		if err != nil || count < 1 {
			return nil, fmt.Errorf("%s:%d: bad count %q", path, n, line[i+1:])
		}
		file := strings.TrimSpace(line[:i])
		if !filepath.IsAbs(file) {
			file = filepath.Join(filepath.Dir(path), file)
		}
		desc, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, FleetEntry{Name: filepath.Base(file), Description: desc, Count: count})
	}
	return out, sc.Err()
}

// FleetConfig configures a fleet run. Device holds the settings shared by
// every device (broker, protocol, chunk size, telemetry...); Description
// and UUID come from the entries and BaseUUID.
type FleetConfig struct {
	Entries  []FleetEntry
	BaseUUID string
	Device   Config
	// Credentials, when set, gives each device its own broker credentials
	// (Device.Credentials is then the rest: TLS).
	Credentials func(uuid string) (client.Credentials, error)
	// Enable, when set, runs on each device after New and before it
	// connects (EnableMUPv1, say); an error fails the fleet's start.
	Enable func(*Device) error
	// Stagger spaces out connects; 0 means DefaultStagger.
	Stagger time.Duration
	// Concurrency bounds the connects in progress, and the bootstraps in
	// progress, each; 0 means DefaultConcurrency. A device that has
	// connected gives its connect slot to the next one before it waits
	// for a bootstrap slot: connecting a fleet is not held up by the
	// bridge's pace of registration.
	Concurrency int
	// Progress is called about every ProgressEvery with the counts.
	Progress      func(FleetProgress)
	ProgressEvery time.Duration
}

// FleetProgress counts the devices of a fleet.
type FleetProgress struct {
	Total, Connected, Bootstrapped, Failed int
	Elapsed                                time.Duration
}

func (p FleetProgress) String() string {
	return fmt.Sprintf("%d/%d connected, %d bootstrapped, %d failed (%s)", p.Connected, p.Total, p.Bootstrapped, p.Failed, p.Elapsed.Round(time.Millisecond))
}

// Fleet is a running set of devices.
type Fleet struct {
	Devices []*Device
	started time.Time
	total   int
	conn    atomic.Int64
	boot    atomic.Int64
	failed  atomic.Int64
	ready   chan struct{}

	launched chan struct{} // closed when every device goroutine has started
	wg       sync.WaitGroup
}

// Wait returns once every device has closed (after ctx ended).
func (f *Fleet) Wait() {
	<-f.launched
	f.wg.Wait()
}

// Progress returns the current counts.
func (f *Fleet) Progress() FleetProgress {
	return FleetProgress{Total: f.total, Connected: int(f.conn.Load()), Bootstrapped: int(f.boot.Load()),
		Failed: int(f.failed.Load()), Elapsed: time.Since(f.started)}
}

// Ready is closed once every device has bootstrapped or failed.
func (f *Fleet) Ready() <-chan struct{} { return f.ready }

// DefaultStagger spaces out a fleet's connects: 10,000 devices start
// connecting within 2 s, at most Concurrency at once.
const DefaultStagger = 200 * time.Microsecond

// DefaultConcurrency bounds a fleet's connects in progress, and its
// bootstraps in progress.
const DefaultConcurrency = 64

// StartFleet creates the devices and connects and bootstraps them in the
// background, staggered and with bounded concurrency. Devices then run
// (commands, telemetry) until ctx ends; Wait returns after they closed.
func StartFleet(ctx context.Context, cfg FleetConfig) (*Fleet, error) {
	if cfg.Stagger <= 0 {
		cfg.Stagger = DefaultStagger
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = time.Second
	}
	if cfg.BaseUUID == "" {
		cfg.BaseUUID = "myno-fleet"
	}
	if cfg.Device.Logger == nil {
		cfg.Device.Logger = slog.Default()
	}
	f := &Fleet{started: time.Now(), ready: make(chan struct{}), launched: make(chan struct{})}
	n := 0
	for _, e := range cfg.Entries {
		// One parse per description, shared by its devices.
		tmpl, err := ontology.Parse(e.Description)
		if err != nil {
			return nil, fmt.Errorf("%s: description: %w", e.Name, err)
		}
		for i := 0; i < e.Count; i++ {
			dc := cfg.Device
			dc.Description, dc.Template = e.Description, tmpl
			dc.UUID = DeriveUUID(cfg.BaseUUID, n)
			n++
			if cfg.Credentials != nil {
				c, err := cfg.Credentials(dc.UUID)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", dc.UUID, err)
				}
				dc.Credentials = c
			}
			d, err := New(dc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", e.Name, err)
			}
			if cfg.Enable != nil {
				if err := cfg.Enable(d); err != nil {
					return nil, fmt.Errorf("%s: %s: %w", e.Name, dc.UUID, err)
				}
			}
			f.Devices = append(f.Devices, d)
		}
	}
	f.total = len(f.Devices)
	if f.total == 0 {
		return nil, errors.New("fleet has no devices")
	}
	connecting := make(chan struct{}, cfg.Concurrency)
	bootstrapping := make(chan struct{}, cfg.Concurrency)
	var settled sync.WaitGroup
	settled.Add(f.total)
	go func() { settled.Wait(); close(f.ready) }()
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(cfg.ProgressEvery)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					cfg.Progress(f.Progress())
				case <-f.ready:
					cfg.Progress(f.Progress())
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() {
		defer close(f.launched)
		tick := time.NewTicker(cfg.Stagger)
		defer tick.Stop()
		for _, d := range f.Devices {
			select {
			case <-ctx.Done():
				settled.Done()
				continue
			case connecting <- struct{}{}:
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				ok := f.startOne(ctx, d, connecting, bootstrapping)
				settled.Done()
				if ok {
					<-ctx.Done()
				}
				d.Close()
			}()
		}
	}()
	return f, nil
}

// startOne connects d, holding one of the connecting slots, then
// bootstraps it, holding one of the bootstrapping slots.
func (f *Fleet) startOne(ctx context.Context, d *Device, connecting, bootstrapping chan struct{}) bool {
	err := d.Connect(ctx)
	<-connecting
	if err != nil {
		f.failed.Add(1)
		d.log.Warn("device failed to connect", "err", err)
		return false
	}
	f.conn.Add(1)
	select {
	case bootstrapping <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	defer func() { <-bootstrapping }()
	if err := d.Bootstrap(ctx); err != nil {
		f.failed.Add(1)
		d.log.Warn("device failed to bootstrap", "err", err)
		return false
	}
	f.boot.Add(1)
	d.startTelemetry(ctx)
	return true
}
