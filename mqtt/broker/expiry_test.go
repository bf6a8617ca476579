package broker_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
)

// A retained message published without a Message Expiry Interval does not
// expire (MQTT 5 §3.3.2.3.3): the Update Server certificate, presence and
// the cluster's registry stay retained however long the bridge runs.
// mochi-mqtt's default capabilities cap every message at 24 hours
// (MaximumMessageExpiryInterval), which its housekeeping enforced on
// retained messages once a second; the broker sets no cap. A retained
// message whose own expiry has passed still goes.
func TestRetainedMessageWithoutExpiryOutlivesADay(t *testing.T) {
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: slog.New(&testenv.Warnings{})})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Now().Unix()
	retained := b.Server().Topics
	retained.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName: "kept/two-days-old", Payload: []byte("x"), Created: now - 2*86400, ProtocolVersion: 5})
	retained.RetainMessage(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
		TopicName: "gone/expired", Payload: []byte("x"), Created: now - 10, Expiry: now - 5, ProtocolVersion: 5})
	// The expired one going says the housekeeping ran.
	testenv.WaitFor(t, "the expired retained message to go", func() bool {
		_, ok := retained.Retained.Get("gone/expired")
		return !ok
	})
	if _, ok := retained.Retained.Get("kept/two-days-old"); !ok {
		t.Fatal("a retained message without an expiry was removed after 2 days")
	}
}
