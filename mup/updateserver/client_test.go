package updateserver_test

import (
	"crypto/rand"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/netconf"
)

// The client finds a device in the devices lists, with its module and
// namespace, and the devices of a category; an unknown device is
// ErrNoDevice.
func TestClientFindsDevices(t *testing.T) {
	fb := startFakeBridge(t)
	mod := fb.addModule("mup-device.jsonld", nil)
	other := fb.addModule("led-color.jsonld", nil)
	fb.addDevice(mod, "mup-1", 3)
	fb.addDevice(mod, "mup-2", 3)
	fb.addDevice(other, "led-1", 0)
	c := updateserver.NewClient(fb.session(t))

	dev, err := c.Device("mup-2")
	if err != nil {
		t.Fatal(err)
	}
	want := updateserver.DeviceEntry{UUID: "mup-2", Category: mod.Device.Category, Module: mod.Name, Namespace: mod.Namespace}
	if !reflect.DeepEqual(*dev, want) {
		t.Errorf("device %+v, want %+v", *dev, want)
	}
	if _, err := c.Device("mup-9"); !errors.Is(err, updateserver.ErrNoDevice) {
		t.Errorf("unknown device: %v", err)
	}
	uuids, err := c.DevicesOfCategory(mod.Device.Category)
	slices.Sort(uuids)
	if err != nil || !slices.Equal(uuids, []string{"mup-1", "mup-2"}) {
		t.Errorf("devices of %s: %v %v", mod.Device.Category, uuids, err)
	}
	if uuids, err := c.DevicesOfCategory(`no <such> & "category"`); err != nil || len(uuids) != 0 {
		t.Errorf("devices of a missing category: %v %v", uuids, err)
	}
	text, err := c.Schema(mod.Name)
	if err != nil || text != mod.Text {
		t.Errorf("schema of %s: %v, %d bytes (want %d)", mod.Name, err, len(text), len(mod.Text))
	}
	var rpcErr *updateserver.RPCError
	if _, err := c.Schema("no-such-module"); !errors.As(err, &rpcErr) || rpcErr.Tag != netconf.TagInvalidValue {
		t.Errorf("schema of a missing module: %v", err)
	}
}

// Values go out escaped and come back unescaped, whatever they hold: the
// server sees exactly the input, and the client reads exactly the outputs,
// in order.
func TestClientEscapesValues(t *testing.T) {
	fb := startFakeBridge(t)
	mod := fb.addModule("mup-device.jsonld", nil)
	hostile := `a<b>&"c'd]]>e</uuidInput><x/>`
	dev := fb.addDevice(mod, hostile, 3) // registered directly: the bridge would refuse such a uuid
	c := updateserver.NewClient(fb.session(t))
	out, err := c.Call(mod.Namespace, "getDeviceToken", updateserver.Leaf{Name: "uuidInput", Value: hostile})
	if err != nil {
		t.Fatal(err)
	}
	if got := dev.lastInput["uuidInput"]; got != hostile || len(dev.lastInput) != 1 {
		t.Errorf("the server received %q", dev.lastInput)
	}
	tok, err := mup.DecodeToken(out.Values())
	if out.Retval != mup.StateOK || err != nil || tok.UUID != hostile || tok.Version != 3 {
		t.Errorf("output %+v: %v", out, err)
	}
	var names []string
	for _, l := range out.Leaves {
		names = append(names, l.Name)
	}
	if want := []string{"output_1_Uuid", "output_2_Nonce", "output_3_Version"}; !slices.Equal(names, want) {
		t.Errorf("outputs %v, want %v in order", names, want)
	}
	// An input far larger than any MUP rpc's still goes through intact.
	big := make([]byte, 300<<10)
	rand.Read(big)
	value := strings.ToValidUTF8(string(big), "?")
	value = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0xfffd || r == 0xfffe || r == 0xffff {
			// XML 1.0 has no control characters, nor U+FFFE and U+FFFF
			// (§2.2 Char): encoding/xml writes those as U+FFFD, and about
			// one run in 30 drew one.
			return 'x'
		}
		return r
	}, value)
	if _, err := c.Call(mod.Namespace, "sendFirmwareImage", updateserver.Leaf{Name: "uuidInput", Value: hostile}, updateserver.Leaf{Name: "input_1_ImageDigest", Value: value}); err != nil {
		t.Fatal(err)
	}
	if got := dev.lastInput["input_1_ImageDigest"]; got != value {
		t.Errorf("a %d-byte input arrived as %d bytes", len(value), len(got))
	}
}

// An <rpc-error> is an *RPCError that names the operation, its tag, app
// tag and message.
func TestClientReportsRPCErrors(t *testing.T) {
	fb := startFakeBridge(t)
	mod := fb.addModule("mup-device.jsonld", nil)
	dev := fb.addDevice(mod, "mup-1", 3)
	dev.failWith["getDeviceToken"] = &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-timeout",
		Message: "the device did not answer <in time> & gave up"}
	c := updateserver.NewClient(fb.session(t))
	_, err := c.Call(mod.Namespace, "getDeviceToken", updateserver.Leaf{Name: "uuidInput", Value: "mup-1"})
	var rpcErr *updateserver.RPCError
	if !errors.As(err, &rpcErr) {
		t.Fatalf("want an *RPCError, got %T %v", err, err)
	}
	want := updateserver.RPCError{Operation: "getDeviceToken", Type: "application", Tag: "operation-failed", AppTag: "device-timeout",
		Message: "the device did not answer <in time> & gave up"}
	if *rpcErr != want {
		t.Errorf("rpc-error %+v, want %+v", *rpcErr, want)
	}
	for _, part := range []string{"getDeviceToken", "operation-failed", "device-timeout", "the device did not answer <in time> & gave up"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%q does not name %q", err, part)
		}
	}
	// An rpc the module does not have: the server's own rpc-error.
	if _, err := c.Call(mod.Namespace, "noSuchRpc"); !errors.As(err, &rpcErr) || rpcErr.Tag != netconf.TagOperationNotSupported {
		t.Errorf("unknown rpc: %v", err)
	}
}
