package manager_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
)

// A credential renewal end to end, in both key-agreement modes, on both
// brokers: the device installs exactly the certificate the manager issued,
// stores it (key file 0600), and the curious broker saw no byte of the new
// private key, neither DER nor PEM.
func TestRenewal(t *testing.T) {
	for _, mode := range []e2e.Mode{e2e.Ephemeral, e2e.Static} {
		t.Run(string(mode), func(t *testing.T) {
			eachBroker(t, func(t *testing.T, b *testBroker) {
				p := newPKI(t, "ca")
				mcert, mkey := p.issue(t, "mgr-a", e2e.RoleManager)
				m, _ := startManager(t, b, manager.Config{Mode: mode, CA: p.ca, Cert: mcert, Key: mkey, CAKey: p.caKey})
				uuid := "dev-renew-" + string(mode)
				dcert, dkey := p.issue(t, uuid, e2e.RoleDevice)
				dir := t.TempDir()
				certFile, keyFile := filepath.Join(dir, "device.crt"), filepath.Join(dir, "device.key")
				d := startDevice(t, b, uuid, devices.E2EConfig{CA: p.ca, Cert: dcert, Key: dkey, CertFile: certFile, KeyFile: keyFile})

				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				ch, err := m.Open(ctx, uuid)
				if err != nil {
					t.Fatal(err)
				}
				if ch.Handshake.Messages != 2 {
					t.Errorf("handshake: %d messages, want 2 (notify, ready)", ch.Handshake.Messages)
				}
				r, err := ch.Renew(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if r.Phase.Messages != 2 {
					t.Errorf("renewal: %d messages, want 2 (update, status)", r.Phase.Messages)
				}
				got := d.E2E().Certificate()
				if !got.Equal(r.Cert) || got.Equal(dcert) {
					t.Fatal("the device does not use the renewed certificate")
				}
				pemCert, err := os.ReadFile(certFile)
				if err != nil {
					t.Fatal(err)
				}
				if blk, _ := pem.Decode(pemCert); blk == nil || !bytes.Equal(blk.Bytes, r.Cert.Raw) {
					t.Error("the stored certificate is not the renewed one")
				}
				fi, err := os.Stat(keyFile)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
				}
				pemKey, _ := os.ReadFile(keyFile)
				blk, _ := pem.Decode(pemKey)
				if blk == nil {
					t.Fatal("the stored key is not PEM")
				}
				// The curious broker: everything it relayed is in b.cap; the
				// retained notify is cleared once the channel is up.
				testenv.WaitFor(t, "the broker to relay the status", func() bool {
					return len(b.cap.On(e2e.Topics{Prefix: e2e.DefaultPrefix, Manager: "mgr-a", Device: uuid}.Status())) > 0
				})
				secrets := map[string][]byte{
					"private key DER":      blk.Bytes,
					"private key PEM":      pemKey,
					"private key PEM body": pemBody(pemKey),
					"private scalar":       privateScalar(t, blk.Bytes),
				}
				payloads := b.cap.All()
				if len(payloads) < 5 { // notify, ready, cleared notify, update, status
					t.Fatalf("the broker relayed %d payloads, want at least 5", len(payloads))
				}
				for name, secret := range secrets {
					for _, payload := range payloads {
						if bytes.Contains(payload, secret) {
							t.Errorf("the broker saw the %s", name)
						}
					}
				}
			})
		})
	}
}

// pemBody is the base64 text between a PEM's armour lines, or nil.
func pemBody(b []byte) []byte {
	s := string(b)
	if !strings.HasPrefix(s, "-----BEGIN") {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return []byte(strings.Join(lines[1:len(lines)-1], "\n"))
}

// privateScalar is the 32-byte P-256 private scalar of a PKCS#8 key.
func privateScalar(t *testing.T, der []byte) []byte {
	t.Helper()
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A device that connects after the manager published its notify finds it
// retained and completes the handshake.
func TestLateJoinFindsTheRetainedNotify(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		p := newPKI(t, "ca")
		mcert, mkey := p.issue(t, "mgr-a", e2e.RoleManager)
		m, _ := startManager(t, b, manager.Config{CA: p.ca, Cert: mcert, Key: mkey, CAKey: p.caKey})
		uuid := "dev-late"
		notify := e2e.Topics{Prefix: e2e.DefaultPrefix, Manager: "mgr-a", Device: uuid}.Notify()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			ch, err := m.Open(ctx, uuid)
			if err == nil {
				_, err = ch.Renew(ctx)
			}
			done <- err
		}()
		testenv.WaitFor(t, "the retained notify", func() bool { return len(b.cap.On(notify)) > 0 })
		dcert, dkey := p.issue(t, uuid, e2e.RoleDevice)
		d := startDevice(t, b, uuid, devices.E2EConfig{CA: p.ca, Cert: dcert, Key: dkey})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d.E2E().Renewals.Load() != 1 {
			t.Errorf("%d renewals, want 1", d.E2E().Renewals.Load())
		}
		// Open cleared the retained notify: a device that connects now
		// finds nothing to answer.
		testenv.WaitFor(t, "the cleared notify", func() bool {
			ps := b.cap.On(notify)
			return len(ps) >= 2 && len(ps[len(ps)-1]) == 0
		})
	})
}

