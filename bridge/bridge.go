package bridge

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// Bridge is a running bridge: the composition of its parts.
type Bridge struct {
	cfg Config
	log *slog.Logger

	broker   *broker.Broker     // the embedded broker; nil with an external one
	access   *access.Controller // the embedded broker's access control
	dynsec   *dynsecSync        // an external Mosquitto's roles; nil unless MosquittoDynsec
	mq       client.Transport   // the bridge's MQTT connection
	nc       *netconf.Server
	ln       net.Listener
	registry *registry
	assembly *assembler
	calls    *pendingCalls
	owner    ownership // solo, or an instance of a cluster
	reqSeq   atomic.Uint64
	myno     *mynoModules // the modules as --profile myno shows them; nil otherwise
	// config keeps devices to the configuration datastore (configuration.go);
	// nil with --profile myno or --cluster.
	config *configurator

	// ctx ends when Close starts; run owns every goroutine of the bridge.
	ctx    context.Context
	cancel context.CancelFunc
	run    tasks

	// presence says who is connected; notifyMu orders the device-event
	// notifications (presence.go).
	presence *presence
	notifyMu sync.Mutex

	metrics *bridgeMetrics
	httpLn  net.Listener // --http-listen; nil when off
	unlock  func()       // releases the data directory's lock

	// failed gets what stops the bridge from serving for good: the
	// external broker refusing its credentials on a reconnect.
	failed chan error

	users      *netconf.Users // the NETCONF server's; ReloadUsers swaps its content
	usersMu    sync.Mutex
	usersStamp string // the users file's size and time when last read
}

