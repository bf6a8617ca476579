package client

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Resubscription timing: each SUBSCRIBE waits at most attemptTimeout for
// its SUBACK; a pass that leaves topics not granted is followed, after a
// capped exponential backoff with jitter, by another pass over those.
const (
	attemptTimeout  = 5 * time.Second
	resubMinBackoff = 100 * time.Millisecond
	resubMaxBackoff = 5 * time.Second
	// resubLogEvery: a topic that keeps failing is logged on its first
	// failure and then on every resubLogEvery-th.
	resubLogEvery = 10
)

// resubscriber restores the subscriptions after each (re)connection.
//
// Every connection gets one goroutine, started by connectionUp. It sends a
// SUBSCRIBE for each topic to restore, and keeps sending those not granted
// (an error, a timeout or a SUBACK failure reason code) until the broker
// grants them all, then calls onRestored. The goroutine stops early when
// its connection goes down (connectionDown; the next connectionUp starts
// the work over) or when the client closes (close, which waits for it).
type resubscriber struct {
	log  *slog.Logger
	subs *subscriptions
	// subscribe sends a SUBSCRIBE for topic (MQTT 5: again at once while
	// refused with 0x91, see retryIDInUse) and returns nil only when the
	// broker granted it.
	subscribe func(ctx context.Context, topic string) error
	// unsubscribe sends an UNSUBSCRIBE for topic.
	unsubscribe func(ctx context.Context, topic string) error
	onRestored  func() // Config.OnReconnect; may be nil

	mu     sync.Mutex
	closed bool
	cancel context.CancelFunc // ends the current connection's work
	wg     sync.WaitGroup     // the goroutines started by connectionUp
}

// connectionUp ends the previous connection's work, if any is left, and
// starts restoring topics on the new connection.
func (r *resubscriber) connectionUp(topics []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.cancel != nil {
		r.cancel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	// Added under the lock that close takes before it waits, so that no
	// Add races with that Wait.
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer cancel()
		r.run(ctx, topics)
	}()
}

// connectionDown ends the current connection's work when down reports
// that the connection is down; it is evaluated under the lock that
// connectionUp takes, so that it cannot end the work of a connection that
// came up meanwhile.
func (r *resubscriber) connectionDown(down func() bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancel != nil && (down == nil || down()) {
		r.cancel()
		r.cancel = nil
	}
}

// close ends the work for good and waits until its goroutines have
// returned, or until ctx ends.
func (r *resubscriber) close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	if r.cancel != nil {
		r.cancel()
		r.cancel = nil
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt close: resubscription still running: %w", ctx.Err())
	}
}

// run restores topics on one connection until all are granted or ctx ends.
func (r *resubscriber) run(ctx context.Context, topics []string) {
	failures := map[string]int{}
	pending := topics
	for pass := 0; len(pending) > 0; pass++ {
		if pass > 0 {
			t := time.NewTimer(resubBackoff(pass))
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		var again []string
		for _, topic := range pending {
			if ctx.Err() != nil {
				return
			}
			if !r.subs.has(topic) {
				continue // unsubscribed meanwhile: not restored
			}
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			err := r.subscribe(actx, topic)
			cancel()
			if ctx.Err() != nil {
				return // the connection is gone; the next one starts over
			}
			if err != nil {
				failures[topic]++
				if n := failures[topic]; n == 1 || n%resubLogEvery == 0 {
					r.log.Warn("mqtt resubscribe failed; retrying", "topic", topic, "attempt", n, "err", err)
				}
				again = append(again, topic)
				continue
			}
			if n := failures[topic]; n > 0 {
				r.log.Info("mqtt subscription restored", "topic", topic, "attempts", n+1)
			}
			if !r.subs.has(topic) {
				// Unsubscribed while our SUBSCRIBE was on its way: the
				// broker may have processed the UNSUBSCRIBE first.
				uctx, cancel := context.WithTimeout(ctx, attemptTimeout)
				if err := r.unsubscribe(uctx, topic); err != nil && ctx.Err() == nil {
					r.log.Warn("mqtt unsubscribe after resubscribe failed", "topic", topic, "err", err)
				}
				cancel()
				if r.subs.has(topic) {
					again = append(again, topic) // and subscribed once more meanwhile
				}
			}
		}
		pending = again
	}
	if r.onRestored != nil {
		r.onRestored()
	}
}

// resubBackoff is the wait before resubscription pass n (n >= 1):
// resubMinBackoff doubling up to resubMaxBackoff, of which a random half
// is taken off, so that many clients restarted together spread out.
func resubBackoff(n int) time.Duration {
	d := resubMaxBackoff
	if n-1 < 16 {
		d = min(resubMinBackoff<<(n-1), resubMaxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}
