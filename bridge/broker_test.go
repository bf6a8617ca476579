package bridge_test

import (
	"context"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/bridge/mqttc"
)

// The embedded broker keeps retained messages in the data dir.
func TestEmbeddedBrokerPersistsRetainedMessages(t *testing.T) {
	dir := t.TempDir()
	b, err := bridge.StartBroker(bridge.BrokerConfig{Listen: "127.0.0.1:0", DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := mqttc.Dial(ctx, mqttc.Config{URL: b.URL(), ClientID: "pub", Protocol: mqttc.MQTT5, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishRetained(ctx, mqttc.Message{Topic: "myno/e2e/notify", Payload: []byte("kept")}); err != nil {
		t.Fatal(err)
	}
	pub.Close(ctx)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b2, err := bridge.StartBroker(bridge.BrokerConfig{Listen: addr, DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	got := make(chan string, 1)
	sub, err := mqttc.Dial(ctx, mqttc.Config{URL: b2.URL(), ClientID: "sub", Protocol: mqttc.MQTT5, Logger: quiet(),
		OnMessage: func(m mqttc.Message) { got <- string(m.Payload) }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	if err := sub.Subscribe(ctx, "myno/e2e/notify"); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "kept" {
			t.Errorf("retained %q", v)
		}
	case <-ctx.Done():
		t.Fatal("the retained message did not survive the restart")
	}
}
