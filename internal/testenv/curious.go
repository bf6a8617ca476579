package testenv

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/mqtt/client"
)

// Capture is what a curious broker saw: every payload it relayed, by topic.
type Capture struct {
	mu       sync.Mutex
	payloads map[string][][]byte
}

// NewCapture returns an empty capture.
func NewCapture() *Capture { return &Capture{payloads: map[string][][]byte{}} }

// Add records one payload.
func (c *Capture) Add(topic string, payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.payloads[topic] = append(c.payloads[topic], bytes.Clone(payload))
}

// All returns every payload captured.
func (c *Capture) All() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]byte
	for _, ps := range c.payloads {
		out = append(out, ps...)
	}
	return out
}

// On returns the payloads captured on one topic, in order.
func (c *Capture) On(topic string) [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.payloads[topic]...)
}

// Bytes is the number of payload bytes captured.
func (c *Capture) Bytes() int {
	n := 0
	for _, p := range c.All() {
		n += len(p)
	}
	return n
}

// FindWindow reports the first window of n bytes of secret that appears in
// any captured payload, or -1.
func (c *Capture) FindWindow(secret []byte, n int) int {
	all := c.All()
	seen := map[string]bool{}
	for _, p := range all {
		for i := 0; i+n <= len(p); i++ {
			seen[string(p[i:i+n])] = true
		}
	}
	for i := 0; i+n <= len(secret); i++ {
		if seen[string(secret[i:i+n])] {
			return i
		}
	}
	return -1
}

// CuriousHook is a mochi-mqtt hook that records every PUBLISH the broker
// receives (an honest-but-curious broker) and, when told to, changes
// payloads in flight (a tampering one).
type CuriousHook struct {
	mqtt.HookBase
	Capture *Capture
	mu      sync.Mutex
	tamper  func(topic string, payload []byte) []byte
}

// ID names the hook.
func (h *CuriousHook) ID() string { return "curious" }

// Provides says the hook sees publishes.
func (h *CuriousHook) Provides(b byte) bool { return b == mqtt.OnPublish }

// OnPublish records (and maybe changes) a publish.
func (h *CuriousHook) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	tamper := h.tamper
	h.mu.Unlock()
	if tamper != nil {
		pk.Payload = tamper(pk.TopicName, bytes.Clone(pk.Payload))
	}
	h.Capture.Add(pk.TopicName, pk.Payload)
	return pk, nil
}

// SetTamper installs (or, with nil, removes) a payload changer.
func (h *CuriousHook) SetTamper(f func(topic string, payload []byte) []byte) {
	h.mu.Lock()
	h.tamper = f
	h.mu.Unlock()
}

// WatchAll subscribes a client to '#' on any broker: it receives every
// payload the broker relays, which is what the broker itself can read.
func WatchAll(t testing.TB, url string) *Capture {
	t.Helper()
	return WatchAllWith(t, url, client.Credentials{})
}

// WatchAllWith is WatchAll as the client with creds (a broker that wants
// credentials, and gives "#" to that identity).
func WatchAllWith(t testing.TB, url string, creds client.Credentials) *Capture {
	t.Helper()
	c := NewCapture()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: url, ClientID: fmt.Sprintf("curious-%d", time.Now().UnixNano()), Protocol: client.MQTT5,
		Logger: Logger(), AtMostOnce: true, OnMessage: func(m client.Message) { c.Add(m.Topic, m.Payload) }, Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	if err := tr.Subscribe(ctx, "#"); err != nil {
		t.Fatal(err)
	}
	return c
}
