package access_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/myno-bridge/myno/mqtt/access"
)

// The cost of one device login and of one publish check, with 10,000
// devices provisioned: what the embedded broker pays per CONNECT and per
// PUBLISH (issue 11 wants logins cheap when 10,000 devices connect at
// once: a SHA-256 digest, not bcrypt).
func BenchmarkAuthenticate(b *testing.B) {
	store, err := access.OpenStore(filepath.Join(b.TempDir(), "creds.json"))
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	tokens := make([]string, n)
	// Enrolled the way a fleet's first connection enrols them (open mode,
	// all at once: the writes are shared).
	c := &access.Controller{Store: store, Enrolment: access.EnrolOpen}
	var wg sync.WaitGroup
	for i := range n {
		tokens[i] = access.NewToken()
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("dev-%05d", i)
			if _, err := c.Authenticate(access.ConnectRequest{ClientID: name, Username: name, Password: []byte(tokens[i])}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	c.Enrolment = access.EnrolClosed
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		k := i % len(tokens)
		name := fmt.Sprintf("dev-%05d", k)
		if _, err := c.Authenticate(access.ConnectRequest{ClientID: name, Username: name, Password: []byte(tokens[k])}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAllowPublish(b *testing.B) {
	devs := &devicesMap{m: map[string]access.DeviceTopics{
		"d1": {Commands: []string{"actuator/led/d1"}, Images: coseImages("fw/d1"), Readings: []string{"sensor/t/d1", "sensor/h/d1"}},
	}}
	c := &access.Controller{Policy: access.Policy{Devices: devs}}
	id := access.Identity{Name: "d1", Role: access.RoleDevice}
	b.ReportAllocs()
	for b.Loop() {
		if !c.Allow(id, "sensor/h/d1", true) {
			b.Fatal("denied")
		}
	}
}

// BenchmarkEnrolIntoLargeStore is a group of 64 devices enrolling at once
// (--enrol open, a fleet's connects in flight) into a store that already
// holds 10,000: one append to the journal per group (the whole file was
// rewritten per group before: 499 µs per device, 10 MB allocated per
// group; now about 124 µs, most of it the 5 ms the group waits to fill).
//
//	go test ./mqtt/access -run '^$' -bench BenchmarkEnrolIntoLargeStore -benchmem
func BenchmarkEnrolIntoLargeStore(b *testing.B) {
	store, err := access.OpenStore(filepath.Join(b.TempDir(), "creds.json"))
	if err != nil {
		b.Fatal(err)
	}
	c := &access.Controller{Store: store, Enrolment: access.EnrolOpen}
	for g := range 10000 / 64 {
		enrol(b, c, fmt.Sprintf("old%03d", g), 64)
	}
	g := 0
	for b.Loop() {
		enrol(b, c, fmt.Sprintf("new%05d", g), 64)
		g++
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*64), "µs/device")
}
