package bridge

import (
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
)

// Defaults of Config, also the defaults of myno bridge's flags.
const (
	DefaultNetconfListen   = "127.0.0.1:8830"
	DefaultMQTTListen      = broker.DefaultListen
	DefaultDataDir         = "myno-data"
	DefaultRPCTimeout      = 5 * time.Second
	DefaultMaxChunks       = 1024
	DefaultAssemblyTimeout = 30 * time.Second
	// DefaultMaxPendingDescriptionBytes bounds all descriptions still
	// arriving together: 256 of the largest (256 KiB) at once.
	DefaultMaxPendingDescriptionBytes = 64 << 20
	// DefaultMaxPendingPerSource bounds the descriptions still arriving
	// from one source (one MQTT identity; anonymous clients are one source
	// together). A device that logs in as itself never has more than one;
	// 256 is room for a lab's fleet of anonymous devices that bootstraps
	// 128 at once (devices.FleetConfig's default is 64). By default a
	// source may also hold at most a quarter of
	// --max-pending-description-bytes, so that a flood from one leaves
	// three quarters to the others.
	DefaultMaxPendingPerSource = 256
	// DefaultMaxShapes bounds the distinct device shapes (each is a
	// module the bridge generates, keeps and announces): real fleets have
	// a few dozen device types; 256 leaves room for many firmware
	// variants of each while bounding what a flood of made-up shapes can
	// take.
	DefaultMaxShapes = 256
	// DefaultMaxShapeBytes bounds the descriptions of all shapes
	// together (one stored per shape): 256 shapes of 128 KiB, or 128 of
	// the largest description (256 KiB). A shape takes 2 to 2.7 times
	// its description in live heap (its model, module and schema:
	// docs/benchmarks.md), so this is 65 to 90 MiB.
	DefaultMaxShapeBytes = 32 << 20
	// DefaultMaxConfiguredDevices bounds the device entries of the
	// configuration datastore (configuration.go), devices not registered
	// yet included: ten times the 10,000-device fleets the benchmarks
	// run, about 25 MB stored.
	DefaultMaxConfiguredDevices = 100_000
	// DefaultDeviceKeepAlive is the keep-alive of the project's devices
	// (client.DefaultKeepAlive), which paho clients share.
	DefaultDeviceKeepAlive = client.DefaultKeepAlive
	// DefaultMQTTConnectTimeout bounds the first connection to an
	// external broker.
	DefaultMQTTConnectTimeout = 30 * time.Second
)

// AdminUser is the NETCONF user, in group admin, that the bridge creates
// with the users file on first start.
const AdminUser = "admin"