// The tampering broker changes one bit of every update in flight: the
// device refuses each and says so (a sealed hint without request id), the
// manager resends, and in the end gives up with the reason; the device
// keeps its credentials. A tampered notify is refused as well.
func TestTamperedUpdateIsRefused(t *testing.T) {
	b := embedded(t)
	pr := newPair(t, b, "dev-tamper", "")
	m, d, uuid, dcert := pr.m, pr.d, pr.uuid, pr.dcert
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := m.Open(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	b.hook.SetTamper(func(topic string, payload []byte) []byte {
		if strings.HasSuffix(topic, "/"+e2e.LeafUpdate) && len(payload) > 40 {
			payload[40] ^= 1
		}
		return payload
	})
	rctx, rcancel := context.WithTimeout(ctx, 3*time.Second)
	defer rcancel()
	_, err = ch.Renew(rctx)
	if err == nil || !strings.Contains(err.Error(), "could not authenticate") {
		t.Fatalf("renewal through a tampering broker: %v", err)
	}
	if !d.E2E().Certificate().Equal(dcert) || d.E2E().Renewals.Load() != 0 {
		t.Error("the device installed tampered credentials")
	}
	// A tampered handshake fails too: a changed notify does not verify.
	b.hook.SetTamper(func(topic string, payload []byte) []byte {
		if strings.HasSuffix(topic, "/"+e2e.LeafNotify) && len(payload) > 40 {
			payload[len(payload)-10] ^= 1
		}
		return payload
	})
	before := d.E2E().Refused.Load()
	sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
	defer scancel()
	if _, err := m.Open(sctx, uuid); err == nil {
		t.Fatal("handshake through a tampering broker succeeded")
	}
	if d.E2E().Refused.Load() == before {
		t.Error("the device did not refuse the tampered notify")
	}
}

// tamperOnce changes one bit of the first payload on topics ending in
// suffix, and leaves every other alone.
func tamperOnce(suffix string) func(string, []byte) []byte {
	var once sync.Once
	return func(topic string, p []byte) []byte {
		if strings.HasSuffix(topic, suffix) && len(p) > 40 {
			once.Do(func() { p[40] ^= 1 })
		}
		return p
	}
}

// One garbled ready, or one garbled update, costs a resend, not the
// exchange: the manager republishes the notify and the device answers it
// again with the same ready; a device that cannot open an update says so
// and the manager resends at once.
func TestOneGarbledMessageIsRecovered(t *testing.T) {
	b := embedded(t)
	pr := newPair(t, b, "dev-garbled", "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b.hook.SetTamper(tamperOnce("/" + e2e.LeafReady))
	ch, err := pr.m.Open(ctx, pr.uuid)
	if err != nil {
		t.Fatal(err)
	}
	if pr.m.Refused.Load() != 1 || pr.d.E2E().Handshakes.Load() != 1 {
		t.Errorf("refused readies %d, handshakes %d; want 1 and 1 (the repeated notify answered from the cache)", pr.m.Refused.Load(), pr.d.E2E().Handshakes.Load())
	}
	b.hook.SetTamper(tamperOnce("/" + e2e.LeafUpdate))
	start := time.Now()
	if _, err := ch.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 500*time.Millisecond {
		t.Errorf("renewal took %v: the hint did not trigger a resend before ResendAfter", d)
	}
	if pr.d.E2E().Refused.Load() != 1 {
		t.Errorf("the device refused %d updates, want 1", pr.d.E2E().Refused.Load())
	}
}

// Copies of a notify the device answered (QoS 1 duplicates, a broker
// replaying, a flood) get the same ready and cost no new keys; a replayed
// older notify adds a pending key but does not replace the one in use.
// Either way the live channel keeps working.
func TestRepeatedAndOldNotifiesKeepTheChannel(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		pr := newPair(t, b, "dev-notify", "")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		notify := e2e.Topics{Prefix: e2e.DefaultPrefix, Manager: "mgr-a", Device: pr.uuid}.Notify()
		old, err := pr.m.Open(ctx, pr.uuid)
		if err != nil {
			t.Fatal(err)
		}
		// On Mosquitto the capture is a '#' subscriber: it may hear the
		// notify after the exchange it started has ended.
		testenv.WaitFor(t, "the first notify", func() bool { return len(b.cap.On(notify)) > 0 })
		oldNotify := b.cap.On(notify)[0]
		ch, err := pr.m.Open(ctx, pr.uuid)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.Renew(ctx); err != nil { // ch's key is the device's current one now
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the second notify", func() bool { return len(b.cap.On(notify)) >= 3 })
		var current []byte
		for _, p := range b.cap.On(notify) {
			if len(p) > 0 {
				current = p
			}
		}
		handshakes := pr.d.E2E().Handshakes.Load()
		for i := 0; i < 500; i++ {
			if err := pr.tr.Publish(ctx, client.Message{Topic: notify, Payload: current}, 0); err != nil {
				t.Fatal(err)
			}
		}
		if n := pr.d.E2E().Handshakes.Load(); n != handshakes {
			t.Errorf("%d new handshakes for copies of one notify", n-handshakes)
		}
		// The old notify, until the device is through the flood (a full
		// queue drops messages) and answers it.
		var last time.Time
		testenv.WaitFor(t, "the device to answer the old notify", func() bool {
			if time.Since(last) > 200*time.Millisecond {
				last = time.Now()
				if err := pr.tr.Publish(ctx, client.Message{Topic: notify, Payload: oldNotify}, 1); err != nil {
					t.Fatal(err)
				}
			}
			return pr.d.E2E().Handshakes.Load() == handshakes+1
		})
		r, err := ch.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !pr.d.E2E().Certificate().Equal(r.Cert) {
			t.Error("the device does not use the renewed certificate")
		}
		// The first channel's key was never used, and the second one's was:
		// the first is gone for good.
		sctx, scancel := context.WithTimeout(ctx, 1500*time.Millisecond)
		defer scancel()
		if _, err := old.Renew(sctx); err == nil {
			t.Error("a superseded channel still works")
		}
	})
}

// A replayed update (the broker, or anyone who can publish, sends a
// captured one again) is refused and not answered; the device keeps the
// credentials of the original.
func TestReplayedUpdateIsRefused(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		pr := newPair(t, b, "dev-replay", "")
		m, d, uuid := pr.m, pr.d, pr.uuid
		tr := pr.tr
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ch, err := m.Open(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		first, err := ch.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		second, err := ch.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		topics := e2e.Topics{Prefix: e2e.DefaultPrefix, Manager: "mgr-a", Device: uuid}
		testenv.WaitFor(t, "the broker to relay both updates", func() bool { return len(b.cap.On(topics.Update())) >= 2 })
		captured := b.cap.On(topics.Update())
		refused := d.E2E().Refused.Load()
		// Replay the first renewal: the device would go back to an older
		// certificate if it took it.
		if err := tr.Publish(ctx, client.Message{Topic: topics.Update(), Payload: captured[0]}, 1); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the device to refuse the replay", func() bool { return d.E2E().Refused.Load() > refused })
		if !d.E2E().Certificate().Equal(second.Cert) || d.E2E().Certificate().Equal(first.Cert) {
			t.Error("the replay changed the device's certificate")
		}
		if n := d.E2E().Renewals.Load(); n != 2 {
			t.Errorf("%d renewals installed, want 2", n)
		}
	})
}

