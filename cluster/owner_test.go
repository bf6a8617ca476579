package cluster_test

import (
	"fmt"
	"testing"

	"github.com/myno-bridge/myno/cluster"
)

// Rendezvous hashing: every member owns a share, the answer does not
// depend on map order, and a member leaving moves only its own devices.
func TestRendezvousOwner(t *testing.T) {
	members := map[string]bool{"a": true, "b": true, "c": true}
	owners := map[string]string{}
	share := map[string]int{}
	for i := range 3000 {
		uuid := fmt.Sprintf("dev-%d", i)
		o := cluster.Owner(members, uuid)
		for range 3 {
			if again := cluster.Owner(members, uuid); again != o {
				t.Fatalf("%s: owner %s, then %s", uuid, o, again)
			}
		}
		owners[uuid] = o
		share[o]++
	}
	for m := range members {
		if share[m] < 850 || share[m] > 1150 {
			t.Errorf("member %s owns %d of 3000", m, share[m])
		}
	}
	delete(members, "b")
	for uuid, was := range owners {
		now := cluster.Owner(members, uuid)
		if was != "b" && now != was {
			t.Fatalf("%s moved from %s to %s when b left", uuid, was, now)
		}
		if now == "b" {
			t.Fatalf("%s still owned by b", uuid)
		}
	}
	if got := cluster.Owner(map[string]bool{"solo": true}, "x"); got != "solo" {
		t.Errorf("alone: %q", got)
	}
}