// Start runs the bridge: registry, NETCONF server, broker (embedded or
// external), subscriptions, the registry restored. It returns once
// everything listens; Close stops it.
func Start(ctx context.Context, cfg Config) (*Bridge, error) {
	cfg.setDefaults()
	if cfg.Profile != ProfileStandard && cfg.Profile != ProfileMYNO {
		return nil, fmt.Errorf("profile %q: want %s or %s", cfg.Profile, ProfileStandard, ProfileMYNO)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	b := &Bridge{cfg: cfg, log: cfg.Logger, calls: newPendingCalls(), unlock: unlock, failed: make(chan error, 1),
		assembly: newAssembler(cfg.MaxDescriptionBytes, cfg.MaxChunks, cfg.MaxPendingDescriptionBytes,
			sourceLimits{count: cfg.MaxPendingPerSource, bytes: cfg.MaxPendingBytesPerSource}, cfg.AssemblyTimeout)}
	if cfg.Profile == ProfileMYNO {
		b.myno = newMYNOModules()
	}
	b.presence = newPresence(cfg.MQTTURL == "", cfg.DeviceKeepAlive)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.metrics = newMetrics(b)
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()
	if b.owner, err = b.newOwnership(); err != nil {
		return nil, err
	}
	if b.registry, err = openRegistry(cfg.DataDir, &ontology.Parser{MaxBytes: cfg.MaxDescriptionBytes},
		shapeLimits{count: cfg.MaxShapes, bytes: cfg.MaxShapeBytes}, cfg.Logger); err != nil {
		return nil, err
	}
	var configuration *netconf.Configuration
	if cfg.Profile == ProfileStandard && cfg.Cluster == "" {
		b.config = newConfigurator(b)
		if configuration, err = b.config.load(); err != nil {
			return nil, err
		}
	}
	if b.nc, err = b.newNETCONFServer(configuration); err != nil {
		return nil, err
	}
	if b.config != nil {
		b.config.start(b.nc.Running())
	}
	b.announceBridgeModule()
	if err := b.connectMQTT(ctx); err != nil {
		return nil, err
	}
	if err := b.subscribe(ctx); err != nil {
		return nil, err
	}
	if b.dynsec != nil {
		if err := b.dynsec.start(ctx); err != nil {
			return nil, err
		}
	}
	if err := b.publishUpdateServerCert(ctx); err != nil {
		return nil, err
	}
	if err := b.restoreRegistry(ctx); err != nil {
		return nil, err
	}
	// After the restore: a cluster's first list of its store then drops
	// what the data dir still holds and the cluster deleted meanwhile
	// (started before, the restore could bring such a device back).
	if err := b.owner.start(b.ctx, b.mq, &b.run); err != nil {
		return nil, err
	}
	if err := b.serveNETCONF(); err != nil {
		return nil, err
	}
	if err := b.serveHTTP(); err != nil {
		return nil, err
	}
	if b.broker != nil {
		b.broker.Admit()
	}
	b.run.goDo(func() { b.expireAssemblies(b.ctx) })
	b.run.goDo(func() { b.watchUsers(b.ctx) })
	b.run.goDo(func() { b.expirePresence(b.ctx) })
	ok = true
	attrs := []any{"netconf", b.ln.Addr().String(), "mqtt", b.mqttURL(), "data", cfg.DataDir}
	if b.httpLn != nil {
		attrs = append(attrs, "http", b.httpLn.Addr().String())
	}
	if b.broker != nil {
		attrs = append(attrs, "mqtts", b.broker.TLSURL(), "enrol", cfg.Enrolment, "mqtt_allow_anonymous", cfg.MQTTAllowAnonymous)
	}
	b.log.Info("bridge started", append(attrs, b.owner.logAttrs()...)...)
	return b, nil
}

// newOwnership is solo, or an instance of the configured cluster.
func (b *Bridge) newOwnership() (ownership, error) {
	if b.cfg.Cluster == "" {
		return solo{}, nil
	}
	if b.cfg.MQTTURL == "" {
		return nil, errors.New("a cluster needs a shared external broker (--mqtt-url)")
	}
	return newCluster(b.cfg.Cluster, b.cfg.Instance, b.cfg.Etcd, b, b.log)
}

// newNETCONFServer loads the host key and the users and makes the server.
func (b *Bridge) newNETCONFServer(configuration *netconf.Configuration) (*netconf.Server, error) {
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(b.cfg.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		return nil, err
	}
	users, err := b.loadUsers()
	if err != nil {
		return nil, err
	}
	b.users = users
	b.usersStamp = fileStamp(b.cfg.UsersFile)
	l := b.cfg.NETCONF
	return netconf.NewServer(netconf.Config{HostKey: hostKey, Users: users, Access: netconf.DefaultAccess(), Logger: b.cfg.Logger,
		MaxSessions: l.MaxSessions, MaxUserSessions: l.MaxUserSessions, AdminReserve: l.AdminReserve,
		MaxStartups: l.MaxStartups, MaxStartupsPerSource: l.MaxStartupsPerSource,
		MaxStartupQueue: l.MaxStartupQueue, MaxStartupQueuePerSource: l.MaxStartupQueuePerSource, MaxAuthTries: l.MaxAuthTries,
		ChooseModule: b.chooseModule, AllSchemas: b.allSchemas(), Streams: notificationStreams(), Configuration: configuration})
}

// The bridge's notification streams besides NETCONF, which has them all
// (RFC 5277 §3.2; /netconf/streams lists them).
const (
	streamDeviceEvents = "device-events"
	streamTelemetry    = "telemetry"
)

func notificationStreams() []netconf.Stream {
	return []netconf.Stream{
		{Name: streamDeviceEvents, Description: "device-event: devices registered, updated, deleted, online, offline, with new firmware"},
		{Name: streamTelemetry, Description: "sensor readings, one notification per reading"},
	}
}

// chooseModule picks, for an rpc that arrived without a namespace (MYNO's
// clients send them so), the module of the device its selector leaf
// names: real fleets repeat rpc names across modules (funcLed_1On in every
// LED module). The selector is the leaf the device's own module declares
// for that rpc. With no such leaf naming a registered device it leaves the
// choice to the server (the only candidate, or a refusal naming them).
func (b *Bridge) chooseModule(op *netconf.Element, candidates []string) (string, error) {
	for _, c := range op.Children {
		if len(c.Children) > 0 {
			continue
		}
		mod := b.registry.moduleServing(strings.TrimSpace(c.Text))
		if mod == nil {
			continue
		}
		ns := mod.Namespace
		if b.myno != nil {
			mm := b.myno.of(mod.Name)
			if mm == nil {
				continue
			}
			ns = mm.Namespace
		}
		if !slices.Contains(candidates, ns) {
			continue
		}
		if rpc := mod.RPC(op.Name.Local); rpc != nil {
			for _, in := range rpc.Inputs {
				if in.Selector() && in.Name == c.Name.Local {
					return ns, nil
				}
			}
		}
	}
	return "", nil
}

// connectMQTT starts the embedded broker and connects to it inline, or
// dials the external broker.
func (b *Bridge) connectMQTT(ctx context.Context) error {
	cfg := b.cfg
	if cfg.MQTTURL == "" {
		if cfg.MosquittoDynsec {
			return errors.New("--mosquitto-dynsec manages an external Mosquitto (--mqtt-url); the embedded broker has its own access control")
		}
		var err error
		if b.access, err = b.newAccess(); err != nil {
			return err
		}
		// Devices are admitted once the registry is restored and NETCONF
		// listens (Start): after a restart they find their topics.
		bc := broker.Config{Listen: cfg.MQTTListen, Logger: cfg.Logger, DataDir: cfg.DataDir, Access: b.access,
			OnConnection: b.onConnection, HoldConnections: true}
		if cfg.MQTTTLSListen != "" {
			bc.TLSListen = cfg.MQTTTLSListen
			if bc.TLSConfig, err = brokerTLS(cfg.MQTTTLSCertFile, cfg.MQTTTLSKeyFile, cfg.MQTTTLSClientCAFile); err != nil {
				return err
			}
		}
		if b.broker, err = broker.Start(bc); err != nil {
			return err
		}
		b.mq = countingTransport{b.broker.InlineClient("myno-bridge-inline", b.onMessage), b.metrics}
		b.run.goDo(func() { b.watchCredentials(b.ctx) })
		return nil
	}
	if cfg.MQTTAllowAnonymous || cfg.MQTTTLSListen != "" {
		return errors.New("--mqtt-allow-anonymous and --mqtts-listen are settings of the embedded broker, not of --mqtt-url")
	}
	if cfg.MosquittoDynsec {
		b.dynsec = newDynsecSync(nil, access.Policy{Devices: b.registry, LegacyBootstrap: cfg.LegacyBootstrapTopics, E2EPrefix: cfg.E2EPrefix}, b)
	}
	tlsCfg, err := client.LoadTLS(cfg.MQTTCAFile, cfg.MQTTCertFile, cfg.MQTTKeyFile)
	if err != nil {
		return err
	}
	mc := client.Config{URL: cfg.MQTTURL, ClientID: "myno-bridge-" + randomID(), Protocol: client.MQTT5,
		OnMessage: b.onMessage, Logger: cfg.Logger, Credentials: client.Credentials{Username: cfg.MQTTUsername, Password: cfg.MQTTPassword, TLSConfig: tlsCfg},
		// The broker keeps the bridge's subscriptions and queued QoS 1
		// messages through a short outage.
		SessionExpiry: 5 * time.Minute,
		OnRefused: func(err error) {
			select {
			case b.failed <- fmt.Errorf("mqtt %s: %w (check the bridge's --mqtt-username and --mqtt-password, or --mqtt-cert)", client.Redact(cfg.MQTTURL), err):
			default:
			}
		}}
	b.owner.configure(&mc)
	dctx, cancel := context.WithTimeout(ctx, cfg.MQTTConnectTimeout)
	defer cancel()
	mq, err := client.Dial(dctx, mc)
	if err != nil {
		return err
	}
	b.mq = countingTransport{mq, b.metrics}
	if b.dynsec != nil {
		b.dynsec.mq = b.mq
	}
	return nil
}

// mqttURL is the broker the bridge uses.
func (b *Bridge) mqttURL() string {
	if b.broker != nil {
		return b.broker.URL()
	}
	return client.Redact(b.cfg.MQTTURL)
}

// subscribe makes the ownership's subscriptions, then the bootstrap,
// response and firmware status topics.
func (b *Bridge) subscribe(ctx context.Context) error {
	topics := append(b.owner.topics(), wire.DeviceBootstrapFilters...)
	if b.broker != nil || b.cfg.LegacyBootstrapTopics {
		topics = append(topics, wire.SharedBootstrapTopics...)
	}
	topics = append(topics, wire.ResponseFilter, wire.FirmwareStatusFilter)
	if b.broker == nil { // the embedded broker's connection events say more
		topics = append(topics, wire.PresenceFilter)
	}
	for _, topic := range topics {
		if err := b.mq.Subscribe(ctx, topic); err != nil {
			return fmt.Errorf("subscribe %s: %w", topic, err)
		}
	}
	return nil
}

// publishUpdateServerCert publishes the Update Server certificate,
// retained, for MUP devices.
func (b *Bridge) publishUpdateServerCert(ctx context.Context) error {
	cert := b.cfg.UpdateServerCert
	if len(cert) == 0 {
		return nil
	}
	if blk, _ := pem.Decode(cert); blk == nil || blk.Type != "CERTIFICATE" {
		return errors.New("update server certificate: not a PEM CERTIFICATE")
	} else if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return fmt.Errorf("update server certificate: %w", err)
	}
	if err := b.mq.PublishRetained(ctx, client.Message{Topic: wire.TopicUpdateServerCert, Payload: cert}); err != nil {
		return fmt.Errorf("publish update server certificate: %w", err)
	}
	return nil
}

