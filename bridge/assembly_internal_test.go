package bridge

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/myno-bridge/myno/wire"
)

// Descriptions that start and never end, from many uuids, hold at most the
// global cap (issue 12: a flood of them took the bridge from 44 MB to
// 2.84 GB); a device refused for want of room is told so, and the room
// comes back as descriptions end or expire.
func TestAssemblerHoldsAtMostItsCap(t *testing.T) {
	const chunk, capBytes = 1000, 10_000
	a := newAssembler(256<<10, 1024, capBytes, sourceLimits{}, time.Minute)
	now := time.Now()
	busy := 0
	for i := range 1000 {
		_, _, err := a.add(wire.Chunk{UUID: fmt.Sprintf("flood-%d", i), Data: make([]byte, chunk)}, "anonymous", now)
		if errors.Is(err, errBusy) {
			busy++
		} else if err != nil {
			t.Fatal(err)
		}
		if a.held() > capBytes {
			t.Fatalf("holds %d bytes, cap %d", a.held(), capBytes)
		}
	}
	// Each description is charged its bytes and its bookkeeping.
	if held := capBytes / assemblyCharge(chunk, 1); busy != 1000-held {
		t.Errorf("%d refused as busy, want %d", busy, 1000-held)
	}
	// An END frees its description's room.
	if _, done, err := a.add(wire.Chunk{UUID: "flood-0", End: true}, "anonymous", now); !done || err != nil {
		t.Fatalf("END: %v %v", done, err)
	}
	if _, _, err := a.add(wire.Chunk{UUID: "late", Data: make([]byte, chunk)}, "anonymous", now); err != nil {
		t.Errorf("after an END there is room again: %v", err)
	}
	// Expiry frees the rest.
	a.expire(now.Add(2*time.Minute), func(string, int, time.Duration) {})
	if a.held() != 0 || a.count() != 0 {
		t.Errorf("after expiry: %d bytes in %d descriptions", a.held(), a.count())
	}
}
