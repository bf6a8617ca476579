package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	packets311 "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/myno-bridge/myno/mqtt/access"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt311 "github.com/eclipse/paho.mqtt.golang"
)

// Protocol is the MQTT version a device speaks.
type Protocol string

// MQTT versions. Existing MYNO devices speak 3.1.1; MQTT 5 devices answer
// on the request's ResponseTopic and echo its CorrelationData.
const (
	MQTT311 Protocol = "3.1.1"
	MQTT5   Protocol = "5"
)

// ParseProtocol reads "3.1.1", "311", "5" or "5.0".
func ParseProtocol(s string) (Protocol, error) {
	switch s {
	case "3.1.1", "311", "3":
		return MQTT311, nil
	case "5", "5.0", "":
		return MQTT5, nil
	}
	return "", fmt.Errorf("unknown MQTT protocol %q (want 3.1.1 or 5)", s)
}

// Message is a received or published MQTT message. ResponseTopic and
// CorrelationData are MQTT 5 properties and stay empty on 3.1.1.
type Message struct {
	Topic           string
	Payload         []byte
	ResponseTopic   string
	CorrelationData []byte
	// Sender is who published the message, where the broker knows and
	// says so: the embedded broker, to its inline client. nil elsewhere
	// (an external broker only enforces its ACL).
	Sender *access.Identity
	// SenderConn numbers the sender's connection where the broker says
	// who published (the embedded broker: broker.ConnectionEvent.Conn),
	// 0 elsewhere. A client identifier outlives its connections; this
	// does not.
	SenderConn uint64
}

// DefaultKeepAlive is the keep-alive of a client whose Config sets none
// (MQTT 5 §3.1.2.10): it sends a PINGREQ when it has sent nothing for this
// long, and the broker drops it after 1.5 times as long without a packet.
const DefaultKeepAlive = 30 * time.Second

// Transport is an MQTT connection that reconnects by itself and restores
// its subscriptions after a reconnect.
type Transport interface {
	Publish(ctx context.Context, m Message, qos byte) error
	// PublishRetained publishes with QoS 1 and the retain flag: the broker
	// keeps the message for later subscribers.
	PublishRetained(ctx context.Context, m Message) error
	Subscribe(ctx context.Context, topic string) error
	Unsubscribe(ctx context.Context, topic string) error
	// Close unsubscribes nothing; it disconnects cleanly.
	Close(ctx context.Context) error
	// Connected reports whether the connection is up now.
	Connected() bool
}