// Config configures a bridge. Zero values mean the documented defaults.
type Config struct {
	// UpdateServerCert is the Update Server certificate (PEM), published
	// retained on yang/update/server-cert for MUP devices; empty: none.
	UpdateServerCert []byte
	NetconfListen    string // default DefaultNetconfListen
	// MQTTURL selects an external broker (mqtt://host:port). When empty,
	// the bridge runs the embedded broker on MQTTListen.
	MQTTURL      string
	MQTTListen   string // default DefaultMQTTListen
	MQTTUsername string
	MQTTPassword string
	// MQTTConnectTimeout bounds the first connection to an external
	// broker; default DefaultMQTTConnectTimeout. Later outages are retried for ever.
	MQTTConnectTimeout time.Duration
	// MQTTCAFile holds PEM certificates to trust for an mqtts:// broker,
	// besides the system's roots; MQTTCertFile and MQTTKeyFile are the
	// bridge's client certificate and key for a broker that asks for one
	// (mutual TLS).
	MQTTCAFile   string
	MQTTCertFile string
	MQTTKeyFile  string

	// The embedded broker's access control (issue 11). Every client
	// authenticates: a device with its uuid and token (or a client
	// certificate whose common name is its uuid), the roles with theirs;
	// CredentialsFile holds them (default <DataDir>/mqtt-credentials.json,
	// see myno devices). Enrolment says how unprovisioned devices may join
	// (default access.DefaultEnrolment). MQTTAllowAnonymous admits clients
	// without credentials to every topic: labs and migration only.
	CredentialsFile    string
	Enrolment          access.Enrolment
	MQTTAllowAnonymous bool
	// MQTTTLSListen opens an mqtts listener on the embedded broker with
	// MQTTTLSCertFile and MQTTTLSKeyFile; with MQTTTLSClientCAFile,
	// clients may authenticate with a certificate of that CA.
	MQTTTLSListen       string
	MQTTTLSCertFile     string
	MQTTTLSKeyFile      string
	MQTTTLSClientCAFile string
	// LegacyBootstrapTopics serves MYNO's shared bootstrap topics on an
	// external broker, which cannot say who published on them (see the
	// README's threat model). The embedded broker always serves them: it
	// does say, and the bridge checks the uuid against the publisher.
	LegacyBootstrapTopics bool
	// MosquittoDynsec keeps the roles of the external Mosquitto's
	// dynamic-security plugin in step with the registrations (the bridge's
	// user needs the plugin's admin rights; myno acl export --format
	// mosquitto-dynsec writes a configuration that gives them).
	MosquittoDynsec bool
	// E2EPrefix roots the E2E channel's topics that the ACL grants;
	// default wire.DefaultE2EPrefix.
	E2EPrefix string

	DataDir   string // registry, host key, users; default DefaultDataDir
	UsersFile string // default <DataDir>/users
	// HTTPListen serves /metrics, /healthz and /readyz ("": off).
	HTTPListen    string
	AdminPassword string // for the admin user created on first start; generated when empty

	RPCTimeout          time.Duration // default DefaultRPCTimeout
	MaxDescriptionBytes int           // default ontology.DefaultMaxBytes (256 KiB)
	MaxChunks           int           // per description; default DefaultMaxChunks
	AssemblyTimeout     time.Duration // a description's chunks must all arrive within; default DefaultAssemblyTimeout
	// MaxPendingDescriptionBytes bounds the bytes of all descriptions
	// still arriving; default DefaultMaxPendingDescriptionBytes.
	MaxPendingDescriptionBytes int
	// MaxPendingPerSource and MaxPendingBytesPerSource bound the
	// descriptions still arriving from one source: the MQTT identity the
	// embedded broker names (anonymous clients are one source); with an
	// external broker, which names nobody, the uuid (its ACL gives each
	// device its own bootstrap topics). Defaults:
	// DefaultMaxPendingPerSource, and a quarter of
	// MaxPendingDescriptionBytes (at least one description of
	// MaxDescriptionBytes in MaxChunks); negative: no per-source limit.
	MaxPendingPerSource      int
	MaxPendingBytesPerSource int
	// MaxShapes and MaxShapeBytes bound the distinct device shapes (each
	// a module) and the bytes of their descriptions: a description of a
	// new shape beyond them is refused; devices of a registered shape are
	// still accepted. Defaults DefaultMaxShapes and DefaultMaxShapeBytes;
	// negative: no limit.
	MaxShapes     int
	MaxShapeBytes int
	// MaxConfiguredDevices bounds the devices the configuration datastore
	// holds entries for: a change beyond it is refused (resource-denied).
	// Default DefaultMaxConfiguredDevices; negative: no limit.
	MaxConfiguredDevices int
	// DeviceKeepAlive is the devices' MQTT keep-alive as the bridge
	// assumes it on an external broker, which does not say: a device that
	// announces no presence (no Will, as MYNO's devices) is offline once
	// it has not been heard from for 1.5 times as long (presence.go).
	// Default DefaultDeviceKeepAlive. The embedded broker knows each
	// connection's own.
	DeviceKeepAlive time.Duration
	// Profile is how modules, <get> and rpc replies look: ProfileStandard
	// (default: YANG 1.1 and RFC 6241) or ProfileMYNO (as MYNO's own
	// bridge, for MYNO's web client and Update Server; see profile.go).
	Profile string
	// NETCONF bounds the NETCONF server's sessions and SSH handshakes;
	// zero fields take the netconf package's defaults (netconf.Config).
	NETCONF NetconfLimits

	// Cluster, when set, makes this bridge one instance of a cluster of
	// that name on a shared external broker, its state in etcd (see
	// cluster.go); Instance names it (default: random). Both: 1-64 of
	// A-Z a-z 0-9 _ . -.
	Cluster  string
	Instance string
	// Etcd is where a cluster keeps its state; required with Cluster.
	Etcd EtcdConfig

	Logger *slog.Logger

	// beforeLookup, when set (package tests), runs in the task that
	// answers a delete or retrieve request, before anything else.
	beforeLookup func()

	// Out receives the one-time notice with a generated admin password.
	Out io.Writer
}

