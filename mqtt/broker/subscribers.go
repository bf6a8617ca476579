package broker

import (
	"context"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// subscribedHook wakes the callers of Broker.AwaitSubscriber whenever a
// client subscribes. It runs after mochi-mqtt has added the subscription
// to its index and before the SUBACK.
type subscribedHook struct {
	mqtt.HookBase
	mu      sync.Mutex
	waiters int
	changed chan struct{} // closed at the next subscription while waiters > 0
}

func newSubscribedHook() *subscribedHook { return &subscribedHook{changed: make(chan struct{})} }

func (h *subscribedHook) ID() string { return "myno-subscribed" }

func (h *subscribedHook) Provides(b byte) bool { return b == mqtt.OnSubscribed }

func (h *subscribedHook) OnSubscribed(*mqtt.Client, packets.Packet, []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.waiters > 0 {
		close(h.changed)
		h.changed = make(chan struct{})
	}
}

// wait registers a waiter and returns the channel closed at the next
// subscription; done unregisters it.
func (h *subscribedHook) wait() (next func() <-chan struct{}, done func()) {
	h.mu.Lock()
	h.waiters++
	h.mu.Unlock()
	next = func() <-chan struct{} {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.changed
	}
	done = func() {
		h.mu.Lock()
		h.waiters--
		h.mu.Unlock()
	}
	return next, done
}

// HasSubscriber reports whether a connected client (not the inline one)
// has a subscription matching topic: whether a device listens to its
// command topic.
func (b *Broker) HasSubscriber(topic string) bool {
	subs := b.srv.Topics.Subscribers(topic)
	if len(subs.Shared) > 0 {
		return true
	}
	for id := range subs.Subscriptions {
		if cl, ok := b.srv.Clients.Get(id); ok && !cl.Closed() {
			return true
		}
	}
	return false
}

// AwaitSubscriber returns once a connected client has a subscription
// matching topic (HasSubscriber), or ctx's error when it ends first. A
// device that has just reconnected is online before it has subscribed
// again to its commands; a command published meanwhile reaches nobody
// (MQTT 5 §4.5: a message is delivered to the subscriptions that exist
// when it is published).
func (b *Broker) AwaitSubscriber(ctx context.Context, topic string) error {
	if b.HasSubscriber(topic) {
		return nil
	}
	next, done := b.subscribed.wait()
	defer done()
	for {
		ch := next() // before looking: a subscription after the look closes it
		if b.HasSubscriber(topic) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