// Config configures Dial.
type Config struct {
	URL       string // mqtt://host:port
	ClientID  string
	Protocol  Protocol
	OnMessage func(Message) // called from the client's goroutine; must not block long
	// OnReconnect is called after each connection (the first one too) is
	// established, once the broker has granted every subscription to
	// restore; not for a connection that goes down before. It runs on the
	// client's resubscription goroutine, which Close waits for: it must
	// not block long.
	OnReconnect func()
	Logger      *slog.Logger
	// ReceiveMaximum is how many QoS 1 publishes the broker may have in
	// flight towards this client (MQTT 5 §3.1.2.11.3); 0 means 65535.
	// paho.golang reserves a queue of this size per connection, so small
	// clients such as devices use a small value.
	ReceiveMaximum uint16
	// SessionExpiry keeps the session (subscriptions, queued QoS 1
	// messages) at the broker for this long after a disconnect (MQTT 5
	// §3.1.2.11.2); 0 ends it with the connection.
	SessionExpiry time.Duration
	// Credentials authenticate the client and say which brokers it
	// trusts; a user name and password in the URL
	// (mqtt://user:password@host:port) count when Credentials has none.
	Credentials
	// TopicAliases is how many MQTT 5 topic aliases (§3.3.2.3.4) our
	// publishes use, within the broker's CONNACK maximum; 0 uses none.
	// Aliases save the topic on every message after the first; MUP slices
	// use them. Only for clients whose publishes are QoS 0 or whose
	// session is not resumed: a QoS 1 publish resent on a new connection
	// would carry an alias that connection never set.
	TopicAliases uint16
	// AcceptTopicAliases is the Topic Alias Maximum sent in CONNECT
	// (§3.1.2.11.5): how many aliases the broker may use towards us.
	AcceptTopicAliases uint16
	// AtMostOnce subscribes with maximum QoS 0 (MQTT 5 §3.8.3.1, 3.1.1
	// §3.8.3.1): the broker delivers without acknowledgements and keeps no
	// in-flight state for this client. For consumers that would rather miss
	// a message than hold the broker's delivery up: monitors, telemetry
	// readers, test stand-ins.
	AtMostOnce bool
	// Will is published by the broker when the connection ends without a
	// DISCONNECT (MQTT 5 §3.1.2.5, QoS 1); WillRetain retains it.
	Will       *Message
	WillRetain bool
	// KeepAlive is the connection's keep-alive, in whole seconds (rounded
	// up), at most 65535 s; 0 means DefaultKeepAlive.
	KeepAlive time.Duration
	// OnRefused is called, once, when the broker refuses to reconnect a
	// client it accepted before, for who the client is: bad user name or
	// password, not authorized, banned (MQTT 5 §3.2.2.2 reason codes 0x85,
	// 0x86, 0x87, 0x8A, 0x8C; 3.1.1 §3.2.2.3 return codes 2, 4, 5). The
	// same credentials cannot succeed: the owner should Close the
	// transport and stop, saying why. The client goes on trying until
	// then. (Before the first connection, Dial returns the refusal.)
	OnRefused func(error)
}

// refusalReporter calls Config.OnRefused once.
type refusalReporter struct {
	once sync.Once
	on   func(error)
	log  *slog.Logger
	url  string
}

func (r *refusalReporter) report(err error) {
	r.once.Do(func() {
		r.log.Error("mqtt broker refused the client for who it is; it cannot connect with these credentials", "broker", r.url, "err", err)
		if r.on != nil {
			r.on(err)
		}
	})
}

// keepAliveSeconds is KeepAlive as CONNECT carries it.
func (c Config) keepAliveSeconds() uint16 {
	k := c.KeepAlive
	if k <= 0 {
		k = DefaultKeepAlive
	}
	return uint16(min((k+time.Second-1)/time.Second, 65535))
}

// subscriptionQoS is the maximum QoS asked for in SUBSCRIBE.
func (c Config) subscriptionQoS() byte {
	if c.AtMostOnce {
		return 0
	}
	return 1
}

// Dial connects to the broker and returns once connected (or ctx ends).
func Dial(ctx context.Context, cfg Config) (Transport, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("bad broker URL %q: want mqtt://host:port or mqtts://host:port", Redact(cfg.URL))
	}
	if u.User != nil {
		if cfg.Username == "" {
			cfg.Username = u.User.Username()
		}
		if p, ok := u.User.Password(); ok && cfg.Password == "" {
			cfg.Password = p
		}
		// The URL goes no further with its password: it is in cfg now.
		u.User = nil
		cfg.URL = u.String()
	}
	switch u.Scheme {
	case "mqtt", "tcp":
	case "mqtts", "tls", "ssl":
		if cfg.TLSConfig == nil {
			cfg.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	default:
		return nil, fmt.Errorf("bad broker URL %q: scheme %q, want mqtt or mqtts", cfg.URL, u.Scheme)
	}
	switch cfg.Protocol {
	case MQTT311:
		return dial311(ctx, cfg, u)
	default:
		return dial5(ctx, cfg, u)
	}
}

// subscriptions is the set of topics to restore after a reconnect.
type subscriptions struct {
	mu     sync.Mutex
	topics map[string]bool
}

