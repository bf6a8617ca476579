package bridge

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// One source may have so many descriptions in progress, and so many
// bytes of them; past that it is told the bridge is busy, while other
// sources are not; an END, a refusal or expiry gives its room back, and a
// source with nothing in progress is forgotten.
func TestAssemblerLimitsEachSource(t *testing.T) {
	const chunk = 100
	a := newAssembler(256<<10, 1024, 1<<20, sourceLimits{count: 4, bytes: 5 * assemblyCharge(chunk, 1)}, time.Minute)
	now := time.Now()
	add := func(uuid, source string, n int) error {
		_, _, err := a.add(wire.Chunk{UUID: uuid, Data: make([]byte, n)}, source, now)
		return err
	}
	for i := range 4 {
		if err := add(fmt.Sprintf("flood-%d", i), "anonymous", chunk); err != nil {
			t.Fatal(err)
		}
	}
	err := add("flood-4", "anonymous", chunk)
	if !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "--max-pending-per-source") {
		t.Fatalf("a fifth description from one source: %v", err)
	}
	if err := add("led-1", "device:led-1", chunk); err != nil {
		t.Fatalf("another source: %v", err)
	}
	// Bytes: flood-0 grows past its source's share; the description is
	// dropped, and its room given back.
	if err := add("flood-0", "anonymous", 10*chunk); !errors.Is(err, errBusy) || !strings.Contains(err.Error(), "--max-pending-bytes-per-source") {
		t.Fatalf("past the source's bytes: %v", err)
	}
	if err := add("flood-5", "anonymous", chunk); err != nil {
		t.Fatalf("after a refusal freed a place: %v", err)
	}
	// A chunk of a description in progress is charged to the source that
	// started it, whoever sends it.
	if err := add("flood-1", "device:led-1", chunk); err != nil {
		t.Fatal(err)
	}
	if u := a.usage(); u.sources != 2 || u.descriptions != 5 || u.busySource != 2 {
		t.Errorf("usage %+v", u)
	}
	if _, done, err := a.add(wire.Chunk{UUID: "flood-1", End: true}, "anonymous", now); !done || err != nil {
		t.Fatalf("END: %v %v", done, err)
	}
	if err := add("flood-6", "anonymous", chunk); err != nil {
		t.Fatalf("after an END: %v", err)
	}
	a.expire(now.Add(2*time.Minute), func(string, int, time.Duration) {})
	if u := a.usage(); u.sources != 0 || u.descriptions != 0 || u.bytes != 0 || len(a.sources) != 0 {
		t.Errorf("after expiry: %+v", u)
	}
}

// Who a source is: the identity the embedded broker names (anonymous
// clients together), or the uuid where the broker names nobody.
func TestSourceOf(t *testing.T) {
	for _, tc := range []struct {
		sender *access.Identity
		want   string
	}{
		{nil, "uuid:led-1"},
		{&access.Identity{}, "anonymous"},
		{&access.Identity{Name: "led-1", Role: access.RoleDevice}, "device:led-1"},
	} {
		if got := sourceOf(client.Message{Sender: tc.sender}, "led-1"); got != tc.want {
			t.Errorf("sender %v: %q, want %q", tc.sender, got, tc.want)
		}
	}
}
