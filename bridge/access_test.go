package bridge_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/failguard"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// dialWith connects a raw MQTT 5 client with creds and clientID; it
// returns the refusal instead of failing the test.
func dialWith(ctx context.Context, url, clientID string, creds client.Credentials, on func(client.Message)) (client.Transport, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return client.Dial(ctx, client.Config{URL: url, ClientID: clientID, Credentials: creds, Protocol: client.MQTT5,
		Logger: testenv.Logger(), OnMessage: on})
}

// provision adds name with role to the bridge's credential file.
func provision(t *testing.T, b *bridge.Bridge, name string, role access.Role, opts access.AddOptions) string {
	t.Helper()
	store, err := access.OpenStore(b.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.Add(name, role, opts)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// Who may connect to the embedded broker, by enrolment mode (issue 11).
func TestEmbeddedBrokerAdmitsOnlyKnownClients(t *testing.T) {
	ctx := t.Context()
	for _, mode := range []access.Enrolment{access.EnrolOpen, access.EnrolToken, access.EnrolClosed} {
		t.Run(string(mode), func(t *testing.T) {
			b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.Enrolment = mode })
			defer b.Close()
			url := b.BrokerURL()
			refused := func(what, clientID string, creds client.Credentials, code string) {
				t.Helper()
				tr, err := dialWith(ctx, url, clientID, creds, nil)
				if err == nil {
					tr.Close(ctx)
					t.Errorf("%s: admitted", what)
					return
				}
				if !strings.Contains(err.Error(), code) {
					t.Errorf("%s: %v, want CONNACK %s", what, err, code)
				}
			}
			admitted := func(what, clientID string, creds client.Credentials) {
				t.Helper()
				tr, err := dialWith(ctx, url, clientID, creds, nil)
				if err != nil {
					t.Errorf("%s: %v", what, err)
					return
				}
				tr.Close(ctx)
			}
			refused("anonymous", "anon", client.Credentials{}, "0x87")
			token := provision(t, b, "dev-p", access.RoleDevice, access.AddOptions{})
			admitted("provisioned device", "dev-p", client.Credentials{Username: "dev-p", Password: token})
			admitted("provisioned device, its client id", wire.DeviceClientID("dev-p"), client.Credentials{Username: "dev-p", Password: token})
			refused("provisioned device, wrong token", "dev-p", client.Credentials{Username: "dev-p", Password: token + "x"}, "0x86")
			refused("provisioned device, another device's client id", "dev-other", client.Credentials{Username: "dev-p", Password: token}, "0x85")
			// MQTT 3.1.1 return codes (§3.2.2.3), reported at once too.
			for _, c := range []struct {
				creds client.Credentials
				want  string
			}{
				{client.Credentials{}, "not Authorized"},
				{client.Credentials{Username: "dev-p", Password: "not-the-token"}, "bad user name or password"},
			} {
				dctx, dcancel := context.WithTimeout(ctx, 20*time.Second)
				_, err := client.Dial(dctx, client.Config{URL: url, ClientID: "dev-p", Protocol: client.MQTT311, Credentials: c.creds, Logger: testenv.Logger()})
				expired := dctx.Err() != nil
				dcancel()
				if err == nil || !strings.Contains(err.Error(), c.want) || expired {
					t.Errorf("3.1.1 login %q: %v (deadline reached: %v), want %q at once", c.creds.Username, err, expired, c.want)
				}
			}

			enrol := provision(t, b, "dev-e", access.RoleDevice, access.AddOptions{Enrolment: true, TTL: time.Hour})
			fresh := client.Credentials{Username: "dev-new", Password: "a-token-of-the-device-itself-0123"}
			switch mode {
			case access.EnrolOpen:
				admitted("new device (trust on first use)", "dev-new", fresh)
				admitted("new device again", "dev-new", fresh)
				refused("new device, another token", "dev-new", client.Credentials{Username: "dev-new", Password: "another-token-0123456789abcdef"}, "0x86")
				refused("new device, short token", "dev-short", client.Credentials{Username: "dev-short", Password: "short"}, "0x86")
				admitted("enrolment token", "dev-e", client.Credentials{Username: "dev-e", Password: enrol})
			case access.EnrolToken:
				refused("new device", "dev-new", fresh, "0x87")
				refused("enrolment token of another uuid", "dev-x", client.Credentials{Username: "dev-x", Password: enrol}, "0x87")
				admitted("enrolment token", "dev-e", client.Credentials{Username: "dev-e", Password: enrol})
				admitted("enrolment token, now the device's credential", "dev-e", client.Credentials{Username: "dev-e", Password: enrol})
				expired := provision(t, b, "dev-old", access.RoleDevice, access.AddOptions{Enrolment: true, TTL: time.Nanosecond})
				refused("expired enrolment token", "dev-old", client.Credentials{Username: "dev-old", Password: expired}, "0x87")
			case access.EnrolClosed:
				refused("new device", "dev-new", fresh, "0x87")
				refused("enrolment token", "dev-e", client.Credentials{Username: "dev-e", Password: enrol}, "0x87")
			}
			// The broker counts what it refused; <get> shows it.
			s := session(t, b.NetconfAddr())
			reply, rerr := exec1(t, s, `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"/></filter></get>`)
			if rerr != nil {
				t.Fatal(rerr)
			}
			mustContain(t, reply, "<broker>embedded</broker>", "<allow-anonymous>false</allow-anonymous>", "<enrolment>"+string(mode)+"</enrolment>")
			if strings.Contains(reply, "<refused-connections>0<") {
				t.Errorf("no refused connection counted:\n%s", reply)
			}
		})
	}
}

