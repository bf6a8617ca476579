package access_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
)

// devicesMap is a registry of device topics for the policy.
type devicesMap struct {
	mu sync.Mutex
	m  map[string]access.DeviceTopics
}

func (d *devicesMap) DeviceTopics(uuid string) (access.DeviceTopics, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.m[uuid]
	return t, ok
}

func (d *devicesMap) ImageTopics() []access.ImageTopic {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []access.ImageTopic
	for _, t := range d.m {
		out = append(out, t.Images...)
	}
	return out
}

func (d *devicesMap) set(uuid string, t access.DeviceTopics) {
	d.mu.Lock()
	d.m[uuid] = t
	d.mu.Unlock()
}

// A Mosquitto configured only by ExportDynsec admits exactly the store's
// identities, each to its rules, and a bridge identity changes a device's
// and the Update Servers' roles while it runs.
func TestDynsecOnMosquitto(t *testing.T) {
	dir := t.TempDir()
	store, err := access.OpenStore(filepath.Join(dir, "creds.json"))
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for name, role := range map[string]access.Role{"br": access.RoleBridge, "dev1": access.RoleDevice, "dev2": access.RoleDevice, "upd": access.RoleUpdateServer} {
		if tokens[name], err = store.Add(name, role, access.AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	devs := &devicesMap{m: map[string]access.DeviceTopics{
		"dev1": {Commands: []string{"actuator/led/dev1"}, Images: coseImages("fw/dev1"), Readings: []string{"sensor/t/dev1"}},
	}}
	policy := access.Policy{Devices: devs}
	cfg, err := access.ExportDynsec(access.Export{Credentials: store.List(), Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "dynamic-security.json")
	if err := os.WriteFile(file, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMosquittoWith(t, testenv.MosquittoConfig{DynsecFile: file})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(name, password string, on func(client.Message)) (client.Transport, error) {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		return client.Dial(dctx, client.Config{URL: m.URL(), ClientID: name, Protocol: client.MQTT5, Logger: testenv.Logger(),
			Credentials: client.Credentials{Username: name, Password: password}, OnMessage: on})
	}
	if _, err := dial("dev1", "wrong", nil); err == nil {
		t.Fatal("a wrong token admitted")
	}
	if _, err := dial("", "", nil); err == nil {
		t.Fatal("an anonymous client admitted")
	}
	// The bridge sees everything and sends the plugin's commands.
	var mu sync.Mutex
	var seen []string
	var results [][]access.DynsecResult
	br, err := dial("br", tokens["br"], func(msg client.Message) {
		mu.Lock()
		defer mu.Unlock()
		if msg.Topic == access.DynsecResponseTopic {
			r, err := access.DecodeDynsecResponse(msg.Payload)
			if err != nil {
				t.Error(err)
			}
			results = append(results, r)
			return
		}
		seen = append(seen, msg.Topic+" "+string(msg.Payload))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close(ctx)
	for _, f := range []string{"#", access.DynsecResponseTopic} {
		if err := br.Subscribe(ctx, f); err != nil {
			t.Fatalf("bridge subscribe %s: %v", f, err)
		}
	}
	saw := func(what string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			for _, s := range seen {
				if s == what {
					return true
				}
			}
			return false
		}
	}
	dev1, err := dial("dev1", tokens["dev1"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dev1.Close(ctx)
	if err := dev1.Subscribe(ctx, "actuator/led/dev1"); err != nil {
		t.Errorf("dev1 subscribe to its command topic: %v", err)
	}
	for _, f := range []string{"actuator/led/dev2", "#", "actuator/led2/dev1"} {
		if err := dev1.Subscribe(ctx, f); err == nil {
			t.Errorf("dev1 subscribe to %s granted", f)
		}
	}
	// A publish the plugin denies is dropped (Mosquitto 2.0.11 acks it
	// anyway): the marker after it shows it was handled.
	_ = dev1.Publish(ctx, client.Message{Topic: "response/dev2", Payload: []byte("forged")}, 1)
	_ = dev1.Publish(ctx, client.Message{Topic: "yang/update/server-cert", Payload: []byte("forged")}, 1)
	if err := dev1.Publish(ctx, client.Message{Topic: "sensor/t/dev1", Payload: []byte("21")}, 1); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "dev1's reading", saw("sensor/t/dev1 21"))
	if saw("response/dev2 forged")() || saw("yang/update/server-cert forged")() {
		t.Error("a forged message of dev1 was delivered")
	}

	// dev1's description changes; the bridge replaces its role, and the
	// Update Servers', in one request.
	devs.set("dev1", access.DeviceTopics{Commands: []string{"actuator/led2/dev1"}, Images: coseImages("fw2/dev1"), Readings: []string{"sensor/t/dev1"}})
	payload, err := access.EncodeDynsecRequest(append(policy.DynsecDeviceCommands("dev1"), policy.DynsecUpdateServerCommands()...))
	if err != nil {
		t.Fatal(err)
	}
	if err := br.Publish(ctx, client.Message{Topic: access.DynsecTopic, Payload: payload}, 1); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the plugin's answer", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(results) > 0
	})
	mu.Lock()
	for _, r := range results[0] {
		// Deleting a role that does not exist yet is the only error allowed.
		if r.Error != "" && !(r.Command == "deleteRole" && strings.Contains(r.Error, "not found")) {
			t.Errorf("%s: %s", r.Command, r.Error)
		}
	}
	mu.Unlock()
	// The plugin disconnects the clients of a role it changes (Mosquitto
	// 2.0: "disconnected by administrative action"); dev1 reconnects
	// with its new rules.
	testenv.WaitFor(t, "dev1 to subscribe to its new command topic", func() bool {
		return dev1.Subscribe(ctx, "actuator/led2/dev1") == nil
	})
	upd, err := dial("upd", tokens["upd"], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer upd.Close(ctx)
	_ = upd.Publish(ctx, client.Message{Topic: "actuator/led2/dev1", Payload: []byte("1;ON")}, 1) // not the Update Server's
	if err := upd.Publish(ctx, client.Message{Topic: "fw2/dev1", Payload: []byte("slice")}, 1); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the Update Server's slice on the new firmware topic", saw("fw2/dev1 slice"))
	if saw("actuator/led2/dev1 1;ON")() {
		t.Error("the Update Server could command dev1")
	}
}
