// Package acceptbackoff paces an accept loop after failed Accepts and
// rate-limits its warnings, so that a listener at the file-descriptor
// limit (EMFILE) neither spins nor stops, and its log stays readable. The
// NETCONF server and the embedded MQTT broker use it.
package acceptbackoff

import "time"

// The pacing is net/http.Server's: the first wait after a failed Accept
// is MinDelay, doubling up to MaxDelay; a connection accepted resets it.
// The first error of a run is logged, then one every LogInterval while
// the run lasts.
const (
	MinDelay    = 5 * time.Millisecond
	MaxDelay    = time.Second
	LogInterval = 10 * time.Second
)

// Backoff belongs to one accept loop; it is not safe for concurrent use.
// The zero value is ready.
type Backoff struct {
	delay  time.Duration
	run    uint64    // errors since the last connection accepted
	logged time.Time // when the last warning was logged
}

// Failed returns how long to wait before the next Accept and whether to
// log this error.
func (b *Backoff) Failed(now time.Time) (wait time.Duration, log bool) {
	b.run++
	b.delay = min(max(2*b.delay, MinDelay), MaxDelay)
	log = b.run == 1 || now.Sub(b.logged) >= LogInterval
	if log {
		b.logged = now
	}
	return b.delay, log
}

// Accepted resets the backoff and returns how many errors the run had.
func (b *Backoff) Accepted() uint64 {
	run := b.run
	b.run, b.delay = 0, 0
	return run
}
