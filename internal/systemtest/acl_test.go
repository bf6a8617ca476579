package systemtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/eclipse/paho.golang/paho"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/wire"
)

// aclSystem is the whole system on a broker that admits provisioned
// identities only (issue 11): Mosquitto configured by nothing but the
// files access.ExportMosquitto writes, or the embedded broker with
// --enrol closed.
type aclSystem struct {
	b    *bridge.Bridge
	url  string
	addr string // the broker's host:port, for single CONNECTs
	// creds are the provisioned identities' credentials, by name: the
	// devices mup-1 and mup-2, the Update Server, and instrument (the
	// tests' own client, with the bridge's rights).
	creds map[string]client.Credentials
	// refuses: the broker answers a forbidden SUBSCRIBE or QoS 1 PUBLISH
	// with a failure code (the embedded broker); Mosquitto 2.0 grants
	// every SUBSCRIBE and checks the ACL on each delivery instead.
	refuses bool

	// On Mosquitto: its credential store and the files exported from it.
	mosq            *testenv.Mosquitto
	store           *access.Store
	passwd, aclFile string
}

// mupDescription is the description of the MUP devices: they sign
// update receipts with their E2E key.
func mupDescription(t testing.TB) []byte {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-device-signed.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

// startACLMosquitto provisions the identities in a credential store of
// the test's, exports them with the devices' descriptions, and runs
// Mosquitto on those files alone and the bridge on it as "bridge".
func startACLMosquitto(t *testing.T) *aclSystem {
	t.Helper()
	dir := t.TempDir()
	store, err := access.OpenStore(filepath.Join(dir, bridge.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	sys := &aclSystem{store: store, creds: map[string]client.Credentials{},
		passwd: filepath.Join(dir, "mosquitto.passwd"), aclFile: filepath.Join(dir, "mosquitto.acl")}
	for _, id := range []struct {
		name string
		role access.Role
	}{{"mup-1", access.RoleDevice}, {"mup-2", access.RoleDevice}, {"bridge", access.RoleBridge}, {updateServerName, access.RoleUpdateServer}} {
		sys.provision(t, id.name, id.role)
	}
	sys.export(t)
	sys.mosq = testenv.StartMosquittoWith(t, testenv.MosquittoConfig{PasswordFile: sys.passwd, ACLFile: sys.aclFile})
	sys.url, sys.addr = sys.mosq.URL(), sys.mosq.Addr()
	sys.creds["instrument"] = sys.creds["bridge"] // the same identity, another client
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys.b, err = bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", DataDir: t.TempDir(), AdminPassword: "pw", RPCTimeout: 5 * time.Second,
		Logger: testenv.Logger(), Out: io.Discard, MQTTURL: sys.url, MQTTUsername: "bridge", MQTTPassword: sys.creds["bridge"].Password})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sys.b.Close)
	return sys
}

// provision adds name to the Mosquitto system's credential store.
func (sys *aclSystem) provision(t testing.TB, name string, role access.Role) {
	t.Helper()
	token, err := sys.store.Add(name, role, access.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sys.creds[name] = client.Credentials{Username: name, Password: token}
}

// export writes Mosquitto's password and ACL files as myno acl export
// does: the store's identities, with the descriptions of mup-1 and mup-2
// given as those of devices not registered yet.
func (sys *aclSystem) export(t testing.TB) {
	t.Helper()
	desc := mupDescription(t)
	devs, err := bridge.SavedDevices(t.TempDir(), map[string][]byte{"mup-1": desc, "mup-2": desc}, 0)
	if err != nil {
		t.Fatal(err)
	}
	policy := access.Policy{Devices: devs}
	var pw, acl bytes.Buffer
	if err := access.ExportMosquitto(access.Export{Credentials: sys.store.List(), Policy: policy}, &pw, &acl); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sys.passwd, pw.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sys.aclFile, acl.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startACLEmbedded runs the bridge on its embedded broker with --enrol
// closed and provisions the identities in its credential file.
func startACLEmbedded(t *testing.T) *aclSystem {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: t.TempDir(), AdminPassword: "pw",
		RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, Enrolment: access.EnrolClosed})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	u, err := url.Parse(b.BrokerURL())
	if err != nil {
		t.Fatal(err)
	}
	sys := &aclSystem{b: b, url: b.BrokerURL(), addr: u.Host, creds: map[string]client.Credentials{}, refuses: true}
	for _, id := range []struct {
		name string
		role access.Role
	}{{"mup-1", access.RoleDevice}, {"mup-2", access.RoleDevice}, {"instrument", access.RoleBridge}, {updateServerName, access.RoleUpdateServer}} {
		sys.creds[id.name] = creds(t, b, id.name, id.role)
	}
	return sys
}

