package bridge

import (
	"context"
	"sync"
	"time"
)

// tasks owns the bridge's goroutines: handlers of incoming messages and
// background loops. Close stops accepting new ones and waits for those
// running, so none outlives the bridge.
type tasks struct {
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// goDo runs f in a goroutine of its own, unless the bridge is stopping
// (then it reports false and f does not run).
func (t *tasks) goDo(f func()) bool {
	// Add under the lock that stop takes before it waits: no Add can race
	// with that Wait (sync.WaitGroup's rule).
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// stop refuses new goroutines and waits for the running ones; they watch
// the bridge's context, which the caller cancels first.
func (t *tasks) stop() {
	t.mu.Lock()
	t.stopped = true
	t.mu.Unlock()
	t.wg.Wait()
}

// every calls f with the time every period until ctx ends: the loop of
// the bridge's watchers and expiries.
func every(ctx context.Context, period time.Duration, f func(now time.Time)) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
