package bridge_test

import (
	"context"
	"errors"
	"io"
	"os"

	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// After a bridge restart the registry is back: every device and its rpcs,
// without the devices bootstrapping again.
func TestRegistrySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, nil)
	mqttAddr := strings.TrimPrefix(b.BrokerURL(), "mqtt://")
	led := device(t, b.BrokerURL(), "led-color.jsonld", "led-r", client.MQTT5)
	device(t, b.BrokerURL(), "rgb-lamp.jsonld", "rgb-r", client.MQTT311)
	device(t, b.BrokerURL(), "relay-sensors.jsonld", "relay-r", client.MQTT5)
	b.Close()

	b2 := startBridge(t, dir, func(c *bridge.Config) { c.MQTTListen = mqttAddr })
	defer b2.Close()
	if got := strings.Join(b2.Devices(), ","); got != "led-r,relay-r,rgb-r" {
		t.Fatalf("devices after restart: %s", got)
	}
	if !led.Registered.Load() {
		t.Fatal("device lost its registration")
	}
	// The devices reconnect to the restarted embedded broker by themselves.
	s := session(t, b2.NetconfAddr())
	waitAnswers(t, s, "led-r", "rgb-r", "relay-r")
	rpcs(t, s, "led-r", "rgb-r", "relay-r")
}

// Devices with the same shape share a module; delete removes the device
// and, with the last device, the module (open subscriptions then get
// netconf-capability-change, tested in package netconf).
func TestSharedModulesAndDelete(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	a := device(t, b.BrokerURL(), "led-color.jsonld", "led-a", client.MQTT5)
	c := device(t, b.BrokerURL(), "led-color-same-shape.jsonld", "led-c", client.MQTT311)
	ma, _ := b.ModuleOf("led-a")
	mc, _ := b.ModuleOf("led-c")
	if ma != mc {
		t.Fatalf("same shape, modules %s and %s", ma, mc)
	}
	s := session(t, b.NetconfAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if ans, err := a.Delete(ctx); err != nil || ans != "OK" {
		t.Fatalf("delete: %q %v", ans, err)
	}
	if _, ok := b.ModuleOf("led-a"); ok {
		t.Fatal("deleted device still registered")
	}
	reply, _ := exec1(t, s, `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>`+ma+`</identifier></get-schema>`)
	mustContain(t, reply, "module "+ma)
	if ans, err := a.Delete(ctx); err != nil || ans != "NOTFOUND" {
		t.Errorf("second delete: %q %v", ans, err)
	}
	if ans, err := c.Retrieve(ctx); err != nil || ans != "OK" {
		t.Errorf("retrieve: %q %v", ans, err)
	}
	if ans, err := c.Delete(ctx); err != nil || ans != "OK" {
		t.Fatalf("delete: %q %v", ans, err)
	}
	_, re := exec1(t, s, `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>`+ma+`</identifier></get-schema>`)
	if re == nil || re.Tag != "invalid-value" {
		t.Errorf("module of deleted devices still served: %v", re)
	}
	_, re = exec1(t, s, `<ledOn xmlns="`+namespace(t, "led-color.jsonld")+`"><uuidInput>led-c</uuidInput></ledOn>`)
	if re == nil || re.Tag != "operation-not-supported" {
		t.Errorf("rpc of a withdrawn module: %v", re)
	}
}

// The bridge on an external Mosquitto: rpcs work, and after Mosquitto
// restarts the bridge and the devices reconnect and rpcs work again.
func TestExternalMosquitto(t *testing.T) {
	m := testenv.StartMosquitto(t)
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MQTTURL = m.URL() })
	defer b.Close()
	device(t, m.URL(), "led-color.jsonld", "led-m", client.MQTT5)
	device(t, m.URL(), "rgb-lamp.jsonld", "rgb-m", client.MQTT311)
	device(t, m.URL(), "relay-sensors.jsonld", "relay-m", client.MQTT311)
	s := session(t, b.NetconfAddr())
	rpcs(t, s, "led-m", "rgb-m", "relay-m")
	m.Restart()
	// The bridge and every device reconnect by themselves (the 3.1.1 ones
	// through another client library): wait until each answers again.
	waitAnswers(t, s, "led-m", "rgb-m", "relay-m")
	rpcs(t, s, "led-m", "rgb-m", "relay-m")
}

// ncclient through the bridge: dispatch of a device rpc, get_schema, get.
func TestNcclientThroughTheBridge(t *testing.T) {
	python := testenv.DebianPython(t, "ncclient")
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	device(t, b.BrokerURL(), "led-color.jsonld", "led-nc", client.MQTT5)
	device(t, b.BrokerURL(), "rgb-lamp.jsonld", "rgb-nc", client.MQTT311)
	host, port := strings.Split(b.NetconfAddr(), ":")[0], strings.Split(b.NetconfAddr(), ":")[1]
	script := filepath.Join("testdata", "ncclient_bridge.py")
	cmd := exec.Command(python, script, host, port, "admin", adminPassword, namespace(t, "led-color.jsonld"), namespace(t, "rgb-lamp.jsonld"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ncclient: %v\n%s", err, out)
	}
	text := string(out)
	mustContain(t, text, "setColor: OK", "setRgb: OK", "bad colour: invalid-value", "schema: module myno-led-color-1-", "get: led-nc")
}

// waitAnswers waits until the LED, RGB and relay devices answer again
// after a restart.
func waitAnswers(t *testing.T, s *gonetconf.Session, led, rgb, relay string) {
	t.Helper()
	for _, op := range []string{
		`<ledOff xmlns="` + namespace(t, "led-color.jsonld") + `"><uuidInput>` + led + `</uuidInput></ledOff>`,
		`<lampOff xmlns="` + namespace(t, "rgb-lamp.jsonld") + `"><uuidInput>` + rgb + `</uuidInput></lampOff>`,
		`<relayOff xmlns="` + namespace(t, "relay-sensors.jsonld") + `"><uuidInput>` + relay + `</uuidInput></relayOff>`,
	} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, re := exec1(t, s, op)
			if re == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no answer after the restart: %v", re)
			}
		}
	}
}

