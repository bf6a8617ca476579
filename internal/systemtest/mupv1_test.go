package systemtest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/wire"
)

// v1World is a bridge with one device that speaks MUP v1 (MYNO's
// original MUP, as MYNO's CC2538 firmware does on the wire) at version 1,
// and a vendor manifest for version 2 of an image of the paper's size.
type v1World struct {
	b         *bridge.Bridge
	dev       *devices.Device
	s         *gonetconf.Session
	url       string
	uuid      string
	image     []byte
	vendor    []byte // the vendor file for version 2 (myno manifest sign --format v1)
	vendorKey *ecdsa.PrivateKey
	serverKey *ecdsa.PrivateKey
	updater   client.Credentials
}

// v1TestKey reads a MUP v1 test key from mup/v1/testdata (vector B's).
func v1TestKey(t testing.TB, name string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	k, err := v1.DecodePrivateKey(bytes.TrimSpace(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// startV1Device runs a MUP v1 device from a testdata description on the
// broker at url and bootstraps it.
func startV1Device(t testing.TB, description, url, uuid string, cfg devices.MUPv1Config) *devices.Device {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", description))
	if err != nil {
		t.Fatal(err)
	}
	return startV1DeviceFromBytes(t, desc, url, uuid, cfg)
}

// v1Vendor makes the vendor file of a v1 manifest for image.
func v1Vendor(t testing.TB, key *ecdsa.PrivateKey, image []byte, version, oldVersion uint32) []byte {
	t.Helper()
	m, err := v1.NewManifest(image, "MYNO-APP", 0, version, oldVersion)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SignInner(key); err != nil {
		t.Fatal(err)
	}
	f, err := m.EncodeVendorFile()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func setupV1(t testing.TB, brokerURL string, device func(*devices.MUPv1Config)) *v1World {
	t.Helper()
	w := &v1World{uuid: "MYNO-UPDATE-8A12-4F4F", vendorKey: v1TestKey(t, "key-manufacturer.priv.hex"), serverKey: v1TestKey(t, "key-updateserver.priv.hex")}
	w.b = startBridge(t, brokerURL, nil)
	w.url = brokerURL
	if w.url == "" {
		w.url = w.b.BrokerURL()
	}
	cfg := devices.MUPv1Config{Version: 1, SlotSize: 256 << 10, VendorKey: &w.vendorKey.PublicKey, ServerKey: &w.serverKey.PublicKey}
	if device != nil {
		device(&cfg)
	}
	w.dev = startV1Device(t, "mup-v1-device.jsonld", w.url, w.uuid, cfg)
	w.s = dialBridge(t, w.b)
	w.image = make([]byte, 87800) // the paper's image size
	rand.Read(w.image)
	w.vendor = v1Vendor(t, w.vendorKey, w.image, 2, 1)
	w.updater = creds(t, w.b, updateServerName, access.RoleUpdateServer)
	return w
}

func (w *v1World) update(t testing.TB, flow updateserver.FlowControl, change func(*updateserver.UpdateConfig)) (*updateserver.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := updateserver.UpdateConfig{UUID: w.uuid, V1Manifest: w.vendor, Image: w.image, ServerKey: w.serverKey,
		NETCONF: w.s, MQTTURL: w.url, MQTTCredentials: w.updater, Flow: flow}
	if change != nil {
		change(&cfg)
	}
	return updateserver.Update(ctx, cfg)
}

// The "done when": an 87,800-byte v1 update at 600-byte slices
// through the bridge, on the embedded broker and on Mosquitto. The
// protocol comes from the device's module; the device keeps the image
// and reports the new version; the verdict is unverified, since a v1
// device holds no key.
func TestV1UpdateThroughTheBridge(t *testing.T) {
	for _, broker := range []string{"embedded", "mosquitto"} {
		for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
			t.Run(broker+"/"+string(flow), func(t *testing.T) {
				url := ""
				if broker == "mosquitto" {
					url = testenv.StartMosquitto(t).URL()
				}
				w := setupV1(t, url, nil)
				var progress []int
				res, err := w.update(t, flow, func(c *updateserver.UpdateConfig) {
					c.Progress = func(acked, total, bytes int) { progress = append(progress, acked) }
				})
				if err != nil {
					t.Fatal(err)
				}
				if res.Protocol != updateserver.ProtocolV1 || res.Version != 2 || res.Slices != 147 || res.Verdict != updateserver.Unverified || res.Note != "" {
					t.Errorf("result %+v", res)
				}
				if res.Topic != "yang/update/image/"+w.uuid {
					t.Errorf("slice topic %q", res.Topic)
				}
				if w.dev.MUPv1Version() != 2 || !bytes.Equal(w.dev.MUPv1Image(), w.image) {
					t.Errorf("device runs version %d, image kept %v", w.dev.MUPv1Version(), bytes.Equal(w.dev.MUPv1Image(), w.image))
				}
				if len(progress) == 0 || progress[len(progress)-1] != 147 {
					t.Errorf("progress %v", progress)
				}
				t.Logf("phases %v, %d resent", res.Phases, res.Resent)
			})
		}
	}
}

// The protocol can be forced: --protocol cose against a v1 device fails
// before the device hears of an update (its module has no COSE rpcs),
// and a v1 device asked to take a COSE manifest only is told what is
// missing.
func TestV1ProtocolOverride(t *testing.T) {
	w := setupV1(t, "", nil)
	_, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.Protocol = updateserver.ProtocolCOSE })
	if err == nil {
		t.Fatal("a COSE update of a v1 device succeeded")
	}
	_, err = w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.V1Manifest = nil })
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "manifest" || !strings.Contains(err.Error(), "--format v1") {
		t.Errorf("no v1 manifest: %v", err)
	}
	_, err = w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.RequireReceipt = true })
	if !errors.As(err, &ue) || ue.Step != "receipt" || !strings.Contains(err.Error(), updateserver.UnverifiedReason) {
		t.Errorf("receipt required: %v", err)
	}
	if w.dev.MUPv1Version() != 1 {
		t.Errorf("device runs version %d", w.dev.MUPv1Version())
	}
	if res, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.Protocol = updateserver.ProtocolV1 }); err != nil || res.Version != 2 {
		t.Errorf("forced v1: %+v %v", res, err)
	}
}

