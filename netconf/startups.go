package netconf

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/myno-bridge/myno/internal/failguard"
)

// startupGate admits SSH handshakes before authentication ("startups",
// issue 12). Each costs the server key exchange and bcrypt
// checks before anyone is known, and may last HandshakeTime, so:
//
//   - At most Config.MaxStartups handshakes are in progress at once, as
//     with OpenSSH's MaxStartups.
//   - One source address holds at most Config.MaxStartupsPerSource of
//     them, as with OpenSSH's PerSourceMaxStartups (sshd_config(5)). The
//     default is a quarter of MaxStartups (8 of 32): a source that opens
//     silent connections holds 8 slots for HandshakeTime each, and the
//     other 24 stay free for everybody else.
//   - A connection that finds no slot for it does not get dropped, as
//     OpenSSH's do, but waits in a bounded queue
//     (Config.MaxStartupQueue, default 128) for at most HandshakeTime; the
//     handshake then gets its own HandshakeTime. One source holds at most
//     Config.MaxStartupQueuePerSource entries (default half the queue), so
//     that one source cannot fill it. A connection beyond its source's
//     share or beyond a full queue is closed at once.
//   - A slot that frees goes to the waiting connection whose source has
//     the fewest handshakes in progress, the longest waiting first among
//     those; one source's connections are served in their order. A queued
//     connection of a source at its per-source limit never blocks others.
//
// The per-source limit bounds parallelism, not admission: an operator's
// campaign of 48 parallel sessions from one address (or many operators
// behind one NAT address) runs 8 handshakes at a time and queues the
// others; only past 8 + 64 waiting from one address are connections
// refused. A source is its address as failguard.Source gives it (IPv6 per
// /128, like OpenSSH's default PerSourceNetBlockSize 32:128).
//
// The gate holds no goroutine: the connection's own goroutine (owned by
// Server.wg) waits on its ticket, and gives up when the server shuts
// down or Serve's context ends.
type startupGate struct {
	max, perSource, queueMax, queuePerSource int

	mu      sync.Mutex
	active  int                      // tickets holding a slot
	queue   []*startupTicket         // waiting, in arrival order
	sources map[string]*sourceStarts // sources with a ticket held or waiting
	stats   StartupStats             // InProgress and Queued are filled in by Stats
}

type sourceStarts struct{ active, queued int }

type ticketState int

const (
	ticketQueued ticketState = iota
	ticketGranted
	ticketReleased
)

// startupTicket is one connection's place: a slot or a queue entry.
type startupTicket struct {
	g      *startupGate
	source string
	ready  chan struct{} // closed when the ticket gets a slot
	state  ticketState   // guarded by g.mu
}

// StartupStats counts SSH connections before authentication
// (Server.Startups).
type StartupStats struct {
	InProgress int // handshakes holding a slot now
	Queued     int // connections waiting for a slot now
	// Since NewServer:
	QueuedTotal      uint64 // connections that had to wait for a slot
	RefusedPerSource uint64 // closed at once: their address had its handshakes in progress and its share of the queue
	RefusedQueueFull uint64 // closed at once: the queue was full
	Expired          uint64 // closed after waiting HandshakeTime for a slot
}

var (
	errSourceBusy = errors.New("too many ssh handshakes from this address")
	errQueueFull  = errors.New("ssh handshake queue full")
	errWaitedOut  = errors.New("no ssh handshake slot in time")
)

func newStartupGate(max, perSource, queueMax, queuePerSource int) *startupGate {
	return &startupGate{max: max, perSource: perSource, queueMax: queueMax, queuePerSource: queuePerSource,
		sources: map[string]*sourceStarts{}}
}

// enter gives the connection from remote a slot, or a place in the queue,
// or refuses it (errSourceBusy, errQueueFull). It never blocks.
func (g *startupGate) enter(remote string) (*startupTicket, error) {
	source := failguard.Source(remote)
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.sources[source]
	if c == nil {
		c = &sourceStarts{}
		g.sources[source] = c
	}
	t := &startupTicket{g: g, source: source, ready: make(chan struct{})}
	// Whenever a slot is free, every waiting ticket's source is at its
	// limit (dispatch would have served it otherwise): taking the slot
	// overtakes nobody who could have had it.
	if g.active < g.max && c.active < g.perSource {
		g.grantLocked(t, c)
		return t, nil
	}
	switch {
	case c.queued >= g.queuePerSource:
		g.stats.RefusedPerSource++
		g.forgetLocked(source, c)
		return nil, errSourceBusy
	case len(g.queue) >= g.queueMax:
		g.stats.RefusedQueueFull++
		g.forgetLocked(source, c)
		return nil, errQueueFull
	}
	g.queue = append(g.queue, t)
	c.queued++
	g.stats.QueuedTotal++
	return t, nil
}

func (g *startupGate) grantLocked(t *startupTicket, c *sourceStarts) {
	t.state = ticketGranted
	c.active++
	g.active++
	close(t.ready)
}

func (g *startupGate) forgetLocked(source string, c *sourceStarts) {
	if c.active == 0 && c.queued == 0 {
		delete(g.sources, source)
	}
}

// dispatchLocked hands free slots to waiting tickets: to the one whose
// source has the fewest handshakes in progress, the oldest among those.
func (g *startupGate) dispatchLocked() {
	for g.active < g.max {
		best, fewest := -1, g.perSource
		for i, t := range g.queue {
			if n := g.sources[t.source].active; n < fewest {
				best, fewest = i, n
			}
		}
		if best < 0 {
			return
		}
		t := g.queue[best]
		g.queue = slices.Delete(g.queue, best, best+1)
		c := g.sources[t.source]
		c.queued--
		g.grantLocked(t, c)
	}
}

// wait returns nil once t holds a slot, or an error (and t released)
// when it waited longer than max or done was closed first.
func (t *startupTicket) wait(done <-chan struct{}, max time.Duration) error {
	select {
	case <-t.ready:
		return nil
	default:
	}
	timer := time.NewTimer(max)
	defer timer.Stop()
	var err error
	select {
	case <-t.ready:
		return nil
	case <-timer.C:
		err = errWaitedOut
	case <-done:
		err = context.Canceled
	}
	g := t.g
	g.mu.Lock()
	if err == errWaitedOut && t.state == ticketQueued {
		g.stats.Expired++
	}
	g.mu.Unlock()
	t.release()
	return err
}

// release gives t's slot back, or takes it out of the queue; it may be
// called more than once.
func (t *startupTicket) release() {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.sources[t.source]
	switch t.state {
	case ticketReleased:
		return
	case ticketQueued:
		g.queue = slices.DeleteFunc(g.queue, func(q *startupTicket) bool { return q == t })
		c.queued--
	case ticketGranted:
		c.active--
		g.active--
	}
	t.state = ticketReleased
	g.forgetLocked(t.source, c)
	g.dispatchLocked()
}

// Stats returns the counters and the current load.
func (g *startupGate) Stats() StartupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.stats
	st.InProgress, st.Queued = g.active, len(g.queue)
	return st
}

// Startups returns how many SSH handshakes are in progress and waiting,
// and how many connections were refused or waited out before their
// handshake, since NewServer (see Config.MaxStartups).
func (s *Server) Startups() StartupStats { return s.startups.Stats() }