// A device that bootstraps again with the same description (it rebooted)
// keeps its module: the module is not withdrawn and its rpcs still work.
func TestSameDeviceBootstrapsAgain(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	a := device(t, b.BrokerURL(), "led-color.jsonld", "led-a", client.MQTT5)
	before, _ := b.ModuleOf("led-a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	after, ok := b.ModuleOf("led-a")
	if !ok || after != before {
		t.Fatalf("module after a second bootstrap: %q %v, was %q", after, ok, before)
	}
	s := session(t, b.NetconfAddr())
	reply, re := exec1(t, s, `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>`+after+`</identifier></get-schema>`)
	if re != nil {
		t.Fatalf("module withdrawn: %v", re)
	}
	mustContain(t, reply, "module "+after)
	reply, re = exec1(t, s, `<ledOn xmlns="`+namespace(t, "led-color.jsonld")+`"><uuidInput>led-a</uuidInput></ledOn>`)
	if re != nil {
		t.Fatalf("rpc after a second bootstrap: %v", re)
	}
	mustContain(t, reply, "retval")
}

// Nothing lost silently (issue 12): a saved device that no longer passes
// the start-up checks is kept, shown in <get> as invalid, and written
// back by the next save; it goes when it registers again. A registry file
// that is not one the bridge wrote stops the bridge, naming the file.
func TestRegistryKeepsWhatItCannotRestore(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, nil)
	big := device(t, b.BrokerURL(), "mup-device.jsonld", "big-1", client.MQTT5)
	big.Close()
	b.Close()

	// Restart with a limit the saved description exceeds.
	small := func(c *bridge.Config) { c.MaxDescriptionBytes = 20000 }
	b = startBridge(t, dir, small)
	if got := b.Devices(); len(got) != 0 {
		t.Fatalf("restored %v with a description over the limit", got)
	}
	s := session(t, b.NetconfAddr())
	reply, rerr := exec1(t, s, `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"><invalid-device/></bridge></filter></get>`)
	if rerr != nil {
		t.Fatal(rerr)
	}
	mustContain(t, reply, "<uuid>big-1</uuid>", "<reason>", "<registered-at>")
	// Another registration saves the registry: big-1 is still in it.
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	b.Close()
	if saved := bridge.SavedUUIDs(t, dir); saved != "big-1,led-1" {
		t.Fatalf("saved devices: %s, want big-1 kept", saved)
	}
	// With the limit back, it is served again, and no longer invalid.
	b = startBridge(t, dir, nil)
	defer b.Close()
	if _, ok := b.ModuleOf("big-1"); !ok {
		t.Fatalf("big-1 not restored: %v", b.Devices())
	}
	reply, _ = exec1(t, session(t, b.NetconfAddr()), `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"/></filter></get>`)
	if strings.Contains(reply, "invalid-device") {
		t.Errorf("still invalid:\n%s", reply)
	}
}

// A registry.json (the format before the snapshot and journal) that the
// bridge did not write stops the import, naming the file; nothing is
// written, so the next start imports the file once it is fixed.
func TestRegistryNotWrittenByTheBridgeStopsIt(t *testing.T) {
	for _, content := range []string{"null", "{}", `{"version": 2, "devices": [{"uuid": "x", "shape": "nope"}]}`, "not json"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "registry.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		b, err := bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir, AdminPassword: adminPassword,
			Logger: testenv.Logger(), Out: io.Discard})
		cancel()
		if err == nil {
			b.Close()
			t.Errorf("%s: the bridge started", content)
			continue
		}
		if !strings.Contains(err.Error(), filepath.Join(dir, "registry.json")) {
			t.Errorf("%s: %v does not name the file", content, err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "registry.json")); string(data) != content {
			t.Errorf("%s: the file was changed to %q", content, data)
		}
		for _, f := range []string{"registry.snapshot.json", "registry.journal"} {
			if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
				t.Errorf("%s: %s written (%v)", content, f, err)
			}
		}
	}
}

// A registration that cannot be saved is not taken (issue 12: devices
// answered "ERROR;no space left on device" were still served): the
// device is refused with the cause, and NETCONF does not serve it.
func TestRegistrationNotSavedIsNotServed(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, nil)
	defer b.Close()
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	// The registry journal's place is taken by a directory: the next save
	// can neither append to it nor, compacting, rename a new journal over
	// it (file permissions would not stop root).
	file := filepath.Join(dir, "registry.journal")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(file, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := bootstrapOnce(t, ctx, b.BrokerURL(), "relay-1", desc(t, "relay-sensors.jsonld"))
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "not saved") {
		t.Fatalf("bootstrap while the registry cannot be saved: %v", err)
	}
	if _, ok := b.ModuleOf("relay-1"); ok {
		t.Error("relay-1 is served although its registration was not saved")
	}
	reply, _ := exec1(t, session(t, b.NetconfAddr()), `<get/>`)
	if strings.Contains(reply, "<uuid>relay-1</uuid>") {
		t.Error("relay-1 is in <get>")
	}
	// The devices registered before are still served.
	if _, ok := b.ModuleOf("led-1"); !ok {
		t.Fatal("led-1 lost")
	}
}
