package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/myno-bridge/myno/internal/failguard"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.etcd.io/bbolt"

	"github.com/myno-bridge/myno/mqtt/access"
)

// DefaultListen is where the embedded broker listens when Config.Listen
// is empty: loopback, the MQTT port (IANA 1883).
const DefaultListen = "127.0.0.1:1883"

// Config configures the embedded MQTT broker (mochi-mqtt, MQTT 3.1.1
// and 5).
type Config struct {
	Listen            string // TCP address; "127.0.0.1:0" picks a free port
	TopicAliasMaximum uint16 // topic aliases offered to MQTT 5 clients; 0 means 65535
	// DataDir keeps retained messages, sessions, subscriptions and queued
	// QoS 1 messages across restarts (a bbolt file); "" keeps them in memory.
	DataDir       string
	MaxPacketSize uint32 // 0 means 1 MiB
	// HoldConnections makes the listeners accept no connection until
	// Admit: the bridge restores its registry first, so that devices
	// reconnecting after a restart find their topics (they were refused
	// their command subscriptions and backed off for seconds). The inline
	// client works meanwhile.
	HoldConnections bool
	// MaxPendingWrites bounds the packets waiting to be written to one
	// client; 0 means DefaultMaxPendingWrites.
	MaxPendingWrites int32
	Logger           *slog.Logger
	// Hooks are added to the mochi-mqtt server after the broker's own
	// hooks and before it accepts connections, so that they see every
	// client from the first (hooks added later through Server().AddHook
	// may miss a client that connects at once).
	Hooks []mqtt.Hook
	// WrapListener, when set, is given the TCP listener opened on Listen,
	// and the broker accepts on the listener it returns (which Close
	// closes): to filter or count connections, or to inject accept errors
	// in tests. Its Addr should be that of the listener it wraps.
	WrapListener func(net.Listener) net.Listener

	// Access decides who may connect and which topics each client may
	// use. nil admits nobody: use an access.Controller, or OpenAccess in
	// a lab.
	Access AccessControl

	// TLSListen, when set, opens a second listener, MQTT over TLS
	// (mqtts, IANA 8883), with TLSConfig (its certificate; ClientCAs and
	// ClientAuth for client certificates, whose common name then
	// identifies the client).
	TLSListen string
	TLSConfig *tls.Config

	// OnConnection, when set, is told of every client connection that
	// starts (its session established) and ends (presence.go). It runs on
	// the client's goroutine, from mochi-mqtt's hooks: it must not block,
	// nor call the broker back.
	OnConnection func(ConnectionEvent)
}

// DefaultTLSListen is the usual loopback address of --mqtts-listen.
const DefaultTLSListen = "127.0.0.1:8883"

// refuseAll is the access control of a broker configured with none.
type refuseAll struct{}

func (refuseAll) Authenticate(access.ConnectRequest) (access.Identity, error) {
	return access.Identity{}, errors.New("the broker has no access control configured")
}

func (refuseAll) Allow(access.Identity, string, bool) bool { return false }

// Broker is a running embedded broker.
type Broker struct {
	srv      *mqtt.Server
	ln       *listener
	tlsLn    *listener // nil without Config.TLSListen
	addr     string
	access   *accessHook
	presence *presenceHook
	dropped  *droppedHook
	admit    chan struct{} // Config.HoldConnections; closed by Admit
	admitted sync.Once
	// subscribed wakes AwaitSubscriber.
	subscribed *subscribedHook
}

// Admit lets the listeners accept connections, when the broker was
// started with HoldConnections; otherwise it does nothing.
func (b *Broker) Admit() {
	if b.admit != nil {
		b.admitted.Do(func() { close(b.admit) })
	}
}

