package client_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// Messages on one topic reach OnMessage in the order they were published
// (MQTT 3.1.1 §4.6, MQTT 5 §4.6: an ordered topic), with either protocol:
// MUP v1's slices are taken in order or not at all.
func TestMessagesArriveInOrder(t *testing.T) {
	const n = 500
	for _, proto := range []client.Protocol{client.MQTT5, client.MQTT311} {
		t.Run(string(proto), func(t *testing.T) {
			srv, addr := startMochi(t, &wireRecorder{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got := make(chan string, n)
			sub, err := client.Dial(ctx, client.Config{URL: "mqtt://" + addr, ClientID: "sub", Protocol: proto, Logger: testenv.Logger(), AtMostOnce: true,
				OnMessage: func(m client.Message) { got <- string(m.Payload) }})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close(ctx)
			if err := sub.Subscribe(ctx, "slices"); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := srv.Publish("slices", []byte(strconv.Itoa(i)), false, 0); err != nil {
					t.Fatal(err)
				}
			}
			for i := range n {
				select {
				case p := <-got:
					if p != strconv.Itoa(i) {
						t.Fatalf("message %d is %s", i, p)
					}
				case <-ctx.Done():
					t.Fatalf("%d of %d messages received", i, n)
				}
			}
		})
	}
}
