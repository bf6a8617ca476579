package devices

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
)

// E2EConfig gives a device the E2E channel to managers (Chien & Wang,
// Fig. 5 to 7): its certificate (role device, common name = its uuid), its
// key, and the CA that certifies every manager.
type E2EConfig struct {
	Prefix string // "" is e2e.DefaultPrefix
	CA     *x509.Certificate
	Cert   *x509.Certificate
	Key    *ecdsa.PrivateKey
	// CertFile and KeyFile, when set, are where a renewed certificate and
	// key are stored (PEM; the key with mode 0600), replacing the old ones
	// atomically.
	CertFile, KeyFile string
	// Modes the device accepts; nil accepts both (static and ephemeral).
	Modes []e2e.Mode
	Now   func() time.Time
}

// E2EEndpoint is the device side of the E2E channel.
type E2EEndpoint struct {
	d   *Device
	cfg E2EConfig
	// queue holds E2E messages for the one worker that handles them in
	// order; when it is full, messages are dropped (and counted): a flood
	// costs neither goroutines nor signatures. The worker is the device's
	// (Device.spawn): it stops when the device closes, and Close waits.
	queue chan client.Message

	mu       sync.Mutex
	cert     *x509.Certificate
	key      *ecdsa.PrivateKey
	channels map[string]*managerChannels // by manager
	fwKeys   map[string]firmwareKey      // by app id and version

	// Handshakes counts answered notifies (not repeated answers to the
	// same notify); Refused counts refused notifies and updates (bad
	// signature, unknown CA, tampered, replayed); Dropped counts messages
	// dropped because the queue was full.
	Handshakes, Refused, Renewals, Dropped atomic.Uint64
}

// channelSession is one agreed key with a manager, and who signed for it.
type channelSession struct {
	s    *e2e.Session
	role e2e.Role
}

// managerChannels are the sessions with one manager: the current one (an
// update opened under it) and the newest answered notifies not yet used
// (pending). A replayed old notify only adds a pending session, so it
// cannot break the current one.
type managerChannels struct {
	current *channelSession
	pending []*channelSession // newest last
	// the last notify answered, and the ready sent: the same notify again
	// (a QoS 1 duplicate, the retained copy after a reconnect, the
	// manager's resend) gets the same ready, without new keys.
	lastNotify [sha256.Size]byte
	lastReady  []byte
}

// maxPending bounds the pending sessions per manager.
const maxPending = 4

// queueSize bounds the E2E messages waiting for the worker.
const queueSize = 32

// EnableE2E makes the device answer E2E notifies and updates. Call it
// before Connect.
func (d *Device) EnableE2E(cfg E2EConfig) error {
	if cfg.Prefix == "" {
		cfg.Prefix = e2e.DefaultPrefix
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := e2e.CheckPrefix(cfg.Prefix); err != nil {
		return err
	}
	if cfg.CA == nil || cfg.Cert == nil || cfg.Key == nil {
		return errors.New("e2e: the device needs a CA, a certificate and a key")
	}
	name, pub, err := e2e.VerifyPeer(cfg.Cert, cfg.CA, e2e.RoleDevice, cfg.Now())
	if err != nil {
		return fmt.Errorf("device certificate: %w", err)
	}
	if name != d.cfg.UUID {
		return fmt.Errorf("device certificate is for %q, this device is %q", name, d.cfg.UUID)
	}
	if !pub.Equal(&cfg.Key.PublicKey) {
		return errors.New("device key does not match the device certificate")
	}
	if err := e2e.CheckName(name); err != nil {
		return err
	}
	e := &E2EEndpoint{d: d, cfg: cfg, cert: cfg.Cert, key: cfg.Key, channels: map[string]*managerChannels{}, fwKeys: map[string]firmwareKey{},
		queue: make(chan client.Message, queueSize)}
	if !d.spawn(e.work) {
		return errors.New("e2e: the device is closed")
	}
	d.e2e = e
	return nil
}

// enqueue hands a message to the worker, or drops it when the queue is full.
func (e *E2EEndpoint) enqueue(m client.Message) {
	select {
	case e.queue <- m:
	default:
		e.Dropped.Add(1)
	}
}

func (e *E2EEndpoint) work() {
	for {
		select {
		case m := <-e.queue:
			e.handle(m)
		case <-e.d.life.Done():
			return
		}
	}
}

// E2E returns the device's E2E side, nil when not enabled.
func (d *Device) E2E() *E2EEndpoint { return d.e2e }

// Certificate is the certificate the device uses now.
func (e *E2EEndpoint) Certificate() *x509.Certificate {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cert
}

// credentials are the certificate and key the device uses now.
func (e *E2EEndpoint) credentials() (*x509.Certificate, *ecdsa.PrivateKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cert, e.key
}

// firmwareKey is the key of one encrypted transfer, for the update
// attempt whose token carried nonce.
type firmwareKey struct{ key, nonce []byte }

func (e *E2EEndpoint) dropFirmwareKey(appID string, version uint32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.fwKeys, fmt.Sprintf("%s@%d", appID, version))
}

