package updateserver_test

import (
	"context"
	"crypto/rand"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/wire"
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
	_, err := updateserver.Update(context.Background(), updateserver.UpdateConfig{UUID: "mup-1", Image: []byte("x")})
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.Step != "find device" {
		t.Errorf("without a session: %v", err)
	}
	if got := dev.served(); len(got) != 0 {
		t.Errorf("rpcs reached a device: %v", got)
	}
}

// The slices go to the topic the device's module names for
// sendFirmwareImage (its description's input data point), not to a fixed
// one: a device whose description uses another topic is updated.
func TestUpdateUsesTheModulesFirmwareTopic(t *testing.T) {
	fb := startFakeBridge(t)
	mod := fb.addModule("mup-device-firmware-topic.jsonld", nil)
	dev := fb.addDevice(mod, "mup-1", 3)
	if dev.topic != "firmware/mup-1/slices" {
		t.Fatalf("the description's topic is %q", dev.topic)
	}
	res, err := fb.update(t, dev, 4, updateserver.Windowed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Topic != dev.topic || res.Version != 4 || dev.version() != 4 {
		t.Errorf("result %+v, device at %d", res, dev.version())
	}
}

// withoutLines drops the lines of a module's source that contain s.
func withoutLines(s string) func(string) string {
	return func(text string) string {
		var keep []string
		for _, line := range strings.Split(text, "\n") {
			if !strings.Contains(line, s) {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "\n")
	}
}

// withoutDeclaration drops the extension statement from a module's source
// and keeps its uses.
func withoutDeclaration(text string) string {
	return regexp.MustCompile(`(?s)\n  extension mqtt-input-topic \{.*?\n  \}\n`).ReplaceAllLiteralString(text, "\n")
}

// A module without the firmware topic fails the update before any rpc
// reaches the device, and the error names the module; so does a module
// whose topic is one a device may not use.
func TestUpdateWithoutUsableFirmwareTopic(t *testing.T) {
	for name, tc := range map[string]struct {
		source func(string) string
		want   error
	}{
		"no topic":       {source: withoutLines(":mqtt-input-topic "), want: updateserver.ErrNoFirmwareTopic},
		"not declared":   {source: withoutDeclaration, want: updateserver.ErrNoFirmwareTopic},
		"reserved topic": {source: func(s string) string { return strings.Replace(s, `"yang/update/image/%s"`, `"yang/config/%s"`, 1) }, want: wire.ErrTopic},
		"wildcard topic": {source: func(s string) string { return strings.Replace(s, `"yang/update/image/%s"`, `"fw/#"`, 1) }, want: wire.ErrTopic},
	} {
		t.Run(name, func(t *testing.T) {
			fb := startFakeBridge(t)
			mod := fb.addModule("mup-device.jsonld", tc.source)
			dev := fb.addDevice(mod, "mup-1", 3)
			_, err := fb.update(t, dev, 4, updateserver.Windowed)
			var ue *updateserver.UpdateError
			if !errors.As(err, &ue) || ue.Step != "firmware topic" || !errors.Is(err, tc.want) {
				t.Fatalf("update: %v", err)
			}
			if !strings.Contains(err.Error(), mod.Name) {
				t.Errorf("%q does not name module %s", err, mod.Name)
			}
			if got := dev.served(); len(got) != 0 {
				t.Errorf("rpcs reached the device: %v", got)
			}
		})
	}
}

// A campaign fetches each module once, however many of its devices it
// updates in parallel, and each device gets its own module's topic.
func TestCampaignFetchesEachModuleOnce(t *testing.T) {
	fb := startFakeBridge(t)
	plain := fb.addModule("mup-device.jsonld", nil)
	custom := fb.addModule("mup-device-firmware-topic.jsonld", nil)
	devs := []*fakeDevice{fb.addDevice(plain, "mup-1", 3), fb.addDevice(plain, "mup-2", 3), fb.addDevice(custom, "mup-3", 3),
		fb.addDevice(plain, "mup-4", 3), fb.addDevice(custom, "mup-5", 3)}
	var uuids []string
	for _, d := range devs {
		uuids = append(uuids, d.uuid)
	}
	image := make([]byte, 5000)
	rand.Read(image)
	var schemaRequests atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := updateserver.Campaign(ctx, updateserver.CampaignConfig{Devices: uuids, Parallel: len(uuids),
		Dial: func(context.Context) (*gonetconf.Session, error) { return fb.dial(&schemaRequests) },
		Update: updateserver.UpdateConfig{VendorSigned: fb.signed(t, image, 4), Image: image, ServerKey: fb.serverKey,
			MQTTURL: fb.brokerURL, Flow: updateserver.Windowed, RebootWait: 5 * time.Second}})
	for i, r := range results {
		if r.Err != nil || r.Result.Version != 4 || r.Result.Topic != devs[i].topic || devs[i].version() != 4 {
			t.Errorf("%s: %+v %v", r.UUID, r.Result, r.Err)
		}
	}
	if n := schemaRequests.Load(); n != 2 {
		t.Errorf("%d get-schema requests for 2 modules", n)
	}
}
