package updateserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/netconf"
)

// update runs one update of dev to version with a fresh image, on a
// session of its own.
func (fb *fakeBridge) update(t *testing.T, dev *fakeDevice, version uint32, flow updateserver.FlowControl) (*updateserver.Result, error) {
	t.Helper()
	image := make([]byte, 20000)
	rand.Read(image)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return updateserver.Update(ctx, updateserver.UpdateConfig{UUID: dev.uuid, VendorSigned: fb.signed(t, image, version), Image: image,
		ServerKey: fb.serverKey, NETCONF: fb.session(t), MQTTURL: fb.brokerURL, Flow: flow, RebootWait: 5 * time.Second})
}

// An update against the fake bridge, with both flow controls: the rpcs in
// MUP's order, the image in 600-byte slices, the new version.
func TestUpdate(t *testing.T) {
	for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
		t.Run(string(flow), func(t *testing.T) {
			fb := startFakeBridge(t)
			dev := fb.addDevice(fb.addModule("mup-device.jsonld", nil), "mup-1", 3)
			res, err := fb.update(t, dev, 4, flow)
			if err != nil {
				t.Fatal(err)
			}
			if res.Version != 4 || res.Slices != 34 || dev.version() != 4 {
				t.Errorf("result %+v, device at %d", res, dev.version())
			}
			want := []string{"getDeviceToken", "sendExtendedManifest", "sendFirmwareImage", "getDeviceToken"}
			if got := dev.served(); !slices.Equal(got, want) {
				t.Errorf("rpcs %v, want %v", got, want)
			}
		})
	}
}

// An rpc-error from the bridge fails the update at that step, and the
// error names the tag and the message.
func TestUpdateReportsRPCError(t *testing.T) {
	fb := startFakeBridge(t)
	dev := fb.addDevice(fb.addModule("mup-device.jsonld", nil), "mup-1", 3)
	dev.failWith["sendExtendedManifest"] = &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed, AppTag: "device-timeout",
		Message: "the device did not answer"}
	_, err := fb.update(t, dev, 4, updateserver.Windowed)
	var ue *updateserver.UpdateError
	var rpcErr *updateserver.RPCError
	if !errors.As(err, &ue) || ue.Step != "sendExtendedManifest" || !errors.As(err, &rpcErr) || rpcErr.Tag != netconf.TagOperationFailed {
		t.Fatalf("update: %v", err)
	}
	for _, part := range []string{"sendExtendedManifest", "operation-failed", "device-timeout", "the device did not answer"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%q does not name %q", err, part)
		}
	}
	if dev.version() != 3 {
		t.Errorf("device at %d", dev.version())
	}
}

// A refusal by the device is its state code, at its step.
func TestUpdateRefusedWithStateCode(t *testing.T) {
	fb := startFakeBridge(t)
	dev := fb.addDevice(fb.addModule("mup-device.jsonld", nil), "mup-1", 5)
	res, err := fb.update(t, dev, 4, updateserver.Windowed) // a downgrade
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "sendExtendedManifest" || ue.State != mup.StateInvalidVersion || res.State != mup.StateInvalidVersion {
		t.Fatalf("downgrade: %+v %v", res, err)
	}
	if !strings.Contains(err.Error(), mup.StateInvalidVersion) {
		t.Errorf("%q does not name the state", err)
	}
}

// A device the bridge does not know, or a uuid no device can have, fails
// before any rpc reaches a device.
func TestUpdateOfUnknownDevice(t *testing.T) {
	fb := startFakeBridge(t)
	dev := fb.addDevice(fb.addModule("mup-device.jsonld", nil), "mup-1", 3)
	for _, uuid := range []string{"mup-2", "mup-1</uuid>", "a/b", ""} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: uuid, VendorSigned: fb.signed(t, []byte("x"), 4), Image: []byte("x"),
			ServerKey: fb.serverKey, NETCONF: fb.session(t), MQTTURL: fb.brokerURL})
		cancel()
		var ue *updateserver.UpdateError
		if !errors.As(err, &ue) || ue.Step != "find device" {
			t.Errorf("%q: %v", uuid, err)
		}
	}
	if got := dev.served(); len(got) != 0 {
		t.Errorf("rpcs reached a device: %v", got)
	}
}