// inbox records the messages a client receives, with their topics.
type inbox struct {
	mu   sync.Mutex
	msgs []client.Message
}

func (in *inbox) add(m client.Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.msgs = append(in.msgs, client.Message{Topic: m.Topic, Payload: bytes.Clone(m.Payload)})
}

// topics are the topics of the messages received so far, in order.
func (in *inbox) topics() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for _, m := range in.msgs {
		out = append(out, m.Topic)
	}
	return out
}

// dial connects a client as creds; its messages go to in, when given.
func dial(t testing.TB, url, clientID string, creds client.Credentials, in *inbox) client.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := client.Config{URL: url, ClientID: clientID, Protocol: client.MQTT5, Logger: testenv.Logger(), AtMostOnce: true, Credentials: creds}
	if in != nil {
		cfg.OnMessage = in.add
	}
	tr, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("%s: %v", clientID, err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	return tr
}

// connack sends one MQTT 5 CONNECT to addr and returns the CONNACK's
// reason code (0: connected; MQTT 5 §3.2.2.2).
func connack(t testing.TB, addr, clientID string, creds client.Credentials) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	cp := &paho.Connect{KeepAlive: 30, ClientID: clientID, CleanStart: true}
	if creds.Username != "" {
		cp.Username, cp.UsernameFlag = creds.Username, true
	}
	if creds.Password != "" {
		cp.Password, cp.PasswordFlag = []byte(creds.Password), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, cp)
	if ca == nil {
		conn.Close()
		t.Fatalf("CONNECT as %q: no CONNACK: %v", creds.Username, err)
	}
	if ca.ReasonCode < 0x80 {
		_ = c.Disconnect(&paho.Disconnect{ReasonCode: 0})
	}
	return ca.ReasonCode
}

// refusedAtConnect reports whether code refuses the client for who it
// is: bad user name or password (0x86) or not authorized (0x87).
func refusedAtConnect(code byte) bool { return code == 0x86 || code == 0x87 }

// aclWorld is an aclSystem with MUP device mup-1 at version 3, E2E
// credentials for it and for the Update Server, and an E2E manager.
type aclWorld struct {
	*aclSystem
	dev       *devices.Device
	s         *gonetconf.Session
	m         *manager.Manager
	vendorKey *ecdsa.PrivateKey
	serverKey *ecdsa.PrivateKey
	ca        *x509.Certificate // issues mup-1's certificate; checks its receipts
}

// spied is what mup-2 tries to read of mup-1's: its command, firmware,
// bootstrap answer and E2E topics, and everything.
var spied = []string{"system/reboot/mup-1", "actuator/relay/mup-1", "config/interval/mup-1", "yang/update/token/mup-1",
	"yang/update/manifest/mup-1", "yang/update/mup-1", "yang/update/image/mup-1", "yang/update/+/mup-1",
	"yang/config/create/response/mup-1", "myno/e2e/+/mup-1/notify", "myno/e2e/+/mup-1/update", "#"}

