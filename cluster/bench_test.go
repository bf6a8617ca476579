package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/internal/testenv"
)

// lagFollower notes when each device reached it.
type lagFollower struct {
	mu      sync.Mutex
	arrived map[string]time.Time
	all     chan struct{}
	want    int
}

func (f *lagFollower) Reset(context.Context, []cluster.Device) {}
func (f *lagFollower) Deleted(context.Context, string)         {}
func (f *lagFollower) Applied(context.Context)                 {}
func (f *lagFollower) Put(_ context.Context, d cluster.Device) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.arrived[d.UUID]; !ok {
		f.arrived[d.UUID] = time.Now()
		if len(f.arrived) == f.want {
			close(f.all)
		}
	}
}

// BenchmarkFollowLag registers 2,000 devices of 3 shapes through one
// member, 64 at a time, while another follows the registry; it reports
// the lag between a registration's commit and its arrival at the
// follower (issue 18's target: ≤ 1 s at 2,000 devices), and the
// registrations per second. A 3-member etcd on loopback.
//
//	go test ./cluster -run '^$' -bench FollowLag -benchtime 1x
func BenchmarkFollowLag(b *testing.B) {
	const devices, inFlight = 2000, 64
	e := testenv.StartEtcd(b, 3)
	ctx := context.Background()
	join := func(name string) *cluster.Member {
		m, err := cluster.Join(ctx, cluster.Config{Endpoints: e.Endpoints(), Cluster: "lag", Instance: name, Logger: testenv.Logger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close(ctx) })
		return m
	}
	owner, other := join("owner"), join("follower")
	shapes := [][]byte{[]byte(`{"shape":"a","uuid":"\x00"}`), []byte(`{"shape":"b","uuid":"\x00"}`), []byte(`{"shape":"c","uuid":"\x00"}`)}
	var lags []time.Duration
	var elapsed time.Duration
	for round := range b.N {
		f := &lagFollower{arrived: map[string]time.Time{}, all: make(chan struct{}), want: devices}
		fctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); other.Follow(fctx, f) }()
		committed := make([]time.Time, devices)
		sem := make(chan struct{}, inFlight)
		var wg sync.WaitGroup
		start := time.Now()
		for i := range devices {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := owner.Register(ctx, fmt.Sprintf("r%d-dev-%04d", round, i), shapes[i%3], time.Now()); err != nil {
					b.Error(err)
					return
				}
				committed[i] = time.Now()
			})
		}
		wg.Wait()
		select {
		case <-f.all:
		case <-time.After(30 * time.Second):
			b.Fatalf("the follower got %d of %d", len(f.arrived), devices)
		}
		elapsed += time.Since(start)
		stop()
		<-done
		for i := range devices {
			lags = append(lags, max(0, f.arrived[fmt.Sprintf("r%d-dev-%04d", round, i)].Sub(committed[i])))
		}
	}
	slices.Sort(lags)
	b.ReportMetric(float64(lags[len(lags)/2].Microseconds())/1000, "lag-p50-ms")
	b.ReportMetric(float64(lags[len(lags)*99/100].Microseconds())/1000, "lag-p99-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "lag-max-ms")
	b.ReportMetric(float64(devices*b.N)/elapsed.Seconds(), "registrations/s")
}
