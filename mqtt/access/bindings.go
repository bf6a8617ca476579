package access

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/myno-bridge/myno/internal/atomicfile"
)

// BindingsFile is the bindings' file name in the bridge's data directory.
const BindingsFile = "anonymous-bindings.json"

// Bindings bind devices registered by anonymous clients
// (--mqtt-allow-anonymous: MYNO's devices have no credentials, issue 13)
// to the client identifier of the connection that registered them, trust
// on first use: from then on only a connection with that identifier may
// speak for the device, and it may hold several (MYNO's simulator
// registers several devices over one connection). The bindings are kept
// in a file, so that they survive a restart. It is safe for concurrent use.
type Bindings struct {
	file string // "" keeps them in memory

	mu       sync.Mutex
	byDevice map[string]string // uuid -> client identifier
	changes  atomic.Uint64
}

// OpenBindings reads the bindings kept in file; a missing file is none.
func OpenBindings(file string) (*Bindings, error) {
	b := &Bindings{file: file, byDevice: map[string]string{}}
	if file == "" {
		return b, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &b.byDevice); err != nil || b.byDevice == nil {
		return nil, fmt.Errorf("anonymous device bindings %s: not a JSON object of uuid to client identifier (%v)", file, err)
	}
	return b, nil
}

// version grows with every change; a nil Bindings has none.
func (b *Bindings) version() uint64 {
	if b == nil {
		return 0
	}
	return b.changes.Load()
}

// Owner returns the client identifier device uuid is bound to.
func (b *Bindings) Owner(uuid string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.byDevice[uuid]
	return c, ok
}

// Devices returns the devices bound to client, sorted.
func (b *Bindings) Devices(client string) []string {
	if b == nil || client == "" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for uuid, c := range b.byDevice {
		if c == client {
			out = append(out, uuid)
		}
	}
	sort.Strings(out)
	return out
}

// Bind binds device uuid to client (again, or anew: the caller decides
// whether it may move) and keeps the bindings. When they cannot be kept,
// nothing changes.
func (b *Bindings) Bind(uuid, client string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, had := b.byDevice[uuid]
	if had && old == client {
		return nil
	}
	b.byDevice[uuid] = client
	if err := b.saveLocked(); err != nil {
		if had {
			b.byDevice[uuid] = old
		} else {
			delete(b.byDevice, uuid)
		}
		return err
	}
	b.changes.Add(1)
	return nil
}

// Unbind forgets device uuid's binding (the device was deleted).
func (b *Bindings) Unbind(uuid string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	old, had := b.byDevice[uuid]
	if !had {
		return nil
	}
	delete(b.byDevice, uuid)
	if err := b.saveLocked(); err != nil {
		b.byDevice[uuid] = old
		return err
	}
	b.changes.Add(1)
	return nil
}

func (b *Bindings) saveLocked() error {
	if b.file == "" {
		return nil
	}
	data, err := json.MarshalIndent(b.byDevice, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(b.file, append(data, '\n'), 0o600)
}
