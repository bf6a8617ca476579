package systemtest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/ontology"
)

// The tests of this file run the real bridge, on a broker of its own
// (the embedded broker, open), and real devices (package devices), for
// the order of an update's steps and their deadlines (issue 16).

// updateClients counts the connections of Update Servers (client ids
// myno-update-…) a broker accepts.
type updateClients struct {
	mqtt.HookBase
	n atomic.Int32
}

func (h *updateClients) ID() string           { return "update-clients" }
func (h *updateClients) Provides(b byte) bool { return b == mqtt.OnConnect }
func (h *updateClients) connections() int     { return int(h.n.Load()) }
func (h *updateClients) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if strings.HasPrefix(cl.ID, "myno-update-") {
		h.n.Add(1)
	}
	return nil
}

type realWorld struct {
	b         *bridge.Bridge
	brokerURL string
	clients   *updateClients
	vendorKey *ecdsa.PrivateKey
	serverKey *ecdsa.PrivateKey
	image     []byte
	signed    []byte // for version 4
	devices   map[string]*devices.Device
}

func startRealWorld(t *testing.T) *realWorld {
	t.Helper()
	w := &realWorld{clients: &updateClients{}, devices: map[string]*devices.Device{}}
	e := testenv.StartEmbedded(t, broker.Config{}, w.clients)
	w.brokerURL = e.URL()
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTURL: w.brokerURL, DataDir: t.TempDir(),
		AdminPassword: "pw", RPCTimeout: 3 * time.Second, Logger: testenv.Logger(), Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	w.b = b
	if w.vendorKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if w.serverKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	w.image = make([]byte, 4000)
	rand.Read(w.image)
	if w.signed, err = mup.SignVendorManifest(mup.NewVendorManifest(w.image, "myno-app", 4, 3, 0), w.vendorKey); err != nil {
		t.Fatal(err)
	}
	return w
}

// addDevice boots a MUP device at version 3; handlers, by function name,
// replace its MUP handlers.
func (w *realWorld) addDevice(t *testing.T, uuid string, handlers map[string]devices.CommandHandler) *devices.Device {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-device.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]devices.CommandHandler{}
	d := devicetest.Boot(t, devices.Config{UUID: uuid, BrokerURL: w.brokerURL, Description: desc, Logger: testenv.Logger(), Handlers: own},
		func(d *devices.Device) error {
			return d.EnableMUP(devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey})
		},
		func(d *devices.Device) error {
			for _, f := range d.Model().Functions {
				if h, ok := handlers[f.Name]; ok {
					own[f.Method] = h
				}
			}
			return nil
		})
	w.devices[uuid] = d
	return d
}