func (s *subscriptions) add(t string)    { s.mu.Lock(); s.topics[t] = true; s.mu.Unlock() }
func (s *subscriptions) remove(t string) { s.mu.Lock(); delete(s.topics, t); s.mu.Unlock() }
func (s *subscriptions) has(t string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.topics[t]
}
func (s *subscriptions) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.topics))
	for t := range s.topics {
		out = append(out, t)
	}
	return out
}

// transport5 is an MQTT 5 connection (paho.golang autopaho).
type transport5 struct {
	cm    *autopaho.ConnectionManager
	qos   byte
	subs  *subscriptions
	resub *resubscriber
	up    chan struct{}
	mu    sync.Mutex
	conn  bool
}

func will5(cfg Config) *paho.WillMessage {
	if cfg.Will == nil {
		return nil
	}
	return &paho.WillMessage{Topic: cfg.Will.Topic, Payload: cfg.Will.Payload, QoS: 1, Retain: cfg.WillRetain}
}

// permanentRefusal reports whether a CONNACK refused the client for who
// it is (MQTT 5 §3.2.2.2: 0x85 client identifier not valid, 0x86 bad user
// name or password, 0x87 not authorized, 0x8A banned, 0x8C bad
// authentication method): trying again with the same credentials cannot
// help.
func permanentRefusal(err error) bool {
	var ce *autopaho.ConnackError
	if !errors.As(err, &ce) {
		return false
	}
	switch ce.ReasonCode {
	case 0x85, 0x86, 0x87, 0x8A, 0x8C:
		return true
	}
	return false
}