// Start starts the embedded broker and returns once it listens.
func Start(cfg Config) (*Broker, error) {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	caps := mqtt.NewDefaultServerCapabilities()
	// No cap on message expiry: a message without a Message Expiry
	// Interval does not expire (MQTT 5 §3.3.2.3.3). mochi-mqtt's default of
	// 24 hours removed retained messages a day old (the Update Server
	// certificate, presence, the cluster's registry) and in-flight ones.
	caps.MaximumMessageExpiryInterval = 0
	caps.TopicAliasMaximum = cfg.TopicAliasMaximum
	if caps.TopicAliasMaximum == 0 {
		caps.TopicAliasMaximum = 65535
	}
	caps.MaximumClientWritesPending = cfg.MaxPendingWrites
	if caps.MaximumClientWritesPending <= 0 {
		caps.MaximumClientWritesPending = DefaultMaxPendingWrites
	}
	caps.MaximumPacketSize = cfg.MaxPacketSize
	if caps.MaximumPacketSize == 0 {
		caps.MaximumPacketSize = 1 << 20
	}
	// Listen first: when the address is taken (a restart on the same
	// port, too early), nothing else has been opened yet.
	nl, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("broker listen %s: %w", cfg.Listen, err)
	}
	if cfg.WrapListener != nil {
		nl = cfg.WrapListener(nl)
	}
	var admit chan struct{}
	if cfg.HoldConnections {
		admit = make(chan struct{})
	}
	ln := newListener("tcp", nl)
	ln.admit = admit
	var tlsNet net.Listener
	if cfg.TLSListen != "" {
		if cfg.TLSConfig == nil || (len(cfg.TLSConfig.Certificates) == 0 && cfg.TLSConfig.GetCertificate == nil) {
			_ = nl.Close()
			return nil, errors.New("broker: a TLS listener needs a certificate and key")
		}
		if tlsNet, err = net.Listen("tcp", cfg.TLSListen); err != nil {
			_ = nl.Close()
			return nil, fmt.Errorf("broker listen (TLS) %s: %w", cfg.TLSListen, err)
		}
		tlsNet = tls.NewListener(tlsNet, cfg.TLSConfig)
	}
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: cfg.Logger, InlineClient: true})
	// fail closes what was opened: the listeners, and the hooks (the store).
	fail := func(err error) (*Broker, error) {
		_ = nl.Close()
		if tlsNet != nil {
			_ = tlsNet.Close()
		}
		_ = srv.Close()
		return nil, err
	}
	control := cfg.Access
	if control == nil {
		control = refuseAll{}
	}
	// First, so that no other hook sees a client before it is admitted.
	accessHook := &accessHook{srv: srv, control: control, guard: failguard.New(nil)}
	if err := srv.AddHook(accessHook, nil); err != nil {
		return fail(err)
	}
	presence := &presenceHook{access: accessHook, on: cfg.OnConnection}
	if err := srv.AddHook(presence, nil); err != nil {
		return fail(err)
	}
	if err := srv.AddHook(&AnnounceTopicAliases{Maximum: caps.TopicAliasMaximum}, nil); err != nil {
		return fail(err)
	}
	gate := newSessionGate(srv)
	if err := srv.AddHook(gate, nil); err != nil {
		return fail(err)
	}
	ln.gate = gate
	dropped := &droppedHook{log: cfg.Logger, max: caps.MaximumClientWritesPending}
	if err := srv.AddHook(dropped, nil); err != nil {
		return fail(err)
	}
	subscribed := newSubscribedHook()
	if err := srv.AddHook(subscribed, nil); err != nil {
		return fail(err)
	}
	if cfg.DataDir != "" {
		if err := srv.AddHook(&brokerStore{Hook: new(bolt.Hook)}, &bolt.Options{Path: filepath.Join(cfg.DataDir, "broker.db"),
			// No fsync per message: the store survives a crashed process
			// (the OS has the pages), and QoS 1 throughput stays that of
			// memory. A power loss can lose the last moments.
			Options: &bbolt.Options{Timeout: 5 * time.Second, NoSync: true, NoFreelistSync: true}}); err != nil {
			return fail(fmt.Errorf("broker storage: %w", err))
		}
	}
	for _, h := range cfg.Hooks {
		if err := srv.AddHook(h, nil); err != nil {
			return fail(fmt.Errorf("broker hook %s: %w", h.ID(), err))
		}
	}
	if err := srv.AddListener(ln); err != nil {
		return fail(fmt.Errorf("broker listen %s: %w", cfg.Listen, err))
	}
	b := &Broker{srv: srv, ln: ln, addr: ln.Address(), access: accessHook, presence: presence, dropped: dropped, admit: admit, subscribed: subscribed}
	if tlsNet != nil {
		b.tlsLn = newListener("tls", tlsNet)
		b.tlsLn.admit = admit
		b.tlsLn.gate = gate
		if err := srv.AddListener(b.tlsLn); err != nil {
			return fail(fmt.Errorf("broker listen (TLS) %s: %w", cfg.TLSListen, err))
		}
	}
	if err := srv.Serve(); err != nil {
		return fail(fmt.Errorf("broker start: %w", err))
	}
	return b, nil
}

