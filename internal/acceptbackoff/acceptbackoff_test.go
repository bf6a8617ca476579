package acceptbackoff

import (
	"testing"
	"time"
)

// The wait doubles from MinDelay to MaxDelay; warnings come on the first
// error and then once per LogInterval; Accepted resets and counts.
func TestBackoff(t *testing.T) {
	var b Backoff
	now := time.Unix(0, 0)
	wantWaits := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range wantWaits {
		wait, log := b.Failed(now)
		if wait != w*time.Millisecond {
			t.Fatalf("error %d: wait %v, want %v", i+1, wait, w*time.Millisecond)
		}
		if log != (i == 0) {
			t.Fatalf("error %d: log %v", i+1, log)
		}
		now = now.Add(time.Second)
	}
	if _, log := b.Failed(now); !log {
		t.Fatal("no warning after LogInterval")
	}
	if run := b.Accepted(); run != uint64(len(wantWaits)+1) {
		t.Fatalf("run %d", run)
	}
	if wait, log := b.Failed(now); wait != MinDelay || !log {
		t.Fatalf("after Accepted: wait %v, log %v", wait, log)
	}
}
