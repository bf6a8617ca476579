package devices_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// testBroker is a real broker on a random loopback port that a test can restart.
type testBroker struct {
	name    string
	url     string
	restart func(t *testing.T)
}

func embeddedBroker(t *testing.T) *testBroker {
	t.Helper()
	e := testenv.StartEmbedded(t, broker.Config{})
	return &testBroker{name: "embedded", url: e.URL(), restart: func(t *testing.T) { e.Restart() }}
}

func mosquittoBroker(t *testing.T) *testBroker {
	t.Helper()
	m := testenv.StartMosquitto(t)
	return &testBroker{name: "mosquitto", url: m.URL(), restart: func(t *testing.T) { m.Restart() }}
}

// eachBroker runs f against the embedded broker and against Mosquitto.
func eachBroker(t *testing.T, f func(t *testing.T, b *testBroker)) {
	t.Run("embedded", func(t *testing.T) { f(t, embeddedBroker(t)) })
	t.Run("mosquitto", func(t *testing.T) { f(t, mosquittoBroker(t)) })
}

// standIn plays the bridge's part on the bootstrap topics and sends commands.
type standIn struct {
	t  *testing.T
	tr client.Transport

	mu       sync.Mutex
	chunks   map[string][][]byte // uuid -> chunks received in order
	ends     map[string]int      // uuid -> END messages seen
	answer   func(uuid string, desc []byte, end int) (string, bool)
	received chan client.Message // everything else
	// legacy: the last bootstrap message came on a shared topic.
	legacy atomic.Bool
}

func newStandIn(t *testing.T, url string, answer func(uuid string, desc []byte, end int) (string, bool)) *standIn {
	t.Helper()
	s := &standIn{t: t, chunks: map[string][][]byte{}, ends: map[string]int{}, answer: answer, received: make(chan client.Message, 1024)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// At most once: the stand-in reads bursts of bootstrap chunks from many
	// devices, and mochi-mqtt v2.7.9 can deadlock a client that receives QoS 1
	// while a publisher adds to its in-flight store (see bridge/README.md).
	tr, err := client.Dial(ctx, client.Config{URL: url, ClientID: "stand-in-" + t.Name(), Protocol: client.MQTT5, OnMessage: s.onMessage, Logger: testenv.Logger(), AtMostOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	s.tr = tr
	t.Cleanup(func() { tr.Close(context.Background()) })
	// The devices' own bootstrap topics, and MYNO's shared ones (for
	// LegacyBootstrapTopics).
	for _, topic := range append(wire.DeviceBootstrapFilters, wire.TopicCreate, wire.TopicUpdate, wire.TopicDelete, wire.TopicRetrieve) {
		if err := tr.Subscribe(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *standIn) onMessage(m client.Message) {
	if shared, _, ok := wire.ParseDeviceBootstrapTopic(m.Topic); ok {
		s.legacy.Store(false)
		m.Topic = shared
	} else if m.Topic == wire.TopicCreate || m.Topic == wire.TopicUpdate || m.Topic == wire.TopicDelete || m.Topic == wire.TopicRetrieve {
		s.legacy.Store(true)
	}
	switch m.Topic {
	case wire.TopicCreate, wire.TopicUpdate:
		c, err := wire.DecodeChunk(m.Payload)
		if err != nil {
			return
		}
		s.mu.Lock()
		if !c.End {
			s.chunks[c.UUID] = append(s.chunks[c.UUID], append([]byte(nil), c.Data...))
			s.mu.Unlock()
			return
		}
		s.ends[c.UUID]++
		end := s.ends[c.UUID]
		desc := bytes.Join(s.chunks[c.UUID], nil)
		s.mu.Unlock()
		ans, ok := s.answer(c.UUID, desc, end)
		if !ok {
			return
		}
		reply := client.Message{Topic: wire.BootstrapResponseTopic(m.Topic, c.UUID), Payload: []byte(ans)}
		if m.ResponseTopic != "" {
			reply.Topic, reply.CorrelationData = m.ResponseTopic, m.CorrelationData
		}
		go s.tr.Publish(context.Background(), reply, 1)
	case wire.TopicDelete, wire.TopicRetrieve:
		reply := client.Message{Topic: wire.BootstrapResponseTopic(m.Topic, string(m.Payload)), Payload: []byte("OK")}
		if m.ResponseTopic != "" {
			reply.Topic, reply.CorrelationData = m.ResponseTopic, m.CorrelationData
		}
		go s.tr.Publish(context.Background(), reply, 1)
	default:
		s.received <- m
	}
}

func (s *standIn) description(uuid string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.chunks[uuid], nil)
}

func (s *standIn) chunkCount(uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.chunks[uuid])
}

func (s *standIn) endCount(uuid string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ends[uuid]
}

func acceptAll(string, []byte, int) (string, bool) { return "OK", true }

// call publishes a command and waits for the answer on the response topic
// (3.1.1 style) or on a response topic of its own with correlation data.
func (s *standIn) call(topic, payload string, mqtt5 bool, uuid string) client.Message {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := client.Message{Topic: topic, Payload: []byte(payload)}
	want := wire.ResponseTopic(uuid)
	if mqtt5 {
		m.ResponseTopic = "bridge-test/" + uuid + "/answers"
		m.CorrelationData = []byte("corr-" + payload[:min(len(payload), 16)])
		want = m.ResponseTopic
	}
	if err := s.tr.Subscribe(ctx, want); err != nil {
		s.t.Fatal(err)
	}
	if err := s.tr.Publish(ctx, m, 1); err != nil {
		s.t.Fatal(err)
	}
	for {
		select {
		case r := <-s.received:
			if r.Topic == want {
				return r
			}
		case <-ctx.Done():
			s.t.Fatalf("no answer to %q on %s", payload, want)
		}
	}
}

func readDescription(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startDevice connects and bootstraps a device; it is closed at test end.
func startDevice(t *testing.T, cfg devices.Config) *devices.Device {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger()
	}
	d, err := devices.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// startRegistered is startDevice, then a bootstrap that the stand-in must
// accept: a device subscribes to its commands once registered.
func startRegistered(t *testing.T, cfg devices.Config) *devices.Device {
	t.Helper()
	d := startDevice(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// uuidFor makes a device UUID unique to the test.
func uuidFor(t *testing.T, i int) string {
	var b strings.Builder
	for _, r := range fmt.Sprintf("d%d-%s", i, t.Name()) {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// templateTopic returns a function's topic template from a description.
func templateTopic(t testing.TB, desc []byte, name string) string {
	t.Helper()
	dev, err := ontology.Parse(desc)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dev.Functions {
		if f.Name == name {
			return f.Topic
		}
	}
	t.Fatalf("no function %s", name)
	return ""
}
