package devices_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

func TestBootstrapChunking(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		s := newStandIn(t, b.url, acceptAll)
		desc := readDescription(t, "mup-device.jsonld")
		for i, size := range []int{100, 4054, -1} {
			for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
				uuid := uuidFor(t, i) + "-" + strings.ReplaceAll(string(proto), ".", "")
				d := startDevice(t, devices.Config{Description: desc, UUID: uuid, BrokerURL: b.url, Protocol: proto, ChunkSize: size})
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				if err := d.Bootstrap(ctx); err != nil {
					t.Fatalf("size %d %s: %v", size, proto, err)
				}
				cancel()
				if !bytes.Equal(s.description(uuid), desc) {
					t.Errorf("size %d %s: reassembled description differs", size, proto)
				}
				want := (len(desc) + size - 1) / max(size, 1)
				if size < 0 {
					want = 1
				}
				if got := s.chunkCount(uuid); got != want {
					t.Errorf("size %d %s: %d chunks, want %d", size, proto, got, want)
				}
			}
		}
	})
}

func TestBootstrapInterleavesDevices(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, acceptAll)
	descs := []string{"led-color.jsonld", "relay-sensors.jsonld", "rgb-lamp.jsonld", "thermostat.jsonld", "smart-plug.jsonld"}
	var wg sync.WaitGroup
	errs := make(chan error, len(descs))
	for i, name := range descs {
		d := startDevice(t, devices.Config{Description: readDescription(t, name), UUID: uuidFor(t, i), BrokerURL: b.url, ChunkSize: 97})
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			errs <- d.Bootstrap(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, name := range descs {
		if !bytes.Equal(s.description(uuidFor(t, i)), readDescription(t, name)) {
			t.Errorf("%s: interleaved chunks were mixed up", name)
		}
	}
}

func TestBootstrapRetriesWithoutAnswer(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, func(uuid string, desc []byte, end int) (string, bool) { return "OK", end >= 2 })
	uuid := uuidFor(t, 0)
	d := startDevice(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: uuid, BrokerURL: b.url,
		BootstrapTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.endCount(uuid); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestBootstrapStopsOnError(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, func(string, []byte, int) (string, bool) { return string(wire.ErrorAnswer("no Device node")), true })
	uuid := uuidFor(t, 0)
	d := startDevice(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: uuid, BrokerURL: b.url,
		BootstrapTimeout: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := d.Bootstrap(ctx)
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "no Device node") {
		t.Fatalf("error %v", err)
	}
	if n := s.endCount(uuid); n != 1 {
		t.Errorf("%d attempts after ERROR, want 1", n)
	}
}

func TestDeleteAndRetrieve(t *testing.T) {
	b := embeddedBroker(t)
	newStandIn(t, b.url, acceptAll)
	for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
		d := startDevice(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: uuidFor(t, len(proto)), BrokerURL: b.url, Protocol: proto})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if ans, err := d.Retrieve(ctx); err != nil || ans != "OK" {
			t.Errorf("%s retrieve: %q %v", proto, ans, err)
		}
		if ans, err := d.Delete(ctx); err != nil || ans != "OK" {
			t.Errorf("%s delete: %q %v", proto, ans, err)
		}
		if err := d.Update(ctx); err != nil {
			t.Errorf("%s update: %v", proto, err)
		}
		cancel()
	}
}

// Commands: OK, NOOP when already in that state, ERROR for unknown methods
// and bad arguments; answers on ResponseTopic with CorrelationData (MQTT 5)
// or on response/<uuid> (3.1.1).
func TestCommands(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		s := newStandIn(t, b.url, acceptAll)
		for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
			t.Run(string(proto), func(t *testing.T) {
				mqtt5 := proto == client.MQTT5
				led := uuidFor(t, 1)
				startRegistered(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: led, BrokerURL: b.url, Protocol: proto})
				ledTopic := "actuator/led/" + led
				for _, c := range []struct{ req, want string }{
					{"r1;ON", "r1;OK"},
					{"r2;ON", "r2;NOOP"},
					{"r3;OFF", "r3;OK"},
					{"r4;COLOR;red", "r4;OK"},
					{"r5;COLOR;red", "r5;NOOP"},
					{"r6;COLOR;purple", "r6;ERROR"},
					{"r7;COLOR", "r7;ERROR"},
					{"r8;BLINK", "r8;ERROR"},
					{"garbage", "invalid;ERROR"},
					{"r9;" + strings.Repeat("x", 70000), "r9;ERROR"},
				} {
					got := s.call(ledTopic, c.req, mqtt5, led)
					if string(got.Payload) != c.want {
						t.Errorf("%.20s: answer %.40q, want %q", c.req, got.Payload, c.want)
					}
					if want := "corr-" + c.req[:min(len(c.req), 16)]; mqtt5 && string(got.CorrelationData) != want {
						t.Errorf("%.20s: correlation data %.40q, want %q", c.req, got.CorrelationData, want)
					}
				}
				rgb := uuidFor(t, 2)
				startRegistered(t, devices.Config{Description: readDescription(t, "rgb-lamp.jsonld"), UUID: rgb, BrokerURL: b.url, Protocol: proto})
				for _, c := range []struct{ req, want string }{
					{"q1;RGB;255,0,128", "q1;OK"},
					{"q2;RGB;256,0,0", "q2;ERROR"},
					{"q3;RGB;1,2", "q3;ERROR"},
					{"q4;RGB;a,b,c", "q4;ERROR"},
					{"q5;RGB;-1,0,0", "q5;ERROR"},
				} {
					if got := s.call("actuator/lamp/"+rgb, c.req, mqtt5, rgb); string(got.Payload) != c.want {
						t.Errorf("%s: answer %q, want %q", c.req, got.Payload, c.want)
					}
				}
				th := uuidFor(t, 3)
				startRegistered(t, devices.Config{Description: readDescription(t, "thermostat.jsonld"), UUID: th, BrokerURL: b.url, Protocol: proto})
				for _, c := range []struct{ req, want string }{
					{"t1;SET-THRESHOLD;gt;125", "t1;OK"},
					{"t2;SET-THRESHOLD;gt;126", "t2;ERROR"},
					{"t3;SET-THRESHOLD;between;1", "t3;ERROR"},
				} {
					if got := s.call("config/threshold/"+th, c.req, mqtt5, th); string(got.Payload) != c.want {
						t.Errorf("%s: answer %q, want %q", c.req, got.Payload, c.want)
					}
				}
			})
		}
	})
}

