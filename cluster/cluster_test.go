package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/internal/testenv"
)

func join(t *testing.T, e *testenv.Etcd, instance string, ttl time.Duration) *cluster.Member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := cluster.Join(ctx, cluster.Config{Endpoints: e.Endpoints(), Cluster: "c1", Instance: instance, LeaseTTL: ttl,
		RequestTimeout: time.Second, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitMembers(t *testing.T, m *cluster.Member, want ...string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("members %v", want), func() bool { return slices.Equal(m.Members(), want) },
		func() string { return fmt.Sprintf("members %v", m.Members()) })
}

// Members come with their lease and go when they leave (at once) or die
// (when the lease expires); two live instances cannot share a name.
func TestMembershipFollowsLeases(t *testing.T) {
	e := testenv.StartEtcd(t, 3)
	a := join(t, e, "a", 2*time.Second)
	defer a.Close(context.Background())
	b := join(t, e, "b", 2*time.Second)
	waitMembers(t, a, "a", "b")
	waitMembers(t, b, "a", "b")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cluster.Join(ctx, cluster.Config{Endpoints: e.Endpoints(), Cluster: "c1", Instance: "b", Logger: testenv.Logger()}); err == nil ||
		!strings.Contains(err.Error(), "is a member already") {
		t.Fatalf("a second b: %v", err)
	}

	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, a, "a") // revoked: at once

	c := join(t, e, "c", 2*time.Second)
	waitMembers(t, a, "a", "c")
	start := time.Now()
	c.Abandon() // a crash: the lease runs out
	waitMembers(t, a, "a")
	if gone := time.Since(start); gone < time.Second {
		t.Fatalf("a crashed member went after %s, before its 2 s lease could expire", gone)
	}
	if owner := a.Owner("dev-1"); owner != "a" {
		t.Fatalf("alone, a does not own dev-1: %s", owner)
	}
}

// follower records what Follow tells.
type follower struct {
	mu      sync.Mutex
	devices map[string]cluster.Device
	resets  int
}

func newFollower() *follower { return &follower{devices: map[string]cluster.Device{}} }

func (f *follower) Reset(_ context.Context, ds []cluster.Device) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets++
	clear(f.devices)
	for _, d := range ds {
		f.devices[d.UUID] = d
	}
}

func (f *follower) Put(_ context.Context, d cluster.Device) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.devices[d.UUID] = d
}

func (f *follower) Deleted(_ context.Context, uuid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.devices, uuid)
}

func (f *follower) Applied(context.Context) {}

func (f *follower) uuids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.devices))
}

func (f *follower) get(uuid string) (cluster.Device, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.devices[uuid]
	return d, ok
}

func follow(m *cluster.Member, f cluster.Follower) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Follow(ctx, f)
	}()
	return func() { cancel(); <-done }
}

func waitDevices(t *testing.T, f *follower, want ...string) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("devices %v", want), func() bool { return slices.Equal(f.uuids(), want) },
		func() string { return fmt.Sprintf("devices %v", f.uuids()) })
}

