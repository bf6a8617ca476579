package client_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// wireRecorder keeps the PUBLISH packets as the broker read and wrote them,
// before alias resolution (mochi's OnPacketRead / OnPacketSent).
type wireRecorder struct {
	mqtt.HookBase
	mu         sync.Mutex
	read, sent []packets.Packet
}

func (h *wireRecorder) ID() string { return "wire-recorder" }
func (h *wireRecorder) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnPacketRead, mqtt.OnPacketSent}, []byte{b})
}
func (h *wireRecorder) OnPacketRead(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish {
		h.mu.Lock()
		h.read = append(h.read, pk.Copy(true))
		h.mu.Unlock()
	}
	return pk, nil
}
func (h *wireRecorder) OnPacketSent(_ *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.mu.Lock()
		h.sent = append(h.sent, pk.Copy(true))
		h.mu.Unlock()
	}
}

// waitSent waits until the broker has recorded n publishes sent.
func (h *wireRecorder) waitSent(t *testing.T, n int) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("%d publishes sent", n), func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.sent) >= n
	})
}

// startMochi runs a plain mochi-mqtt broker on a free loopback port, with
// the hooks, until the test ends; it returns the server and host:port.
func startMochi(t *testing.T, hooks ...mqtt.Hook) (*mqtt.Server, string) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: testenv.Logger()})
	for _, h := range append([]mqtt.Hook{new(auth.AllowHook)}, hooks...) {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "t", Address: addr})); err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { broker.CloseMochi(srv) })
	return srv, addr
}

// Topic aliases both ways (MQTT 5 §3.3.2.3.4): the publisher sends the
// topic once and then the alias alone; the broker does the same towards a
// subscriber that accepts aliases, which resolves them back to the topic.
func TestTopicAliases(t *testing.T) {
	logger := testenv.Logger()
	rec := &wireRecorder{}
	_, addr := startMochi(t, &broker.AnnounceTopicAliases{Maximum: 65535}, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 8)
	sub, err := client.Dial(ctx, client.Config{URL: "mqtt://" + addr, ClientID: "sub", Protocol: client.MQTT5, Logger: logger, AcceptTopicAliases: 4,
		OnMessage: func(m client.Message) { got <- m.Topic + "=" + string(m.Payload) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	if err := sub.Subscribe(ctx, "fw/#"); err != nil {
		t.Fatal(err)
	}
	pub, err := client.Dial(ctx, client.Config{URL: "mqtt://" + addr, ClientID: "pub", Protocol: client.MQTT5, Logger: logger, TopicAliases: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	for i, topic := range []string{"fw/a", "fw/a", "fw/b", "fw/a"} {
		if err := pub.Publish(ctx, client.Message{Topic: topic, Payload: []byte{'0' + byte(i)}}, 0); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if want := fmt.Sprintf("%s=%d", topic, i); m != want {
				t.Fatalf("received %q, want %q", m, want)
			}
		case <-ctx.Done():
			t.Fatal("message not received")
		}
	}
	// The broker's OnPacketSent hook runs after the write, so it may come
	// after the subscriber has the message.
	rec.waitSent(t, 4)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	type wire struct {
		topic string
		alias uint16
	}
	want := []wire{{"fw/a", 1}, {"", 1}, {"fw/b", 2}, {"", 1}}
	for name, pks := range map[string][]packets.Packet{"from the publisher": rec.read, "to the subscriber": rec.sent} {
		if len(pks) != len(want) {
			t.Fatalf("%s: %d publishes", name, len(pks))
		}
		for i, pk := range pks {
			if w := (wire{pk.TopicName, pk.Properties.TopicAlias}); w != want[i] {
				t.Errorf("%s, publish %d: %+v, want %+v", name, i, w, want[i])
			}
		}
	}
}