// restoreRegistry brings the saved devices back without the devices
// bootstrapping again.
func (b *Bridge) restoreRegistry(ctx context.Context) error {
	saved, err := b.registry.load()
	if err != nil {
		return err
	}
	// The devices' telemetry subscriptions are made together at the end,
	// many in flight: one SUBSCRIBE round trip after another to an
	// external broker (about 16,700 for 10,000 devices of three shapes)
	// was most of a restart's time.
	var topics []string
	for _, p := range saved {
		if err := b.registerWith(ctx, p.UUID, []byte(p.Description), p.RegisteredAt, fromDisk, &topics); err != nil {
			// Kept, not dropped: the next save writes it back unchanged,
			// <get> shows it, and the operator decides.
			b.registry.keepInvalid(p, reasonOf(err))
			b.log.Error("saved device not restored; kept in the registry and shown in <get> as invalid until it registers again or is deleted",
				"uuid", p.UUID, "file", b.registry.file, "err", err)
			continue
		}
		b.registry.restoreFirmware(p.UUID, p.Firmware)
	}
	b.subscribeAll(ctx, topics)
	if b.dynsec != nil {
		// One request for every role that differs from the broker's.
		if err := b.dynsec.flush(ctx); err != nil {
			b.log.Warn("mosquitto dynamic-security roles not all updated", "err", err)
		}
	}
	if len(saved) > 0 {
		devices, modules := b.registry.counts()
		b.log.Info("registry restored", "devices", devices, "modules", modules)
	}
	return nil
}