// FirmwareKey returns the key a manager sent for appID at version and the
// update attempt of the token nonce; nil when there is none.
func (e *E2EEndpoint) FirmwareKey(appID string, version uint32, nonce []byte) []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	k, ok := e.fwKeys[fmt.Sprintf("%s@%d", appID, version)]
	if !ok || len(nonce) == 0 || !bytes.Equal(k.nonce, nonce) {
		return nil
	}
	return k.key
}

func (e *E2EEndpoint) subscriptions() []string {
	return []string{
		e2e.DeviceFilter(e.cfg.Prefix, e.d.cfg.UUID, e2e.LeafNotify),
		e2e.DeviceFilter(e.cfg.Prefix, e.d.cfg.UUID, e2e.LeafUpdate),
	}
}

// handle takes a message on one of the E2E topics, on the worker.
func (e *E2EEndpoint) handle(m client.Message) {
	t, leaf, ok := e2e.ParseTopic(e.cfg.Prefix, m.Topic)
	if !ok || t.Device != e.d.cfg.UUID || e2e.CheckName(t.Manager) != nil {
		return
	}
	ctx, cancel := context.WithTimeout(e.d.life, 10*time.Second) // Close ends it
	defer cancel()
	switch leaf {
	case e2e.LeafNotify:
		if len(m.Payload) == 0 {
			return // a cleared retained notify
		}
		e.notify(ctx, t, m)
	case e2e.LeafUpdate:
		e.update(ctx, t, m)
	}
}

// notify verifies a manager's notify and answers on ready.
func (e *E2EEndpoint) notify(ctx context.Context, t e2e.Topics, m client.Message) {
	log := e.d.log.With("manager", t.Manager)
	sum := sha256.Sum256(m.Payload)
	e.mu.Lock()
	mc := e.channels[t.Manager]
	var again []byte
	if mc != nil && mc.lastNotify == sum {
		again = mc.lastReady
	}
	cert, key := e.cert, e.key
	e.mu.Unlock()
	if again != nil {
		// The notify we answered last: the same answer, no new keys.
		e.publishReady(ctx, t, again, log)
		return
	}
	n, err := e2e.DecodeNotify(m.Payload)
	if err == nil && e.cfg.Modes != nil && !slices.Contains(e.cfg.Modes, n.Mode) {
		err = fmt.Errorf("mode %q not accepted", n.Mode)
	}
	var r *e2e.Ready
	var k []byte
	var role e2e.Role
	if err == nil {
		// The topic names the manager; Answer checks the signer is it.
		r, k, role, err = e2e.Answer(n, t.Manager, e.cfg.CA, cert, key, e.d.cfg.UUID, e.cfg.Now())
	}
	if err != nil {
		e.Refused.Add(1)
		log.Warn("e2e notify refused", "err", err)
		return
	}
	s, err := e2e.NewSession(k, false)
	if err != nil {
		log.Error("e2e session", "err", err)
		return
	}
	payload, err := r.Encode()
	if err != nil {
		log.Error("e2e ready", "err", err)
		return
	}
	e.mu.Lock()
	if mc = e.channels[t.Manager]; mc == nil {
		mc = &managerChannels{}
		e.channels[t.Manager] = mc
	}
	mc.pending = append(mc.pending, &channelSession{s: s, role: role})
	if len(mc.pending) > maxPending {
		mc.pending = mc.pending[len(mc.pending)-maxPending:]
	}
	mc.lastNotify, mc.lastReady = sum, payload
	e.mu.Unlock()
	e.Handshakes.Add(1)
	e.publishReady(ctx, t, payload, log)
	log.Info("e2e notify answered", "mode", n.Mode, "signer_role", role)
}

// publishReady sends a ready to the channel's own topic whatever the
// notify's ResponseTopic says: the answer is signed for this manager, and
// elsewhere it is useless.
func (e *E2EEndpoint) publishReady(ctx context.Context, t e2e.Topics, payload []byte, log *slog.Logger) {
	if err := e.d.tr.Publish(ctx, client.Message{Topic: t.Ready(), Payload: payload, ResponseTopic: t.Update()}, 1); err != nil {
		log.Warn("e2e ready not published", "err", err)
	}
}

