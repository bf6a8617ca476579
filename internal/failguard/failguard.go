// Package failguard slows password guessing down: it counts failed logins
// per source address and, past a small allowance, refuses every login
// from that source, right or wrong, for a time that doubles with each
// further failure. The NETCONF server and the embedded MQTT broker use
// one each.
package failguard

import (
	"net"
	"sync"
	"time"
)

// Defaults of Guard.
const (
	DefaultFree = 5               // failures before the first lockout
	DefaultBase = time.Second     // the first lockout
	DefaultMax  = 5 * time.Minute // the longest; also how long a quiet source is remembered
	maxSources  = 1 << 16         // sources tracked at once
)

// Guard tracks failed logins per source. The zero value is not usable:
// make one with New.
type Guard struct {
	free      int
	base, max time.Duration
	now       func() time.Time

	mu      sync.Mutex
	sources map[string]*record
}

type record struct {
	failures int
	until    time.Time // locked out until
	last     time.Time
}

// New makes a Guard with the defaults; now is the clock (nil: time.Now).
func New(now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{free: DefaultFree, base: DefaultBase, max: DefaultMax, now: now, sources: map[string]*record{}}
}

// Source is the address part of a remote address ("127.0.0.2:4711" ->
// "127.0.0.2"): the ports of one attacker vary.
func Source(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// Locked returns how long source is still refused; 0 when it may try.
func (g *Guard) Locked(source string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.sources[source]
	if r == nil {
		return 0
	}
	if d := r.until.Sub(g.now()); d > 0 {
		return d
	}
	return 0
}

// Failed records a failed login from source.
func (g *Guard) Failed(source string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.sources[source]
	if r == nil || now.Sub(r.last) > g.max {
		if r == nil && len(g.sources) >= maxSources {
			g.forgetQuietLocked(now)
		}
		r = &record{}
		g.sources[source] = r
	}
	r.failures++
	r.last = now
	if over := r.failures - g.free; over > 0 {
		lock := g.base << min(over-1, 30)
		if lock > g.max || lock <= 0 {
			lock = g.max
		}
		r.until = now.Add(lock)
	}
}

// Succeeded forgets source's failures.
func (g *Guard) Succeeded(source string) {
	g.mu.Lock()
	delete(g.sources, source)
	g.mu.Unlock()
}

// forgetQuietLocked drops the sources quiet for longer than max, or, if
// none is, the quietest half: memory stays bounded under a flood of
// sources. The caller holds mu.
func (g *Guard) forgetQuietLocked(now time.Time) {
	for s, r := range g.sources {
		if now.Sub(r.last) > g.max {
			delete(g.sources, s)
		}
	}
	for s := range g.sources {
		if len(g.sources) < maxSources/2 {
			break
		}
		delete(g.sources, s)
	}
}
