package failguard_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/failguard"
)

func TestLockoutGrowsPerSource(t *testing.T) {
	now := time.Unix(0, 0)
	g := failguard.New(func() time.Time { return now })
	for i := range failguard.DefaultFree {
		if g.Locked("a") != 0 {
			t.Fatalf("locked after %d failures", i)
		}
		g.Failed("a")
	}
	if g.Locked("a") != 0 {
		t.Fatal("locked within the allowance")
	}
	g.Failed("a") // one over: 1 s
	if d := g.Locked("a"); d != time.Second {
		t.Fatalf("lockout %s, want 1s", d)
	}
	g.Failed("a") // two over: 2 s
	if d := g.Locked("a"); d != 2*time.Second {
		t.Fatalf("lockout %s, want 2s", d)
	}
	if g.Locked("b") != 0 {
		t.Error("another source is locked out")
	}
	now = now.Add(3 * time.Second)
	if g.Locked("a") != 0 {
		t.Error("still locked after the lockout")
	}
	for range 40 {
		g.Failed("a")
	}
	if d := g.Locked("a"); d != failguard.DefaultMax {
		t.Errorf("lockout %s, want the maximum %s", d, failguard.DefaultMax)
	}
	g.Succeeded("a")
	if g.Locked("a") != 0 {
		t.Error("locked after a success")
	}
	// A flood of sources keeps memory bounded and still tracks new ones.
	for i := range 200000 {
		g.Failed(fmt.Sprint("s", i))
	}
	for range failguard.DefaultFree + 1 {
		g.Failed("last")
	}
	if g.Locked("last") == 0 {
		t.Error("the newest source is not tracked")
	}
	if got := failguard.Source("127.0.0.2:4711"); got != "127.0.0.2" {
		t.Errorf("Source: %q", got)
	}
}
