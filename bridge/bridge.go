package bridge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// Config configures a bridge. Zero values mean the documented defaults.
type Config struct {
	// UpdateServerCert is the Update Server certificate (PEM), published
	// retained on yang/update/server-cert for MUP devices; empty: none.
	UpdateServerCert []byte
	NetconfListen    string // default 127.0.0.1:8830
	// MQTTURL selects an external broker (mqtt://host:port). When empty,
	// the bridge runs the embedded broker on MQTTListen.
	MQTTURL      string
	MQTTListen   string // default 127.0.0.1:1883
	MQTTUsername string
	MQTTPassword string
	// MQTTConnectTimeout bounds the first connection to an external
	// broker; default 30s. Later outages are retried for ever.
	MQTTConnectTimeout time.Duration
	// MQTTCAFile holds PEM certificates to trust for an mqtts:// broker,
	// besides the system's roots.
	MQTTCAFile string

	DataDir       string // registry, host key, users; default ./myno-data
	UsersFile     string // default <DataDir>/users
	AdminPassword string // for the admin user created on first start; generated when empty

	RPCTimeout          time.Duration // default 5s
	MaxDescriptionBytes int           // default 256 KiB
	MaxChunks           int           // per description; default 1024
	AssemblyTimeout     time.Duration // a description's chunks must all arrive within; default 30s
	OfflineAfter        time.Duration // a device not heard from this long is offline; default 5m

	// Cluster, when set, makes this bridge one instance of a cluster of
	// that name on a shared external broker (see cluster.go); Instance
	// names it (default: random). Both: 1-64 of A-Z a-z 0-9 _ . -.
	Cluster  string
	Instance string

	Logger *slog.Logger
	// Out receives the one-time notice with a generated admin password.
	Out io.Writer
}