// --mqtt-allow-anonymous admits clients without credentials, says so in
// <get>, and still checks the clients that do present credentials.
func TestAllowAnonymousIsVisible(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MQTTAllowAnonymous = true })
	defer b.Close()
	ctx := t.Context()
	tr, err := dialWith(ctx, b.BrokerURL(), "anon", client.Credentials{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.Close(ctx)
	if _, err := dialWith(ctx, b.BrokerURL(), "dev-1", client.Credentials{Username: "dev-1", Password: "short"}, nil); err == nil {
		t.Error("bad credentials admitted because anonymous clients are")
	}
	reply, rerr := exec1(t, session(t, b.NetconfAddr()), `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"/></filter></get>`)
	if rerr != nil {
		t.Fatal(rerr)
	}
	mustContain(t, reply, "<allow-anonymous>true</allow-anonymous>")
}

// Device A, authenticated, tries everything against device B (issue 11):
// each attempt is refused by the broker or dropped by the bridge, and B
// stays registered, served, and answered only by itself.
func TestDeviceCannotActAsAnother(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	url := b.BrokerURL()
	victim := device(t, url, "led-color.jsonld", "led-b", client.MQTT5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	attacker := dialAsDevice(t, ctx, url, "dev-a", nil)
	defer attacker.Close(ctx)
	module, _ := b.ModuleOf("led-b")

	for _, topic := range []string{
		wire.ResponseTopic("led-b"),                            // answer as B
		wire.InstanceResponseTopic("i1", "led-b"),              // answer as B to a cluster instance
		wire.DeviceBootstrapTopic(wire.TopicUpdate, "led-b"),   // re-register B
		wire.DeviceBootstrapTopic(wire.TopicDelete, "led-b"),   // delete B
		wire.FirmwareStatusTopic("led-b"),                      // B's firmware version
		"actuator/led/led-b",                                   // B's commands
		wire.BootstrapResponseTopic(wire.TopicCreate, "led-b"), // answer B's bootstrap
		wire.TopicUpdateServerCert,                             // swap the Update Server key
		wire.TopicProject + "/cluster/c1/registry/ghost",       // a ghost device in a cluster
		wire.TopicProject + "/cluster/c1/members/fake",         // a fake cluster member
		wire.DefaultE2EPrefix + "/manager/led-b/notify",        // B's E2E channel
		"$SYS/broker/clients",                                  // the broker's own tree
	} {
		if err := attacker.Publish(ctx, client.Message{Topic: topic, Payload: []byte("x;OK")}, 1); err == nil {
			t.Errorf("publish on %s: accepted", topic)
		}
	}
	if err := attacker.PublishRetained(ctx, client.Message{Topic: wire.TopicUpdateServerCert, Payload: []byte("-----BEGIN CERTIFICATE-----")}); err == nil {
		t.Error("retained publish on the Update Server certificate topic: accepted")
	}
	for _, filter := range []string{"actuator/led/led-b", "actuator/#", "#", wire.ResponseFilter, wire.BootstrapResponseTopic(wire.TopicCreate, "led-b"),
		wire.DefaultE2EPrefix + "/+/led-b/update", "yang/config/+/+"} {
		if err := attacker.Subscribe(ctx, filter); err == nil {
			t.Errorf("subscribe to %s: granted", filter)
		} else if !errors.Is(err, client.ErrSubscribeRefused) {
			t.Errorf("subscribe to %s: %v, want client.ErrSubscribeRefused", filter, err)
		}
	}
	// On MYNO's shared topics the uuid is in the payload: the embedded
	// broker tells the bridge who published, and the bridge drops them.
	before := b.MismatchedAnswers()
	var forged []client.Message
	for _, c := range wire.SplitDescription("led-b", desc(t, "relay-sensors.jsonld"), 0) {
		forged = append(forged, client.Message{Topic: wire.TopicUpdate, Payload: c.Encode()})
	}
	forged = append(forged,
		client.Message{Topic: wire.TopicCreate, Payload: wire.Chunk{UUID: "led-b", End: true}.Encode()},
		client.Message{Topic: wire.TopicDelete, Payload: []byte("led-b")},
		client.Message{Topic: wire.TopicRetrieve, Payload: []byte("led-b")})
	for _, m := range forged {
		if err := attacker.Publish(ctx, m, 1); err != nil {
			t.Fatalf("publish on shared %s: %v", m.Topic, err)
		}
	}
	testenv.WaitFor(t, "the forged bootstrap messages to be dropped", func() bool { return b.MismatchedAnswers() >= before+uint64(len(forged)) })
	// Nor can it take B's client id (a session take-over).
	if _, err := dialWith(ctx, url, wire.DeviceClientID("led-b"), testCreds("dev-a"), nil); err == nil || !strings.Contains(err.Error(), "0x85") {
		t.Errorf("take-over of B's client id: %v", err)
	}
	// B is still registered with its own module, and served.
	if m, ok := b.ModuleOf("led-b"); !ok || m != module {
		t.Fatalf("led-b: module %q %v, want %q", m, ok, module)
	}
	s := session(t, b.NetconfAddr())
	ns := namespace(t, "led-color.jsonld")
	reply, rerr := exec1(t, s, `<ledOn xmlns="`+ns+`"><uuidInput>led-b</uuidInput></ledOn>`)
	if rerr != nil {
		t.Fatalf("rpc to led-b: %v", rerr)
	}
	mustContain(t, reply, "OK")
	if victim.Commands.Load() == 0 {
		t.Error("led-b did not execute the command")
	}
}

// A description may not name a topic of another device: not its readings,
// nor its commands (a device could then command it), and a device may
// not read from a topic that another device's description names.
func TestDescriptionClaimingAnotherDevicesCommandTopic(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	url := b.BrokerURL()
	device(t, url, "led-color.jsonld", "led-b", client.MQTT5)
	thief := bytes.Replace(desc(t, "relay-sensors.jsonld"), []byte("sensor/temperature/%s"), []byte("actuator/led/led-b"), 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := bootstrapOnce(t, ctx, url, "relay-thief", thief)
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "actuator/led/led-b") || !strings.Contains(err.Error(), "belongs to device led-b") {
		t.Fatalf("bootstrap of a description naming led-b's command topic: %v", err)
	}
	if _, ok := b.ModuleOf("relay-thief"); ok {
		t.Error("the thief was registered")
	}
}

// The embedded broker's mqtts listener: a device logs in with a client
// certificate of the configured CA, whose common name is its uuid, or with
// its token over TLS; a certificate of another CA is refused, and a
// certificate cannot be used with another device's user name.
func TestMQTTSListener(t *testing.T) {
	pki := testenv.NewPKI(t, "mqtt-ca")
	other := testenv.NewPKI(t, "other-ca")
	serverCert, serverKey := pki.Server("127.0.0.1")
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) {
		c.Enrolment = access.EnrolClosed
		c.MQTTTLSListen, c.MQTTTLSCertFile, c.MQTTTLSKeyFile, c.MQTTTLSClientCAFile = "127.0.0.1:0", serverCert, serverKey, pki.CAFile
	})
	defer b.Close()
	url := b.MQTTSURL()
	if !strings.HasPrefix(url, "mqtts://127.0.0.1:") {
		t.Fatalf("mqtts URL %q", url)
	}
	ctx := t.Context()
	tlsWith := func(cert, key string) client.Credentials {
		t.Helper()
		cfg, err := client.LoadTLS(pki.CAFile, cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return client.Credentials{TLSConfig: cfg}
	}
	// A certificate with CN=uuid is the device's identity once the device
	// is provisioned for it: it bootstraps and is served, with no token.
	cert, key := pki.Client("led-tls")
	if _, err := dialWith(ctx, url, "led-tls", tlsWith(cert, key), nil); err == nil || !strings.Contains(err.Error(), "0x87") {
		t.Fatalf("certificate of a device not provisioned (--enrol closed): %v", err)
	}
	if tok := provision(t, b, "led-tls", access.RoleDevice, access.AddOptions{Certificate: true}); tok != "" {
		t.Fatalf("a certificate device got a token")
	}
	d, err := devices.New(devices.Config{Description: desc(t, "led-color.jsonld"), UUID: "led-tls", BrokerURL: url, Credentials: tlsWith(cert, key), Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := d.Connect(cctx); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Bootstrap(cctx); err != nil {
		t.Fatal(err)
	}
	// ... and only that device's.
	creds := tlsWith(cert, key)
	creds.Username = "led-other"
	if _, err := dialWith(ctx, url, "led-other", creds, nil); err == nil || !strings.Contains(err.Error(), "0x86") {
		t.Errorf("certificate of led-tls with user name led-other: %v", err)
	}
	if tr, err := dialWith(ctx, url, "led-tls", tlsWith(cert, key), nil); err != nil {
		t.Errorf("led-tls again: %v", err)
	} else {
		if err := tr.Publish(ctx, client.Message{Topic: wire.ResponseTopic("led-x"), Payload: []byte("1;OK")}, 1); err == nil {
			t.Error("led-tls may answer as led-x")
		}
		tr.Close(ctx)
	}
	// Removing the device revokes its certificate.
	store, err := access.OpenStore(b.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Remove("led-tls"); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the removed device's certificate to be refused", func() bool {
		_, err := dialWith(ctx, url, "led-tls", tlsWith(cert, key), nil)
		return err != nil && strings.Contains(err.Error(), "0x87")
	})
	d.Close()
	// A token over TLS.
	token := provision(t, b, "dev-token", access.RoleDevice, access.AddOptions{})
	over := tlsWith("", "")
	over.Username, over.Password = "dev-token", token
	if tr, err := dialWith(ctx, url, "dev-token", over, nil); err != nil {
		t.Errorf("token over TLS: %v", err)
	} else {
		tr.Close(ctx)
	}
	// No certificate and no token: anonymous, refused.
	if _, err := dialWith(ctx, url, "anon", tlsWith("", ""), nil); err == nil {
		t.Error("TLS client without credentials admitted")
	}
	// A certificate of another CA fails the TLS handshake.
	ocert, okey := other.Client("led-tls")
	if _, err := dialWith(ctx, url, "led-tls", tlsWith(ocert, okey), nil); err == nil {
		t.Error("certificate of another CA admitted")
	}
}

// Wills and client identifiers (found by a review): a will is a publish
// the broker makes later on the client's behalf, so its topic is checked
// at CONNECT; and a client identifier belongs to one identity at a time,
// so that nobody can take a device's session over or have a will or a
// message taken for the device's.
func TestWillsAndClientIdentifiers(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	url := b.BrokerURL()
	device(t, url, "led-color.jsonld", "led-b", client.MQTT5)
	ctx := t.Context()
	dialWill := func(clientID string, creds client.Credentials, will string) error {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		tr, err := client.Dial(dctx, client.Config{URL: url, ClientID: clientID, Credentials: creds, Protocol: client.MQTT5, Logger: testenv.Logger(),
			Will: &client.Message{Topic: will, Payload: []byte("77;OFF")}, WillRetain: true})
		if err == nil {
			tr.Close(ctx)
		}
		return err
	}
	for _, topic := range []string{"actuator/led/led-b", wire.TopicUpdateServerCert, wire.FirmwareStatusTopic("led-b"), wire.DeviceBootstrapTopic(wire.TopicDelete, "led-b")} {
		if err := dialWill("dev-a", testCreds("dev-a"), topic); err == nil || !strings.Contains(err.Error(), "0x87") {
			t.Errorf("a will on %s: %v, want CONNACK 0x87", topic, err)
		}
	}
	if err := dialWill("dev-a", testCreds("dev-a"), wire.FirmwareStatusTopic("dev-a")); err != nil {
		t.Errorf("a will on its own status topic: %v", err)
	}
	// Roles may not use a device's client identifiers.
	manager := provision(t, b, "mgr", access.RoleE2EManager, access.AddOptions{})
	for _, id := range []string{wire.DeviceClientID("led-b"), "led-b", wire.DeviceClientID("not-yet-a-device")} {
		if _, err := dialWith(ctx, url, id, client.Credentials{Username: "mgr", Password: manager}, nil); err == nil || !strings.Contains(err.Error(), "0x85") {
			t.Errorf("manager as client %q: %v, want CONNACK 0x85", id, err)
		}
	}
	// Nor may one identity take another's session over.
	other := provision(t, b, "mgr2", access.RoleE2EManager, access.AddOptions{})
	held, err := dialWith(ctx, url, "mgr-session", client.Credentials{Username: "mgr", Password: manager}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	if _, err := dialWith(ctx, url, "mgr-session", client.Credentials{Username: "mgr2", Password: other}, nil); err == nil || !strings.Contains(err.Error(), "0x85") {
		t.Errorf("another identity taking the session over: %v, want CONNACK 0x85", err)
	}
	if !held.Connected() {
		t.Error("the session's holder was disconnected")
	}
	// --enrol open does not enrol a name of the devices' client identifier form.
	if _, err := dialWith(ctx, url, wire.DeviceClientID("led-b"), testCreds(wire.DeviceClientID("led-b")), nil); err == nil {
		t.Error("a device named like led-b's client identifier enrolled")
	}
	if m, ok := b.ModuleOf("led-b"); !ok || m == "" {
		t.Error("led-b is gone")
	}
}

// connackFrom sends one MQTT 5 CONNECT from the loopback address local
// and returns the CONNACK's reason code.
func connackFrom(t *testing.T, brokerURL, local, clientID string, creds client.Credentials) byte {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", strings.TrimPrefix(brokerURL, "mqtt://"))
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	cp := &paho.Connect{KeepAlive: 30, ClientID: clientID, CleanStart: true,
		Username: creds.Username, UsernameFlag: true, Password: []byte(creds.Password), PasswordFlag: true}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if ca == nil {
		conn.Close()
		t.Fatalf("no CONNACK: %v", err)
	}
	if ca.ReasonCode < 0x80 {
		_ = c.Disconnect(&paho.Disconnect{})
	}
	return ca.ReasonCode
}

// Token guessing is slowed per address (issue 12): past a few bad
// credentials, an address is answered "server busy" (0x89, so that a
// client that was right retries) even with the right token; other
// addresses are not.
func TestTokenGuessingIsSlowed(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.Enrolment = access.EnrolClosed })
	defer b.Close()
	token := provision(t, b, "dev-p", access.RoleDevice, access.AddOptions{})
	for i := range failguard.DefaultFree {
		if code := connackFrom(t, b.BrokerURL(), "127.0.0.2", "dev-p", client.Credentials{Username: "dev-p", Password: "guess"}); code != 0x86 {
			t.Fatalf("guess %d: CONNACK 0x%02x, want 0x86", i, code)
		}
	}
	connackFrom(t, b.BrokerURL(), "127.0.0.2", "dev-p", client.Credentials{Username: "dev-p", Password: "guess"})
	if code := connackFrom(t, b.BrokerURL(), "127.0.0.2", "dev-p", client.Credentials{Username: "dev-p", Password: token}); code != 0x89 {
		t.Errorf("the right token from a locked-out address: CONNACK 0x%02x, want 0x89 server busy", code)
	}
	if code := connackFrom(t, b.BrokerURL(), "127.0.0.1", "dev-p", client.Credentials{Username: "dev-p", Password: token}); code != 0 {
		t.Errorf("the right token from another address: CONNACK 0x%02x", code)
	}
}

// With --mqtt-allow-anonymous a device with no credentials connects with
// its usual client identifier (myno-device-<uuid>) and registers; the
// client identifier of a provisioned device stays its own.
func TestAnonymousDevicesUseTheirClientIdentifier(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MQTTAllowAnonymous = true })
	defer b.Close()
	url := b.BrokerURL()
	device(t, url, "led-color.jsonld", "led-owned", client.MQTT5) // enrols with its own token
	d, err := devices.New(devices.Config{Description: desc(t, "led-color.jsonld"), UUID: "led-anon", BrokerURL: url, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("anonymous device: %v", err)
	}
	defer d.Close()
	if err := d.Bootstrap(ctx); err != nil {
		t.Fatalf("anonymous device: %v", err)
	}
	if _, err := dialWith(ctx, url, wire.DeviceClientID("led-owned"), client.Credentials{}, nil); err == nil || !strings.Contains(err.Error(), "0x85") {
		t.Errorf("anonymous client as the provisioned led-owned: %v, want CONNACK 0x85", err)
	}
}
