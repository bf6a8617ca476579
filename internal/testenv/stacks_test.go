package testenv

import (
	"strings"
	"testing"
)

func parkedInTestenv(release <-chan struct{}, parked chan<- struct{}) {
	parked <- struct{}{}
	<-release
}

// Two goroutines parked at the same place appear once, with their count;
// goroutines of other packages are left out.
func TestProjectStacksGroupsIdenticalStacks(t *testing.T) {
	release, parked := make(chan struct{}), make(chan struct{})
	defer close(release)
	for range 2 {
		go parkedInTestenv(release, parked)
		<-parked
	}
	// Sent on parked, a goroutine may not be blocked on release yet.
	WaitFor(t, "both goroutines blocked", func() bool {
		return strings.Contains(ProjectStacks("testenv.parkedInTestenv"), "2× [chan receive]:\n")
	})
	got := ProjectStacks("testenv.parkedInTestenv")
	if !strings.Contains(got, "2× [chan receive]:\n") || strings.Count(got, "parkedInTestenv(") != 1 {
		t.Fatalf("stacks:\n%s", got)
	}
	if strings.Contains(got, "testing.tRunner") {
		t.Fatalf("a goroutine outside the filter was kept:\n%s", got)
	}
}