// Addr is the address the broker listens on.
func (b *Broker) Addr() string { return b.addr }

// AcceptErrors is how many times accepting a connection failed, for
// example at the file-descriptor limit (EMFILE). The broker keeps
// accepting after such errors, with a backoff from 5 ms to 1 s, and logs
// them (the first of a run, then one every 10 s).
func (b *Broker) AcceptErrors() uint64 { return b.ln.AcceptErrors() }

// URL is the broker's address as an mqtt:// URL.
func (b *Broker) URL() string { return "mqtt://" + b.addr }

// TLSURL is the TLS listener's address as an mqtts:// URL, or "".
func (b *Broker) TLSURL() string {
	if b.tlsLn == nil {
		return ""
	}
	return "mqtts://" + b.tlsLn.Address()
}

// Server gives access to the mochi server, for hooks.
func (b *Broker) Server() *mqtt.Server { return b.srv }

// CloseMochi shuts a mochi-mqtt server down like its Close, but first
// disconnects the clients of each listener itself. mochi-mqtt v2.7.9's
// Close finds them with Clients.GetByListener, which takes a read lock
// twice: a client disconnecting at that moment (Clients.Delete waiting for
// the write lock) deadlocks the shutdown (upstream issue #488, fix in PR
// #489, not released). A listener closes its clients only once, so the
// Close that follows does not look again.
func CloseMochi(srv *mqtt.Server) error {
	srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	return srv.Close()
}

// closeTimeout bounds how long Close waits for the broker to let go of
// its clients.
const closeTimeout = 5 * time.Second

// Close stops the broker and disconnects its clients. It does not wait more
// than a few seconds for clients that do not go.
func (b *Broker) Close() error {
	if b == nil || b.srv == nil {
		return errors.New("broker not running")
	}
	done := make(chan error, 1)
	go func() { done <- CloseMochi(b.srv) }()
	select {
	case err := <-done:
		return err
	case <-time.After(closeTimeout):
		return fmt.Errorf("broker close: clients still connected after %s", closeTimeout)
	}
}

// brokerStore persists clients (sessions), subscriptions and retained
// messages, but not QoS 1 messages in flight: a write per message halved
// the rpc throughput, and an rpc whose command is lost in a broker restart
// times out anyway.
type brokerStore struct {
	*bolt.Hook
	// stored are the clients with a record in the store: those of
	// lasting sessions. A session that ends with its connection gets none
	// (a bbolt write when each device connects and another when it goes:
	// shutting down with 10,000 devices connected took over 5 s).
	mu     sync.Mutex
	stored map[string]bool
}

// StoredClients reads the clients of the store, and remembers them.
func (h *brokerStore) StoredClients() ([]storage.Client, error) {
	cls, err := h.Hook.StoredClients()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stored = make(map[string]bool, len(cls))
	for _, c := range cls {
		h.stored[c.ID] = true
	}
	return cls, err
}