// open finds the session an update opens under: a pending one (newest
// first), which then becomes current, or the current one. It returns the
// plaintext and the session, or the error of the current session (or of
// the newest pending when there is no current one) and the session a hint
// is best sealed under.
func (e *E2EEndpoint) open(manager, topic string, msg []byte) ([]byte, *channelSession, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	mc := e.channels[manager]
	if mc == nil {
		return nil, nil, errors.New("no channel with this manager")
	}
	for i := len(mc.pending) - 1; i >= 0; i-- {
		cs := mc.pending[i]
		if plain, err := cs.s.Open(topic, msg); err == nil {
			// The manager uses this key: it is current now, and older
			// pending ones will never be.
			mc.current, mc.pending = cs, mc.pending[i+1:]
			return plain, cs, nil
		}
	}
	if mc.current == nil {
		if len(mc.pending) == 0 {
			return nil, nil, errors.New("no channel with this manager")
		}
		return nil, mc.pending[len(mc.pending)-1], e2e.ErrOpen
	}
	plain, err := mc.current.s.Open(topic, msg)
	if err != nil && len(mc.pending) > 0 {
		return nil, mc.pending[len(mc.pending)-1], err
	}
	return plain, mc.current, err
}

// update opens a sealed update, acts on it, and reports a sealed status.
func (e *E2EEndpoint) update(ctx context.Context, t e2e.Topics, m client.Message) {
	log := e.d.log.With("manager", t.Manager)
	plain, cs, err := e.open(t.Manager, t.Update(), m.Payload)
	switch {
	case errors.Is(err, e2e.ErrReplay):
		// A QoS 1 duplicate, a resend that crossed our status, or a
		// broker replaying: already handled or stale, never acted on
		// twice, and not answered (an answer would fail a live request).
		e.Refused.Add(1)
		log.Warn("e2e update refused", "err", err)
		return
	case cs == nil:
		e.Refused.Add(1)
		log.Warn("e2e update without a channel: ignored", "err", err)
		return
	case err != nil:
		// A hint, sealed: the manager resends, and learns why if it gives up.
		e.Refused.Add(1)
		log.Warn("e2e update refused", "err", err)
		e.report(ctx, cs.s, t, &e2e.Status{Code: e2e.StatusUnauthenticated, Detail: "the update does not authenticate under the channel key"})
		return
	}
	s := cs.s
	u, err := e2e.DecodeUpdate(plain)
	if err != nil {
		e.Refused.Add(1)
		e.report(ctx, s, t, &e2e.Status{Code: e2e.StatusMalformed, Detail: err.Error()})
		return
	}
	st := &e2e.Status{ID: u.ID, Code: e2e.StatusOK}
	switch u.Kind {
	case e2e.KindRenewal:
		if cs.role != e2e.RoleManager {
			e.Refused.Add(1)
			st.Code, st.Detail = e2e.StatusBadCertificate, "credentials are renewed by a manager, not by "+string(cs.role)
			log.Warn("e2e renewal refused", "signer_role", cs.role)
			break
		}
		cert, key, code, err := e2e.CheckRenewal(u, e.cfg.CA, e.d.cfg.UUID, e.cfg.Now())
		if err == nil {
			if err = e.install(cert, key); err != nil {
				code = e2e.StatusInstallFailed
			}
		}
		if err != nil {
			e.Refused.Add(1)
			st.Code, st.Detail = code, err.Error()
			log.Warn("e2e renewal refused", "code", code, "err", err)
			break
		}
		e.Renewals.Add(1)
		sum := sha256.Sum256(cert.Raw)
		st.Installed = sum[:]
		log.Info("e2e credentials renewed", "serial", cert.SerialNumber.Text(16), "not_after", cert.NotAfter)
	case e2e.KindFirmwareKey:
		e.mu.Lock()
		// One key per app and version: a newer attempt replaces it.
		e.fwKeys[fmt.Sprintf("%s@%d", u.AppID, u.Version)] = firmwareKey{key: u.Key, nonce: u.Nonce}
		e.mu.Unlock()
		log.Info("e2e firmware key received", "app_id", u.AppID, "version", u.Version)
	}
	e.report(ctx, s, t, st)
}

func (e *E2EEndpoint) report(ctx context.Context, s *e2e.Session, t e2e.Topics, st *e2e.Status) {
	plain, err := st.Encode()
	if err == nil {
		var sealed []byte
		if sealed, err = s.Seal(t.Status(), plain); err == nil {
			err = e.d.tr.Publish(ctx, client.Message{Topic: t.Status(), Payload: sealed}, 1)
		}
	}
	if err != nil {
		e.d.log.Warn("e2e status not published", "err", err)
	}
}

// install makes the renewed credentials current, and stores them first
// when the device has files for them: the key file is replaced before the
// certificate, each whole (atomicfile), so a crash leaves either the old
// pair or the new key with the old certificate (which the device refuses
// at start, and the operator sees), never a partial file.
func (e *E2EEndpoint) install(cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	if e.cfg.KeyFile != "" && e.cfg.CertFile != "" {
		if err := mup.WriteKey(e.cfg.KeyFile, key); err != nil {
			return err
		}
		if err := mup.WriteCertificate(e.cfg.CertFile, cert); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.cert, e.key = cert, key
	e.mu.Unlock()
	return nil
}