func (w *realWorld) dial() (*gonetconf.Session, error) {
	return gonetconf.DialSSH(w.b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
}

func (w *realWorld) session(t *testing.T) *gonetconf.Session {
	t.Helper()
	s, err := w.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// template is an update of the world's image, checked against the
// vendor's and the Update Server's keys.
func (w *realWorld) template() updateserver.UpdateConfig {
	return updateserver.UpdateConfig{VendorSigned: w.signed, Image: w.image, ServerKey: w.serverKey, MQTTURL: w.brokerURL,
		VendorKeys: []*ecdsa.PublicKey{&w.vendorKey.PublicKey}, ServerPublicKey: &w.serverKey.PublicKey, RebootWait: 5 * time.Second}
}

func deadBroker(t *testing.T) string { return fmt.Sprintf("mqtt://127.0.0.1:%d", testenv.FreePort(t)) }

// An update connects to the broker before it asks for a token: with a
// dead one it fails within MQTTConnectTimeout, names the broker and the
// cause, and the device hears nothing.
func TestUpdateConnectsToTheBrokerBeforeTheToken(t *testing.T) {
	w := startRealWorld(t)
	dev := w.addDevice(t, "order-1", nil)
	cfg := w.template()
	dead := deadBroker(t)
	cfg.UUID, cfg.NETCONF, cfg.MQTTURL, cfg.MQTTConnectTimeout = "order-1", w.session(t), dead, time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res, err := updateserver.Update(ctx, cfg)
	var ue *updateserver.UpdateError
	var be *updateserver.BrokerError
	if !errors.As(err, &ue) || ue.Step != "broker" || ue.Phase() != "setup" || !errors.As(err, &be) || be.Timeout != time.Second ||
		updateserver.Outcome(err) != updateserver.OutcomeTimeout {
		t.Fatalf("update: %v (outcome %s)", err, updateserver.Outcome(err))
	}
	if want := "broker: broker " + dead + ": no connection within 1s: dial tcp "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("%q: want %q … connection refused", err, want)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if len(res.Phases) != 0 || dev.Commands.Load() != 0 {
		t.Errorf("phases %v; the device handled %d commands", res.Phases, dev.Commands.Load())
	}
}

// A campaign connects to the broker once, before any device hears of it:
// its updates share the connection; with a dead broker every device fails
// at once, with no session to the bridge and no rpc.
func TestCampaignConnectsOnceFirst(t *testing.T) {
	w := startRealWorld(t)
	uuids := []string{"order-1", "order-2", "order-3"}
	for _, u := range uuids {
		w.addDevice(t, u, nil)
	}
	var dials atomic.Int32
	campaign := func(cfg updateserver.UpdateConfig) []updateserver.DeviceResult {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return updateserver.Campaign(ctx, updateserver.CampaignConfig{Devices: uuids, Parallel: 3, Update: cfg,
			Dial: func(context.Context) (*gonetconf.Session, error) { dials.Add(1); return w.dial() }})
	}

	cfg := w.template()
	cfg.MQTTURL, cfg.MQTTConnectTimeout = deadBroker(t), time.Second
	start := time.Now()
	for _, r := range campaign(cfg) {
		var ue *updateserver.UpdateError
		if !errors.As(r.Err, &ue) || ue.Step != "broker" || !strings.Contains(r.Err.Error(), "connection refused") {
			t.Errorf("%s: %v", r.UUID, r.Err)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("took %s", took)
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("%d sessions to the bridge", n)
	}
	for _, u := range uuids {
		if n := w.devices[u].Commands.Load(); n != 0 {
			t.Errorf("%s handled %d commands", u, n)
		}
	}

	for _, r := range campaign(w.template()) {
		if r.Err != nil || r.Result.Version != 4 {
			t.Errorf("%s: %+v %v", r.UUID, r.Result, r.Err)
		}
	}
	if n := w.clients.connections(); n != 1 {
		t.Errorf("%d Update Server connections to the broker for one campaign, want 1", n)
	}
}

// An rpc the bridge does not answer within RPCTimeout fails with
// ErrNoAnswer, naming the rpc and the deadline; the session it closed is
// replaced for the campaign's next device, which is updated.
func TestRPCDeadline(t *testing.T) {
	w := startRealWorld(t)
	block := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(block) }) }
	t.Cleanup(unblock)
	// A device slower than the Update Server's deadline (the bridge's, 3 s,
	// would answer later).
	w.addDevice(t, "slow", map[string]devices.CommandHandler{"getDeviceToken": func(ctx context.Context, _ *devices.Device, _ *ontology.Function, _ []string) (string, []string) {
		select {
		case <-ctx.Done():
		case <-block:
		}
		return "", nil
	}})
	w.addDevice(t, "fine", nil)
	cfg := w.template()
	cfg.RPCTimeout = time.Second
	var dials atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := updateserver.Campaign(ctx, updateserver.CampaignConfig{Devices: []string{"slow", "fine"}, Parallel: 1, Update: cfg,
		Dial: func(context.Context) (*gonetconf.Session, error) { dials.Add(1); return w.dial() }})
	var ue *updateserver.UpdateError
	if err := results[0].Err; !errors.As(err, &ue) || ue.Step != "getDeviceToken" || !errors.Is(err, updateserver.ErrNoAnswer) ||
		err.Error() != "getDeviceToken: netconf getDeviceToken: no answer within 1s (the NETCONF session is closed)" ||
		updateserver.Outcome(err) != updateserver.OutcomeTimeout {
		t.Errorf("slow: %v", err)
	}
	if r := results[1]; r.Err != nil || r.Result.Version != 4 {
		t.Errorf("fine: %+v %v", r.Result, r.Err)
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d sessions, want 2: the closed one replaced", n)
	}
}