// serveNETCONF listens and serves NETCONF sessions until Close.
func (b *Bridge) serveNETCONF() error {
	var err error
	if b.ln, err = net.Listen("tcp", b.cfg.NetconfListen); err != nil {
		return fmt.Errorf("netconf listen %s: %w", b.cfg.NetconfListen, err)
	}
	b.run.goDo(func() {
		if err := b.nc.Serve(b.ctx, b.ln); err != nil {
			b.log.Error("netconf server stopped", "addr", b.ln.Addr().String(), "err", err)
		}
	})
	return nil
}

// serveHTTP serves /metrics, /healthz and /readyz on --http-listen until
// Close (off when it is "").
func (b *Bridge) serveHTTP() error {
	if b.cfg.HTTPListen == "" {
		return nil
	}
	var err error
	if b.httpLn, err = net.Listen("tcp", b.cfg.HTTPListen); err != nil {
		return fmt.Errorf("http listen %s: %w", b.cfg.HTTPListen, err)
	}
	srv := &http.Server{Handler: b.HTTPHandler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return b.ctx }}
	b.run.goDo(func() {
		if err := srv.Serve(b.httpLn); err != nil && !errors.Is(err, net.ErrClosed) {
			b.log.Error("http server stopped", "addr", b.httpLn.Addr().String(), "err", err)
		}
	})
	return nil
}

