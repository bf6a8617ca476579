package broker

import (
	"log/slog"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultMaxPendingWrites is how many packets may wait to be written to
// one client. mochi-mqtt's default, 8,192, reserves a 64 KiB channel per
// client whether it is used or not: most of what a device cost the
// embedded broker. A device has a few commands, acks or readings in
// flight; QoS 1 deliveries beyond the client's Receive Maximum wait in
// its in-flight store, not here (MQTT 5 §4.9). A packet that finds the
// queue full is dropped, counted and logged (droppedHook).
const DefaultMaxPendingWrites = 1024

// droppedHook counts and logs the packets mochi-mqtt drops because a
// client's queue of pending writes is full (a client that does not read):
// nothing is lost without a word.
type droppedHook struct {
	mqtt.HookBase
	log     *slog.Logger
	max     int32
	dropped atomic.Uint64
}

func (h *droppedHook) ID() string { return "myno-dropped" }

func (h *droppedHook) Provides(b byte) bool { return b == mqtt.OnPublishDropped }

// OnPublishDropped is called for each packet the broker could not queue
// for cl.
func (h *droppedHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.dropped.Add(1)
	h.log.Warn("mqtt message dropped: the client reads too slowly (its queue of pending writes is full)",
		"client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "max_pending_writes", h.max)
}

// DroppedMessages counts the messages dropped because a client's queue of
// pending writes was full.
func (b *Broker) DroppedMessages() uint64 { return b.dropped.dropped.Load() }
