package updateserver_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// fakeBridge plays the bridge for the Update Server without running it: a
// NETCONF server (package netconf) on loopback that serves the modules
// generated from testdata descriptions, their devices lists and get-schema,
// and answers the MUP rpcs for in-process fake devices, which take their
// slices from an embedded broker.
type fakeBridge struct {
	t         testing.TB
	srv       *netconf.Server
	addr      string
	brokerURL string
	vendorKey *ecdsa.PrivateKey
	serverKey *ecdsa.PrivateKey

	mu      sync.Mutex
	devices map[string]*fakeDevice
}

const adminPassword = "pw"

func startFakeBridge(t testing.TB) *fakeBridge {
	t.Helper()
	br, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { br.Close() })
	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(t.TempDir(), "host_key"))
	if err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := netconf.NewServer(netconf.Config{HostKey: hostKey, Access: netconf.DefaultAccess(), Logger: testenv.Logger(),
		Users: netconf.NewUsers(&netconf.User{Name: "admin", PasswordHash: string(hash), Groups: []string{netconf.AdminGroup}})})
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBridge{t: t, srv: srv, brokerURL: br.URL(), devices: map[string]*fakeDevice{}}
	if fb.vendorKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	if fb.serverKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		sctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("netconf shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("netconf serve: %v", err)
		}
	})
	return fb
}

// generateModule generates the module of a testdata description.
func generateModule(t testing.TB, description string) *yang.Module {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", description))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ontology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := yang.Generate(dev, yang.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

// addModule serves the module of a testdata description, its devices list
// and its MUP rpcs. source, when set, changes the text get-schema serves.
func (fb *fakeBridge) addModule(description string, source func(string) string) *yang.Module {
	fb.t.Helper()
	mod := generateModule(fb.t, description)
	text := mod.Text
	if source != nil {
		text = source(text)
	}
	fb.srv.AddModule(netconf.Module{Name: mod.Name, Revision: mod.Revision, Namespace: mod.Namespace, Source: text})
	ns := mod.Namespace
	fb.srv.AddState(mod.Name, func(context.Context) ([]*netconf.Element, error) {
		list := netconf.NewNode(ns, "devices")
		fb.mu.Lock()
		defer fb.mu.Unlock()
		for _, d := range fb.devices {
			if d.mod != mod {
				continue
			}
			list.Children = append(list.Children, netconf.NewNode(ns, "device", netconf.NewLeaf(ns, "uuid", d.uuid),
				netconf.NewLeaf(ns, "category", mod.Device.Category), netconf.NewLeaf(ns, "module", mod.Name)))
		}
		return []*netconf.Element{list}, nil
	})
	for _, rpc := range []string{"getDeviceToken", "sendExtendedManifest", "sendFirmwareImage"} {
		fb.srv.Handle(mod.Name, ns, rpc, netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
			uuid := ""
			if e := req.Operation.Child(ns, "uuidInput"); e != nil {
				uuid = e.Text
			}
			fb.mu.Lock()
			d := fb.devices[uuid]
			fb.mu.Unlock()
			if d == nil || d.mod != mod {
				return nil, &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagInvalidValue, Message: "no device " + uuid}
			}
			return d.serve(ctx, rpc, req.Operation)
		}))
	}
	return mod
}

// fakeDevice is a MUP device as the Update Server sees it: token, manifest
// check (mup.CheckManifest), in-order slices on its firmware topic with
// cumulative acks, image check; it runs the new version at once.
type fakeDevice struct {
	t     testing.TB
	uuid  string
	mod   *yang.Module
	topic string // the sendFirmwareImage input data point, bound to the uuid
	tr    client.Transport

	mu        sync.Mutex
	state     mup.DeviceState
	manifest  *mup.VendorManifest // the accepted manifest, while a transfer is open
	image     []byte
	next      uint32                       // the next slice expected
	rpcs      []string                     // the rpcs served, in order
	failWith  map[string]*netconf.RPCError // rpc → the rpc-error it answers with
	lastInput map[string]string            // the last rpc's input leaves, as received
	deaf      bool                         // takes no slice, so acks none
}

// addDevice registers a device of mod at version.
func (fb *fakeBridge) addDevice(mod *yang.Module, uuid string, version uint32) *fakeDevice {
	fb.t.Helper()
	d := &fakeDevice{t: fb.t, uuid: uuid, mod: mod, failWith: map[string]*netconf.RPCError{},
		state: mup.DeviceState{UUID: uuid, AppID: "myno-app", Version: version, SlotSize: 256 << 10, VendorKey: &fb.vendorKey.PublicKey, ServerKey: &fb.serverKey.PublicKey}}
	for _, f := range mod.Device.Functions {
		if f.Name == "sendFirmwareImage" {
			d.topic = wire.Expand(f.InputTopic, uuid) // as devices.firmwareTopic binds it
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: fb.brokerURL, ClientID: "fake-" + uuid, Protocol: client.MQTT5, Logger: testenv.Logger(), OnMessage: d.onMessage})
	if err != nil {
		fb.t.Fatal(err)
	}
	fb.t.Cleanup(func() { tr.Close(context.Background()) })
	d.tr = tr
	fb.mu.Lock()
	fb.devices[uuid] = d
	fb.mu.Unlock()
	return d
}

