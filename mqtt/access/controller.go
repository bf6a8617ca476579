package access

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/wire"
)

// Enrolment is how devices that are not provisioned may join (--enrol).
type Enrolment string

// The enrolment modes.
const (
	// EnrolOpen admits any device that presents its uuid and a token of
	// at least MinEnrolTokenLength bytes, and binds that token to the uuid
	// from then on (trust on first use): for labs.
	EnrolOpen Enrolment = "open"
	// EnrolToken admits a device with a one-time enrolment token made for
	// its uuid (myno devices add --enrolment); the token then becomes the
	// device's credential and can enrol nothing else.
	EnrolToken Enrolment = "token"
	// EnrolClosed admits provisioned devices only.
	EnrolClosed Enrolment = "closed"
)

// DefaultEnrolment is the default of --enrol.
const DefaultEnrolment = EnrolToken

// ParseEnrolment checks an --enrol value.
func ParseEnrolment(s string) (Enrolment, error) {
	switch e := Enrolment(s); e {
	case EnrolOpen, EnrolToken, EnrolClosed:
		return e, nil
	}
	return "", fmt.Errorf("--enrol %q: want open, token or closed", s)
}

// MinEnrolTokenLength is the shortest token --enrol open binds to a new
// device: 128 bits in base64.
const MinEnrolTokenLength = 22

// Refusal reasons of Authenticate; the broker turns each into its CONNACK
// reason code (MQTT 5 §3.2.2.2).
var (
	ErrAnonymous      = errors.New("anonymous clients are refused")                   // 0x87 Not authorized
	ErrBadCredentials = errors.New("bad user name or password")                       // 0x86
	ErrNotEnrolled    = errors.New("not provisioned and may not enrol")               // 0x87
	ErrClientID       = errors.New("client identifier not allowed for this identity") // 0x85
	// ErrTopicDenied refuses a CONNECT whose will names a topic the client
	// may not publish to.
	ErrTopicDenied = errors.New("topic not allowed") // 0x87
	// ErrUnavailable is the bridge's own failure (the credential file
	// could not be written): the client may try again.
	ErrUnavailable = errors.New("credentials cannot be recorded now") // 0x88 Server unavailable
)

// ConnectRequest is what a client presents in its CONNECT.
type ConnectRequest struct {
	ClientID string
	Username string
	Password []byte
	// Certificate is the client's certificate, already verified by the
	// TLS handshake against the listener's client CA; nil without one.
	Certificate *x509.Certificate
}

// Controller authenticates MQTT clients and checks their topics: the
// embedded broker's access control (package mqtt/broker calls it).
type Controller struct {
	Store     *Store
	Policy    Policy
	Enrolment Enrolment
	// AllowAnonymous admits clients without credentials
	// (--mqtt-allow-anonymous: labs and migration only). With Bindings,
	// each may use the topics of the devices bound to its client
	// identifier and register new ones (Policy.AnonymousRules); without,
	// any topic.
	AllowAnonymous bool
	Bindings       *Bindings
	Logger         *slog.Logger

	generation atomic.Uint64 // bumped by Changed and DeviceChanged: the roles' rules
	devices    sync.Map      // device uuid -> *atomic.Uint64, bumped by DeviceChanged
	cache      sync.Map      // Identity -> cachedRules
}

type cachedRules struct {
	generation uint64
	rules      Rules
}

// Changed tells the controller that anything may have changed (the
// credential file): every identity's rules are derived again on next use.
func (c *Controller) Changed() {
	c.generation.Add(1)
	c.devices.Range(func(_, v any) bool { v.(*atomic.Uint64).Add(1); return true })
}

// DeviceChanged tells the controller that device uuid registered, changed
// or left: its rules, and the roles' (the Update Servers' follow every
// firmware topic), are derived again on next use; the other devices'
// stay cached, so that a registration storm does not make every publish
// derive its rules anew.
func (c *Controller) DeviceChanged(uuid string) {
	c.deviceVersion(uuid).Add(1)
	c.generation.Add(1)
}