// v1Driver drives a MUP v1 update through the bridge with no check of its
// own, rpc by rpc, as MYNO's Update Server does: the refusals below are
// the device's, not the Update Server's.
type v1Driver struct {
	t   *testing.T
	w   *v1World
	c   *updateserver.Client
	ns  string
	mq  client.Transport
	ack chan uint32
}

func newV1Driver(t *testing.T, w *v1World) *v1Driver {
	t.Helper()
	dev, err := updateserver.NewClient(w.s).Device(w.uuid)
	if err != nil {
		t.Fatal(err)
	}
	d := &v1Driver{t: t, w: w, c: updateserver.NewClient(w.s), ns: dev.Namespace, ack: make(chan uint32, 1024)}
	sliceTopic := "yang/update/image/" + w.uuid
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d.mq, err = client.Dial(ctx, client.Config{URL: w.url, ClientID: "v1-driver", Protocol: client.MQTT5, Credentials: w.updater, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) {
			if a, err := v1.DecodeAck(m.Payload); err == nil {
				d.ack <- a.Index
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.mq.Close(context.Background()) })
	if err := d.mq.Subscribe(ctx, wire.MUPv1AckTopic(sliceTopic)); err != nil {
		t.Fatal(err)
	}
	return d
}

// call runs one rpc with the selector and at most one leaf; it returns the
// retval.
func (d *v1Driver) call(rpc string, leaf ...updateserver.Leaf) string {
	d.t.Helper()
	out, err := d.c.Call(d.ns, rpc, append([]updateserver.Leaf{{Name: v1.LeafUUID, Value: d.w.uuid}}, leaf...)...)
	if err != nil {
		d.t.Fatalf("%s: %v", rpc, err)
	}
	return out.Retval
}

func (d *v1Driver) token() v1.Token {
	d.t.Helper()
	tok, err := v1.DecodeToken([]byte(d.call(v1.RPCGetDeviceToken)))
	if err != nil {
		d.t.Fatal(err)
	}
	return tok
}

// manifest sends the ten fields and returns the answer to START-UPDATE.
func (d *v1Driver) manifest(m v1.Manifest) string {
	d.t.Helper()
	var last string
	for i := range v1.NumFields {
		text := strconv.Itoa(i) + "," + fieldValue(d.t, m, i)
		last = d.call(v1.RPCPubUpdateManifest, updateserver.Leaf{Name: v1.Leaf(i), Value: text})
	}
	return last
}

func fieldValue(t *testing.T, m v1.Manifest, i int) string {
	t.Helper()
	fields, err := m.Fields()
	if err != nil {
		t.Fatal(err)
	}
	return fields[i].Value
}

// slices publishes the image's slices one at a time; it reports whether
// the device acknowledged each.
func (d *v1Driver) slices(image []byte) bool {
	d.t.Helper()
	ss, err := v1.SplitImage(image)
	if err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range ss {
		p, _ := s.Encode()
		if err := d.mq.Publish(ctx, client.Message{Topic: "yang/update/image/" + d.w.uuid, Payload: p}, 0); err != nil {
			d.t.Fatal(err)
		}
		select {
		case n := <-d.ack:
			if n != s.Index {
				d.t.Fatalf("ack %d for slice %d", n, s.Index)
			}
		case <-time.After(time.Second): // the device takes no slice: no ack comes
			return false
		}
	}
	return true
}

// signed is the vendor's manifest for image at version, with the nonce
// and the outer signature of serverKey.
func (d *v1Driver) signed(vendorKey, serverKey *ecdsa.PrivateKey, image []byte, version, oldVersion, nonce uint32) v1.Manifest {
	d.t.Helper()
	m, err := v1.NewManifest(image, "MYNO-APP", 0, version, oldVersion)
	if err != nil {
		d.t.Fatal(err)
	}
	m.Nonce = nonce
	if err := m.SignInner(vendorKey); err != nil {
		d.t.Fatal(err)
	}
	if err := m.SignOuter(serverKey); err != nil {
		d.t.Fatal(err)
	}
	return m
}

// Each attack of the issue is refused by the device itself, driven as
// MYNO's Update Server would drive it (no check on the server's side),
// and the image is never accepted: a tampered image, a forged inner or
// outer signature, a replayed nonce, a downgrade.
func TestV1AttacksAreRefusedByTheDevice(t *testing.T) {
	w := setupV1(t, "", nil)
	d := newV1Driver(t, w)
	rogue, _ := mup.GenerateKey()
	notAccepted := func(what string) {
		t.Helper()
		if w.dev.MUPv1Version() != 1 || w.dev.MUPv1Image() != nil {
			t.Fatalf("%s: device runs version %d, holds an image of %d bytes", what, w.dev.MUPv1Version(), len(w.dev.MUPv1Image()))
		}
	}
	refused := func(answer string) bool { return answer == "20_ERROR" }

	t.Run("tampered image", func(t *testing.T) {
		d.t = t
		tok := d.token()
		if a := d.manifest(d.signed(w.vendorKey, w.serverKey, w.image, 2, 1, tok.Nonce)); a != "11_MANIFEST-SUCCESS" {
			t.Fatalf("manifest: %s", a)
		}
		tampered := bytes.Clone(w.image)
		tampered[1000] ^= 0xff
		if !d.slices(tampered) {
			t.Fatal("slices not taken")
		}
		if a := d.call(v1.RPCPubUpdateImage, updateserver.Leaf{Name: v1.LeafImage, Value: v1.Fin}); !refused(a) {
			t.Errorf("FIN after a tampered image: %s", a)
		}
		notAccepted("tampered image")
	})
	for _, c := range []struct {
		name           string
		vendor, server *ecdsa.PrivateKey
	}{
		{"forged inner signature", rogue, w.serverKey},
		{"forged outer signature", w.vendorKey, rogue},
	} {
		t.Run(c.name, func(t *testing.T) {
			d.t = t
			tok := d.token()
			if a := d.manifest(d.signed(c.vendor, c.server, w.image, 2, 1, tok.Nonce)); !refused(a) {
				t.Errorf("START-UPDATE: %s", a)
			}
			if d.slices(w.image) {
				t.Error("the device took slices after a refused manifest")
			}
			if a := d.call(v1.RPCPubUpdateImage, updateserver.Leaf{Name: v1.LeafImage, Value: v1.Fin}); !refused(a) {
				t.Errorf("FIN: %s", a)
			}
			notAccepted(c.name)
		})
	}
	t.Run("replayed nonce", func(t *testing.T) {
		d.t = t
		old := d.token()
		d.token() // a newer token: the older nonce is spent
		if a := d.manifest(d.signed(w.vendorKey, w.serverKey, w.image, 2, 1, old.Nonce)); !refused(a) {
			t.Errorf("manifest with an older token's nonce: %s", a)
		}
		notAccepted("older nonce")
		// A manifest that was accepted once is not accepted again.
		tok := d.token()
		m := d.signed(w.vendorKey, w.serverKey, w.image, 2, 1, tok.Nonce)
		if a := d.manifest(m); a != "11_MANIFEST-SUCCESS" {
			t.Fatalf("fresh manifest: %s", a)
		}
		if a := d.manifest(m); !refused(a) {
			t.Errorf("the same manifest again: %s", a)
		}
		notAccepted("replayed manifest")
	})
	t.Run("downgrade", func(t *testing.T) {
		d.t = t
		for _, version := range []uint32{1, 0} { // the running one, and an older one
			tok := d.token()
			if a := d.manifest(d.signed(w.vendorKey, w.serverKey, w.image, version, 1, tok.Nonce)); !refused(a) {
				t.Errorf("version %d: %s", version, a)
			}
			notAccepted("downgrade")
		}
	})
	// After all that, the genuine update goes through.
	if res, err := w.update(t, updateserver.StopAndWait, nil); err != nil || res.Version != 2 {
		t.Fatalf("genuine update after the attacks: %+v %v", res, err)
	}
}

// The Update Server refuses what it can tell before the device hears of
// it (an image its manifest does not describe, a downgrade), and reports
// the device's refusals with the step and the device's answer.
func TestV1UpdateServerRefusals(t *testing.T) {
	w := setupV1(t, "", nil)
	var ue *updateserver.UpdateError
	tampered := bytes.Clone(w.image)
	tampered[0] ^= 1
	if _, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.Image = tampered }); !errors.As(err, &ue) || ue.Step != "manifest" {
		t.Errorf("tampered image: %v", err)
	}
	rogue, _ := mup.GenerateKey()
	_, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.ServerKey = rogue })
	if !errors.As(err, &ue) || ue.Step != "funcPubUpdateManifest field 9" || ue.State != "ERROR" || !errors.Is(err, updateserver.ErrV1Refused) {
		t.Errorf("forged outer signature: %v", err)
	}
	if _, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.V1Manifest = v1Vendor(t, rogue, w.image, 2, 1) }); !errors.As(err, &ue) || ue.State != "ERROR" {
		t.Errorf("forged inner signature: %v", err)
	}
	if _, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.V1Manifest = v1Vendor(t, w.vendorKey, w.image, 1, 0) }); !errors.As(err, &ue) || ue.Step != "manifest" || !strings.Contains(err.Error(), "no upgrade") {
		t.Errorf("downgrade: %v", err)
	}
	if w.dev.MUPv1Version() != 1 || w.dev.MUPv1Image() != nil {
		t.Fatalf("device runs version %d", w.dev.MUPv1Version())
	}
}

