package updateserver

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
)

// DefaultMQTTConnectTimeout bounds the Update Server's connection to the
// broker (DialBroker), as the bridge's --mqtt-connect-timeout does its own.
const DefaultMQTTConnectTimeout = 30 * time.Second

// BrokerConfig configures DialBroker.
type BrokerConfig struct {
	URL         string // mqtt://host:port or mqtts://host:port
	Credentials client.Credentials
	// ConnectTimeout bounds the connection, every attempt included, and
	// later each ack subscription; default DefaultMQTTConnectTimeout.
	ConnectTimeout time.Duration
	// Logger gets the client's warnings (each failed attempt); nil is
	// slog.Default().
	Logger *slog.Logger
}

// Broker is the Update Server's connection to the broker the slices go
// through. One connection serves any number of updates at once (a
// campaign's): each update subscribes to its device's ack topic before it
// asks for a token, and the acks are routed to it by topic. It is safe
// for concurrent use.
type Broker struct {
	url            string // redacted
	tr             client.Transport
	connectTimeout time.Duration

	mu     sync.Mutex
	routes map[string]chan []byte // ack topic → the update waiting for its acks
}

// BrokerError is a broker the Update Server could not connect to, or
// could not subscribe on, within its deadline.
type BrokerError struct {
	URL     string        // redacted: no password
	Timeout time.Duration // the deadline that passed, 0 when none did
	Err     error
}

func (e *BrokerError) Error() string {
	// client.Dial's errors begin "mqtt connect URL: ", and autopaho's
	// "failed to connect to URL: ": the cause is what follows, and the URL
	// is said once.
	cause := e.Err.Error()
	for _, prefix := range []string{"mqtt connect ", "failed to connect to "} {
		if rest, ok := strings.CutPrefix(cause, prefix); ok {
			if i := strings.Index(rest, ": "); i >= 0 {
				cause = rest[i+2:]
			}
		}
	}
	if e.Timeout > 0 {
		return fmt.Sprintf("broker %s: no connection within %s: %s", e.URL, e.Timeout, cause)
	}
	return "broker " + e.URL + ": " + cause
}

func (e *BrokerError) Unwrap() error { return e.Err }

// DialBroker connects to the broker within cfg.ConnectTimeout. Its error
// is a *BrokerError that names the broker and the cause (connection
// refused, no route, a refused password, an untrusted certificate).
func DialBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultMQTTConnectTimeout
	}
	b := &Broker{url: client.Redact(cfg.URL), connectTimeout: cfg.ConnectTimeout, routes: map[string]chan []byte{}}
	dctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	tr, err := client.Dial(dctx, client.Config{URL: cfg.URL, Credentials: cfg.Credentials, Logger: cfg.Logger,
		ClientID: "myno-update-" + hex.EncodeToString(mup.NewNonce()[:6]), Protocol: client.MQTT5,
		// Every publish here is QoS 0: slices carry an alias, not their
		// topic, on the first 16 firmware topics of the connection.
		TopicAliases: 16,
		OnMessage:    b.route})
	if err != nil {
		be := &BrokerError{URL: b.url, Err: err}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			be.Timeout = cfg.ConnectTimeout
		}
		return nil, be
	}
	b.tr = tr
	return b, nil
}

// URL is the broker's URL, without a password.
func (b *Broker) URL() string { return b.url }

// Close disconnects.
func (b *Broker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.tr.Close(ctx)
}

// route hands an ack to the update that waits for it; acks on a topic no
// update waits for, or beyond what it can hold, are dropped (a resend
// follows).
func (b *Broker) route(m client.Message) {
	b.mu.Lock()
	ch := b.routes[m.Topic]
	b.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- m.Payload:
	default:
	}
}

// acks subscribes to ackTopic within the connect timeout and returns the
// acks that arrive there, and the function that ends the subscription.
// One update at a time may wait on a topic.
func (b *Broker) acks(ctx context.Context, ackTopic string) (<-chan []byte, func(), error) {
	ch := make(chan []byte, 1024)
	b.mu.Lock()
	if b.routes[ackTopic] != nil {
		b.mu.Unlock()
		return nil, nil, fmt.Errorf("another update waits for acks on %s", ackTopic)
	}
	b.routes[ackTopic] = ch
	b.mu.Unlock()
	drop := func() {
		b.mu.Lock()
		delete(b.routes, ackTopic)
		b.mu.Unlock()
	}
	sctx, cancel := context.WithTimeout(ctx, b.connectTimeout)
	defer cancel()
	if err := b.tr.Subscribe(sctx, ackTopic); err != nil {
		drop()
		uctx, ucancel := context.WithTimeout(context.Background(), time.Second)
		_ = b.tr.Unsubscribe(uctx, ackTopic) // not to be restored after a reconnect
		ucancel()
		be := &BrokerError{URL: b.url, Err: fmt.Errorf("subscribing to %s: %w", ackTopic, err)}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			be.Err = fmt.Errorf("subscribing to %s: no SUBACK within %s: %w", ackTopic, b.connectTimeout, err)
		}
		return nil, nil, be
	}
	return ch, func() {
		drop()
		uctx, ucancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ucancel()
		_ = b.tr.Unsubscribe(uctx, ackTopic)
	}, nil
}

// publish sends one slice, QoS 0, within timeout.
func (b *Broker) publish(ctx context.Context, topic string, payload []byte, timeout time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return b.tr.Publish(pctx, client.Message{Topic: topic, Payload: payload}, 0)
}