// Certificates the device must refuse: a manager from another CA, an
// expired manager certificate, a manager impersonating another; and a
// device from another CA is refused by the manager.
func TestRefusedPeers(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		p := newPKI(t, "ca")
		other := newPKI(t, "other-ca")
		uuid := "dev-peers"
		dcert, dkey := p.issue(t, uuid, e2e.RoleDevice)
		d := startDevice(t, b, uuid, devices.E2EConfig{CA: p.ca, Cert: dcert, Key: dkey})

		refusedBy := func(t *testing.T, m *manager.Manager) {
			t.Helper()
			before := d.E2E().Refused.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { _, err := m.Open(ctx, uuid); done <- err }()
			testenv.WaitFor(t, "the device to refuse the notify", func() bool { return d.E2E().Refused.Load() > before })
			cancel()
			if err := <-done; err == nil {
				t.Fatal("handshake succeeded")
			}
			if d.E2E().Handshakes.Load() != 0 {
				t.Fatal("the device answered")
			}
		}
		// refusedAfter runs publish and waits for the device to refuse
		// what it published.
		refusedAfter := func(t *testing.T, publish func()) {
			t.Helper()
			before := d.E2E().Refused.Load()
			publish()
			testenv.WaitFor(t, "the device to refuse the notify", func() bool { return d.E2E().Refused.Load() > before })
			if d.E2E().Handshakes.Load() != 0 {
				t.Fatal("the device answered")
			}
		}
		t.Run("manager of another CA", func(t *testing.T) {
			ocert, okey := other.issue(t, "mgr-a", e2e.RoleManager)
			m, _ := startManager(t, b, manager.Config{CA: other.ca, Cert: ocert, Key: okey})
			refusedBy(t, m)
		})
		t.Run("expired manager certificate", func(t *testing.T) {
			past := time.Now().Add(-48 * time.Hour)
			cert, key, err := e2e.Issue(p.ca, p.caKey, "mgr-old", e2e.RoleManager, past, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := manager.New(manager.Config{CA: p.ca, Cert: cert, Key: key}); err == nil {
				t.Fatal("manager.New took an expired certificate")
			}
			// A notify signed with it (a manager with a wrong clock, or a
			// stolen old key) is refused by the device.
			refusedAfter(t, func() { publishNotify(t, b, cert, key, "mgr-old", uuid) })
		})
		t.Run("manager impersonating another", func(t *testing.T) {
			// mgr-b is certified, but publishes on mgr-a's channel.
			bcert, bkey := p.issue(t, "mgr-b", e2e.RoleManager)
			refusedAfter(t, func() { publishNotify(t, b, bcert, bkey, "mgr-a", uuid) })
		})
		t.Run("device of another CA", func(t *testing.T) {
			// A device certified by another CA answers the notify (signed,
			// well-formed): the manager refuses the ready and keeps waiting.
			mcert, mkey := p.issue(t, "mgr-c", e2e.RoleManager)
			m, tr := startManager(t, b, manager.Config{CA: p.ca, Cert: mcert, Key: mkey})
			ouuid := "dev-other-ca"
			topics := e2e.Topics{Prefix: e2e.DefaultPrefix, Manager: "mgr-c", Device: ouuid}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { _, err := m.Open(ctx, ouuid); done <- err }()
			testenv.WaitFor(t, "the notify", func() bool { return len(b.cap.On(topics.Notify())) > 0 })
			n, err := e2e.DecodeNotify(b.cap.On(topics.Notify())[0])
			if err != nil {
				t.Fatal(err)
			}
			ocert, okey := other.issue(t, ouuid, e2e.RoleDevice)
			r, _, _, err := e2e.Answer(n, "mgr-c", p.ca, ocert, okey, ouuid, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			payload, _ := r.Encode()
			if err := tr.Publish(ctx, client.Message{Topic: topics.Ready(), Payload: payload}, 1); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, "the manager to refuse the ready", func() bool { return m.Refused.Load() > 0 })
			cancel()
			if err := <-done; err == nil {
				t.Fatal("the manager accepted a device of another CA")
			}
		})
	})
}

