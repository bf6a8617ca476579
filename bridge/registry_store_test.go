package bridge_test

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
)

// registryState is the bridge's <get> of its registry container.
func registryState(t *testing.T, b *bridge.Bridge) string {
	t.Helper()
	reply, re := exec1(t, session(t, b.NetconfAddr()), `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"><registry/></bridge></filter></get>`)
	if re != nil {
		t.Fatal(re)
	}
	return reply
}

// Shapes have a cap (issue 12: 200 distinct 250 KB shapes took 1 GB):
// a description of a new shape beyond --max-shapes is refused with
// ERROR naming the limit; a device of a registered shape is still
// accepted; a device that changes its shape frees the old one; after a
// restart the counts, and the cap, are the same.
func TestShapeLimits(t *testing.T) {
	dir := t.TempDir()
	limits := func(c *bridge.Config) { c.MaxShapes = 2 }
	b := startBridge(t, dir, limits)
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	device(t, b.BrokerURL(), "rgb-lamp.jsonld", "rgb-1", client.MQTT311)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := bootstrapOnce(t, ctx, b.BrokerURL(), "relay-1", desc(t, "relay-sensors.jsonld"))
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "new device shape refused") || !strings.Contains(err.Error(), "--max-shapes 2") {
		t.Fatalf("a third shape: %v, want ERROR naming --max-shapes", err)
	}
	if _, ok := b.ModuleOf("relay-1"); ok {
		t.Fatal("relay-1 registered")
	}
	device(t, b.BrokerURL(), "led-color-same-shape.jsonld", "led-2", client.MQTT311)
	mustContain(t, registryState(t, b), "<devices>3</devices>", "<shapes>2</shapes>", "<max-shapes>2</max-shapes>", "<refused-shapes>1</refused-shapes>")
	b.Close()

	b = startBridge(t, dir, limits)
	defer b.Close()
	if got := strings.Join(b.Devices(), ","); got != "led-1,led-2,rgb-1" {
		t.Fatalf("devices after restart: %s", got)
	}
	mustContain(t, registryState(t, b), "<devices>3</devices>", "<shapes>2</shapes>")
	err = bootstrapOnce(t, ctx, b.BrokerURL(), "relay-1", desc(t, "relay-sensors.jsonld"))
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "--max-shapes 2") {
		t.Fatalf("a third shape after restart: %v", err)
	}
	// rgb-1 is the only device of its shape: it may take a new one.
	if err := bootstrapOnce(t, ctx, b.BrokerURL(), "rgb-1", desc(t, "relay-sensors.jsonld")); err != nil {
		t.Fatalf("rgb-1 changing its shape: %v", err)
	}
	relay, _ := b.ModuleOf("rgb-1")
	if !strings.Contains(relay, "relay") {
		t.Errorf("rgb-1's module: %s", relay)
	}
	mustContain(t, registryState(t, b), "<devices>3</devices>", "<shapes>2</shapes>")
}

// The descriptions of all shapes have a cap too (--max-shape-bytes).
func TestShapeBytesLimit(t *testing.T) {
	led := desc(t, "led-color.jsonld")
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MaxShapeBytes = len(led) + 100 })
	defer b.Close()
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := bootstrapOnce(t, ctx, b.BrokerURL(), "rgb-1", desc(t, "rgb-lamp.jsonld"))
	if !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "--max-shape-bytes") {
		t.Fatalf("a second shape over the bytes: %v", err)
	}
	device(t, b.BrokerURL(), "led-color-same-shape.jsonld", "led-2", client.MQTT311)
}

// A snapshot or journal the bridge cannot read stops it, naming the file,
// which it leaves as it is.
func TestCorruptRegistryStopsTheBridge(t *testing.T) {
	for _, tc := range []struct{ file, content string }{
		{"registry.snapshot.json", "not json"},
		{"registry.snapshot.json", `{"version": 2, "devices": []}`},
		{"registry.snapshot.json", "\x00\x00\x00\x00"},
		{"registry.journal", "garbage\n"},
		{"registry.journal", `{"version":3,"generation":1}` + "\n" + `{"put":[{"uuid":"x","shape":"nope"}]}` + "\n"},
		{"registry.journal", `{"version":3,"generation":1}` + "\nnot a record\n" + `{"put":[]}` + "\n"},
	} {
		dir := t.TempDir()
		b := startBridge(t, dir, nil)
		device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
		b.Close()
		file := filepath.Join(dir, tc.file)
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		b, err := bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir, AdminPassword: adminPassword,
			Logger: testenv.Logger(), Out: io.Discard})
		cancel()
		if err == nil {
			b.Close()
			t.Errorf("%s %q: the bridge started", tc.file, tc.content)
			continue
		}
		if !strings.Contains(err.Error(), file) {
			t.Errorf("%s %q: %v does not name the file", tc.file, tc.content, err)
		}
		if data, _ := os.ReadFile(file); string(data) != tc.content {
			t.Errorf("%s %q: the file was changed to %q", tc.file, tc.content, data)
		}
	}
}