func (d *fakeDevice) version() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Version
}

func (d *fakeDevice) served() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.rpcs...)
}

func (d *fakeDevice) serve(ctx context.Context, rpc string, op *netconf.Element) ([]*netconf.Element, error) {
	ns := d.mod.Namespace
	input := func(name string) string {
		if e := op.Child(ns, name); e != nil {
			return e.Text
		}
		return ""
	}
	d.mu.Lock()
	d.rpcs = append(d.rpcs, rpc)
	d.lastInput = map[string]string{}
	for _, c := range op.Children {
		d.lastInput[c.Name.Local] = c.Text
	}
	fail := d.failWith[rpc]
	d.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	retval := func(state string, outputs ...string) []*netconf.Element {
		out := []*netconf.Element{netconf.NewLeaf(ns, "retval", state)}
		for i, v := range outputs {
			out = append(out, netconf.NewLeaf(ns, d.mod.RPC(rpc).Outputs[i].Name, v))
		}
		return out
	}
	switch rpc {
	case "getDeviceToken":
		d.mu.Lock()
		d.state.Nonce = mup.NewNonce()
		tok := mup.Token{UUID: d.uuid, Nonce: d.state.Nonce, Version: d.state.Version}
		d.mu.Unlock()
		return retval(mup.StateOK, tok.Outputs()...), nil
	case "sendExtendedManifest":
		raw, err := base64.StdEncoding.DecodeString(input("input_1_Manifest"))
		if err != nil {
			return retval(mup.StateManifestInvalid), nil
		}
		d.mu.Lock()
		st := d.state
		d.state.Nonce = nil // single use
		d.mu.Unlock()
		state, vm := mup.CheckManifest(raw, &st)
		if state != mup.StateOK {
			return retval(state), nil
		}
		if err := d.tr.Subscribe(ctx, d.topic); err != nil {
			return retval(mup.StateError), nil
		}
		d.mu.Lock()
		d.manifest, d.image, d.next = vm, nil, 0
		d.mu.Unlock()
		return retval(mup.StateOK), nil
	default: // sendFirmwareImage
		d.mu.Lock()
		defer d.mu.Unlock()
		vm := d.manifest
		d.manifest = nil
		sum := sha256.Sum256(d.image)
		if vm == nil || input("input_1_ImageDigest") != hex.EncodeToString(sum[:]) || !bytes.Equal(sum[:], vm.Digest) {
			return retval(mup.StateImageInvalid), nil
		}
		d.state.Version = vm.Version // "reboots" into it at once
		return retval(mup.StateOK), nil
	}
}

// onMessage takes slices in order on the firmware topic and acks the last
// one received in order (cumulative, mup/PROTOCOL.md).
func (d *fakeDevice) onMessage(m client.Message) {
	if m.Topic != d.topic {
		return
	}
	s, err := mup.DecodeSlice(m.Payload)
	if err != nil {
		return
	}
	d.mu.Lock()
	if d.manifest == nil || d.deaf {
		d.mu.Unlock()
		return
	}
	if s.Index == d.next && len(d.image)+len(s.Data) <= int(d.manifest.Size) {
		d.image = append(d.image, s.Data...)
		d.next++
	}
	next := d.next
	d.mu.Unlock()
	if next > 0 {
		_ = d.tr.Publish(context.Background(), client.Message{Topic: wire.FirmwareAckTopic(d.topic), Payload: mup.Ack{Index: next - 1}.Encode()}, 0)
	}
}

// dial opens a NETCONF session to the fake bridge; with schemaRequests,
// the session counts the get-schema requests it sends.
func (fb *fakeBridge) dial(schemaRequests *atomic.Int32) (*gonetconf.Session, error) {
	var tr gonetconf.TransportSSH
	if err := tr.Dial(fb.addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}); err != nil {
		return nil, err
	}
	if schemaRequests == nil {
		return gonetconf.NewSession(&tr), nil
	}
	return gonetconf.NewSession(&countingTransport{Transport: &tr, schemaRequests: schemaRequests}), nil
}

func (fb *fakeBridge) session(t testing.TB) *gonetconf.Session {
	t.Helper()
	s, err := fb.dial(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// countingTransport counts the get-schema requests sent through it.
type countingTransport struct {
	gonetconf.Transport
	schemaRequests *atomic.Int32
}

func (c *countingTransport) Send(b []byte) error {
	if bytes.Contains(b, []byte("<get-schema ")) {
		c.schemaRequests.Add(1)
	}
	return c.Transport.Send(b)
}

// signed has the vendor sign a manifest of image at version for app
// myno-app.
func (fb *fakeBridge) signed(t testing.TB, image []byte, version uint32) []byte {
	t.Helper()
	s, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", version, 0, 0), fb.vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