// EtcdConfig says how to reach the etcd cluster that holds a bridge
// cluster's state (package cluster).
type EtcdConfig struct {
	Endpoints          []string    // client URLs
	TLS                *tls.Config // nil: plain connections
	Username, Password string      // etcd's authentication; empty: none
	// LeaseTTL is how long a dead instance keeps its devices (default
	// cluster.DefaultLeaseTTL); RequestTimeout bounds each request
	// (default cluster.DefaultRequestTimeout).
	LeaseTTL, RequestTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Profile == "" {
		c.Profile = ProfileStandard
	}
	if c.Profile == ProfileMYNO {
		// MYNO's devices bootstrap on yang/config and the shared topics.
		c.LegacyBootstrapTopics = true
	}
	if c.NetconfListen == "" {
		c.NetconfListen = DefaultNetconfListen
	}
	if c.MQTTListen == "" {
		c.MQTTListen = DefaultMQTTListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.CredentialsFile == "" {
		c.CredentialsFile = filepath.Join(c.DataDir, CredentialsFile)
	}
	if c.Enrolment == "" {
		c.Enrolment = access.DefaultEnrolment
	}
	if c.UsersFile == "" {
		c.UsersFile = filepath.Join(c.DataDir, "users")
	}
	if c.RPCTimeout <= 0 {
		c.RPCTimeout = DefaultRPCTimeout
	}
	if c.MaxDescriptionBytes <= 0 {
		c.MaxDescriptionBytes = ontology.DefaultMaxBytes
	}
	if c.MaxChunks <= 0 {
		c.MaxChunks = DefaultMaxChunks
	}
	if c.MaxPendingDescriptionBytes <= 0 {
		c.MaxPendingDescriptionBytes = DefaultMaxPendingDescriptionBytes
	}
	c.MaxPendingPerSource = defaultLimit(c.MaxPendingPerSource, DefaultMaxPendingPerSource)
	// A quarter of the global cap, and at least room for one description
	// of the largest size in the most chunks.
	c.MaxPendingBytesPerSource = defaultLimit(c.MaxPendingBytesPerSource,
		min(c.MaxPendingDescriptionBytes, max(c.MaxPendingDescriptionBytes/4, assemblyCharge(c.MaxDescriptionBytes, c.MaxChunks))))
	c.MaxShapes = defaultLimit(c.MaxShapes, DefaultMaxShapes)
	c.MaxShapeBytes = defaultLimit(c.MaxShapeBytes, DefaultMaxShapeBytes)
	c.MaxConfiguredDevices = defaultLimit(c.MaxConfiguredDevices, DefaultMaxConfiguredDevices)
	if c.AssemblyTimeout <= 0 {
		c.AssemblyTimeout = DefaultAssemblyTimeout
	}
	if c.MQTTConnectTimeout <= 0 {
		c.MQTTConnectTimeout = DefaultMQTTConnectTimeout
	}
	if c.DeviceKeepAlive <= 0 {
		c.DeviceKeepAlive = DefaultDeviceKeepAlive
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

// defaultLimit is def for 0, no limit (0) for a negative v, else v.
func defaultLimit(v, def int) int {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// NetconfLimits are the session and handshake limits of netconf.Config
// that an operator sets (see netconf.Config for each one's meaning and
// default).
type NetconfLimits struct {
	MaxSessions, MaxUserSessions, AdminReserve                                   int
	MaxStartups, MaxStartupsPerSource, MaxStartupQueue, MaxStartupQueuePerSource int
	MaxAuthTries                                                                 int // per connection; 0: netconf.DefaultMaxAuthTries
}

// The profiles of Config.Profile.
const (
	ProfileStandard = "standard"
	ProfileMYNO     = "myno"
)