// HTTPAddr is where /metrics, /healthz and /readyz are served ("" when off).
func (b *Bridge) HTTPAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

// NetconfAddr is where the NETCONF server listens.
func (b *Bridge) NetconfAddr() string { return b.ln.Addr().String() }

// BrokerURL is the embedded broker's URL, or "" with an external broker.
func (b *Bridge) BrokerURL() string {
	if b.broker == nil {
		return ""
	}
	return b.broker.URL()
}

// MQTTSURL is the embedded broker's mqtts:// URL, or "" without a TLS
// listener.
func (b *Bridge) MQTTSURL() string {
	if b.broker == nil {
		return ""
	}
	return b.broker.TLSURL()
}

// DynsecUpdates counts the requests that changed roles of an external
// Mosquitto's dynamic-security plugin (--mosquitto-dynsec).
func (b *Bridge) DynsecUpdates() uint64 {
	if b.dynsec == nil {
		return 0
	}
	return b.dynsec.updates.Load()
}

// CredentialsFile is the embedded broker's MQTT credential file (see
// access.Store); myno devices changes it, and the bridge follows.
func (b *Bridge) CredentialsFile() string { return b.cfg.CredentialsFile }

// Failed delivers the error that ends the bridge's service for good:
// the external broker refusing the bridge's credentials on a reconnect
// (bad user name or password, not authorized). The owner should Close
// the bridge and exit, saying why.
func (b *Bridge) Failed() <-chan error { return b.failed }

// NETCONF returns the NETCONF server, for tests and embedding.
func (b *Bridge) NETCONF() *netconf.Server { return b.nc }

// Close stops the NETCONF server, every goroutine of the bridge, the MQTT
// connection and the embedded broker, and saves the registry.
func (b *Bridge) Close() {
	b.cancel()
	if b.nc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.nc.Shutdown(ctx)
		cancel()
	}
	if b.ln != nil {
		b.ln.Close()
	}
	if b.httpLn != nil {
		b.httpLn.Close()
	}
	b.run.stop()
	if b.mq != nil {
		if b.owner != nil {
			b.owner.leave(context.Background())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.mq.Close(ctx)
		cancel()
	}
	if b.broker != nil {
		if err := b.broker.Close(); err != nil {
			b.log.Warn("embedded broker", "err", err)
		}
	}
	if b.registry != nil {
		b.registry.close()
	}
	if b.unlock != nil {
		b.unlock()
	}
	b.log.Info("bridge stopped")
}

// ReloadUsers reads the users file again (myno users edits it; SIGHUP
// and a watcher call this). New users may log in at once; sessions of
// removed users stay until they end. A file that does not parse leaves
// the users as they were, and says why.
func (b *Bridge) ReloadUsers() error {
	b.usersMu.Lock()
	defer b.usersMu.Unlock()
	users, err := b.loadUsers()
	if err != nil {
		return fmt.Errorf("users file %s: %w", b.cfg.UsersFile, err)
	}
	b.users.Replace(users)
	b.usersStamp = fileStamp(b.cfg.UsersFile)
	b.log.Info("users reloaded", "file", b.cfg.UsersFile)
	return nil
}

// watchUsers reloads the users file when it changes (size or time).
func (b *Bridge) watchUsers(ctx context.Context) {
	every(ctx, usersReload, func(time.Time) {
		b.usersMu.Lock()
		changed := fileStamp(b.cfg.UsersFile) != b.usersStamp
		b.usersMu.Unlock()
		if !changed {
			return
		}
		if err := b.ReloadUsers(); err != nil {
			b.log.Warn("users not reloaded", "err", err)
			b.usersMu.Lock()
			b.usersStamp = fileStamp(b.cfg.UsersFile) // said once per change
			b.usersMu.Unlock()
		}
	})
}

