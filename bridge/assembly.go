package bridge

import (
	"bytes"
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

	mu      sync.Mutex
	pending map[string]*assembly // by UUID
}

// assembly is one device's description so far.
type assembly struct {
	chunks  [][]byte
	size    int
	started time.Time
}

func newAssembler(maxBytes, maxChunks int, maxAge time.Duration) *assembler {
	return &assembler{maxBytes: maxBytes, maxChunks: maxChunks, maxAge: maxAge, pending: map[string]*assembly{}}
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
		delete(a.pending, c.UUID)
		if p == nil {
			return nil, true, errNoDescription
		}
		return bytes.Join(p.chunks, nil), true, nil
	}
	if p == nil {
		p = &assembly{started: now}
		a.pending[c.UUID] = p
	}
	p.chunks = append(p.chunks, bytes.Clone(c.Data))
	p.size += len(c.Data)
	switch {
	case p.size > a.maxBytes:
		err = fmt.Errorf("description larger than %d bytes", a.maxBytes)
	case len(p.chunks) > a.maxChunks:
		err = fmt.Errorf("more than %d chunks", a.maxChunks)
	}
	if err != nil {
		delete(a.pending, c.UUID)
	}
	return nil, false, err
}

// expire drops the descriptions whose chunks stopped arriving.
func (a *assembler) expire(now time.Time, dropped func(uuid string, chunks int, age time.Duration)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for uuid, p := range a.pending {
		if age := now.Sub(p.started); age > a.maxAge {
			delete(a.pending, uuid)
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