// publishNotify publishes a notify signed by cert on manager's channel to
// device, bypassing the checks of package manager.
func publishNotify(t *testing.T, b *testBroker, cert *x509.Certificate, key *ecdsa.PrivateKey, manager, device string) {
	t.Helper()
	st, err := e2e.NewNotify(e2e.Ephemeral, cert, key, device)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := st.Notify.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: b.url, ClientID: "rogue-" + manager + "-" + t.Name(), Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	topics := e2e.Topics{Prefix: e2e.DefaultPrefix, Manager: manager, Device: device}
	if err := tr.Publish(ctx, client.Message{Topic: topics.Notify(), Payload: payload, ResponseTopic: topics.Ready()}, 1); err != nil {
		t.Fatal(err)
	}
}

// A broker restart between the handshake and the renewal: both sides
// reconnect and resubscribe, the manager resends, and the renewal
// completes on the channel agreed before the restart.
func TestBrokerRestartBetweenPhases(t *testing.T) {
	eachBroker(t, func(t *testing.T, b *testBroker) {
		pr := newPair(t, b, "dev-restart", "")
		m, d, uuid := pr.m, pr.d, pr.uuid
		tr := pr.tr
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ch, err := m.Open(ctx, uuid)
		if err != nil {
			t.Fatal(err)
		}
		b.restart(t)
		testenv.WaitFor(t, "the manager to reconnect", tr.Connected)
		r, err := ch.Renew(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !d.E2E().Certificate().Equal(r.Cert) {
			t.Fatal("the device does not use the renewed certificate")
		}
	})
}

// The MQTT packets per phase, as the broker handled them (the paper's
// Table 3b counts 6 interactions for the key agreement and 6 for the
// credential update). docs/benchmarks.md explains the difference.
func TestInteractionCounts(t *testing.T) {
	b := embedded(t)
	pr := newPair(t, b, "dev-count", "")
	m, d, uuid := pr.m, pr.d, pr.uuid
	b.counter.reset()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := m.Open(ctx, uuid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	phases := []struct {
		phase           string
		leaves          []string
		publish, puback int
	}{
		// notify: manager → broker → device, QoS 1 on both legs; ready:
		// device → broker QoS 1, broker → manager QoS 0 (the manager
		// subscribes at most once).
		{"key agreement", []string{e2e.LeafNotify, e2e.LeafReady}, 4, 3},
		// The manager clears its retained notify; the broker forwards the
		// empty message to the subscribed device, which ignores it.
		{"clearing the notify", []string{"notify (cleared)"}, 2, 2},
		// update: manager → broker → device, QoS 1; status: device →
		// broker QoS 1, broker → manager QoS 0.
		{"credential update", []string{e2e.LeafUpdate, e2e.LeafStatus}, 4, 3},
	}
	// The status reached the manager; wait until every phase has at
	// least its packets and every PUBACK is in: the broker counts a
	// PUBLISH it sends after the write (OnPacketSent), so the device may
	// answer before the update it got is counted. More than expected
	// fails below.
	testenv.WaitFor(t, "every PUBLISH and PUBACK", func() bool {
		for _, tc := range phases {
			if pub, ack := b.counter.phase(tc.leaves...); pub < tc.publish || ack < tc.puback {
				return false
			}
		}
		return b.counter.settled() && d.E2E().Renewals.Load() == 1
	}, func() string {
		b.counter.mu.Lock()
		defer b.counter.mu.Unlock()
		return fmt.Sprintf("publish %v, qos1 %v, pubacks %d, awaited %v, renewals %d", b.counter.publish, b.counter.qos1, b.counter.pubacks, b.counter.awaited, d.E2E().Renewals.Load())
	})
	for _, tc := range phases {
		pub, ack := b.counter.phase(tc.leaves...)
		t.Logf("%s: %d PUBLISH + %d PUBACK = %d packets", tc.phase, pub, ack, pub+ack)
		if pub != tc.publish || ack != tc.puback {
			t.Errorf("%s: %d PUBLISH and %d PUBACK, want %d and %d", tc.phase, pub, ack, tc.publish, tc.puback)
		}
	}
}

// An Update Server certificate runs the channel (for firmware keys) but
// does not renew credentials.
func TestUpdateServerCannotRenew(t *testing.T) {
	b := embedded(t)
	p := newPKI(t, "ca")
	scert, skey := p.issue(t, "update-server", e2e.RoleUpdateServer)
	m, _ := startManager(t, b, manager.Config{CA: p.ca, Cert: scert, Key: skey, CAKey: p.caKey})
	dcert, dkey := p.issue(t, "dev-us", e2e.RoleDevice)
	d := startDevice(t, b, "dev-us", devices.E2EConfig{CA: p.ca, Cert: dcert, Key: dkey})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := m.Open(ctx, "dev-us")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Renew(ctx); err == nil || !strings.Contains(err.Error(), "not renew") {
		t.Fatalf("renewal by an update server: %v", err)
	}
	if err := ch.SendFirmwareKey(ctx, "app", 2, []byte("0123456789abcdef"), make([]byte, e2e.KeySize)); err != nil {
		t.Fatalf("firmware key from an update server: %v", err)
	}
	if d.E2E().FirmwareKey("app", 2, []byte("0123456789abcdef")) == nil || d.E2E().Renewals.Load() != 0 {
		t.Error("the device does not hold the key, or renewed")
	}
}