// runAccessControl runs the MUP and E2E updates on sys with every client
// authenticated, while mup-2 (logged in with its own token) tries to read
// mup-1's topics; then mup-2 tries to write where it may not, and clients
// without valid credentials try to connect. Nothing of it may get
// through, and the bridge still has mup-1 as it was.
func runAccessControl(t *testing.T, sys *aclSystem) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// A '#' subscriber with the bridge's rights sees what the broker relays.
	watched := testenv.WatchAllWith(t, sys.url, sys.creds["instrument"])
	instrument := dial(t, sys.url, "acl-instrument", sys.creds["instrument"], nil)

	// mup-2 subscribes to mup-1's topics before mup-1 even bootstraps.
	spy := &inbox{}
	spyTr := dial(t, sys.url, wire.DeviceClientID("mup-2"), sys.creds["mup-2"], spy)
	refusedSubs := 0
	for _, f := range spied {
		if err := spyTr.Subscribe(ctx, f); err != nil {
			refusedSubs++
			t.Logf("mup-2 subscribing to %s: %v", f, err)
		}
	}
	// What mup-2 may read, to know when it has been given everything.
	spyMarker := wire.BootstrapResponseTopic(wire.TopicRetrieve, "mup-2")
	if err := spyTr.Subscribe(ctx, spyMarker); err != nil {
		t.Fatalf("mup-2 subscribing to its own %s: %v", spyMarker, err)
	}

	w := startACLWorld(t, sys)
	t.Run("mup", func(t *testing.T) {
		testenv.StacksOnFailure(t, inProcess...)
		image := make([]byte, 87800)
		rand.Read(image)
		signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), w.vendorKey)
		if err != nil {
			t.Fatal(err)
		}
		res, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: signed, Image: image, ServerKey: w.serverKey,
			NETCONF: w.s, MQTTURL: sys.url, MQTTCredentials: sys.creds[updateServerName], Flow: updateserver.Windowed, DeviceCA: w.ca})
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != 4 || w.dev.FirmwareVersion() != 4 || res.Verdict != updateserver.Verified {
			t.Fatalf("result %+v, device version %d", res, w.dev.FirmwareVersion())
		}
		waitFirmwareVersion(t, w.s, "4")
	})
	t.Run("e2e", func(t *testing.T) {
		testenv.StacksOnFailure(t, inProcess...)
		image := make([]byte, 40000)
		rand.Read(image)
		signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 5, 4, 0), w.vendorKey)
		if err != nil {
			t.Fatal(err)
		}
		res, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: signed, Image: image, ServerKey: w.serverKey,
			NETCONF: w.s, MQTTURL: sys.url, MQTTCredentials: sys.creds[updateServerName], Flow: updateserver.Windowed, DeviceCA: w.ca,
			OpenKeyChannel: func(ctx context.Context, uuid string) (updateserver.KeyChannel, error) {
				ch, err := w.m.OpenKeyChannel(ctx, uuid)
				if err != nil {
					return nil, err
				}
				return ch, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Version != 5 || w.dev.FirmwareVersion() != 5 || res.Phases["key"] == 0 {
			t.Fatalf("result %+v, device version %d", res, w.dev.FirmwareVersion())
		}
		testenv.WaitFor(t, "the broker to relay every slice", func() bool { return len(watched.On("yang/update/image/mup-1")) >= res.Slices })
		if at := watched.FindWindow(image, 32); at >= 0 {
			t.Fatalf("the broker relayed the image bytes at offset %d", at)
		}
		waitFirmwareVersion(t, w.s, "5")
	})

	t.Run("refused at CONNECT", func(t *testing.T) {
		for _, tc := range []struct {
			name, clientID string
			creds          client.Credentials
		}{
			{"anonymous", "acl-anonymous", client.Credentials{}},
			{"mup-1 with mup-2's token", wire.DeviceClientID("mup-1"), client.Credentials{Username: "mup-1", Password: sys.creds["mup-2"].Password}},
			{"a wrong password", "acl-guess", client.Credentials{Username: updateServerName, Password: "guess"}},
			{"an unprovisioned device", "mup-9", client.Credentials{Username: "mup-9", Password: "a-token-of-its-own-0123456789"}},
		} {
			code := connack(t, sys.addr, tc.clientID, tc.creds)
			if !refusedAtConnect(code) {
				t.Errorf("%s: CONNACK reason 0x%02x, want 0x86 or 0x87", tc.name, code)
			}
			t.Logf("%s: CONNACK reason 0x%02x", tc.name, code)
		}
		// The control: a CONNECT with valid credentials passes.
		if code := connack(t, sys.addr, "acl-valid", sys.creds[updateServerName]); code != 0 {
			t.Errorf("valid credentials: CONNACK reason 0x%02x", code)
		}
	})

	t.Run("mup-2 writes where it may not", func(t *testing.T) {
		module, _ := sys.b.ModuleOf("mup-1")
		if module == "" {
			t.Fatal("mup-1 is not registered")
		}
		other, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
		if err != nil {
			t.Fatal(err)
		}
		type forgery struct {
			topic    string
			payload  []byte
			retained bool
			// mup1Too: mup-1 publishes the same payload there itself (its
			// own END), so only the PUBACK can tell.
			mup1Too bool
		}
		forged := []forgery{
			{topic: wire.ResponseTopic("mup-1"), payload: wire.Response{ReqID: "forged-by-mup-2", Value: "OK"}.Encode()},
			{topic: wire.FirmwareStatusTopic("mup-1"), payload: wire.EncodeFirmwareStatus(9)},
			{topic: "yang/update/image/mup-1/ack", payload: []byte("forged-by-mup-2")},
			{topic: wire.DeviceBootstrapTopic(wire.TopicDelete, "mup-1"), payload: []byte("mup-1")},
			{topic: wire.TopicUpdateServerCert, payload: []byte("-----BEGIN CERTIFICATE-----\nforged-by-mup-2\n-----END CERTIFICATE-----\n"), retained: true},
			{topic: wire.TopicProject + "/cluster/x/registry/mup-9", payload: []byte(`{"forged-by":"mup-2"}`), retained: true},
		}
		// A new description for mup-1 (another device's, whole).
		for _, c := range wire.SplitDescription("mup-1", other, -1) {
			forged = append(forged, forgery{topic: wire.DeviceBootstrapTopic(wire.TopicCreate, "mup-1"), payload: c.Encode(), mup1Too: c.End})
		}
		for _, f := range forged {
			m := client.Message{Topic: f.topic, Payload: f.payload}
			var err error
			if f.retained {
				err = spyTr.PublishRetained(ctx, m)
			} else {
				err = spyTr.Publish(ctx, m, 1)
			}
			// Mosquitto 2.0.11 and the embedded broker answer MQTT 5 with
			// a PUBACK error (0x87); a broker may also drop it silently,
			// which the '#' subscriber shows.
			switch {
			case err == nil && sys.refuses:
				t.Errorf("mup-2 publishing on %s: PUBACK success", f.topic)
			case err == nil:
				t.Logf("mup-2 publishing on %s: PUBACK success (dropped silently?)", f.topic)
			case !strings.Contains(err.Error(), "not authorized"):
				t.Errorf("mup-2 publishing on %s: %v, want the PUBACK's not authorized", f.topic, err)
			}
		}
		// mup-2 may write here; the '#' subscriber has everything before.
		marker := client.Message{Topic: wire.ResponseTopic("mup-2"), Payload: []byte("marker-" + t.Name())}
		if err := spyTr.Publish(ctx, marker, 1); err != nil {
			t.Fatalf("mup-2 publishing on its own %s: %v", marker.Topic, err)
		}
		testenv.WaitFor(t, "mup-2's marker", func() bool {
			return slices.ContainsFunc(watched.On(marker.Topic), func(p []byte) bool { return bytes.Equal(p, marker.Payload) })
		})
		for _, f := range forged {
			if !f.mup1Too && slices.ContainsFunc(watched.On(f.topic), func(p []byte) bool { return bytes.Equal(p, f.payload) }) {
				t.Errorf("the broker relayed mup-2's publish on %s", f.topic)
			}
		}
		// Nothing was retained: a new subscriber gets the retained
		// messages right after its SUBACK, before anything published
		// later.
		fresh := testenv.WatchAllWith(t, sys.url, sys.creds["instrument"])
		late := client.Message{Topic: "acl-test/late", Payload: []byte("after the retained messages")}
		if err := instrument.Publish(ctx, late, 1); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "the marker after the retained messages", func() bool { return len(fresh.On(late.Topic)) > 0 })
		for _, f := range forged {
			if f.retained && len(fresh.On(f.topic)) > 0 {
				t.Errorf("%s holds a retained message: %q", f.topic, fresh.On(f.topic))
			}
		}
		// The bridge has mup-1 as it was, at the version it reported.
		if !slices.Contains(sys.b.Devices(), "mup-1") {
			t.Errorf("mup-1 is no longer registered: %v", sys.b.Devices())
		}
		if got, _ := sys.b.ModuleOf("mup-1"); got != module {
			t.Errorf("mup-1's module is %q, was %q", got, module)
		}
		dev, err := updateserver.NewClient(w.s).Device("mup-1")
		if err != nil || dev.FirmwareVersion != "5" {
			t.Errorf("mup-1 in <get>: %+v %v", dev, err)
		}
	})

	t.Run("mup-2 reads nothing of mup-1's", func(t *testing.T) {
		// Everything queued for mup-2 is before this marker.
		marker := client.Message{Topic: spyMarker, Payload: []byte("marker")}
		if err := instrument.Publish(ctx, marker, 1); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, "mup-2 to receive its marker", func() bool { return slices.Contains(spy.topics(), spyMarker) })
		leaked := map[string]int{}
		for _, topic := range spy.topics() {
			if topic != spyMarker {
				leaked[topic]++
			}
		}
		if len(leaked) > 0 {
			t.Errorf("mup-2 received messages on others' topics (topic: count): %v", leaked)
		}
		t.Logf("%d of mup-2's %d subscriptions refused at SUBACK", refusedSubs, len(spied))
		if sys.refuses && refusedSubs != len(spied) {
			t.Errorf("the broker granted %d of mup-2's subscriptions to mup-1's topics", len(spied)-refusedSubs)
		}
	})
}

