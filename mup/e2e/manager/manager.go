// Package manager is the manager side of the E2E channel over MQTT
// (Chien & Wang, Electronics 2022, Fig. 5 to 7; DESIGN.md §E2E): it
// publishes a retained, signed notify for a device, completes the key
// agreement when the device answers on ready, and then sends sealed
// updates on update (a renewed certificate with its private key, or the
// key of an encrypted firmware transfer) and waits for the device's sealed
// status. The broker relays every message and can read or forge none.
//
// The cryptography and the message codecs are in package e2e; this
// package is the state machine and the MQTT exchange.
package manager

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup/e2e"
)

// Config configures a Manager.
type Config struct {
	// Prefix roots the topic tree; "" is e2e.DefaultPrefix.
	Prefix string
	// Mode of the key agreement; "" is e2e.Ephemeral.
	Mode e2e.Mode
	// CA is the root that certifies the manager and every device.
	CA *x509.Certificate
	// Cert and Key are the manager's credentials: role manager, or role
	// update-server for an Update Server that only hands over firmware
	// keys (devices take renewals from managers only). The certificate's
	// common name is the manager's name in the topics.
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// CAKey signs renewed device certificates; only Renew needs it.
	CAKey *ecdsa.PrivateKey
	// RenewValidity is how long a renewed certificate is valid; 0 is a year.
	RenewValidity time.Duration
	// ResendAfter is how long an update waits for its status before it is
	// sealed again and resent (a broker restart, a device that was
	// reconnecting); 0 is 3 s. Resending is safe: each copy has a new
	// sequence number, and installing the same credentials twice is a no-op.
	ResendAfter time.Duration
	// Now is the clock for certificate checks; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Manager runs E2E channels to many devices over one MQTT connection.
type Manager struct {
	cfg  Config
	name string
	role e2e.Role // manager, or update-server (firmware keys only)
	tr   client.Transport

	mu        sync.Mutex
	waiters   map[string]chan client.Message // by topic
	observers []*observer                    // AddObserver's

	// Dropped counts messages nobody waited for: late, duplicated, or
	// for a channel already closed.
	Dropped atomic.Uint64
	// Refused counts readies and statuses that did not verify.
	Refused atomic.Uint64
}

// New checks the configuration: the manager certificate must chain to the
// CA, be valid now and have the manager role.
func New(cfg Config) (*Manager, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = e2e.DefaultPrefix
	}
	if cfg.Mode == "" {
		cfg.Mode = e2e.Ephemeral
	}
	if cfg.RenewValidity == 0 {
		cfg.RenewValidity = 365 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ResendAfter <= 0 {
		cfg.ResendAfter = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := e2e.CheckPrefix(cfg.Prefix); err != nil {
		return nil, err
	}
	if cfg.Mode != e2e.Static && cfg.Mode != e2e.Ephemeral {
		return nil, fmt.Errorf("e2e mode %q: want static or ephemeral", cfg.Mode)
	}
	if cfg.CA == nil || cfg.Cert == nil || cfg.Key == nil {
		return nil, errors.New("e2e manager: CA, certificate and key are required")
	}
	role := e2e.RoleManager
	name, pub, err := e2e.VerifyPeer(cfg.Cert, cfg.CA, role, cfg.Now())
	if err != nil {
		// An Update Server may run the channel too, for firmware keys only.
		role = e2e.RoleUpdateServer
		if n, p, err2 := e2e.VerifyPeer(cfg.Cert, cfg.CA, role, cfg.Now()); err2 == nil {
			name, pub, err = n, p, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("manager certificate: %w", err)
	}
	if !pub.Equal(&cfg.Key.PublicKey) {
		return nil, errors.New("manager key does not match the manager certificate")
	}
	if err := e2e.CheckName(name); err != nil {
		return nil, err
	}
	return &Manager{cfg: cfg, name: name, role: role, waiters: map[string]chan client.Message{}}, nil
}

// Name is the manager's name: its certificate's common name.
func (m *Manager) Name() string { return m.name }

// Start subscribes to <prefix>/<manager>/+/ready and …/+/update/status on
// tr, whose OnMessage must call HandleMessage.
func (m *Manager) Start(ctx context.Context, tr client.Transport) error {
	m.tr = tr
	for _, leaf := range []string{e2e.LeafReady, e2e.LeafStatus} {
		if err := tr.Subscribe(ctx, e2e.ManagerFilter(m.cfg.Prefix, m.name, leaf)); err != nil {
			return fmt.Errorf("subscribe %s: %w", leaf, err)
		}
	}
	return nil
}

// HandleMessage takes a message from the MQTT client. It never blocks.
func (m *Manager) HandleMessage(msg client.Message) {
	m.mu.Lock()
	ch := m.waiters[msg.Topic]
	m.mu.Unlock()
	if ch == nil {
		m.Dropped.Add(1)
		return
	}
	select {
	case ch <- msg:
	default:
		m.Dropped.Add(1)
	}
}

func (m *Manager) wait(topic string) (chan client.Message, func(), error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waiters[topic] != nil {
		return nil, nil, fmt.Errorf("e2e: already waiting on %s", topic)
	}
	ch := make(chan client.Message, 16)
	m.waiters[topic] = ch
	return ch, func() {
		m.mu.Lock()
		delete(m.waiters, topic)
		m.mu.Unlock()
	}, nil
}

// Phase is what one phase of a channel cost.
type Phase struct {
	Messages int // application messages published and received
	Bytes    int // their payload bytes
	Duration time.Duration
}

// String is "<n> msgs <bytes> B <duration>", or "-" for a phase that
// did not happen.
func (p Phase) String() string {
	if p.Messages == 0 {
		return "-"
	}
	return fmt.Sprintf("%d msgs %d B %v", p.Messages, p.Bytes, p.Duration.Round(time.Millisecond))
}

func (p *Phase) add(payload []byte) {
	p.Messages++
	p.Bytes += len(payload)
}

// Channel is an established E2E channel to one device.
type Channel struct {
	m       *Manager
	topics  e2e.Topics
	session *e2e.Session
	// Handshake is what the handshake cost (notify, ready).
	Handshake Phase
	// KeyHandover is what the last SendFirmwareKey cost.
	KeyHandover Phase
}

// Device is the device at the other end.
func (c *Channel) Device() string { return c.topics.Device }

// Open runs the handshake with device: it publishes the signed notify,
// retained so that a device that connects later still finds it, with
// ResponseTopic …/ready, and waits for a ready that verifies. Readies that
// do not verify are logged and ignored: the broker, or anyone who can
// publish, cannot end the wait by sending garbage. The retained notify is
// cleared when Open returns. Observers are told of the handshake
// (ExchangeKeyAgreement).
func (m *Manager) Open(ctx context.Context, device string) (*Channel, error) {
	c, err := m.open(ctx, device)
	var cost Phase
	if c != nil {
		cost = c.Handshake
	}
	m.observe(ExchangeKeyAgreement, device, cost, err)
	return c, err
}

func (m *Manager) open(ctx context.Context, device string) (*Channel, error) {
	if m.tr == nil {
		return nil, errors.New("e2e manager: not started")
	}
	if err := e2e.CheckName(device); err != nil {
		return nil, err
	}
	start := time.Now()
	c := &Channel{m: m, topics: e2e.Topics{Prefix: m.cfg.Prefix, Manager: m.name, Device: device}}
	ready, done, err := m.wait(c.topics.Ready())
	if err != nil {
		return nil, err
	}
	defer done()
	st, err := e2e.NewNotify(m.cfg.Mode, m.cfg.Cert, m.cfg.Key, device)
	if err != nil {
		return nil, err
	}
	payload, err := st.Notify.Encode()
	if err != nil {
		return nil, err
	}
	// [MQTT-3.3.1-5]: the broker keeps the last retained message per topic
	// and hands it to every later subscriber.
	publish := func() error {
		return m.tr.PublishRetained(ctx, client.Message{Topic: c.topics.Notify(), Payload: payload, ResponseTopic: c.topics.Ready()})
	}
	if err := publish(); err != nil {
		return nil, fmt.Errorf("publish notify: %w", err)
	}
	c.Handshake.add(payload)
	defer m.clearNotify(ctx, c.topics)
	// The same notify again every ResendAfter: the device answers it again
	// with the same ready (no new keys), so a lost or garbled ready, or a
	// ready sent while we were reconnecting, costs one period, not the
	// handshake.
	resend := time.NewTicker(m.cfg.ResendAfter)
	defer resend.Stop()
	for {
		select {
		case <-resend.C:
			if err := publish(); err != nil {
				m.cfg.Logger.Warn("e2e: notify not republished", "device", device, "err", err)
			}
		case msg := <-ready:
			r, err := e2e.DecodeReady(msg.Payload)
			var key []byte
			if err == nil {
				key, err = st.Complete(r, m.cfg.CA, m.cfg.Now())
			}
			if err != nil {
				m.Refused.Add(1)
				m.cfg.Logger.Warn("e2e: ready refused", "device", device, "err", err)
				continue
			}
			c.Handshake.add(msg.Payload)
			if c.session, err = e2e.NewSession(key, true); err != nil {
				return nil, err
			}
			c.Handshake.Duration = time.Since(start)
			return c, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("e2e handshake with %s: no valid ready: %w", device, ctx.Err())
		}
	}
}

// clearNotify removes the retained notify ([MQTT-3.3.1-6]: an empty
// retained message removes the retained one), so that a device that
// reconnects later does not answer a notify nobody waits for. It tries
// three times.
func (m *Manager) clearNotify(ctx context.Context, t e2e.Topics) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = m.tr.PublishRetained(cctx, client.Message{Topic: t.Notify()})
		cancel()
		if err == nil {
			return
		}
	}
	m.cfg.Logger.Warn("e2e: clearing the retained notify failed; the device will answer it again on reconnect", "device", t.Device, "err", err)
}

// ErrRefused is returned when the device answers an update with a status
// other than OK.
var ErrRefused = errors.New("e2e: device refused the update")

// send seals u on …/update with ResponseTopic …/update/status and waits
// for the device's sealed status for this request.
func (c *Channel) send(ctx context.Context, u *e2e.Update, phase *Phase) (*e2e.Status, error) {
	start := time.Now()
	status, done, err := c.m.wait(c.topics.Status())
	if err != nil {
		return nil, err
	}
	defer done()
	plain, err := u.Encode()
	if err != nil {
		return nil, err
	}
	var lastHintResend time.Time
	publish := func() {
		sealed, err := c.session.Seal(c.topics.Update(), plain)
		if err == nil {
			err = c.m.tr.Publish(ctx, client.Message{Topic: c.topics.Update(), Payload: sealed, ResponseTopic: c.topics.Status()}, 1)
		}
		if err != nil {
			c.m.cfg.Logger.Warn("e2e: update not published; resending later", "device", c.topics.Device, "err", err)
			return
		}
		phase.add(sealed)
	}
	publish()
	resend := time.NewTicker(c.m.cfg.ResendAfter)
	defer resend.Stop()
	hints := 0
	for {
		select {
		case <-resend.C:
			publish()
		case msg := <-status:
			plain, err := c.session.Open(c.topics.Status(), msg.Payload)
			if err != nil {
				c.m.Refused.Add(1)
				c.m.cfg.Logger.Warn("e2e: status refused", "device", c.topics.Device, "err", err)
				continue
			}
			s, err := e2e.DecodeStatus(plain)
			if err != nil {
				c.m.Refused.Add(1)
				c.m.cfg.Logger.Warn("e2e: status refused", "device", c.topics.Device, "err", err)
				continue
			}
			if len(s.ID) == 0 {
				// The device could not open an update. It cannot say which,
				// and anyone who can publish can make it say so: a hint,
				// not an answer. Resend now (at most once per 100 ms, so that
				// forged hints cannot make us flood).
				hints++
				c.m.cfg.Logger.Warn("e2e: the device could not authenticate an update", "device", c.topics.Device, "code", s.Code)
				if time.Since(lastHintResend) > 100*time.Millisecond {
					lastHintResend = time.Now()
					publish()
				}
				continue
			}
			if string(s.ID) != string(u.ID) {
				continue
			}
			phase.add(msg.Payload)
			phase.Duration = time.Since(start)
			if s.Code != e2e.StatusOK {
				return s, fmt.Errorf("%w: %s: %s", ErrRefused, s.Code, s.Detail)
			}
			return s, nil
		case <-ctx.Done():
			if hints > 0 {
				return nil, fmt.Errorf("e2e update of %s: no status: %w (the device reported %d update(s) it could not authenticate: changed in transit?)",
					c.topics.Device, ctx.Err(), hints)
			}
			return nil, fmt.Errorf("e2e update of %s: no status: %w", c.topics.Device, ctx.Err())
		}
	}
}

// Renewal is the result of a credential renewal.
type Renewal struct {
	Cert  *x509.Certificate // the device's new certificate
	Phase Phase
}

// Renew issues the device a new certificate and key pair, sends both
// sealed under the E2E key (paper Fig. 7), and waits until the device
// reports, authenticated, that it installed exactly this certificate.
// Observers are told of it (ExchangeRenewal).
func (c *Channel) Renew(ctx context.Context) (*Renewal, error) {
	r, err := c.renew(ctx)
	var cost Phase
	if r != nil {
		cost = r.Phase
	}
	c.m.observe(ExchangeRenewal, c.topics.Device, cost, err)
	return r, err
}

func (c *Channel) renew(ctx context.Context) (*Renewal, error) {
	if c.m.cfg.CAKey == nil {
		return nil, errors.New("e2e renew: the CA key is required to issue certificates")
	}
	if c.m.role != e2e.RoleManager {
		return nil, fmt.Errorf("e2e renew: a %s certificate may hand over firmware keys, not renew credentials", c.m.role)
	}
	cert, key, err := e2e.Issue(c.m.cfg.CA, c.m.cfg.CAKey, c.topics.Device, e2e.RoleDevice, c.m.cfg.Now().Add(-time.Minute), c.m.cfg.RenewValidity)
	if err != nil {
		return nil, err
	}
	u, err := e2e.NewRenewal(cert, key)
	if err != nil {
		return nil, err
	}
	r := &Renewal{Cert: cert}
	s, err := c.send(ctx, u, &r.Phase)
	if err != nil {
		return r, err
	}
	if sum := sha256.Sum256(cert.Raw); string(s.Installed) != string(sum[:]) {
		return r, fmt.Errorf("%w: the device reports another certificate installed", ErrRefused)
	}
	return r, nil
}

// SendFirmwareKey hands the device the key of an encrypted firmware
// transfer of appID at version, for the update attempt whose device token
// carries nonce, and returns once the device confirmed it. It implements
// updateserver.KeyChannel. The cost is in KeyHandover. Observers are told
// of it (ExchangeFirmwareKey).
func (c *Channel) SendFirmwareKey(ctx context.Context, appID string, version uint32, nonce, key []byte) error {
	var err error
	if len(key) != e2e.KeySize {
		err = fmt.Errorf("firmware key of %d bytes, want %d", len(key), e2e.KeySize)
	} else {
		_, err = c.send(ctx, &e2e.Update{Kind: e2e.KindFirmwareKey, ID: e2e.NewRequestID(), Key: key, AppID: appID, Version: version, Nonce: nonce}, &c.KeyHandover)
	}
	c.m.observe(ExchangeFirmwareKey, c.topics.Device, c.KeyHandover, err)
	return err
}