func dial5(ctx context.Context, cfg Config, u *url.URL) (Transport, error) {
	// lastConnectErr is the latest failed attempt, for Dial's error;
	// refusal a refusal of the credentials before the first connection,
	// which ends Dial's wait (stopAwait).
	var lastConnectErr, refusal atomic.Pointer[error]
	var everConnected atomic.Bool
	var attempts atomic.Int64 // failed connection attempts in a row
	refused := &refusalReporter{on: cfg.OnRefused, log: cfg.Logger, url: cfg.URL}
	awaitCtx, stopAwait := context.WithCancel(ctx)
	defer stopAwait()
	t := &transport5{qos: cfg.subscriptionQoS(), subs: &subscriptions{topics: map[string]bool{}}, up: make(chan struct{})}
	t.resub = &resubscriber{log: cfg.Logger, subs: t.subs, subscribe: t.subscribe, unsubscribe: t.unsubscribe,
		onRestored: cfg.OnReconnect}
	var upOnce sync.Once
	out, in := &outAliases{}, &inAliases{}
	out.reset(0)
	in.reset()
	if cfg.TLSConfig != nil {
		tu := *u
		tu.Scheme = "tls" // autopaho's name for MQTT over TLS
		u = &tu
	}
	onMsg := cfg.OnMessage
	ac := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        cfg.TLSConfig,
		KeepAlive:                     cfg.keepAliveSeconds(),
		CleanStartOnInitialConnection: true,
		SessionExpiryInterval:         uint32(cfg.SessionExpiry / time.Second),
		// Waits between connection attempts: 200 ms growing to 5 s.
		ReconnectBackoff: autopaho.NewExponentialBackoff(200*time.Millisecond, 5*time.Second, 200*time.Millisecond, 2),
		ConnectTimeout:   5 * time.Second,
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			if cfg.TopicAliases > 0 && ca != nil && ca.Properties != nil && ca.Properties.TopicAliasMaximum != nil {
				out.reset(min(cfg.TopicAliases, *ca.Properties.TopicAliasMaximum))
			}
			t.mu.Lock()
			t.conn = true
			t.mu.Unlock()
			// A clean start has no subscriptions (MQTT 5 §3.1.2.4): restore
			// those made so far, until the broker grants them; a Subscribe
			// from now on sends its own.
			restore := t.subs.list()
			everConnected.Store(true)
			if n := attempts.Swap(0); n > 0 {
				cfg.Logger.Info("mqtt connected", "broker", cfg.URL, "failed_attempts", n)
			}
			upOnce.Do(func() { close(t.up) })
			t.resub.connectionUp(restore)
		},
		// autopaho calls OnConnectionUp and OnConnectionDown in turn from
		// its connection loop, so this ends the work of the connection
		// that has just gone.
		OnConnectionDown: func() bool {
			t.mu.Lock()
			t.conn = false
			t.mu.Unlock()
			t.resub.connectionDown(nil)
			return true
		},
		OnConnectError: func(err error) {
			permanent := permanentRefusal(err)
			if permanent && !everConnected.Load() {
				// Credentials the broker refuses stay refused: Dial
				// reports it now rather than at its deadline.
				refusal.Store(new(connectError(err)))
				stopAwait()
			}
			err = connectError(err)
			lastConnectErr.Store(&err)
			// Every failed attempt is a warning with its cause: a wrong
			// password or an untrusted certificate must not look like a
			// slow broker, and an outage shows in the log as it goes on.
			cfg.Logger.Warn("mqtt connect failed; retrying", "broker", cfg.URL, "attempt", attempts.Add(1), "err", err)
			if permanent && everConnected.Load() {
				refused.report(err)
			}
		},
		WillMessage:     will5(cfg),
		ConnectUsername: cfg.Username,
		ConnectPassword: []byte(cfg.Password),
		// paho sizes its incoming-publish queue by Receive Maximum (MQTT 5
		// §3.1.2.11.3): the default 65535 costs 512 KiB per client.
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if c.Properties == nil {
				c.Properties = &paho.ConnectProperties{}
			}
			rm := cfg.ReceiveMaximum
			if rm == 0 {
				rm = 65535
			}
			c.Properties.ReceiveMaximum = &rm
			// A new connection starts with no aliases [MQTT-3.3.2-7].
			out.reset(0)
			in.reset()
			if cfg.AcceptTopicAliases > 0 {
				c.Properties.TopicAliasMaximum = paho.Uint16(cfg.AcceptTopicAliases)
			}
			return c, nil
		},
		ClientConfig: paho.ClientConfig{
			ClientID:    cfg.ClientID,
			PublishHook: out.hook,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				if onMsg == nil {
					return true, nil
				}
				m := Message{Topic: in.resolve(pr.Packet), Payload: pr.Packet.Payload}
				if m.Topic == "" {
					cfg.Logger.Warn("mqtt publish with an unknown topic alias dropped")
					return true, nil
				}
				if p := pr.Packet.Properties; p != nil {
					m.ResponseTopic, m.CorrelationData = p.ResponseTopic, p.CorrelationData
				}
				onMsg(m)
				return true, nil
			}},
		},
	}
	cm, err := autopaho.NewConnection(context.Background(), ac)
	if err != nil {
		return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, err)
	}
	t.cm = cm
	if err := cm.AwaitConnection(awaitCtx); err != nil {
		_ = t.Close(context.Background())
		if r := refusal.Load(); r != nil {
			return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, *r)
		}
		if last := lastConnectErr.Load(); last != nil {
			// The cause first: a deadline alone would hide it.
			return nil, fmt.Errorf("mqtt connect %s: %w (gave up after %d attempts: %w)", cfg.URL, *last, attempts.Load(), err)
		}
		return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, err)
	}
	// AwaitConnection can return before OnConnectionUp has run: wait for
	// it, so that the first publish already uses the topic aliases the
	// CONNACK allowed.
	select {
	case <-t.up:
	case <-ctx.Done():
		_ = t.Close(context.Background())
		return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, ctx.Err())
	}
	return t, nil
}