// Registrations reach the other instances, with each shape stored once;
// a device deleted while an instance was not following stays deleted
// when it follows again.
func TestRegistryFollowAndDeleteWhileDown(t *testing.T) {
	e := testenv.StartEtcd(t, 3)
	a := join(t, e, "a", 2*time.Second)
	defer a.Close(context.Background())
	b := join(t, e, "b", 2*time.Second)
	defer b.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	lamp, plug := []byte(`{"shape":"lamp","uuid":"%s"}`), []byte(`{"shape":"plug","uuid":"%s"}`)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if err := a.Register(ctx, "lamp-1", lamp, at); err != nil {
		t.Fatal(err)
	}
	fb := newFollower()
	stop := follow(b, fb)
	waitDevices(t, fb, "lamp-1") // from the list
	for _, r := range []struct {
		uuid  string
		shape []byte
	}{{"lamp-2", lamp}, {"plug-1", plug}} {
		if err := a.Register(ctx, r.uuid, r.shape, at); err != nil {
			t.Fatal(err)
		}
	}
	waitDevices(t, fb, "lamp-1", "lamp-2", "plug-1") // from the watch
	d, _ := fb.get("plug-1")
	if string(d.Shape) != string(plug) || d.Binding.By != "a" || !d.Binding.RegisteredAt.Equal(at) || d.Binding.Shape != cluster.ShapeHash(plug) {
		t.Fatalf("plug-1 as b has it: %+v %s", d.Binding, d.Shape)
	}
	if n, err := a.ShapeCount(ctx); err != nil || n != 2 {
		t.Fatalf("shapes in etcd: %d %v, want 2", n, err)
	}

	// b stops following (down); a deletes lamp-1; b follows again.
	stop()
	if err := a.Delete(ctx, "lamp-1"); err != nil {
		t.Fatal(err)
	}
	fb.Put(ctx, cluster.Device{UUID: "lamp-1"}) // what b still held while down
	stop = follow(b, fb)
	defer stop()
	waitDevices(t, fb, "lamp-2", "plug-1")
	if err := a.Delete(ctx, "plug-1"); err != nil {
		t.Fatal(err)
	}
	waitDevices(t, fb, "lamp-2")
}

// Without an etcd quorum a member is read-only: registrations fail with
// ErrReadOnly and Writable says so; with the quorum back, both recover.
// A member of etcd killed and restarted in between changes nothing.
func TestQuorumLossMakesTheClusterReadOnly(t *testing.T) {
	e := testenv.StartEtcd(t, 3)
	a := join(t, e, "a", 3*time.Second)
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	shape := []byte(`{"uuid":"%s"}`)
	e.Restart(2) // one member down and back: still a quorum throughout
	if err := a.Register(ctx, "d-1", shape, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.Stop(1)
	e.Stop(2)
	testenv.WaitFor(t, "a to be read-only", func() bool { return !a.Writable() })
	if err := a.Register(ctx, "d-2", shape, time.Now()); !errors.Is(err, cluster.ErrReadOnly) {
		t.Fatalf("registering without a quorum: %v", err)
	}
	e.Restart(1)
	testenv.WaitFor(t, "a to be writable again", a.Writable)
	if err := a.Register(ctx, "d-2", shape, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// batchFollower is a follower whose first Applied waits for a release,
// as one busy saving would: what the watch brings meanwhile is buffered.
type batchFollower struct {
	*follower
	release chan struct{}
	mu      sync.Mutex
	applied int
}

func (f *batchFollower) Applied(context.Context) {
	f.mu.Lock()
	f.applied++
	first := f.applied == 1
	f.mu.Unlock()
	if first {
		<-f.release
	}
}

func (f *batchFollower) batches() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// A follower that fell behind takes what the watch brought meanwhile in
// few batches (one Applied each), not one per registration: its costly
// work (the bridge's save and subscriptions) is done once for many, so it
// catches up (the cluster's lag, issue 18).
func TestFollowerBehindCatchesUpInBatches(t *testing.T) {
	e := testenv.StartEtcd(t, 1)
	a := join(t, e, "a", 2*time.Second)
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := &batchFollower{follower: newFollower(), release: make(chan struct{})}
	stop := follow(a, f)
	defer stop()
	testenv.WaitFor(t, "the first listing", func() bool {
		f.follower.mu.Lock()
		defer f.follower.mu.Unlock()
		return f.resets > 0
	})
	shape := []byte(`{"shape":"lamp"}`)
	const devices = 60
	var want []string
	for i := range devices {
		uuid := fmt.Sprintf("dev-%02d", i)
		if err := a.Register(ctx, uuid, shape, time.Now()); err != nil {
			t.Fatal(err)
		}
		want = append(want, uuid)
	}
	close(f.release)
	waitDevices(t, f.follower, want...)
	if n := f.batches(); n > 10 {
		t.Fatalf("%d registrations made while the follower was busy came in %d batches", devices, n)
	}
}
