package client_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// AtMostOnce asks for maximum QoS 0 in SUBSCRIBE, so the broker downgrades
// a QoS 1 publish on its way to this client (MQTT 5 §3.8.4, 3.1.1 §3.8.4);
// without it the client subscribes with QoS 1.
func TestAtMostOnceSubscription(t *testing.T) {
	for _, tc := range []struct {
		proto      client.Protocol
		atMostOnce bool
		wantQoS    byte
	}{
		{client.MQTT5, false, 1}, {client.MQTT5, true, 0},
		{client.MQTT311, false, 1}, {client.MQTT311, true, 0},
	} {
		t.Run(fmt.Sprintf("%s/at-most-once=%v", tc.proto, tc.atMostOnce), func(t *testing.T) {
			logger := testenv.Logger()
			rec := &wireRecorder{}
			srv, addr := startMochi(t, rec)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := make(chan struct{}, 1)
			sub, err := client.Dial(ctx, client.Config{URL: "mqtt://" + addr, ClientID: "sub", Protocol: tc.proto, Logger: logger,
				AtMostOnce: tc.atMostOnce, OnMessage: func(client.Message) { got <- struct{}{} }})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close(ctx)
			if err := sub.Subscribe(ctx, "t/#"); err != nil {
				t.Fatal(err)
			}
			if err := srv.Publish("t/x", []byte("1"), false, 1); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-ctx.Done():
				t.Fatal("message not received")
			}
			rec.waitSent(t, 1)
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.sent) != 1 {
				t.Fatalf("%d publishes sent to the subscriber, want 1", len(rec.sent))
			}
			if q := rec.sent[0].FixedHeader.Qos; q != tc.wantQoS {
				t.Errorf("delivered with QoS %d, want %d", q, tc.wantQoS)
			}
		})
	}
}