// keeps reports whether cl has a record in the store, or should have:
// it takes one for a lasting session, and the record of a client whose
// new session ends with its connection is removed.
func (h *brokerStore) keeps(cl *mqtt.Client, establishing bool) bool {
	if cl.Net.Inline {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stored == nil {
		h.stored = map[string]bool{}
	}
	if establishing {
		if sessionEndsWithConnection(cl) {
			if h.stored[cl.ID] {
				delete(h.stored, cl.ID)
				h.Hook.OnDisconnect(cl, nil, true) // its earlier, lasting session is over
			}
			return false
		}
		h.stored[cl.ID] = true
		return true
	}
	return h.stored[cl.ID]
}

// OnSessionEstablished stores the client of a lasting session.
func (h *brokerStore) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if h.keeps(cl, true) {
		h.Hook.OnSessionEstablished(cl, pk)
	}
}

// OnWillSent updates a stored client.
func (h *brokerStore) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if h.keeps(cl, false) {
		h.Hook.OnWillSent(cl, pk)
	}
}

// OnDisconnect removes a stored client whose session ends.
func (h *brokerStore) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if !h.keeps(cl, false) {
		return
	}
	if expire && cl.StopCause() != packets.ErrSessionTakenOver {
		h.mu.Lock()
		delete(h.stored, cl.ID)
		h.mu.Unlock()
	}
	h.Hook.OnDisconnect(cl, err, expire)
}

// Provides leaves out the in-flight events of the bolt hook, and the
// system-info ticks: nothing here reads them back, and mochi-mqtt v2.7.9
// delivers a tick from its event loop while Close stops the hooks, a data
// race on the bolt hook's database handle (seen under -race).
func (h *brokerStore) Provides(b byte) bool {
	switch b {
	case mqtt.OnQosPublish, mqtt.OnQosComplete, mqtt.OnQosDropped, mqtt.StoredInflightMessages,
		mqtt.OnSysInfoTick, mqtt.StoredSysInfo:
		return false
	}
	return h.Hook.Provides(b)
}

// OnSubscribed stores a subscription only where a restart could need it:
// not the inline client's (the bridge subscribes again when it starts; a
// stored one came back as the subscription of an ordinary client named
// "inline", which the access control then refused on every answer), and
// not that of a session that ends with its connection (MQTT 5 §3.1.2.11.2
// Session Expiry Interval 0; 3.1.1 §3.1.2.4 Clean Session): a bbolt
// write per device subscription was 13 % of the CPU of a registration.
func (h *brokerStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	if cl.Net.Inline || sessionEndsWithConnection(cl) {
		return
	}
	h.Hook.OnSubscribed(cl, pk, reasonCodes)
}

// OnUnsubscribed removes what OnSubscribed stored.
func (h *brokerStore) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.Net.Inline || sessionEndsWithConnection(cl) {
		return
	}
	h.Hook.OnUnsubscribed(cl, pk)
}

// StoredSubscriptions leaves out the inline client's, which earlier
// versions stored.
func (h *brokerStore) StoredSubscriptions() ([]storage.Subscription, error) {
	subs, err := h.Hook.StoredSubscriptions()
	return slices.DeleteFunc(subs, func(s storage.Subscription) bool { return s.Client == mqtt.InlineClientId }), err
}

// sessionEndsWithConnection reports whether cl's session, subscriptions
// included, ends when its connection does.
func sessionEndsWithConnection(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion >= 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// AnnounceTopicAliases puts the broker's Topic Alias Maximum into every
// MQTT 5 CONNACK (§3.2.2.3.8). mochi-mqtt v2.7.9 accepts aliases up to its
// capability but leaves the property out, and a client must then assume 0
// and send none; with it, publishers such as the Update Server send each
// slice with a 2-byte alias instead of its topic.
type AnnounceTopicAliases struct {
	mqtt.HookBase
	Maximum uint16
}

func (h *AnnounceTopicAliases) ID() string { return "announce-topic-aliases" }

func (h *AnnounceTopicAliases) Provides(b byte) bool { return b == mqtt.OnPacketEncode }

func (h *AnnounceTopicAliases) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if pk.FixedHeader.Type == packets.Connack && cl.Properties.ProtocolVersion == 5 && pk.ReasonCode == 0 {
		pk.Properties.TopicAliasMaximum = h.Maximum
	}
	return pk
}