func (c *Config) setDefaults() {
	if c.NetconfListen == "" {
		c.NetconfListen = "127.0.0.1:8830"
	}
	if c.MQTTListen == "" {
		c.MQTTListen = "127.0.0.1:1883"
	}
	if c.DataDir == "" {
		c.DataDir = "myno-data"
	}
	if c.UsersFile == "" {
		c.UsersFile = filepath.Join(c.DataDir, "users")
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = 5 * time.Second
	}
	if c.MaxDescriptionBytes <= 0 {
		c.MaxDescriptionBytes = ontology.DefaultMaxBytes
	}
	if c.MaxChunks <= 0 {
		c.MaxChunks = 1024
	}
	if c.AssemblyTimeout <= 0 {
		c.AssemblyTimeout = 30 * time.Second
	}
	if c.MQTTConnectTimeout <= 0 {
		c.MQTTConnectTimeout = 30 * time.Second
	}
	if c.OfflineAfter <= 0 {
		c.OfflineAfter = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Cluster != "" && c.Instance == "" {
		c.Instance = randomID()
	}
}

// Bridge is a running bridge.
type Bridge struct {
	cfg    Config
	log    *slog.Logger
	broker *broker.Broker
	mq     client.Transport
	nc     *netconf.Server
	ln     net.Listener
	parser *ontology.Parser
	// cluster is this instance's cluster; nil when it runs alone.
	cluster *cluster

	mu         sync.Mutex
	devices    map[string]*device
	modules    map[string]*moduleEntry // by shape
	assembling map[string]*assembly
	telemetry  map[string]sensorRef // topic -> sensor
	calls      map[string]*call     // by correlation data
	callsByReq map[string]*call     // by reqId, for MQTT 3.1.1 answers

	saver         *saver
	reqSeq        atomic.Uint64
	lateAnswers   atomic.Uint64
	registrations atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Start runs the bridge: broker (embedded or external), registry, NETCONF
// server. It returns once everything listens; Close stops it.
func Start(ctx context.Context, cfg Config) (*Bridge, error) {
	cfg.setDefaults()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	b := &Bridge{
		cfg: cfg, log: cfg.Logger,
		parser:     &ontology.Parser{MaxBytes: cfg.MaxDescriptionBytes},
		devices:    map[string]*device{},
		modules:    map[string]*moduleEntry{},
		assembling: map[string]*assembly{},
		telemetry:  map[string]sensorRef{},
		calls:      map[string]*call{},
		callsByReq: map[string]*call{},
	}
	if cfg.Cluster != "" {
		if cfg.MQTTURL == "" {
			return nil, errors.New("a cluster needs a shared external broker (--mqtt-url)")
		}
		c, err := newCluster(cfg.Cluster, cfg.Instance)
		if err != nil {
			return nil, err
		}
		b.cluster = c
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.saver = newSaver(b.writeRegistry)
	ok := false
	defer func() {
		if !ok {
			b.Close()
		}
	}()

	// NETCONF server.
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(cfg.DataDir, "ssh_host_ed25519_key"))
	if err != nil {
		return nil, err
	}
	users, err := b.loadUsers()
	if err != nil {
		return nil, err
	}
	b.nc, err = netconf.NewServer(netconf.Config{HostKey: hostKey, Users: users,
		Access: netconf.DefaultAccess(), Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}

	// MQTT.
	url := cfg.MQTTURL
	if url == "" {
		b.broker, err = broker.Start(broker.Config{Listen: cfg.MQTTListen, Logger: cfg.Logger, DataDir: cfg.DataDir})
		if err != nil {
			return nil, err
		}
		url = b.broker.URL()
	}
	if b.broker != nil {
		b.mq = b.broker.InlineClient("myno-bridge-inline", b.onMessage)
	} else {
		tlsCfg, err := tlsConfig(cfg.MQTTCAFile)
		if err != nil {
			return nil, err
		}
		dctx, cancel := context.WithTimeout(ctx, cfg.MQTTConnectTimeout)
		defer cancel()
		mc := client.Config{URL: url, ClientID: "myno-bridge-" + randomID(), Protocol: client.MQTT5,
			OnMessage: b.onMessage, Logger: cfg.Logger, Username: cfg.MQTTUsername, Password: cfg.MQTTPassword, TLSConfig: tlsCfg,
			// The broker keeps the bridge's subscriptions and queued QoS 1
			// messages through a short outage.
			SessionExpiry: 5 * time.Minute}
		if b.cluster != nil {
			// A dead instance leaves the cluster through its Will: the
			// broker clears the retained membership (MQTT 5 §3.1.2.5).
			// The Will also fires when the connection merely broke, so
			// each reconnect announces the instance again.
			// The Will says "down" rather than clearing the message with an
			// empty payload, which mochi-mqtt refuses in a Will.
			mc.Will, mc.WillRetain = &client.Message{Topic: b.cluster.memberTopic(b.cluster.instance), Payload: []byte(memberDown)}, true
			mc.OnReconnect = func() {
				select {
				case b.cluster.rejoin <- struct{}{}:
				default:
				}
			}
		}
		b.mq, err = client.Dial(dctx, mc)
		if err != nil {
			return nil, err
		}
	}
	topics := append(slices.Clone(wire.BootstrapTopics), wire.ResponseFilter, wire.FirmwareStatusFilter)
	if b.cluster != nil {
		// Members first: by the time a retained registration or a
		// bootstrap arrives, the membership retained at the broker is known.
		topics = append([]string{b.cluster.memberTopic("+"), b.cluster.registryTopic("+"), b.cluster.responseTopic("+")}, topics...)
	}
	for _, topic := range topics {
		if err := b.mq.Subscribe(ctx, topic); err != nil {
			return nil, fmt.Errorf("subscribe %s: %w", topic, err)
		}
	}
	if b.cluster != nil {
		if err := b.joinCluster(ctx); err != nil {
			return nil, err
		}
		b.wg.Add(2)
		go func() { defer b.wg.Done(); b.applyRegistrations() }()
		go func() { defer b.wg.Done(); b.rejoinCluster() }()
	}
	if len(cfg.UpdateServerCert) > 0 {
		if blk, _ := pem.Decode(cfg.UpdateServerCert); blk == nil || blk.Type != "CERTIFICATE" {
			return nil, errors.New("update server certificate: not a PEM CERTIFICATE")
		} else if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return nil, fmt.Errorf("update server certificate: %w", err)
		}
		if err := b.mq.PublishRetained(ctx, client.Message{Topic: wire.TopicUpdateServerCert, Payload: cfg.UpdateServerCert}); err != nil {
			return nil, fmt.Errorf("publish update server certificate: %w", err)
		}
	}

	// The registry comes back without the devices re-bootstrapping.
	saved, err := loadRegistry(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	for _, p := range saved {
		if err := b.register(ctx, p.UUID, []byte(p.Description), p.RegisteredAt, false); err != nil {
			b.log.Warn("registry entry dropped", "uuid", p.UUID, "err", err)
		}
	}
	if len(saved) > 0 {
		b.log.Info("registry restored", "devices", len(b.devices), "modules", len(b.modules))
	}

	b.ln, err = net.Listen("tcp", cfg.NetconfListen)
	if err != nil {
		return nil, fmt.Errorf("netconf listen %s: %w", cfg.NetconfListen, err)
	}
	b.wg.Add(2)
	go func() { defer b.wg.Done(); _ = b.nc.Serve(b.ctx, b.ln) }()
	go func() { defer b.wg.Done(); b.janitor() }()
	ok = true
	if b.cluster != nil {
		b.log.Info("bridge started", "netconf", b.ln.Addr().String(), "mqtt", url, "data", cfg.DataDir,
			"cluster", cfg.Cluster, "instance", cfg.Instance)
	} else {
		b.log.Info("bridge started", "netconf", b.ln.Addr().String(), "mqtt", url, "data", cfg.DataDir)
	}
	return b, nil
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

// NETCONF returns the NETCONF server, for tests and embedding.
func (b *Bridge) NETCONF() *netconf.Server { return b.nc }

// Close stops the NETCONF server, the MQTT connection and the embedded
// broker, and saves the registry.
func (b *Bridge) Close() {
	if b.cancel != nil {
		b.cancel()
	}
	if b.nc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = b.nc.Shutdown(ctx)
		cancel()
	}
	if b.ln != nil {
		b.ln.Close()
	}
	b.wg.Wait()
	if b.mq != nil && b.cluster != nil {
		// Leave the cluster: the others take over this instance's devices.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.mq.PublishRetained(ctx, client.Message{Topic: b.cluster.memberTopic(b.cluster.instance)})
		cancel()
	}
	if b.mq != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = b.mq.Close(ctx)
		cancel()
	}
	if b.broker != nil {
		if err := b.broker.Close(); err != nil {
			b.log.Warn("embedded broker", "err", err)
		}
	}
	if b.saver != nil {
		b.saver.close()
	}
	b.log.Info("bridge stopped")
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
		data = []byte("# name:bcrypt-hash:groups (groups: admin, read-only)\nadmin:" + hash + ":admin\n")
		if err := os.WriteFile(b.cfg.UsersFile, data, 0o600); err != nil {
			return nil, err
		}
		if generated {
			fmt.Fprintf(b.cfg.Out, "Created NETCONF user admin with password %s (shown once; stored hashed in %s)\n", password, b.cfg.UsersFile)
		}
		b.log.Info("created users file with user admin", "file", b.cfg.UsersFile)
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

// tlsConfig trusts the system roots plus the PEM certificates in caFile;
// nil when there is no file (the client then uses the system roots).
func tlsConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// register adds or replaces a device: parse, generate or share the module,
// announce it, subscribe to telemetry, persist.
func (b *Bridge) register(ctx context.Context, uuid string, desc []byte, at time.Time, persist bool) error {
	tmpl, err := b.parser.Parse(desc)
	if err != nil {
		return err
	}
	b.mu.Lock()
	me := b.modules[tmpl.Shape()]
	b.mu.Unlock()
	if me == nil {
		mod, err := yang.Generate(tmpl, yang.Options{})
		if err != nil {
			return err
		}
		me = &moduleEntry{mod: mod, devices: map[string]bool{}}
	}
	d := &device{UUID: uuid, Description: desc, RegisteredAt: at.UTC(), model: tmpl.Instantiate(uuid), template: tmpl,
		module: me, lastSeen: time.Now().UTC(), readings: map[string]reading{}}
	b.mu.Lock()
	if existing := b.modules[tmpl.Shape()]; existing != nil {
		me = existing // generated concurrently or shared with other devices
		d.module = me
	}
	newModule := len(me.devices) == 0
	me.devices[uuid] = true
	b.modules[tmpl.Shape()] = me
	var withdraw *yang.Module
	var oldTopics []string
	if old := b.devices[uuid]; old != nil { // an update: replace the old registration
		d.firmware = old.firmware
		oldTopics = old.topics
		if old.module == me {
			// The same shape again (a device rebooted and bootstrapped
			// anew): the module stays, only the old telemetry goes.
			b.dropTelemetryLocked(old)
		} else {
			withdraw = b.dropLocked(old)
		}
	}
	b.devices[uuid] = d
	topics := b.sensorTopicsLocked(d)
	b.mu.Unlock()
	if newModule {
		b.announce(me.mod)
	}
	if withdraw != nil {
		b.withdraw(withdraw)
	}
	for _, t := range oldTopics {
		if !contains(topics, t) {
			_ = b.mq.Unsubscribe(ctx, t)
		}
	}
	for _, t := range topics {
		if err := b.mq.Subscribe(ctx, t); err != nil {
			b.log.Warn("telemetry subscribe failed", "topic", t, "err", err)
		}
	}
	b.registrations.Add(1)
	b.log.Info("device registered", "uuid", uuid, "module", me.mod.Name, "category", tmpl.Category, "new_module", newModule)
	if persist {
		return b.save()
	}
	return nil
}

// unregister removes a device, and its module once no device uses it.
func (b *Bridge) unregister(ctx context.Context, uuid string) bool {
	b.mu.Lock()
	d := b.devices[uuid]
	if d == nil {
		b.mu.Unlock()
		return false
	}
	topics := d.topics
	withdraw := b.dropLocked(d)
	delete(b.devices, uuid)
	b.mu.Unlock()
	if withdraw != nil {
		b.withdraw(withdraw)
	}
	for _, t := range topics {
		_ = b.mq.Unsubscribe(ctx, t)
	}
	b.log.Info("device deleted", "uuid", uuid)
	if err := b.save(); err != nil {
		b.log.Error("registry not saved", "err", err)
	}
	return true
}

// dropLocked detaches a device from its module and its telemetry topics.
// It returns the module to withdraw when no device uses it any more.
func (b *Bridge) dropLocked(d *device) *yang.Module {
	b.dropTelemetryLocked(d)
	me := d.module
	delete(me.devices, d.UUID)
	if len(me.devices) > 0 {
		return nil
	}
	delete(b.modules, d.template.Shape())
	return me.mod
}

// dropTelemetryLocked forgets the device's telemetry topics.
func (b *Bridge) dropTelemetryLocked(d *device) {
	for _, t := range d.topics {
		if ref, ok := b.telemetry[t]; ok && ref.uuid == d.UUID {
			delete(b.telemetry, t)
		}
	}
}

// withdraw removes a module, its rpcs and its state from the NETCONF
// server; subscribed sessions get netconf-capability-change (RFC 6470).
func (b *Bridge) withdraw(mod *yang.Module) {
	b.nc.RemoveState(mod.Name)
	b.nc.RemoveModule(mod.Name)
	b.log.Info("module withdrawn", "module", mod.Name)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// announce adds a module, its rpcs and its state to the NETCONF server.
func (b *Bridge) announce(mod *yang.Module) {
	for _, r := range mod.RPCs {
		b.nc.Handle(mod.Name, mod.Namespace, r.Name, b.rpcHandler(mod))
	}
	b.nc.AddState(mod.Name, b.stateFunc(mod))
	b.nc.AddModule(netconf.Module{Name: mod.Name, Revision: mod.Revision, Namespace: mod.Namespace, Source: mod.Text})
}

// save persists the registry; it returns once the change is on disk.
func (b *Bridge) save() error { return b.saver.save() }

func (b *Bridge) writeRegistry() error {
	b.mu.Lock()
	devs := make([]persistedDevice, 0, len(b.devices))
	for _, d := range b.devices {
		devs = append(devs, persistedDevice{UUID: d.UUID, RegisteredAt: d.RegisteredAt, Shape: d.template.Shape(),
			Description: string(d.Description), Firmware: d.firmware})
	}
	b.mu.Unlock()
	sort.Slice(devs, func(i, j int) bool { return devs[i].UUID < devs[j].UUID })
	return saveRegistry(b.cfg.DataDir, devs)
}

// Devices returns the registered UUIDs.
func (b *Bridge) Devices() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.devices))
	for u := range b.devices {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// ModuleOf returns the module name of a registered device.
func (b *Bridge) ModuleOf(uuid string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.devices[uuid]
	if d == nil {
		return "", false
	}
	return d.module.mod.Name, true
}

// PendingDescriptions counts descriptions whose chunks are still arriving.
func (b *Bridge) PendingDescriptions() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.assembling)
}

// LateAnswers counts device answers that matched no waiting rpc.
func (b *Bridge) LateAnswers() uint64 { return b.lateAnswers.Load() }

func (b *Bridge) nextReqID() string {
	n := strconv.FormatUint(b.reqSeq.Add(1), 36)
	if b.cluster != nil {
		return b.cluster.reqID(n)
	}
	return n
}

// responseTopic is where an MQTT 5 device answers this instance.
func (b *Bridge) responseTopic(uuid string) string {
	if b.cluster != nil {
		return b.cluster.responseTopic(uuid)
	}
	return wire.ResponseTopic(uuid)
}