func TestSensorReadings(t *testing.T) {
	b := embeddedBroker(t)
	s := newStandIn(t, b.url, acceptAll)
	uuid := uuidFor(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topic := "sensor/temperature/" + uuid
	if err := s.tr.Subscribe(ctx, topic); err != nil {
		t.Fatal(err)
	}
	d, err := devices.New(devices.Config{Description: readDescription(t, "relay-sensors.jsonld"), UUID: uuid, BrokerURL: b.url,
		TelemetryInterval: 20 * time.Millisecond, Seed: 7, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	want := d.SampleReadings("temperature", 3)
	var got []string
	for len(got) < 3 {
		select {
		case m := <-s.received:
			if m.Topic == topic {
				got = append(got, string(m.Payload))
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d readings", len(got))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("readings %v, want the seeded %v", got, want)
	}
	for _, v := range got {
		var f float64
		if _, err := fmt.Sscan(v, &f); err != nil || f < 0 || f > 50 {
			t.Errorf("implausible temperature %q", v)
		}
	}
	// Another device with the same seed and uuid reads the same.
	again, _ := devices.New(devices.Config{Description: readDescription(t, "relay-sensors.jsonld"), UUID: uuid, Seed: 7})
	if fmt.Sprint(again.SampleReadings("temperature", 3)) != fmt.Sprint(want) {
		t.Errorf("readings not reproducible from the seed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// After a broker restart the device reconnects, restores its
// subscriptions and answers commands, without bootstrapping again.
func TestReconnectAfterBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts both brokers; make test runs it")
	}
	eachBroker(t, func(t *testing.T, b *testBroker) {
		s := newStandIn(t, b.url, acceptAll)
		for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
			uuid := uuidFor(t, len(proto))
			d := startDevice(t, devices.Config{Description: readDescription(t, "led-color.jsonld"), UUID: uuid, BrokerURL: b.url, Protocol: proto})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := d.Bootstrap(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
			_ = d
		}
		b.restart(t)
		// The stand-in reconnects too; wait until both sides are back.
		for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
			uuid := uuidFor(t, len(proto))
			deadline := time.Now().Add(20 * time.Second)
			for {
				got, ok := tryCall(s, "actuator/led/"+uuid, "x1;OFF", uuid)
				if ok {
					if !strings.HasSuffix(got, ";OK") && !strings.HasSuffix(got, ";NOOP") {
						t.Errorf("%s after restart: %q", proto, got)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: no answer after the broker restart", proto)
				}
			}
			if n := s.endCount(uuid); n != 1 {
				t.Errorf("%s bootstrapped %d times", proto, n)
			}
		}
	})
}

// tryCall is call with a short deadline that reports failure instead of
// failing the test (the connection may still be coming back).
func tryCall(s *standIn, topic, payload, uuid string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	want := wire.ResponseTopic(uuid)
	if err := s.tr.Subscribe(ctx, want); err != nil {
		return "", false
	}
	if err := s.tr.Publish(ctx, client.Message{Topic: topic, Payload: []byte(payload)}, 1); err != nil {
		return "", false
	}
	for {
		select {
		case r := <-s.received:
			if r.Topic == want {
				return string(r.Payload), true
			}
		case <-ctx.Done():
			return "", false
		}
	}
}

// Every description of the project, and the reference samples, runs as a
// device on both brokers: it bootstraps and answers each of its commands.
func TestEveryDescriptionRuns(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "*.jsonld"))
	files = append(files, testenv.SharedSamples(t)...)
	eachBroker(t, func(t *testing.T, b *testBroker) {
		s := newStandIn(t, b.url, acceptAll)
		for i, f := range files {
			desc := mustRead(t, f)
			uuid := uuidFor(t, i)
			d := startDevice(t, devices.Config{Description: desc, UUID: uuid, BrokerURL: b.url})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := d.Bootstrap(ctx); err != nil {
				t.Fatalf("%s: %v", filepath.Base(f), err)
			}
			cancel()
			for _, fn := range d.Model().Functions {
				args := devices.ExampleArgs(&fn, uuid)
				req := wire.Request{ReqID: "e1", Method: fn.Method, Args: args}
				got := s.call(wire.CommandTopic(templateTopic(t, desc, fn.Name), uuid), string(req.Encode()), true, uuid)
				if strings.HasSuffix(string(got.Payload), "ERROR") {
					t.Errorf("%s %s(%v): %q", filepath.Base(f), fn.Name, args, got.Payload)
				}
			}
		}
	})
}