// A generation must grow whenever rules may change: anonymous clients'
// are cached under generation+bindings version, both only increasing.

// deviceVersion is device uuid's change counter.
func (c *Controller) deviceVersion(uuid string) *atomic.Uint64 {
	if v, ok := c.devices.Load(uuid); ok {
		return v.(*atomic.Uint64)
	}
	v, _ := c.devices.LoadOrStore(uuid, new(atomic.Uint64))
	return v.(*atomic.Uint64)
}

func (c *Controller) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// Authenticate decides who a connecting client is, or refuses it.
func (c *Controller) Authenticate(req ConnectRequest) (Identity, error) {
	id, err := c.identify(req)
	if err != nil {
		return Identity{}, err
	}
	// A device may only use its own client identifiers, and nobody else
	// may use a device's, so that no client can take over a device's
	// session [MQTT-3.1.4-3] (nor have its messages taken for the
	// device's: the bridge knows a sender by its client identifier).
	if id.Role == RoleDevice {
		if req.ClientID != id.Name && req.ClientID != wire.DeviceClientID(id.Name) {
			return Identity{}, fmt.Errorf("%w: device %s may connect as %q or %q, not %q", ErrClientID, id.Name, id.Name, wire.DeviceClientID(id.Name), req.ClientID)
		}
	} else if uuid, ok := strings.CutPrefix(req.ClientID, wire.DeviceClientID("")); ok || c.Store.isDevice(req.ClientID) {
		// An anonymous client (--mqtt-allow-anonymous: a device with no
		// credentials, as in a migration) may use the client identifier
		// of a uuid that no provisioned device holds.
		if !(id.Anonymous() && ok && !c.Store.isDevice(uuid)) {
			return Identity{}, fmt.Errorf("%w: %q is a device's client identifier", ErrClientID, req.ClientID)
		}
	}
	return id, nil
}

func (c *Controller) identify(req ConnectRequest) (Identity, error) {
	if cert := req.Certificate; cert != nil {
		name := cert.Subject.CommonName
		if req.Username != "" && req.Username != name {
			return Identity{}, fmt.Errorf("%w: user name %q is not the certificate's %q", ErrBadCredentials, req.Username, name)
		}
		cred, ok := c.Store.lookup(name)
		if !ok {
			c.reload()
			cred, ok = c.Store.lookup(name)
		}
		switch {
		case ok && !cred.Enrolment:
			// Provisioned (myno devices add, --certificate for a device
			// without a token): removing it revokes the certificate too.
			return Identity{Name: name, Role: cred.Role}, nil
		case c.Enrolment == EnrolOpen && validDeviceName(name) && !ok:
			// The client CA issued it; recorded, so that it can be removed.
			if err := c.Store.enrolCertificate(name); err != nil {
				return Identity{}, enrolError(err)
			}
			c.logger().Info("device enrolled", "uuid", name, "with", "client certificate")
			return Identity{Name: name, Role: RoleDevice}, nil
		}
		return Identity{}, fmt.Errorf("%w: certificate of %q (--enrol %s; myno devices add --certificate %s)", ErrNotEnrolled, name, c.Enrolment, name)
	}
	if req.Username == "" {
		if c.AllowAnonymous {
			return Identity{Client: req.ClientID}, nil
		}
		return Identity{}, ErrAnonymous
	}
	cred, ok := c.Store.lookup(req.Username)
	if !ok || !cred.matches(req.Password) {
		// Provisioned a moment ago by myno devices add?
		if c.reload() {
			cred, ok = c.Store.lookup(req.Username)
		}
	}
	switch {
	case ok && !cred.Enrolment:
		if cred.matches(req.Password) {
			return Identity{Name: cred.Name, Role: cred.Role}, nil
		}
		return Identity{}, ErrBadCredentials
	case ok: // an enrolment token
		if c.Enrolment != EnrolToken && c.Enrolment != EnrolOpen {
			return Identity{}, fmt.Errorf("%w (--enrol %s)", ErrNotEnrolled, c.Enrolment)
		}
		if !cred.matches(req.Password) {
			return Identity{}, ErrBadCredentials
		}
		if !cred.Expires.IsZero() && time.Now().After(cred.Expires) {
			return Identity{}, fmt.Errorf("%w: enrolment token expired %s", ErrNotEnrolled, cred.Expires.Format(time.RFC3339))
		}
		if err := c.Store.enrol(cred.Name, req.Password, false); err != nil {
			return Identity{}, enrolError(err)
		}
		c.logger().Info("device enrolled", "uuid", cred.Name, "with", "enrolment token")
		return Identity{Name: cred.Name, Role: RoleDevice}, nil
	case c.Enrolment == EnrolOpen && validDeviceName(req.Username) && len(req.Password) >= MinEnrolTokenLength:
		if err := c.Store.enrol(req.Username, req.Password, true); err != nil {
			return Identity{}, enrolError(err)
		}
		c.logger().Info("device enrolled", "uuid", req.Username, "with", "--enrol open")
		return Identity{Name: req.Username, Role: RoleDevice}, nil
	case c.Enrolment == EnrolOpen && validDeviceName(req.Username):
		return Identity{}, fmt.Errorf("%w: --enrol open wants a token of at least %d bytes", ErrBadCredentials, MinEnrolTokenLength)
	}
	return Identity{}, fmt.Errorf("%w (--enrol %s)", ErrNotEnrolled, c.Enrolment)
}

