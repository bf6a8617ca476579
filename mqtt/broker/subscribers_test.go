package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// AwaitSubscriber returns once a connected client subscribes to a filter
// matching the topic, and not for a client that has gone, nor for the
// inline client.
func TestAwaitSubscriber(t *testing.T) {
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const topic = "actuator/led/d1"
	if err := b.InlineClient("bridge-inline", func(client.Message) {}).Subscribe(ctx, "actuator/#"); err != nil {
		t.Fatal(err)
	}
	if b.HasSubscriber(topic) {
		t.Fatal("the inline client counts as the device's subscription")
	}
	short, stop := context.WithTimeout(ctx, 100*time.Millisecond)
	err = b.AwaitSubscriber(short, topic)
	stop()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("nobody subscribed: %v, want the deadline", err)
	}

	// A device subscribes while a caller waits.
	waited := make(chan error, 1)
	go func() { waited <- b.AwaitSubscriber(ctx, topic) }()
	dev, err := client.Dial(ctx, client.Config{URL: b.URL(), ClientID: "myno-device-d1", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Subscribe(ctx, "actuator/led/+"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("after the subscription: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("AwaitSubscriber did not see the subscription")
	}

	// The device goes: its subscription goes with its session.
	if err := dev.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the gone device's subscription to stop counting", func() bool { return !b.HasSubscriber(topic) })
}
