package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/myno-bridge/myno/wire"
)

// assembler collects each device's description chunks until END, within
// limits on size, chunk count and time (DESIGN.md, bootstrap).
type assembler struct {
	maxBytes  int
	maxChunks int
	maxAge    time.Duration
	// maxTotal bounds the bytes of all descriptions still arriving: many
	// devices that start a description and never end it (a flood of
	// uuids) cannot make the bridge hold more (issue 12).
	maxTotal int

	mu      sync.Mutex
	pending map[string]*assembly // by UUID
	total   int                  // bytes held in pending
}

// assembly is one device's description so far.
type assembly struct {
	chunks  [][]byte
	size    int
	started time.Time
}

func newAssembler(maxBytes, maxChunks, maxTotal int, maxAge time.Duration) *assembler {
	return &assembler{maxBytes: maxBytes, maxChunks: maxChunks, maxTotal: maxTotal, maxAge: maxAge, pending: map[string]*assembly{}}
}

// drop forgets uuid's assembly; the caller holds mu.
func (a *assembler) drop(uuid string) {
	if p := a.pending[uuid]; p != nil {
		a.total -= p.size
		delete(a.pending, uuid)
	}
}

// errNoDescription is the refusal of an END with no chunk before it.
var errNoDescription = fmt.Errorf("END without a description")

// add takes one chunk. On END it returns the whole description (done).
// A description over a limit, or an END with nothing before it, is
// dropped with the refusal's reason in err.
func (a *assembler) add(c wire.Chunk, now time.Time) (desc []byte, done bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.pending[c.UUID]
	if c.End {
		a.drop(c.UUID)
		if p == nil {
			return nil, true, errNoDescription
		}
		return bytes.Join(p.chunks, nil), true, nil
	}
	if a.total+len(c.Data) > a.maxTotal {
		// Checked before the chunk is kept: the memory is never taken.
		a.drop(c.UUID)
		return nil, false, fmt.Errorf("%w: descriptions in progress hold %d bytes, the most the bridge keeps (--max-pending-description-bytes); try again later", errBusy, a.total)
	}
	if p == nil {
		p = &assembly{started: now}
		a.pending[c.UUID] = p
	}
	p.chunks = append(p.chunks, bytes.Clone(c.Data))
	p.size += len(c.Data)
	a.total += len(c.Data)
	switch {
	case p.size > a.maxBytes:
		err = fmt.Errorf("description larger than %d bytes", a.maxBytes)
	case len(p.chunks) > a.maxChunks:
		err = fmt.Errorf("more than %d chunks", a.maxChunks)
	}
	if err != nil {
		a.drop(c.UUID)
	}
	return nil, false, err
}

// errBusy marks a refusal for want of room, which a device may retry.
var errBusy = errors.New("bridge busy")

// held is the bytes of all descriptions still arriving.
func (a *assembler) held() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.total
}

// expire drops the descriptions whose chunks stopped arriving.
func (a *assembler) expire(now time.Time, dropped func(uuid string, chunks int, age time.Duration)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for uuid, p := range a.pending {
		if age := now.Sub(p.started); age > a.maxAge {
			a.drop(uuid)
			dropped(uuid, len(p.chunks), age)
		}
	}
}

// count is the number of descriptions still arriving.
func (a *assembler) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}