func (t *transport5) Publish(ctx context.Context, m Message, qos byte) error {
	p := &paho.Publish{Topic: m.Topic, Payload: m.Payload, QoS: qos}
	if m.ResponseTopic != "" || m.CorrelationData != nil {
		p.Properties = &paho.PublishProperties{ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	}
	_, err := t.cm.Publish(ctx, p)
	return err
}

func (t *transport5) PublishRetained(ctx context.Context, m Message) error {
	p := &paho.Publish{Topic: m.Topic, Payload: m.Payload, QoS: 1, Retain: true}
	if m.ResponseTopic != "" || m.CorrelationData != nil {
		p.Properties = &paho.PublishProperties{ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	}
	_, err := t.cm.Publish(ctx, p)
	return err
}

// reasonPacketIDInUse is SUBACK/UNSUBACK reason 0x91 (MQTT 5 §3.9.3, §3.11.3).
const reasonPacketIDInUse = 0x91

// retryIDInUse sends a SUBSCRIBE or UNSUBSCRIBE again while the broker
// refuses it with 0x91, up to maxIDInUseAttempts times. Client and server
// number their packets independently (MQTT 5 §2.2.1), but mochi-mqtt
// v2.7.9 refuses a packet whose id equals one of its own QoS 1 deliveries
// to us still in flight. The client may pick the same id again while that
// delivery is unacknowledged, so the attempts are spaced out (1 ms
// doubling, at most 100 ms) to let it be acknowledged.
func retryIDInUse(ctx context.Context, send func() ([]byte, error)) error {
	wait := time.Millisecond
	for attempt := 1; ; attempt++ {
		reasons, err := send()
		if err == nil || len(reasons) != 1 || reasons[0] != reasonPacketIDInUse || attempt >= maxIDInUseAttempts {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// maxIDInUseAttempts bounds retryIDInUse: about 2 s of attempts.
const maxIDInUseAttempts = 25

func (t *transport5) Subscribe(ctx context.Context, topic string) error {
	t.subs.add(topic)
	return t.subscribe(ctx, topic)
}

// subscribe sends a SUBSCRIBE for topic, again while refused with 0x91.
func (t *transport5) subscribe(ctx context.Context, topic string) error {
	return retryIDInUse(ctx, func() ([]byte, error) {
		sa, err := t.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: t.qos}}})
		if sa == nil {
			return nil, err
		}
		return sa.Reasons, subackError(sa.Reasons, err)
	})
}

// ErrSubscribeRefused is wrapped by the error of a subscription the broker
// refused (a SUBACK failure code). Any other error of Subscribe (the
// connection lost, say) leaves the topic to be subscribed again on the
// next connection: Subscribe records it first.
var ErrSubscribeRefused = errors.New("subscription refused by the broker")

// subackError is err, or an error when a SUBACK reason code is a failure
// (0x80 and above, MQTT 5 §3.9.3), naming the code.
func subackError(reasons []byte, err error) error {
	for _, code := range reasons {
		if code >= 0x80 {
			if err == nil {
				return fmt.Errorf("%w: SUBACK reason code 0x%02x", ErrSubscribeRefused, code)
			}
			return fmt.Errorf("%w: SUBACK reason code 0x%02x: %w", ErrSubscribeRefused, code, err)
		}
	}
	return err
}

func (t *transport5) Unsubscribe(ctx context.Context, topic string) error {
	t.subs.remove(topic)
	return t.unsubscribe(ctx, topic)
}

// unsubscribe sends an UNSUBSCRIBE for topic, again while refused with 0x91.
func (t *transport5) unsubscribe(ctx context.Context, topic string) error {
	return retryIDInUse(ctx, func() ([]byte, error) {
		ua, err := t.cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{topic}})
		if ua == nil {
			return nil, err
		}
		return ua.Reasons, err
	})
}

// Close stops the resubscription of the current connection, waits for
// it, and disconnects.
func (t *transport5) Close(ctx context.Context) error {
	rerr := t.resub.close(ctx)
	err := t.cm.Disconnect(ctx)
	if errors.Is(err, autopaho.ConnectionDownError) {
		err = nil
	}
	return errors.Join(rerr, err)
}

