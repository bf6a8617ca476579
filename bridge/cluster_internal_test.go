package bridge

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/internal/testenv"
)

func TestClusterNames(t *testing.T) {
	if _, err := newCluster("c1", "a", EtcdConfig{}, nil, nil); err == nil {
		t.Error("a cluster without etcd endpoints")
	}
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
		_, err := newCluster(tc.cluster, tc.instance, EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}}, nil, nil)
		if (err == nil) != tc.ok {
			t.Errorf("cluster %q instance %q: err %v, want ok=%v", tc.cluster, tc.instance, err, tc.ok)
		}
	}
}

// heldDevices is a replica that holds devices and notes what it forgets.
type heldDevices struct {
	mu        sync.Mutex
	held      []string
	forgotten []string
}

func (h *heldDevices) newReplicatedBatch() replicaBatch     { return heldBatch{h} }
func (h *heldDevices) holds(string, time.Time, []byte) bool { return false }
func (h *heldDevices) followed(time.Duration)               {}
func (h *heldDevices) devices() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.held)
}
func (h *heldDevices) unregister(_ context.Context, uuid string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.forgotten = append(h.forgotten, uuid)
	h.held = slices.DeleteFunc(h.held, func(u string) bool { return u == uuid })
	return true
}

type heldBatch struct{ h *heldDevices }

func (b heldBatch) register(_ context.Context, uuid string, _ []byte, _ time.Time) error {
	b.h.mu.Lock()
	defer b.h.mu.Unlock()
	if !slices.Contains(b.h.held, uuid) {
		b.h.held = append(b.h.held, uuid)
	}
	return nil
}
func (heldBatch) done(context.Context) {}

// A listing that lacks a device registered here after it was taken does
// not make the follower forget it (etcd has it, the watch brings it);
// one the cluster no longer has is forgotten.
func TestResetKeepsDevicesRegisteredAfterTheListing(t *testing.T) {
	e := testenv.StartEtcd(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := cluster.Join(ctx, cluster.Config{Endpoints: e.Endpoints(), Cluster: "c1", Instance: "a", RequestTimeout: time.Second, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	if err := m.Register(ctx, "late", []byte(`{"shape":"lamp","uuid":"%s"}`), time.Now()); err != nil {
		t.Fatal(err)
	}
	h := &heldDevices{held: []string{"late", "gone"}}
	f := newFollower(&instanceOf{name: "c1", instance: "a", replica: h, log: testenv.Logger(), member: m})
	f.Reset(ctx, nil) // a listing taken before "late" was registered
	if !slices.Equal(h.forgotten, []string{"gone"}) {
		t.Errorf("forgotten %v, want [gone] only", h.forgotten)
	}
}