// startACLWorld runs MUP device mup-1 at version 3 with E2E credentials,
// logged in with its own token, and an E2E manager named update-server,
// logged in as the Update Server.
func startACLWorld(t *testing.T, sys *aclSystem) *aclWorld {
	t.Helper()
	ca, caKey, err := e2e.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, role e2e.Role) devices.E2EConfig {
		cert, key, err := e2e.Issue(ca, caKey, name, role, time.Now().Add(-time.Minute), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return devices.E2EConfig{CA: ca, Cert: cert, Key: key}
	}
	vendorKey, _ := mup.GenerateKey()
	serverKey, _ := mup.GenerateKey()
	w := &aclWorld{aclSystem: sys, vendorKey: vendorKey, serverKey: serverKey, ca: ca}
	dev := startMUPDeviceAs(t, "mup-device-signed.jsonld", sys.url, "mup-1", sys.creds["mup-1"],
		devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey},
		func(d *devices.Device) error { return d.EnableE2E(issue("mup-1", e2e.RoleDevice)) })
	w.dev = dev
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w.s = dialBridge(t, sys.b)
	waitFirmwareVersion(t, w.s, "3")
	mc := issue(updateServerName, e2e.RoleUpdateServer) // its E2E topics carry its name
	w.m, err = manager.New(manager.Config{CA: ca, Cert: mc.Cert, Key: mc.Key, Logger: testenv.Logger(), ResendAfter: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if w.m.Name() != updateServerName {
		t.Fatalf("manager %q", w.m.Name())
	}
	tr, err := client.Dial(ctx, client.Config{URL: sys.url, ClientID: "acl-manager", Protocol: client.MQTT5, Logger: testenv.Logger(), AtMostOnce: true,
		OnMessage: w.m.HandleMessage, Credentials: sys.creds[updateServerName]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	if err := w.m.Start(ctx, tr); err != nil {
		t.Fatal(err)
	}
	return w
}

// Mosquitto knows the identities only from the files myno acl export
// writes (allow_anonymous false, a password file, an ACL): the bridge, the
// devices and the Update Server log in with their own tokens, the MUP and
// E2E updates work, and a device can neither read nor forge another's
// messages nor swap the reserved retained topics.
func TestAccessControlOnMosquitto(t *testing.T) {
	sys := startACLMosquitto(t)
	runAccessControl(t, sys)
	// A device provisioned after Mosquitto started is admitted once the
	// files are exported again and Mosquitto reloads them (SIGHUP).
	t.Run("reload", func(t *testing.T) {
		sys.provision(t, "mup-3", access.RoleDevice)
		if code := connack(t, sys.addr, wire.DeviceClientID("mup-3"), sys.creds["mup-3"]); !refusedAtConnect(code) {
			t.Fatalf("mup-3 before the export: CONNACK reason 0x%02x", code)
		}
		sys.export(t)
		sys.mosq.Reload()
		if code := connack(t, sys.addr, wire.DeviceClientID("mup-3"), sys.creds["mup-3"]); code != 0 {
			t.Fatalf("mup-3 after the reload: CONNACK reason 0x%02x", code)
		}
	})
}

// The same on the embedded broker with --enrol closed: every identity is
// provisioned in the bridge's credential file.
func TestAccessControlOnEmbeddedBroker(t *testing.T) {
	runAccessControl(t, startACLEmbedded(t))
}