// enrolError is the refusal of an enrolment that failed: lost to another
// (not enrolled), or not recorded (unavailable, worth another try).
func enrolError(err error) error {
	if errors.Is(err, errEnrolRace) {
		return fmt.Errorf("%w: %w", ErrNotEnrolled, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// reload rereads the credential file if it changed (a stat when it did
// not); it reports whether the file could be read.
func (c *Controller) reload() bool {
	if _, err := c.Store.Reload(); err != nil {
		c.logger().Warn("mqtt credentials not reloaded", "err", err)
		return false
	}
	return true
}

// Allow reports whether id may publish to topic (write) or subscribe to
// the filter topic (!write; mochi-mqtt also asks before each delivery,
// with the topic name).
func (c *Controller) Allow(id Identity, topic string, write bool) bool {
	if id.Anonymous() && (!c.AllowAnonymous || c.Bindings == nil) {
		return c.AllowAnonymous
	}
	return c.Rules(id).Allows(topic, write)
}

// Rules returns id's current rules, cached until they may have changed
// (Changed, DeviceChanged).
func (c *Controller) Rules(id Identity) Rules {
	var gen uint64
	switch {
	case id.Anonymous():
		// Its devices' rules: any device's change, or a new binding.
		gen = c.generation.Load() + c.Bindings.version()
	case id.Role == RoleDevice:
		gen = c.deviceVersion(id.Name).Load()
	default:
		gen = c.generation.Load()
	}
	if v, ok := c.cache.Load(id); ok && v.(cachedRules).generation == gen {
		return v.(cachedRules).rules
	}
	var r Rules
	if id.Anonymous() {
		devs := c.Bindings.Devices(id.Client)
		// A client identifier of the devices' form names the device
		// that connects (its Will on its presence topic, say), as long
		// as no other client holds it and no provisioned device is it.
		if uuid, ok := strings.CutPrefix(id.Client, wire.DeviceClientID("")); ok && !c.Store.isDevice(uuid) {
			if _, bound := c.Bindings.Owner(uuid); !bound {
				devs = append(devs, uuid)
			}
		}
		r = c.Policy.AnonymousRules(devs)
	} else {
		r = c.Policy.Rules(id)
	}
	c.cache.Store(id, cachedRules{generation: gen, rules: r})
	return r
}

// validDeviceName reports whether name may be a device of the store.
func validDeviceName(name string) bool { return checkName(name, RoleDevice) == nil }