func (t *transport5) Connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn
}

// transport311 is an MQTT 3.1.1 connection (paho.mqtt.golang).
type transport311 struct {
	c     mqtt311.Client
	qos   byte
	subs  *subscriptions
	resub *resubscriber
	on    func(Message)
}

func dial311(ctx context.Context, cfg Config, u *url.URL) (Transport, error) {
	t := &transport311{qos: cfg.subscriptionQoS(), subs: &subscriptions{topics: map[string]bool{}}, on: cfg.OnMessage}
	t.resub = &resubscriber{log: cfg.Logger, subs: t.subs, subscribe: t.subscribe, unsubscribe: t.unsubscribe,
		onRestored: cfg.OnReconnect}
	scheme := "tcp://"
	if cfg.TLSConfig != nil {
		scheme = "ssl://"
	}
	opts := mqtt311.NewClientOptions().
		AddBroker(scheme + u.Host).
		SetTLSConfig(cfg.TLSConfig).
		SetClientID(cfg.ClientID).
		SetProtocolVersion(4). // MQTT 3.1.1
		SetCleanSession(true).
		SetAutoReconnect(true).
		// The first connection is retried by dial311 itself, which stops
		// at a refusal of the credentials.
		SetConnectRetry(false).
		SetMaxReconnectInterval(5 * time.Second).
		// A connection attempt that gets no CONNACK is given up after 5 s,
		// as autopaho's ConnectTimeout does for MQTT 5 (paho.mqtt.golang's
		// default, 30 s, kept a client away that long from a restarted
		// broker when its first attempt reached the closing one).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(time.Duration(cfg.keepAliveSeconds()) * time.Second).
		// Messages reach OnMessage one at a time, in the order the broker
		// sent them (3.1.1 §4.6: ordered topics), as the MQTT 5 client
		// delivers them. With false, paho.mqtt.golang runs a goroutine per
		// message: MUP v1's slices then came out of order, and the device
		// (as MYNO's firmware) dropped each one that overtook another.
		SetOrderMatters(true).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password)
	if cfg.Will != nil {
		opts.SetBinaryWill(cfg.Will.Topic, cfg.Will.Payload, 1, cfg.WillRetain)
	}
	// A clean session has no subscriptions (3.1.1 §3.1.2.4): restore them
	// on every connection, until the broker grants them.
	opts.SetOnConnectHandler(func(mqtt311.Client) { t.resub.connectionUp(t.subs.list()) })
	// paho.mqtt.golang calls both handlers on goroutines of their own, so a
	// connection-lost call can come after the next connection is up and
	// its OnConnect has run: it ends the work only while no connection is
	// open.
	opts.SetConnectionLostHandler(func(c mqtt311.Client, err error) {
		cfg.Logger.Warn("mqtt connection lost; reconnecting", "broker", cfg.URL, "err", err)
		t.resub.connectionDown(func() bool { return !c.IsConnectionOpen() })
	})
	// Reconnection attempts, which paho.mqtt.golang makes by itself: each
	// failure is a warning with its cause, and a refusal of the
	// credentials is reported (Config.OnRefused). The first connection's
	// attempts are dial311's own, logged there.
	var connected atomic.Bool
	var reconnectAttempts atomic.Int64
	refused := &refusalReporter{on: cfg.OnRefused, log: cfg.Logger, url: cfg.URL}
	opts.SetConnectionNotificationHandler(func(_ mqtt311.Client, n mqtt311.ConnectionNotification) {
		switch n := n.(type) {
		case mqtt311.ConnectionNotificationConnected:
			if k := reconnectAttempts.Swap(0); k > 0 {
				cfg.Logger.Info("mqtt connected", "broker", cfg.URL, "failed_attempts", k)
			}
			connected.Store(true)
		case mqtt311.ConnectionNotificationFailed:
			if !connected.Load() {
				return
			}
			cfg.Logger.Warn("mqtt connect failed; retrying", "broker", cfg.URL, "attempt", reconnectAttempts.Add(1), "err", n.Reason)
			if refused311(n.Reason) {
				refused.report(fmt.Errorf("broker refused the connection: %w", n.Reason))
			}
		}
	})
	t.c = mqtt311.NewClient(opts)
	wait := 200 * time.Millisecond
	var last error
	attempt := 0
	for {
		err := waitToken(ctx, t.c.Connect())
		if err == nil {
			return t, nil
		}
		if ctx.Err() != nil {
			_ = t.Close(context.Background())
			if last != nil {
				return nil, fmt.Errorf("mqtt connect %s: %w (gave up after %d attempts: %w)", cfg.URL, last, attempt, ctx.Err())
			}
			return nil, fmt.Errorf("mqtt connect %s: %w", cfg.URL, err)
		}
		// Credentials the broker refuses stay refused (3.1.1 §3.2.2.3:
		// return codes 2, 4, 5): report it now.
		if refused311(err) {
			_ = t.Close(context.Background())
			return nil, fmt.Errorf("mqtt connect %s: broker refused the connection: %w", cfg.URL, err)
		}
		attempt++
		cfg.Logger.Warn("mqtt connect failed; retrying", "broker", cfg.URL, "attempt", attempt, "err", err)
		last = err
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// refused311 reports whether a 3.1.1 CONNACK refused the client for who
// it is (§3.2.2.3 return codes 2 identifier rejected, 4 bad user name or
// password, 5 not authorized): the same credentials stay refused.
func refused311(err error) bool {
	return errors.Is(err, packets311.ErrorRefusedIDRejected) || errors.Is(err, packets311.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets311.ErrorRefusedNotAuthorised)
}

func (t *transport311) handle(_ mqtt311.Client, m mqtt311.Message) {
	if t.on != nil {
		t.on(Message{Topic: m.Topic(), Payload: m.Payload()})
	}
}

func waitToken(ctx context.Context, tok mqtt311.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *transport311) Publish(ctx context.Context, m Message, qos byte) error {
	return waitToken(ctx, t.c.Publish(m.Topic, qos, false, m.Payload))
}

func (t *transport311) PublishRetained(ctx context.Context, m Message) error {
	return waitToken(ctx, t.c.Publish(m.Topic, 1, true, m.Payload))
}

func (t *transport311) Subscribe(ctx context.Context, topic string) error {
	t.subs.add(topic)
	return t.subscribe(ctx, topic)
}

// subscribe sends a SUBSCRIBE for topic. A SUBACK return code 0x80 is a
// failure (3.1.1 §3.9.3), which paho.mqtt.golang does not report as an
// error.
func (t *transport311) subscribe(ctx context.Context, topic string) error {
	tok := t.c.Subscribe(topic, t.qos, t.handle)
	if err := waitToken(ctx, tok); err != nil {
		return err
	}
	if st, ok := tok.(*mqtt311.SubscribeToken); ok {
		for _, code := range st.Result() {
			if code >= 0x80 {
				return fmt.Errorf("%w: SUBACK return code 0x%02x (failure)", ErrSubscribeRefused, code)
			}
		}
	}
	return nil
}

func (t *transport311) Unsubscribe(ctx context.Context, topic string) error {
	t.subs.remove(topic)
	return t.unsubscribe(ctx, topic)
}

func (t *transport311) unsubscribe(ctx context.Context, topic string) error {
	return waitToken(ctx, t.c.Unsubscribe(topic))
}

// Close stops the resubscription of the current connection, waits for
// it, and disconnects.
func (t *transport311) Close(ctx context.Context) error {
	err := t.resub.close(ctx)
	t.c.Disconnect(250)
	return err
}

func (t *transport311) Connected() bool { return t.c.IsConnectionOpen() }
