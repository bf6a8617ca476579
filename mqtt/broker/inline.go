package broker

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
)

// inlineTransport connects an in-process user (the bridge) to the embedded
// broker without a network hop: publishes are injected as packets of an
// inline client (MQTT 5, so ResponseTopic and CorrelationData reach the
// devices) and subscriptions are inline handlers. It also keeps the
// bridge's traffic out of the broker's per-client in-flight bookkeeping.
type inlineTransport struct {
	broker *Broker
	srv    *mqtt.Server
	cl     *mqtt.Client
	on     func(client.Message)
	mu     sync.Mutex
	subs   map[string]int
	next   atomic.Int64
	close  atomic.Bool
}

// InlineClient returns a client.Transport inside the broker; on receives
// every message of its subscriptions. id names the inline client.
func (b *Broker) InlineClient(id string, on func(client.Message)) client.Transport {
	cl := b.srv.NewClient(nil, "local", id, true)
	cl.Properties.ProtocolVersion = 5
	return &inlineTransport{broker: b, srv: b.srv, cl: cl, on: on, subs: map[string]int{}}
}

var errClosed = errors.New("inline transport closed")

func (t *inlineTransport) Publish(ctx context.Context, m client.Message, qos byte) error {
	return t.publish(m, qos, false)
}

func (t *inlineTransport) PublishRetained(ctx context.Context, m client.Message) error {
	return t.publish(m, 1, true)
}

func (t *inlineTransport) publish(m client.Message, qos byte, retain bool) error {
	if t.close.Load() {
		return errClosed
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		PacketID:    uint16(qos), // inline publishes are not acknowledged; the id only passes validation
		Properties:  packets.Properties{ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData},
	}
	return t.srv.InjectPacket(t.cl, pk)
}

func (t *inlineTransport) Subscribe(ctx context.Context, topic string) error {
	t.mu.Lock()
	if _, ok := t.subs[topic]; ok {
		t.mu.Unlock()
		return nil
	}
	id := int(t.next.Add(1))
	t.subs[topic] = id
	t.mu.Unlock()
	return t.srv.Subscribe(topic, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if t.close.Load() {
			return
		}
		sender, conn := t.sender(pk.Origin)
		t.on(client.Message{Topic: pk.TopicName, Payload: pk.Payload,
			ResponseTopic: pk.Properties.ResponseTopic, CorrelationData: pk.Properties.CorrelationData,
			Sender: sender, SenderConn: conn})
	})
}

// sender is who published a message, and over which connection: the
// client with that identifier (the handler runs while the broker
// processes its PUBLISH, so the client is still there), the anonymous
// identity and no connection if it is gone.
func (t *inlineTransport) sender(origin string) (*access.Identity, uint64) {
	cl, ok := t.srv.Clients.Get(origin)
	if !ok {
		return &access.Identity{}, 0
	}
	id := t.broker.access.identity(cl)
	return &id, t.broker.presence.conn(cl)
}

func (t *inlineTransport) Unsubscribe(ctx context.Context, topic string) error {
	t.mu.Lock()
	id, ok := t.subs[topic]
	delete(t.subs, topic)
	t.mu.Unlock()
	if !ok {
		return nil
	}
	return t.srv.Unsubscribe(topic, id)
}

func (t *inlineTransport) Close(ctx context.Context) error {
	t.close.Store(true)
	return nil
}

func (t *inlineTransport) Connected() bool { return !t.close.Load() }