// CheckLocal refuses, before anything leaves the process, what a device
// would refuse later or never accept: each with its step and a message
// that says why.
func TestCheckLocal(t *testing.T) {
	vendor, _ := mup.GenerateKey()
	other, _ := mup.GenerateKey()
	server, _ := mup.GenerateKey()
	image := make([]byte, 3000)
	rand.Read(image)
	tampered := append([]byte(nil), image...)
	tampered[1234] ^= 0x80
	signed, _ := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendor)
	foreign, _ := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), other)
	v1File := func(key *ecdsa.PrivateKey) []byte {
		m, err := v1.NewManifest(image, "APP", 0, 4, 3)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SignInner(key); err != nil {
			t.Fatal(err)
		}
		b, err := m.EncodeVendorFile()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := updateserver.UpdateConfig{VendorSigned: signed, V1Manifest: v1File(vendor), Image: image, ServerKey: server,
		VendorKeys: []*ecdsa.PublicKey{&other.PublicKey, &vendor.PublicKey}, ServerPublicKey: &server.PublicKey}
	if err := updateserver.CheckLocal(good); err != nil {
		t.Fatalf("a good update: %v", err)
	}
	for name, tc := range map[string]struct {
		change func(*updateserver.UpdateConfig)
		step   string
		want   string
	}{
		"tampered image": {func(c *updateserver.UpdateConfig) { c.Image = tampered }, "manifest",
			"the COSE vendor manifest describes another image (3000 bytes, SHA-256 "},
		"tampered image, v1": {func(c *updateserver.UpdateConfig) { c.Image, c.VendorSigned = tampered, nil }, "manifest",
			"the v1 manifest describes another image (3000 bytes, SHA-256 "},
		"another vendor": {func(c *updateserver.UpdateConfig) { c.VendorSigned = foreign; c.VendorKeys = c.VendorKeys[1:] }, "manifest",
			"the COSE vendor manifest's signature does not verify with the vendor's key: verification error"},
		"another vendor, v1": {func(c *updateserver.UpdateConfig) { c.V1Manifest = v1File(other); c.VendorKeys = c.VendorKeys[1:] }, "manifest",
			"the v1 manifest's inner signature does not verify with the vendor's key: mup/v1: signature does not verify"},
		"another Update Server key": {func(c *updateserver.UpdateConfig) { c.ServerKey = other }, "sign",
			"the Update Server key does not sign what its certificate's key verifies"},
		"another Update Server key, v1": {func(c *updateserver.UpdateConfig) { c.ServerKey, c.VendorSigned = other, nil }, "sign",
			"the Update Server key does not sign what devices verify with the Update Server's public key"},
		"slices too large": {func(c *updateserver.UpdateConfig) { c.SliceSize = mup.MaxSliceData + 1 }, "manifest",
			fmt.Sprintf("slice size %d: a device takes at most %d bytes of image per slice", mup.MaxSliceData+1, mup.MaxSliceData)},
		"sealed slices too large": {func(c *updateserver.UpdateConfig) {
			c.SliceSize = mup.MaxSliceData
			c.OpenKeyChannel = func(context.Context, string) (updateserver.KeyChannel, error) { return nil, errors.ErrUnsupported }
		}, "manifest", fmt.Sprintf("a device takes at most %d bytes", mup.MaxSliceData-mup.SealedSliceOverhead)},
		"no image":     {func(c *updateserver.UpdateConfig) { c.Image = nil }, "manifest", "the image is empty"},
		"no key":       {func(c *updateserver.UpdateConfig) { c.ServerKey = nil }, "sign", "no Update Server key is given"},
		"not a COSE":   {func(c *updateserver.UpdateConfig) { c.VendorSigned = []byte("x") }, "manifest", "the COSE vendor manifest: malformed"},
		"not a v1 one": {func(c *updateserver.UpdateConfig) { c.V1Manifest = []byte("x\n") }, "manifest", "the MUP v1 vendor manifest: "},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good
			cfg.VendorKeys = append([]*ecdsa.PublicKey(nil), good.VendorKeys...)
			tc.change(&cfg)
			err := updateserver.CheckLocal(cfg)
			var ue *updateserver.UpdateError
			if !errors.As(err, &ue) || ue.Step != tc.step || !errors.Is(err, updateserver.ErrLocalCheck) ||
				!strings.HasPrefix(err.Error(), tc.step+": refused before the device heard of it: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v\nwant step %s and %q", err, tc.step, tc.want)
			}
		})
	}
}
