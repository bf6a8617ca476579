package cluster_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
)

func wantShapes(t *testing.T, ctx context.Context, m interface {
	ShapeCount(context.Context) (int64, error)
}, want int64, when string) {
	t.Helper()
	if n, err := m.ShapeCount(ctx); err != nil || n != want {
		t.Fatalf("%s: %d shapes in etcd (%v), want %d", when, n, err, want)
	}
}

// A shape goes from etcd with the last device that used it: deleted, or
// registered again with another shape. One left behind (an instance that
// stopped between the two steps) goes with CollectShapes.
func TestShapesNoDeviceUsesAreCollected(t *testing.T) {
	e := testenv.StartEtcd(t, 1)
	a := join(t, e, "a", 2*time.Second)
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lamp, plug, fan := []byte(`{"shape":"lamp","uuid":"%s"}`), []byte(`{"shape":"plug","uuid":"%s"}`), []byte(`{"shape":"fan"}`)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	register := func(uuid string, shape []byte) {
		t.Helper()
		if err := a.Register(ctx, uuid, shape, at); err != nil {
			t.Fatal(err)
		}
	}
	register("lamp-1", lamp)
	register("lamp-2", lamp)
	register("plug-1", plug)
	register("plug-1", plug) // again, unchanged
	wantShapes(t, ctx, a, 2, "two shapes")
	if err := a.Delete(ctx, "plug-1"); err != nil {
		t.Fatal(err)
	}
	wantShapes(t, ctx, a, 1, "plug's last device deleted")
	if err := a.Delete(ctx, "plug-1"); err != nil {
		t.Fatalf("deleting a device that is gone: %v", err)
	}
	register("lamp-1", plug)
	wantShapes(t, ctx, a, 2, "lamp-1 became a plug")
	register("lamp-2", plug)
	wantShapes(t, ctx, a, 1, "lamp's last device became a plug")

	if err := a.PutShape(ctx, fan); err != nil {
		t.Fatal(err)
	}
	if n, err := a.CollectShapes(ctx); err != nil || n != 1 {
		t.Fatalf("collecting an orphan: %d collected, %v", n, err)
	}
	wantShapes(t, ctx, a, 1, "after collection")
	if n, err := a.CollectShapes(ctx); err != nil || n != 0 {
		t.Fatalf("collecting again: %d collected, %v", n, err)
	}
}

// A binding etcd holds but cannot be read (a broken writer, a disk
// fault), overwritten or deleted, gives up its reference too: its shape
// is collected with its last device.
func TestUnreadableBindingsLeaveNoReference(t *testing.T) {
	e := testenv.StartEtcd(t, 1)
	a := join(t, e, "a", 2*time.Second)
	defer a.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	lamp, plug := []byte(`{"shape":"lamp","uuid":"%s"}`), []byte(`{"shape":"plug","uuid":"%s"}`)
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, uuid := range []string{"lamp-1", "lamp-2"} {
		if err := a.Register(ctx, uuid, lamp, at); err != nil {
			t.Fatal(err)
		}
		if err := a.PutBinding(ctx, uuid, []byte("\x00 not a binding")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Register(ctx, "lamp-1", plug, at); err != nil {
		t.Fatal(err)
	}
	wantShapes(t, ctx, a, 2, "lamp-1 became a plug, lamp-2 is still a lamp")
	if err := a.Delete(ctx, "lamp-2"); err != nil {
		t.Fatal(err)
	}
	wantShapes(t, ctx, a, 1, "the lamp's last device deleted")
	if n, err := a.CollectShapes(ctx); err != nil || n != 0 {
		t.Errorf("a sweep found %d shapes left (%v)", n, err)
	}
}

// Collection does not race registration: two members register, delete
// and re-register devices of one shape at once, while a third collects
// in a loop. Every device left has its shape, which a follower finds.
func TestCollectionDoesNotRaceRegistration(t *testing.T) {
	e := testenv.StartEtcd(t, 1)
	a := join(t, e, "a", 2*time.Second)
	defer a.Close(context.Background())
	b := join(t, e, "b", 2*time.Second)
	defer b.Close(context.Background())
	c := join(t, e, "c", 2*time.Second)
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	shapes := [][]byte{[]byte(`{"shape":"lamp"}`), []byte(`{"shape":"plug"}`)}

	collectCtx, stopCollecting := context.WithCancel(ctx)
	collected := make(chan error, 1)
	go func() {
		for collectCtx.Err() == nil {
			if _, err := c.CollectShapes(collectCtx); err != nil && collectCtx.Err() == nil {
				collected <- err
				return
			}
		}
		collected <- nil
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w, m := range []interface {
		Register(context.Context, string, []byte, time.Time) error
		Delete(context.Context, string) error
	}{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				uuid := fmt.Sprintf("dev-%d", i%5) // the workers share devices
				shape := shapes[(i+w)%2]
				if err := m.Register(ctx, uuid, shape, time.Now()); err != nil {
					errs <- err
					return
				}
				if i%3 == w%3 {
					if err := m.Delete(ctx, uuid); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	stopCollecting()
	if err := <-collected; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Every binding names a shape etcd holds, and no other shape is left.
	fa := newFollower()
	stop := follow(a, fa)
	defer stop()
	inUse := map[string]bool{}
	testenv.WaitFor(t, "a listing of the registry", func() bool {
		fa.mu.Lock()
		defer fa.mu.Unlock()
		return fa.resets > 0
	})
	fa.mu.Lock()
	for uuid, d := range fa.devices {
		if len(d.Shape) == 0 {
			t.Errorf("%s without its shape", uuid)
		}
		inUse[d.Binding.Shape] = true
	}
	fa.mu.Unlock()
	n, err := a.BindingCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa.uuids()) != n {
		t.Fatalf("the follower has %d devices, etcd %d bindings: some were left out for want of their shape", len(fa.uuids()), n)
	}
	wantShapes(t, ctx, a, int64(len(inUse)), "after the race")
}