// With --firmware-compat the device answers a refused manifest OK, as
// MYNO's firmware does (MUP-V1.md §5); the Update Server still reports a
// refusal, and says why.
func TestV1FirmwareCompatRefusal(t *testing.T) {
	w := setupV1(t, "", func(c *devices.MUPv1Config) { c.FirmwareCompat = true })
	rogue, _ := mup.GenerateKey()
	_, err := w.update(t, updateserver.Windowed, func(c *updateserver.UpdateConfig) { c.ServerKey = rogue })
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.State != "OK" || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("forged outer signature, firmware-compat: %v", err)
	}
	if w.dev.MUPv1Version() != 1 {
		t.Fatalf("device runs version %d", w.dev.MUPv1Version())
	}
}

// A campaign over a mixed fleet (issue 14): COSE devices and MUP v1
// devices on one bridge, with both vendor manifests of one image; each
// device is updated in its own protocol, found from its module. A v1
// device is unverified (it cannot sign), as is a COSE device that
// declares no receipt.
func TestMixedCampaign(t *testing.T) {
	w, _ := setup(t, "") // COSE device mup-1 at version 3, manifest for 4
	addDevice(t, w, "mup-2", 3)
	vendorV1 := v1TestKey(t, "key-manufacturer.priv.hex")
	for _, uuid := range []string{"myno-v1-1", "myno-v1-2"} {
		startV1Device(t, "mup-v1-device.jsonld", w.url, uuid, devices.MUPv1Config{Version: 3, SlotSize: 256 << 10,
			VendorKey: &vendorV1.PublicKey, ServerKey: &w.serverKey.PublicKey})
	}
	cfg := campaignConfig(w, []string{"mup-1", "myno-v1-1", "mup-2", "myno-v1-2"})
	cfg.Update.V1Manifest = v1Vendor(t, vendorV1, w.image, 4, 3)
	results := updateserver.Campaign(context.Background(), cfg)
	for _, r := range results {
		want := updateserver.ProtocolCOSE
		if strings.HasPrefix(r.UUID, "myno-v1-") {
			want = updateserver.ProtocolV1
		}
		if r.Err != nil || r.Result.Version != 4 || r.Result.Protocol != want || r.Result.Verdict != updateserver.Unverified {
			t.Errorf("%s: %+v %v", r.UUID, r.Result, r.Err)
		}
	}
	if c := updateserver.Tally(results); c.Unverified != 4 || c.Failed != 0 {
		t.Errorf("tally %+v", c)
	}
}
