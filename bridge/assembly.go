package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// assembler collects each device's description chunks until END, within
// limits on size, chunk count and time (DESIGN.md, bootstrap), on the
// memory of all descriptions still arriving, and on what one source may
// hold of it.
type assembler struct {
	maxBytes  int
	maxChunks int
	maxAge    time.Duration
	// maxTotal bounds the bytes of all descriptions still arriving: many
	// devices that start a description and never end it (a flood of
	// uuids) cannot make the bridge hold more (issue 12). The bytes are
	// charged with the bookkeeping (assemblyCharge), so that a flood of
	// tiny chunks is bounded too.
	maxTotal int
	// perSource bounds what one source may hold (0: no limit), so that
	// one source cannot take all of maxTotal from the others.
	perSource sourceLimits

	mu      sync.Mutex
	pending map[string]*assembly // by UUID
	total   int                  // bytes charged for pending
	sources map[string]*sourceUse
	// busy counts the chunks refused for want of room: globally, and
	// for their source's limits.
	busy, busySource uint64
}

// sourceLimits bound the descriptions of one source.
type sourceLimits struct {
	count, bytes int
}

// sourceUse is what one source holds.
type sourceUse struct {
	count, bytes int
}

// The bookkeeping charged besides the bytes of a description: about what
// an assembly, its map entry and its uuid take, and a chunk's slice
// header and allocation rounding.
const (
	assemblyOverhead = 256
	chunkOverhead    = 32
)

// assemblyCharge is what a description of n bytes in chunks chunks is
// charged.
func assemblyCharge(n, chunks int) int {
	return assemblyOverhead + n + chunks*chunkOverhead
}

// assembly is one device's description so far.
type assembly struct {
	chunks  [][]byte
	size    int // bytes of the description
	charge  int // bytes charged: size and bookkeeping
	source  string
	started time.Time
}

func newAssembler(maxBytes, maxChunks, maxTotal int, perSource sourceLimits, maxAge time.Duration) *assembler {
	return &assembler{maxBytes: maxBytes, maxChunks: maxChunks, maxTotal: maxTotal, perSource: perSource, maxAge: maxAge,
		pending: map[string]*assembly{}, sources: map[string]*sourceUse{}}
}

// sourceOf names who sent a bootstrap message, for the per-source limits:
// the MQTT identity the embedded broker names ("device:led-1"), all
// anonymous clients together ("anonymous"; the broker names no address),
// or, on an external broker, which names nobody, the uuid: there the
// broker's ACL, which gives each device its own bootstrap topics (myno acl
// export), makes a uuid a source.
func sourceOf(m client.Message, uuid string) string {
	if m.Sender == nil {
		return "uuid:" + uuid
	}
	if m.Sender.Anonymous() {
		return "anonymous" // whatever client identifier each one gives
	}
	return m.Sender.String()
}

// drop forgets uuid's assembly; the caller holds mu.
func (a *assembler) drop(uuid string) {
	p := a.pending[uuid]
	if p == nil {
		return
	}
	a.total -= p.charge
	delete(a.pending, uuid)
	if u := a.sources[p.source]; u != nil {
		u.count--
		u.bytes -= p.charge
		if u.count <= 0 {
			delete(a.sources, p.source)
		}
	}
}

// errNoDescription is the refusal of an END with no chunk before it.
var errNoDescription = fmt.Errorf("END without a description")

// add takes one chunk from source. On END it returns the whole
// description (done). A description over a limit, or an END with nothing
// before it, is dropped with the refusal's reason in err; a chunk refused
// for want of room (the global cap or its source's) wraps errBusy.
func (a *assembler) add(c wire.Chunk, source string, now time.Time) (desc []byte, done bool, err error) {
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
	charge := len(c.Data) + chunkOverhead
	if p == nil {
		charge += assemblyOverhead
	}
	// Checked before the chunk is kept: the memory is never taken.
	if a.total+charge > a.maxTotal {
		a.drop(c.UUID)
		a.busy++
		return nil, false, fmt.Errorf("%w: descriptions in progress hold %d bytes, the most the bridge keeps (--max-pending-description-bytes), try again later", errBusy, a.total)
	}
	owner := source
	if p != nil {
		owner = p.source // charged to the source that started it
	}
	u := a.sources[owner]
	if u == nil {
		u = &sourceUse{}
	}
	switch {
	case p == nil && a.perSource.count > 0 && u.count >= a.perSource.count:
		a.busySource++
		return nil, false, fmt.Errorf("%w: %d descriptions in progress from %s, the most one source may have (--max-pending-per-source), try again later", errBusy, u.count, owner)
	case a.perSource.bytes > 0 && u.bytes+charge > a.perSource.bytes:
		a.drop(c.UUID)
		a.busySource++
		return nil, false, fmt.Errorf("%w: descriptions in progress from %s hold %d bytes, the most one source may (--max-pending-bytes-per-source), try again later", errBusy, owner, u.bytes)
	}
	if p == nil {
		p = &assembly{started: now, source: owner}
		a.pending[c.UUID] = p
		a.sources[owner] = u
		u.count++
	}
	p.chunks = append(p.chunks, bytes.Clone(c.Data))
	p.size += len(c.Data)
	p.charge += charge
	a.total += charge
	u.bytes += charge
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

// held is the bytes charged for all descriptions still arriving.
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

// assemblyUsage is the assembler's state, for <get>.
type assemblyUsage struct {
	descriptions, bytes, sources int
	busy, busySource             uint64
}

func (a *assembler) usage() assemblyUsage {
	a.mu.Lock()
	defer a.mu.Unlock()
	return assemblyUsage{descriptions: len(a.pending), bytes: a.total, sources: len(a.sources), busy: a.busy, busySource: a.busySource}
}
