package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
)

func testDescription(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// shapeVariant is led-color with one more colour: a shape of its own for
// each i.
func shapeVariant(t testing.TB, i int) []byte {
	t.Helper()
	led := testDescription(t, "led-color.jsonld")
	v := bytes.Replace(led, []byte(`"white"`), []byte(`"white", "colour-`+strconv.Itoa(i)+`"`), 1)
	if bytes.Equal(v, led) {
		t.Fatal("led-color.jsonld has no white")
	}
	return v
}

func mustRegister(t testing.TB, r *registry, uuid string, desc []byte) change {
	t.Helper()
	ch, err := r.register(uuid, desc, time.Now())
	if err != nil {
		t.Fatalf("register %s: %v", uuid, err)
	}
	return ch
}

func mustSave(t testing.TB, r *registry) {
	t.Helper()
	if err := r.save(); err != nil {
		t.Fatal(err)
	}
}

// The shape limits: a new shape beyond them is refused, naming the limit;
// a device of a registered shape is still accepted; a device that changes
// its shape frees the old one when no other device has it; a delete frees
// it too.
func TestShapeLimitsInTheRegistry(t *testing.T) {
	r, err := openRegistry(t.TempDir(), &ontology.Parser{}, shapeLimits{count: 2}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	mustRegister(t, r, "a-1", shapeVariant(t, 1))
	mustRegister(t, r, "b-1", shapeVariant(t, 2))
	_, err = r.register("c-1", shapeVariant(t, 3), time.Now())
	if !errors.Is(err, ErrShapeLimit) || !strings.Contains(err.Error(), "--max-shapes 2") {
		t.Fatalf("a third shape: %v", err)
	}
	mustRegister(t, r, "a-2", shapeVariant(t, 1)) // a registered shape
	// b-1 is alone with its shape: it may change to a new one.
	mustRegister(t, r, "b-1", shapeVariant(t, 3))
	// a-1 is not alone: changing would make three.
	if _, err := r.register("a-1", shapeVariant(t, 4), time.Now()); !errors.Is(err, ErrShapeLimit) {
		t.Fatalf("a-1 to a new shape while a-2 has its old one: %v", err)
	}
	if _, ok := r.unregister("b-1"); !ok {
		t.Fatal("b-1 not registered")
	}
	mustRegister(t, r, "d-1", shapeVariant(t, 4))
	u := r.shapeUsage()
	if u.shapes != 2 || u.devices != 3 || u.refused != 2 {
		t.Errorf("usage %+v", u)
	}

	// Bytes: room for two descriptions of this size, not three.
	n := len(shapeVariant(t, 1))
	rb, err := openRegistry(t.TempDir(), &ontology.Parser{}, shapeLimits{bytes: 2*n + 10}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer rb.close()
	mustRegister(t, rb, "a-1", shapeVariant(t, 1))
	mustRegister(t, rb, "b-1", shapeVariant(t, 2))
	_, err = rb.register("c-1", shapeVariant(t, 3), time.Now())
	if !errors.Is(err, ErrShapeLimit) || !strings.Contains(err.Error(), "--max-shape-bytes") {
		t.Fatalf("a third description: %v", err)
	}
	mustRegister(t, rb, "c-1", shapeVariant(t, 2))
	if u := rb.shapeUsage(); u.bytes != len(shapeVariant(t, 1))+len(shapeVariant(t, 2)) {
		t.Errorf("shape bytes %d", u.bytes)
	}
	rb.unregister("a-1")
	if u := rb.shapeUsage(); u.bytes != len(shapeVariant(t, 2)) || u.shapes != 1 {
		t.Errorf("after a delete: %+v", u)
	}
}

// writtenBytes is what this process has written with write(2) so far
// (/proc/self/io wchar): files, sockets, everything.
func writtenBytes(t testing.TB) int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("no wchar in /proc/self/io")
	return 0
}

// A save writes what changed (issue 12: every save rewrote the whole
// registry, all devices and one description per shape: 58 MB per answer
// with 200 large shapes, 25 % CPU at 5k devices). The bytes this process
// writes for one more registration do not grow with the registry.
func TestSaveCostDoesNotGrowWithTheRegistry(t *testing.T) {
	r, err := openRegistry(t.TempDir(), &ontology.Parser{}, shapeLimits{}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	// Two shapes of 10 kB and more: the whole registry is large next to
	// a device's record.
	descs := [][]byte{shapeVariant(t, 1), testDescription(t, "weather-station.jsonld")}
	registered := 0
	grow := func(n int) {
		for ; registered < n; registered++ {
			mustRegister(t, r, fmt.Sprintf("dev-%05d", registered), descs[registered%2])
		}
		mustSave(t, r)
	}
	// perSave is the least any of 8 more registrations wrote: other
	// goroutines of the test binary can only add to it.
	perSave := func() int64 {
		least := int64(-1)
		for range 8 {
			mustRegister(t, r, fmt.Sprintf("dev-%05d", registered), descs[0])
			registered++
			before := writtenBytes(t)
			mustSave(t, r)
			if w := writtenBytes(t) - before; least < 0 || w < least {
				least = w
			}
		}
		return least
	}
	grow(20)
	small := perSave()
	grow(600)
	large := perSave()
	t.Logf("bytes written per registration: %d with 20 devices, %d with 600", small, large)
	if large > small+small/2+256 {
		t.Errorf("a registration writes %d bytes with 600 devices, %d with 20: the save grows with the registry", large, small)
	}
	if large > 4096 {
		t.Errorf("a registration writes %d bytes: more than its device", large)
	}
}

// After a restart, the restored devices are not written again; a firmware
// version is a record of one device; a device's new shape stores the new
// description and drops the old one once no device has it.
func TestRegistryWritesOnlyChanges(t *testing.T) {
	dir := t.TempDir()
	r, err := openRegistry(dir, &ontology.Parser{}, shapeLimits{}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	mustRegister(t, r, "a-1", shapeVariant(t, 1))
	mustRegister(t, r, "a-2", shapeVariant(t, 1))
	mustSave(t, r)
	r.close()

	r, err = openRegistry(dir, &ontology.Parser{}, shapeLimits{}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	saved, _ := r.load()
	for _, p := range saved {
		if _, err := r.register(p.UUID, []byte(p.Description), p.RegisteredAt); err != nil {
			t.Fatal(err)
		}
		r.restoreFirmware(p.UUID, p.Firmware)
	}
	before := r.store.written()
	mustSave(t, r)
	if after := r.store.written(); after.Saves != before.Saves {
		t.Errorf("restoring wrote %d records", after.Saves-before.Saves)
	}
	r.setFirmware("a-1", "2")
	mustSave(t, r)
	if st := r.store.written(); st.LastSaveBytes > 200 {
		t.Errorf("a firmware version wrote %d bytes", st.LastSaveBytes)
	}
	// a-2 to a new shape, then a-1: the first shape's description goes
	// with a-1.
	mustRegister(t, r, "a-2", shapeVariant(t, 2))
	mustSave(t, r)
	if n := len(r.store.state.descriptions); n != 2 {
		t.Errorf("%d descriptions saved with two shapes in use", n)
	}
	mustRegister(t, r, "a-1", shapeVariant(t, 2))
	mustSave(t, r)
	if n := len(r.store.state.descriptions); n != 1 {
		t.Errorf("%d descriptions saved with one shape in use", n)
	}
	if st := r.store.written(); st.LastSaveBytes > 400 {
		t.Errorf("moving a-1 to a stored shape wrote %d bytes", st.LastSaveBytes)
	}
}

// BenchmarkRegistrySave is the cost of saving one more registration in a
// registry of 1,000 and of 10,000 devices (two shapes of 10 and 43 kB),
// and the bytes the process writes for it (B-written/op, from
// /proc/self/io). Only the save is timed; the registration before it, and
// a collection that leaves the save no garbage collection to help with,
// are not.
//
//	go test ./bridge -run '^$' -bench BenchmarkRegistrySave -benchtime 200x -count 6
func BenchmarkRegistrySave(b *testing.B) {
	descs := [][]byte{shapeVariant(b, 1), testDescription(b, "weather-station.jsonld")}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			r, err := openRegistry(b.TempDir(), &ontology.Parser{}, shapeLimits{}, testenv.Logger())
			if err != nil {
				b.Fatal(err)
			}
			defer r.close()
			for i := range n {
				mustRegister(b, r, fmt.Sprintf("dev-%05d", i), descs[i%2])
			}
			mustSave(b, r)
			var written int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				mustRegister(b, r, fmt.Sprintf("new-%05d", i), descs[i%2])
				runtime.GC()
				before := writtenBytes(b)
				b.StartTimer()
				mustSave(b, r)
				b.StopTimer()
				written += writtenBytes(b) - before
				b.StartTimer()
			}
			b.ReportMetric(float64(written)/float64(b.N), "B-written/op")
		})
	}
}

// BenchmarkShapeMemory is the live heap a shape takes on a running
// bridge (its model, module, schema and the device), for the default of
// --max-shape-bytes: 40 shapes of led-color (11 kB) and of
// weather-station (43 kB).
//
// Run each alone, in a fresh process: memory the previous bridge of the
// process frees while one measures makes the figure low.
//
//	go test ./bridge -run '^$' -bench 'BenchmarkShapeMemory/led' -benchtime 1x
func BenchmarkShapeMemory(b *testing.B) {
	for _, tc := range []struct{ file, old string }{
		{"led-color.jsonld", `"white"`},
		{"weather-station.jsonld", `"Outdoor weather station"`},
	} {
		b.Run(tc.file, func(b *testing.B) {
			base := testDescription(b, tc.file)
			if !bytes.Contains(base, []byte(tc.old)) {
				b.Fatalf("no %s in %s", tc.old, tc.file)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			br, err := Start(ctx, Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: b.TempDir(),
				AdminPassword: "internal-test-pw", Logger: testenv.Logger(), Out: io.Discard})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			const shapes = 40
			for b.Loop() {
				before := liveHeapBytes()
				for i := range shapes {
					// A colour more, or a word more in the device's
					// description: a shape of its own.
					variant := strings.TrimSuffix(tc.old, `"`) + fmt.Sprintf(` v%d"`, i)
					if tc.old == `"white"` {
						variant = fmt.Sprintf(`"white", "v%d"`, i)
					}
					d := bytes.Replace(base, []byte(tc.old), []byte(variant), 1)
					if err := br.register(ctx, fmt.Sprintf("dev-%d", i), d, time.Now(), fromDisk); err != nil {
						b.Fatal(err)
					}
				}
				if _, mods := br.registry.counts(); mods != shapes {
					b.Fatalf("%d modules", mods)
				}
				perShape := float64(liveHeapBytes()-before) / shapes
				b.ReportMetric(perShape, "B-heap/shape")
				b.ReportMetric(perShape/float64(len(base)), "x-description")
				for i := range shapes {
					br.unregister(ctx, fmt.Sprintf("dev-%d", i))
				}
			}
		})
	}
}

// liveHeapBytes is the heap's live bytes after a collection.
func liveHeapBytes() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// bound keeps the topics a device's sensor still has: a device that
// registered a shape with sensors and then one without, in one
// replicated batch, leaves the first shape's topics unbound, and the
// batch does not subscribe to them.
func TestBoundTopicsAfterAChangeOfShape(t *testing.T) {
	r, err := openRegistry(t.TempDir(), &ontology.Parser{}, shapeLimits{}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	relay := mustRegister(t, r, "d-1", bytes.ReplaceAll(testDescription(t, "relay-sensors.jsonld"), []byte("%s"), []byte("d-1")))
	if len(relay.subscribe) == 0 {
		t.Fatal("relay-sensors has no telemetry topic")
	}
	topics := append(slices.Clone(relay.subscribe), relay.subscribe[0]) // once each
	if got := r.bound(topics); !slices.Equal(got, relay.subscribe) {
		t.Fatalf("bound %v, want %v", got, relay.subscribe)
	}
	mustRegister(t, r, "d-1", testDescription(t, "led-color.jsonld"))
	if got := r.bound(topics); len(got) != 0 {
		t.Fatalf("after the change of shape, still bound: %v", got)
	}
}
