package devices

import (
	"context"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
)

// signal is a plausible reading generator for one sensor: a level with a
// slow wave and noise, or a counter that only grows.
type signal struct {
	base, amplitude, noise float64
	counter                bool
	integer                bool
	rng                    *rand.Rand
	step                   int
	total                  float64
}

// profile picks plausible values by unit symbol.
func profile(unit string) (base, amplitude, noise float64, counter bool) {
	switch strings.ToLower(strings.TrimSpace(unit)) {
	case "°c", "degc", "c", "degreecelsius":
		return 21, 3, 0.3, false
	case "%", "percent":
		return 45, 15, 2, false
	case "lx", "lux":
		return 300, 250, 20, false
	case "hpa", "mbar":
		return 1013, 6, 0.5, false
	case "w", "watt":
		return 60, 40, 5, false
	case "v", "volt":
		return 230, 2, 0.5, false
	case "m/s":
		return 3, 2, 0.5, false
	case "°", "deg":
		return 180, 150, 20, false
	case "kwh", "mm", "wh":
		return 0, 0, 0.05, true
	}
	return 50, 25, 2, false
}

func newSignal(seed int64, uuid string, s *ontology.Sensor) *signal {
	h := fnv.New64a()
	h.Write([]byte(uuid + "\x00" + s.Name))
	base, amp, noise, counter := profile(s.Unit)
	return &signal{
		base: base, amplitude: amp, noise: noise, counter: counter,
		integer: s.Type.IsInteger(),
		rng:     rand.New(rand.NewPCG(uint64(seed), h.Sum64())),
	}
}

// next returns the next reading as text.
func (g *signal) next() string {
	g.step++
	var v float64
	if g.counter {
		g.total += g.rng.Float64() * g.noise
		v = g.total
	} else {
		v = g.base + g.amplitude*math.Sin(float64(g.step)/20) + g.rng.NormFloat64()*g.noise
	}
	if g.integer {
		return strconv.FormatInt(int64(math.Round(v)), 10)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// SampleReadings returns the first n readings the device publishes for a sensor,
// for tests and documentation.
func (d *Device) SampleReadings(sensor string, n int) []string {
	for i := range d.model.Sensors {
		s := &d.model.Sensors[i]
		if s.Name == sensor {
			g := newSignal(d.cfg.Seed, d.cfg.UUID, s)
			out := make([]string, n)
			for j := range out {
				out[j] = g.next()
			}
			return out
		}
	}
	return nil
}

// telemetry publishes every sensor's reading each interval (QoS 0) until
// ctx ends or the device closes. Events publish only now and then. Run it
// with startTelemetry, so that Close waits for it.
func (d *Device) telemetry(ctx context.Context) {
	type src struct {
		topic string
		event bool
		gen   *signal
	}
	var srcs []src
	for i := range d.model.Sensors {
		s := &d.model.Sensors[i]
		if s.Topic == "" || isUpdateProgress(s) {
			// No topic, or a reading the device cannot make up: the
			// update progress is the MUP side's (mup.go).
			continue
		}
		srcs = append(srcs, src{topic: s.Topic, event: s.Kind == ontology.Event, gen: newSignal(d.cfg.Seed, d.cfg.UUID, s)})
	}
	if len(srcs) == 0 {
		return
	}
	tick := time.NewTicker(d.cfg.TelemetryInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-d.life.Done():
			return
		case <-tick.C:
		}
		for _, s := range srcs {
			v := s.gen.next()
			if s.event && n%10 != 0 {
				continue
			}
			if err := d.tr.Publish(ctx, client.Message{Topic: s.topic, Payload: []byte(v)}, 0); err == nil {
				d.Readings.Add(1)
			}
		}
	}
}
