package client_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// idInUse makes mochi-mqtt refuse the first SUBSCRIBE and the first
// UNSUBSCRIBE with 0x91 Packet Identifier in use, the way it does when the
// client's packet id equals one of the broker's own deliveries in flight.
// It puts fake deliveries in flight: for SUBSCRIBE with the packet's own id
// (mochi checks after the hook), for UNSUBSCRIBE with every id the next
// one may have (mochi checks before the hook), and takes them out again.
type idInUse struct {
	mqtt.HookBase
	subs, unsubs atomic.Int32
}

func (h *idInUse) ID() string { return "id-in-use" }

func (h *idInUse) Provides(b byte) bool { return b == mqtt.OnSubscribe || b == mqtt.OnUnsubscribe }

func fakeDelivery(id uint16) packets.Packet {
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: id, TopicName: "x"}
}

func (h *idInUse) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch h.subs.Add(1) {
	case 1:
		cl.State.Inflight.Set(fakeDelivery(pk.PacketID))
	case 2:
		h.clear(cl)
		for id := pk.PacketID + 1; id < pk.PacketID+100; id++ {
			cl.State.Inflight.Set(fakeDelivery(id))
		}
	}
	return pk
}

func (h *idInUse) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if h.unsubs.Add(1) == 1 {
		h.clear(cl)
	}
	return pk
}

func (h *idInUse) clear(cl *mqtt.Client) {
	for _, f := range cl.State.Inflight.GetAll(false) {
		if f.TopicName == "x" {
			cl.State.Inflight.Delete(f.PacketID)
		}
	}
}

// A SUBSCRIBE or UNSUBSCRIBE refused with 0x91 is sent again with a new
// packet id, and then takes effect.
func TestSubscribeRefusedForItsPacketID(t *testing.T) {
	h := &idInUse{}
	_, addr := startMochi(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 4)
	c, err := client.Dial(ctx, client.Config{URL: "mqtt://" + addr, ClientID: "c", Protocol: client.MQTT5,
		Logger: testenv.Logger(), OnMessage: func(m client.Message) { got <- string(m.Payload) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.Subscribe(ctx, "t/1"); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	if n := h.subs.Load(); n != 2 {
		t.Fatalf("%d SUBSCRIBEs, want 2 (refused, then accepted)", n)
	}
	if err := c.Publish(ctx, client.Message{Topic: "t/1", Payload: []byte("one")}, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-got:
		if v != "one" {
			t.Fatalf("got %q", v)
		}
	case <-ctx.Done():
		t.Fatal("the subscription does not deliver")
	}
	if err := c.Unsubscribe(ctx, "t/1"); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
	if n := h.unsubs.Load(); n != 2 {
		t.Fatalf("%d UNSUBSCRIBEs, want 2 (refused, then accepted)", n)
	}
}