// usersReload is how often the users file is looked at.
const usersReload = time.Second

// fileStamp is a file's size and modification time, "" when missing.
func fileStamp(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d %d", st.Size(), st.ModTime().UnixNano())
}

// loadUsers reads the users file, creating it with an admin user on first
// start. The password comes from Config.AdminPassword or is generated and
// printed once.
func (b *Bridge) loadUsers() (*netconf.Users, error) {
	data, err := os.ReadFile(b.cfg.UsersFile)
	if errors.Is(err, fs.ErrNotExist) {
		password := b.cfg.AdminPassword
		generated := password == ""
		if generated {
			password = randomID()
		}
		hash, err := netconf.HashPassword(password)
		if err != nil {
			return nil, err
		}
		data = []byte("# name:bcrypt-hash:groups (groups: admin, read-only)\n" + AdminUser + ":" + hash + ":admin\n")
		if err := os.WriteFile(b.cfg.UsersFile, data, 0o600); err != nil {
			return nil, err
		}
		if generated {
			fmt.Fprintf(b.cfg.Out, "Created NETCONF user %s with password %s (shown once; stored hashed in %s)\n", AdminUser, password, b.cfg.UsersFile)
		}
		b.log.Info("created users file", "user", AdminUser, "file", b.cfg.UsersFile)
	} else if err != nil {
		return nil, err
	}
	users, err := netconf.ParseUsers(data)
	if err != nil {
		return nil, err
	}
	if err := users.LoadAuthorizedKeys(filepath.Join(b.cfg.DataDir, "authorized_keys")); err != nil {
		return nil, err
	}
	return users, nil
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// origin is where a registration comes from, which decides what is done
// at once and what is left to the end of a batch.
type origin int

const (
	// fromDevice: a bootstrap this instance answers. The broker's roles
	// are updated and the registry saved before the answer; events are
	// sent.
	fromDevice origin = iota
	// fromDisk: restored at start. Nothing is saved (it is on disk) and
	// no event is sent; roles and subscriptions are made together at the
	// end (restoreRegistry).
	fromDisk
	// fromCluster: another instance's registration, through etcd. Events
	// are sent; the save, the roles and the subscriptions are made at the
	// end of the batch (replicatedBatch.done).
	fromCluster
)

// register adds or replaces a device (registry.register), then announces
// its module if new, withdraws the one it left, moves its telemetry
// subscriptions and, from a device, saves the registry.
func (b *Bridge) register(ctx context.Context, uuid string, desc []byte, at time.Time, from origin) error {
	return b.registerWith(ctx, uuid, desc, at, from, nil)
}

// registerWith is register; with deferred not nil, the telemetry topics
// to subscribe to are appended to it instead (restoreRegistry, a
// replicated batch).
func (b *Bridge) registerWith(ctx context.Context, uuid string, desc []byte, at time.Time, from origin, deferred *[]string) error {
	ch, err := b.registry.register(uuid, desc, at)
	if err != nil {
		return err
	}
	b.accessChanged(ctx, uuid, from == fromDevice)
	if ch.announce {
		b.announce(ch.module)
	}
	if deferred != nil {
		*deferred = append(*deferred, ch.subscribe...)
		ch.subscribe = nil
	}
	b.apply(ctx, ch)
	b.log.Info("device registered", "uuid", uuid, "module", ch.module.Name, "category", ch.category, "new_module", ch.announce)
	switch from {
	case fromDevice:
		if err := b.registry.save(); err != nil {
			// Not on disk, so not served: a restart would not know it.
			b.rollback(ctx, uuid, ch.previous)
			return fmt.Errorf("registration not saved, so not taken: %w", err)
		}
	case fromDisk:
		// Restored: last heard from when it registered.
		b.registry.touch(uuid, at)
	}
	b.registeredEvent(uuid, senderConnOf(ctx), ch, desc, from != fromDisk)
	return nil
}

// replicatedBatch is what a batch of replicated registrations (one etcd
// watch response, or a listing) leaves to its end: one save, and the
// telemetry subscriptions and broker roles of all its devices together.
type replicatedBatch struct {
	b      *Bridge
	topics []string
	n      int
}

// newReplicatedBatch starts a batch (replica).
func (b *Bridge) newReplicatedBatch() replicaBatch { return &replicatedBatch{b: b} }

// register registers another instance's registration.
func (rb *replicatedBatch) register(ctx context.Context, uuid string, desc []byte, at time.Time) error {
	err := rb.b.registerWith(ctx, uuid, desc, at, fromCluster, &rb.topics)
	if err == nil {
		rb.n++
	}
	return err
}

// done saves the batch's registrations, subscribes to their telemetry and
// updates the broker's roles. A failed save is logged: etcd holds them,
// and the instance lists them again when it restarts; the next save
// writes them.
func (rb *replicatedBatch) done(ctx context.Context) {
	if rb.n == 0 {
		return
	}
	b := rb.b
	if err := b.registry.save(); err != nil {
		b.log.Error("replicated registrations not saved; the next save writes them", "devices", rb.n, "err", err)
	}
	// Only the topics still bound: a device registered twice in the
	// batch, or changed by a bootstrap meanwhile, dropped some.
	b.subscribeAll(ctx, b.registry.bound(rb.topics))
	if b.dynsec != nil {
		if err := b.dynsec.flush(ctx); err != nil {
			b.log.Warn("mosquitto dynamic-security roles not all updated", "err", err)
		}
	}
	rb.topics, rb.n = nil, 0
}

// rollback undoes a registration that could not be saved: the device
// goes back to its previous registration (the one on disk), or away.
func (b *Bridge) rollback(ctx context.Context, uuid string, previous *previousRegistration) {
	if previous != nil {
		ch, err := b.registry.register(uuid, previous.description, previous.at)
		if err == nil {
			b.registry.restoreFirmware(uuid, previous.firmware)
			b.accessChanged(ctx, uuid, true)
			if ch.announce {
				b.announce(ch.module)
			}
			b.apply(ctx, ch)
			b.log.Error("registration not saved; the device keeps its previous one", "uuid", uuid)
			return
		}
		b.log.Error("registration not saved, and the previous one no longer registers", "uuid", uuid, "err", err)
	}
	if ch, ok := b.registry.unregister(uuid); ok {
		b.accessChanged(ctx, uuid, true)
		b.apply(ctx, ch)
	}
	b.log.Error("registration not saved; the device is not served", "uuid", uuid, "file", b.registry.file)
}

// accessChanged has the broker's ACL follow the registry: the embedded
// broker's at once, an external Mosquitto's dynamic-security roles before
// the device is answered (now, or with the others when restoring).
func (b *Bridge) accessChanged(ctx context.Context, uuid string, now bool) {
	if b.access != nil {
		b.access.DeviceChanged(uuid)
	}
	if b.dynsec != nil {
		b.dynsec.mark(uuid)
		if now {
			if err := b.dynsec.flush(ctx); err != nil {
				b.log.Warn("mosquitto dynamic-security role not updated", "uuid", uuid, "err", err)
			}
		}
	}
}

// unregister removes a device, and its module once no device uses it.
func (b *Bridge) unregister(ctx context.Context, uuid string) bool {
	ch, ok := b.registry.unregister(uuid)
	if !ok {
		return false
	}
	b.accessChanged(ctx, uuid, true)
	b.apply(ctx, ch)
	b.log.Info("device deleted", "uuid", uuid)
	b.deletedEvent(uuid, ch.module.Name)
	if err := b.registry.save(); err != nil {
		b.log.Error("registry not saved", "err", err)
	}
	return true
}

// holds reports whether the registry has exactly this registration.
func (b *Bridge) holds(uuid string, at time.Time, desc []byte) bool {
	return b.registry.holds(uuid, at, desc)
}

// devices lists the registered devices (replica).
func (b *Bridge) devices() []string { return b.registry.uuids() }

// followed observes a replicated registration's lag (replica).
func (b *Bridge) followed(lag time.Duration) { b.metrics.followLag.Observe(lag.Seconds()) }

// apply carries a registry change out on the NETCONF server and the MQTT
// subscriptions.
func (b *Bridge) apply(ctx context.Context, ch change) {
	if ch.withdraw != nil {
		b.withdraw(ch.withdraw)
	}
	for _, t := range ch.unsubscribe {
		if err := b.mq.Unsubscribe(ctx, t); err != nil {
			b.log.Warn("telemetry unsubscribe failed", "topic", t, "err", err)
		}
	}
	for _, t := range ch.subscribe {
		if err := b.mq.Subscribe(ctx, t); err != nil {
			b.log.Warn("telemetry subscribe failed", "topic", t, "err", err)
		}
	}
}

// subscribeConcurrency is how many SUBSCRIBEs subscribeAll keeps in
// flight.
const subscribeConcurrency = 64

// subscribeAll subscribes to topics, subscribeConcurrency at a time, and
// returns when every SUBSCRIBE has been answered or has failed (a
// warning each, as apply's).
func (b *Bridge) subscribeAll(ctx context.Context, topics []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(subscribeConcurrency, len(topics)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				if err := b.mq.Subscribe(ctx, t); err != nil {
					b.log.Warn("telemetry subscribe failed", "topic", t, "err", err)
				}
			}
		}()
	}
	for _, t := range topics {
		work <- t
	}
	close(work)
	wg.Wait()
}

