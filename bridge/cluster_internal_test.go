package bridge

import (
	"fmt"
	"testing"
)

// Rendezvous hashing: every member owns a share, the answer does not
// depend on map order, and a member leaving moves only its own devices.
func TestRendezvousOwner(t *testing.T) {
	members := map[string]bool{"a": true, "b": true, "c": true}
	owners := map[string]string{}
	share := map[string]int{}
	for i := range 3000 {
		uuid := fmt.Sprintf("dev-%d", i)
		o := rendezvousOwner(members, uuid)
		for range 3 {
			if again := rendezvousOwner(members, uuid); again != o {
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
		now := rendezvousOwner(members, uuid)
		if was != "b" && now != was {
			t.Fatalf("%s moved from %s to %s when b left", uuid, was, now)
		}
		if now == "b" {
			t.Fatalf("%s still owned by b", uuid)
		}
	}
	if got := rendezvousOwner(map[string]bool{"solo": true}, "x"); got != "solo" {
		t.Errorf("alone: %q", got)
	}
}

func TestClusterNames(t *testing.T) {
	for _, tc := range []struct {
		cluster, instance string
		ok                bool
	}{
		{"c1", "a", true},
		{"prod.eu-1", "bridge_07", true},
		{"", "a", false},
		{"c/1", "a", false},
		{"c1", "a+", false},
		{"c1", "#", false},
		{"c1", "a:b", false},
		{"c1", string(make([]byte, 65)), false},
	} {
		_, err := newCluster(tc.cluster, tc.instance, nil, nil)
		if (err == nil) != tc.ok {
			t.Errorf("cluster %q instance %q: err %v, want ok=%v", tc.cluster, tc.instance, err, tc.ok)
		}
	}
}
