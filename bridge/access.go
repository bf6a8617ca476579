package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
)

// CredentialsFile is the name of the MQTT credential file in the data
// directory (access.Store), shared with myno devices and myno acl export.
const CredentialsFile = "mqtt-credentials.json"

// newAccess opens the credential store and makes the embedded broker's
// access control (issue 11): the policy reads each device's topics from
// the registry.
func (b *Bridge) newAccess() (*access.Controller, error) {
	store, err := access.OpenStore(b.cfg.CredentialsFile)
	if err != nil {
		return nil, err
	}
	ac := &access.Controller{
		Store: store,
		// The embedded broker tells the bridge who published a message on
		// MYNO's shared bootstrap topics, so the bridge can check the
		// uuid in it (trusted).
		Policy:         access.Policy{Devices: b.registry, LegacyBootstrap: true, E2EPrefix: b.cfg.E2EPrefix},
		Enrolment:      b.cfg.Enrolment,
		AllowAnonymous: b.cfg.MQTTAllowAnonymous,
		Logger:         b.log,
	}
	if b.cfg.MQTTAllowAnonymous {
		// Anonymous devices (MYNO's) are bound to the connection that
		// registered them, trust on first use (issue 13).
		if ac.Bindings, err = access.OpenBindings(filepath.Join(b.cfg.DataDir, access.BindingsFile)); err != nil {
			return nil, err
		}
		b.log.Warn("the embedded broker admits anonymous MQTT clients (--mqtt-allow-anonymous): for labs and migration only; a device registered anonymously is bound to its connection's client identifier on first use, and anyone on the network may register new ones")
	}
	return ac, nil
}

// brokerTLS is the TLS configuration of the embedded broker's mqtts
// listener: its certificate, and client certificates checked against the
// client CA when one is given (their common name names the client).
func brokerTLS(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--mqtts-listen needs --mqtts-cert and --mqtts-key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mqtts certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtts client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtts client CA %s: no PEM certificate", clientCAFile)
		}
		// A client may still log in with a token instead.
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// credentialReload is how often the bridge looks for changes that myno
// devices made to the credential file.
const credentialReload = 2 * time.Second

// watchCredentials reloads the credential file when it changes and
// disconnects the clients whose credential was removed.
func (b *Bridge) watchCredentials(ctx context.Context) {
	every(ctx, credentialReload, func(time.Time) {
		removed, err := b.access.Store.Reload()
		if err != nil {
			b.log.Warn("mqtt credentials not reloaded", "err", err)
			return
		}
		for _, name := range removed {
			n := b.broker.Disconnect(name)
			b.log.Info("mqtt credential removed", "name", name, "disconnected", n)
		}
		if len(removed) > 0 {
			b.access.Changed()
		}
	})
}

// trusted reports whether m comes from device uuid, as far as the bridge
// can tell. The embedded broker names the sender: it must be that device
// (an anonymous sender only with --mqtt-allow-anonymous). An external
// broker names nobody: its ACL (myno acl export) is what binds a device
// to its topics.
func (b *Bridge) trusted(m client.Message, uuid string) bool {
	switch {
	case m.Sender == nil:
		return true
	case m.Sender.Anonymous():
		if !b.cfg.MQTTAllowAnonymous {
			return false
		}
		if b.access == nil || b.access.Bindings == nil {
			return true
		}
		owner, ok := b.access.Bindings.Owner(uuid)
		return ok && owner == m.Sender.Client
	default:
		return m.Sender.Role == access.RoleDevice && m.Sender.Name == uuid
	}
}

// mayRegister reports why m may not register (or bootstrap again) device
// uuid, or nil. A device with credentials speaks only for itself
// (trusted). An anonymous client (--mqtt-allow-anonymous, issue 13) may
// register a uuid no provisioned device has and no other connection
// holds: trust on first use; a uuid bound to another client identifier
// moves only under --enrol open, and only while that client is gone.
func (b *Bridge) mayRegister(m client.Message, uuid string) error {
	if m.Sender == nil || !m.Sender.Anonymous() || b.access == nil || b.access.Bindings == nil {
		if !b.trusted(m, uuid) {
			return errNotTheDevice
		}
		return nil
	}
	if !b.cfg.MQTTAllowAnonymous {
		return errNotTheDevice
	}
	if b.access.Store.IsDevice(uuid) {
		return fmt.Errorf("device %s is provisioned: it logs in with its own credentials", uuid)
	}
	owner, ok := b.access.Bindings.Owner(uuid)
	switch {
	case !ok, owner == m.Sender.Client:
		return nil
	case b.cfg.Enrolment == access.EnrolOpen && b.broker != nil && !b.broker.Connected(owner):
		b.log.Info("anonymous device moves to another connection (--enrol open)", "uuid", uuid, "from", owner, "to", m.Sender.Client)
		return nil
	}
	return fmt.Errorf("device %s is bound to another MQTT connection (client %q); it moves only under --enrol open, once that connection is gone", uuid, owner)
}

// errNotTheDevice refuses a message that does not come from its device.
var errNotTheDevice = errors.New("not published by the device")

// bindAnonymous binds uuid to the anonymous client that registers it.
func (b *Bridge) bindAnonymous(m client.Message, uuid string) error {
	if m.Sender == nil || !m.Sender.Anonymous() || b.access == nil || b.access.Bindings == nil {
		return nil
	}
	if err := b.access.Bindings.Bind(uuid, m.Sender.Client); err != nil {
		return fmt.Errorf("binding to this connection not saved, so not taken: %w", err)
	}
	return nil
}

// unbindAnonymous forgets uuid's binding (the device is deleted).
func (b *Bridge) unbindAnonymous(uuid string) {
	if b.access == nil || b.access.Bindings == nil {
		return
	}
	if err := b.access.Bindings.Unbind(uuid); err != nil {
		b.log.Error("anonymous binding not removed", "uuid", uuid, "err", err)
	}
}

// untrusted counts and logs a message dropped because it did not come
// from the device it is about.
func (b *Bridge) untrusted(m client.Message, uuid, what string) {
	b.calls.mismatched.Add(1)
	sender := "unknown"
	if m.Sender != nil {
		sender = m.Sender.String()
	}
	b.log.Warn(what+" dropped: not published by the device", "uuid", uuid, "sender", sender, "topic", m.Topic)
}

var _ broker.AccessControl = (*access.Controller)(nil)

// SavedDevices reads the registry that a bridge saved in dataDir, adds the
// descriptions in extra (uuid -> JSON-LD: devices provisioned but not yet
// registered) and returns their topics, for myno acl export. It does not
// change the data directory.
func SavedDevices(dataDir string, extra map[string][]byte, maxDescriptionBytes int) (access.Devices, error) {
	if maxDescriptionBytes <= 0 {
		maxDescriptionBytes = ontology.DefaultMaxBytes
	}
	r := newRegistry(dataDir, &ontology.Parser{MaxBytes: maxDescriptionBytes})
	saved, err := readSaved(dataDir)
	if err != nil {
		return nil, err
	}
	for _, p := range saved {
		if _, err := r.register(p.UUID, []byte(p.Description), p.RegisteredAt); err != nil {
			return nil, fmt.Errorf("registry entry %s: %w", p.UUID, err)
		}
	}
	for _, uuid := range slices.Sorted(maps.Keys(extra)) {
		if _, err := r.register(uuid, extra[uuid], time.Now()); err != nil {
			return nil, fmt.Errorf("description of %s: %w", uuid, err)
		}
	}
	return r, nil
}
