package systemtest_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// Virtual devices that behave like MYNO's simulators (issue 13): the
// description with the UUID filled in, the whole of it in one message, on
// MYNO's yang/config. The bridge registers each; devices of one shape share
// one module whichever way they published; and a device whose filled-in
// command topic ends in its UUID hears its commands there (today's main
// sent them to actuator/led/<uuid>/<uuid>). On the embedded broker and on
// Mosquitto.
func TestMYNOLikeDevices(t *testing.T) {
	for _, onMosquitto := range []bool{false, true} {
		t.Run(map[bool]string{false: "embedded", true: "mosquitto"}[onMosquitto], func(t *testing.T) {
			url := ""
			if onMosquitto {
				url = testenv.StartMosquitto(t).URL()
			}
			b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: t.TempDir(),
				AdminPassword: "pw", RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, MQTTURL: url,
				Enrolment: access.EnrolOpen, LegacyBootstrapTopics: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			if url == "" {
				url = b.BrokerURL()
			}
			desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
			if err != nil {
				t.Fatal(err)
			}
			specs := []struct {
				uuid string
				cfg  devices.Config
			}{
				{"SIMULATOR1-8A12-4F4F-8F69", devices.Config{FillUUID: true, ChunkSize: -1, LegacyTopic: true}},
				{"SIMULATOR2-5A68-4F4F-8F69", devices.Config{FillUUID: true, ChunkSize: -1, Protocol: client.MQTT311}},
				{"template-led-3", devices.Config{}},
			}
			devs := map[string]*devices.Device{}
			for _, s := range specs {
				cfg := s.cfg
				cfg.Description, cfg.UUID, cfg.BrokerURL, cfg.Logger, cfg.Credentials = desc, s.uuid, url, testenv.Logger(), deviceCreds(s.uuid)
				d, err := devices.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				if err := d.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(d.Close)
				if err := d.Bootstrap(ctx); err != nil {
					t.Fatalf("%s: %v", s.uuid, err)
				}
				cancel()
				devs[s.uuid] = d
			}
			modules := map[string]bool{}
			for _, s := range specs {
				m, ok := b.ModuleOf(s.uuid)
				if !ok {
					t.Fatalf("%s not registered", s.uuid)
				}
				modules[m] = true
			}
			if len(modules) != 1 {
				t.Fatalf("%d modules for one shape: %v", len(modules), modules)
			}
			nc := updateserver.NewClient(dialBridge(t, b))
			for _, s := range specs {
				dev, err := nc.Device(s.uuid)
				if err != nil {
					t.Fatal(err)
				}
				out, err := nc.Call(dev.Namespace, "ledOn", updateserver.Leaf{Name: "uuidInput", Value: s.uuid})
				if err != nil {
					t.Fatalf("%s: ledOn: %v", s.uuid, err)
				}
				if out.Retval == "" || devs[s.uuid].Commands.Load() == 0 {
					t.Fatalf("%s: retval %q, commands handled %d", s.uuid, out.Retval, devs[s.uuid].Commands.Load())
				}
			}
		})
	}
}

// updateProgress is what the device knows: nothing while no update runs,
// however long telemetry runs; during a transfer the real percentage from
// 0 to 100, at most every 5 points; then nothing more (the bridge keeps the
// last value).
func TestUpdateProgressIsReal(t *testing.T) {
	m := testenv.StartMosquitto(t)
	capture := testenv.WatchAll(t, m.URL())
	b := startBridge(t, m.URL(), nil)
	vendorKey, _ := mup.GenerateKey()
	serverKey, _ := mup.GenerateKey()
	dev := startMUPDeviceWith(t, "mup-device.jsonld", devices.Config{UUID: "mup-1", BrokerURL: m.URL(), TelemetryInterval: 5 * time.Millisecond},
		devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Serve runs telemetry; the test owns it and waits for it at the end.
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = dev.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-served })
	const progressTopic = "yang/update/progress/mup-1"
	sensorTopic := "sensor/temperature/mup-1"
	testenv.WaitFor(t, "50 temperature readings", func() bool { return len(capture.On(sensorTopic)) >= 50 })
	if n := len(capture.On(progressTopic)); n != 0 {
		t.Fatalf("%d updateProgress readings with no update running", n)
	}
	image := make([]byte, 87800)
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: signed, Image: image, ServerKey: serverKey,
		NETCONF: dialBridge(t, b), MQTTURL: m.URL(), Flow: updateserver.Windowed}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "updateProgress 100", func() bool {
		p := capture.On(progressTopic)
		return len(p) > 0 && string(p[len(p)-1]) == "100"
	})
	var values []int
	for _, p := range capture.On(progressTopic) {
		v, err := strconv.Atoi(string(p))
		if err != nil {
			t.Fatalf("updateProgress %q", p)
		}
		values = append(values, v)
	}
	if values[0] != 0 || len(values) > 22 {
		t.Fatalf("updateProgress %v: want 0 first, at most 22 values", values)
	}
	for i := 1; i < len(values); i++ {
		if values[i] < values[i-1]+5 && values[i] != 100 {
			t.Fatalf("updateProgress %v: steps under 5 points", values)
		}
	}
	after := len(capture.On(sensorTopic))
	testenv.WaitFor(t, "50 more temperature readings", func() bool { return len(capture.On(sensorTopic)) >= after+50 })
	if n := len(capture.On(progressTopic)); n != len(values) {
		t.Fatalf("updateProgress published %d more times after the update", n-len(values))
	}
}