// A registry.json of the bridge before the snapshot and journal is
// imported at start: its devices are served, and it is kept as
// registry.json.imported.
func TestRegistryJSONIsImported(t *testing.T) {
	dir := t.TempDir()
	led := desc(t, "led-color.jsonld")
	dev, err := ontology.Parse(led)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	old, _ := json.Marshal(map[string]any{"version": 2, "descriptions": map[string]string{dev.Shape(): string(led)},
		"devices": []map[string]any{{"uuid": "led-1", "registeredAt": at, "shape": dev.Shape(), "firmware": "4"},
			{"uuid": "led-2", "registeredAt": at, "shape": dev.Shape()}}})
	legacy := filepath.Join(dir, "registry.json")
	if err := os.WriteFile(legacy, old, 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, dir, nil)
	defer b.Close()
	if got := strings.Join(b.Devices(), ","); got != "led-1,led-2" {
		t.Fatalf("devices: %s", got)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("registry.json is still there: %v", err)
	}
	if kept, _ := os.ReadFile(legacy + ".imported"); string(kept) != string(old) {
		t.Error("registry.json.imported is not the old registry")
	}
	reply, re := exec1(t, session(t, b.NetconfAddr()), `<get/>`)
	if re != nil {
		t.Fatal(re)
	}
	mustContain(t, reply, "<uuid>led-1</uuid>", "<firmware-version>4</firmware-version>", "<registered-at>2026-11-30T12:00:00Z</registered-at>")
}

// One bridge per data directory: a second one stops at once, saying so;
// myno acl export still reads the registry of the running one.
func TestOneBridgePerDataDirectory(t *testing.T) {
	dir := t.TempDir()
	b := startBridge(t, dir, nil)
	defer b.Close()
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	second, err := bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir, AdminPassword: adminPassword,
		Logger: testenv.Logger(), Out: io.Discard})
	if err == nil {
		second.Close()
		t.Fatal("a second bridge started on the same data directory")
	}
	// It names the process that holds the directory (issue 16).
	if !strings.Contains(err.Error(), fmt.Sprintf("data directory %s in use by pid %d", dir, os.Getpid())) {
		t.Errorf("second bridge: %v", err)
	}
	devs, err := bridge.SavedDevices(dir, nil, 0)
	if err != nil {
		t.Fatalf("acl export's read of a running bridge's registry: %v", err)
	}
	if topics, ok := devs.DeviceTopics("led-1"); !ok || len(topics.Commands) == 0 {
		t.Errorf("led-1's topics: %+v %v", topics, ok)
	}
}

// The bridge's state in <get>, registry and pending descriptions
// included, is valid data of its module (yanglint).
func TestBridgeStatePassesYanglint(t *testing.T) {
	lint := testenv.Tool(t, "yanglint")
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	s := session(t, b.NetconfAddr())
	reply, re := exec1(t, s, `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>myno-bridge</identifier></get-schema>`)
	if re != nil {
		t.Fatal(re)
	}
	dir := t.TempDir()
	module := filepath.Join(dir, "myno-bridge.yang")
	if err := os.WriteFile(module, []byte(schemaText(t, reply)), 0o644); err != nil {
		t.Fatal(err)
	}
	reply, re = exec1(t, s, `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"/></filter></get>`)
	if re != nil {
		t.Fatal(re)
	}
	var r struct {
		Data struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal([]byte(reply), &r); err != nil {
		t.Fatal(err)
	}
	mustContain(t, string(r.Data.Inner), "<registry>", "<pending-descriptions>")
	data := filepath.Join(dir, "get.xml")
	if err := os.WriteFile(data, r.Data.Inner, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(lint, "-t", "get", module, data).CombinedOutput(); err != nil {
		t.Errorf("yanglint: %v\n%s\n%s", err, out, r.Data.Inner)
	}
}