// announce adds a module, its rpcs and its state to the NETCONF server.
func (b *Bridge) announce(mod *yang.Module) {
	if b.myno != nil {
		b.announceMYNO(mod)
		return
	}
	for _, r := range mod.RPCs {
		b.nc.Handle(mod.Name, mod.Namespace, r.Name, b.rpcHandler(mod, b.reply))
	}
	b.nc.AddStateSource(mod.Name, b.stateFunc(mod))
	if b.config != nil && len(mod.Configurable) > 0 {
		b.nc.AddConfigRoot(configRoot(mod))
	}
	b.nc.AddModule(netconf.Module{Name: mod.Name, Revision: mod.Revision, Namespace: mod.Namespace, Source: mod.Text})
}

// withdraw removes a module, its rpcs and its state from the NETCONF
// server; subscribed sessions get netconf-capability-change (RFC 6470).
func (b *Bridge) withdraw(mod *yang.Module) {
	if b.myno != nil {
		b.withdrawMYNO(mod)
		return
	}
	b.nc.RemoveState(mod.Name)
	b.nc.RemoveModule(mod.Name)
	b.log.Info("module withdrawn", "module", mod.Name)
}

// Devices returns the registered UUIDs.
func (b *Bridge) Devices() []string { return b.registry.uuids() }

// ModuleOf returns the module name of a registered device.
func (b *Bridge) ModuleOf(uuid string) (string, bool) { return b.registry.moduleOf(uuid) }

// PendingDescriptions counts descriptions whose chunks are still arriving.
func (b *Bridge) PendingDescriptions() int { return b.assembly.count() }

// LateAnswers counts device answers that matched no waiting rpc.
func (b *Bridge) LateAnswers() uint64 { return b.calls.unmatched.Load() }

// MismatchedAnswers counts answers that carried an rpc's CorrelationData
// on another device's response topic, and were dropped.
func (b *Bridge) MismatchedAnswers() uint64 { return b.calls.mismatched.Load() }

// ClusterMembers lists the live members of the cluster as this instance
// sees them; nil when it runs alone.
func (b *Bridge) ClusterMembers() []string { return b.owner.members() }

// ClusterAnswered counts the bootstrap and lookup requests this instance
// answered as their owner.
func (b *Bridge) ClusterAnswered() uint64 { return b.owner.answered() }
