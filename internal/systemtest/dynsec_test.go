package systemtest_test

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/wire"
)

// A Mosquitto whose access control is its dynamic-security plugin,
// configured by myno acl export --format mosquitto-dynsec with no device
// description at all: the bridge (--mosquitto-dynsec) gives each device
// the topics of its description when it registers, and the Update
// Servers its firmware topic, live. A device then takes commands and a
// MUP update, and still may not act as another device.
func TestMosquittoDynamicSecurityFollowsRegistrations(t *testing.T) {
	dir := t.TempDir()
	store, err := access.OpenStore(filepath.Join(dir, "creds.json"))
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for name, role := range map[string]access.Role{"bridge": access.RoleBridge, "mup-1": access.RoleDevice, "other": access.RoleDevice,
		updateServerName: access.RoleUpdateServer} {
		if tokens[name], err = store.Add(name, role, access.AddOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cfgJSON, err := access.ExportDynsec(access.Export{Credentials: store.List(), Policy: access.Policy{}})
	if err != nil {
		t.Fatal(err)
	}
	dynsecFile := filepath.Join(dir, "dynamic-security.json")
	if err := os.WriteFile(dynsecFile, cfgJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMosquittoWith(t, testenv.MosquittoConfig{DynsecFile: dynsecFile})
	creds := func(name string) client.Credentials {
		return client.Credentials{Username: name, Password: tokens[name]}
	}

	dataDir := t.TempDir()
	startDynsecBridge := func() *bridge.Bridge {
		b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", DataDir: dataDir, AdminPassword: "pw",
			RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, MQTTURL: m.URL(),
			MQTTUsername: "bridge", MQTTPassword: tokens["bridge"], MosquittoDynsec: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := startDynsecBridge()
	defer func() { b.Close() }()

	vendorKey, _ := mup.GenerateKey()
	serverKey, _ := mup.GenerateKey()
	// The plugin disconnects the device when the bridge gives it its new
	// role; the device asks again and subscribes to its commands.
	dev := startMUPDeviceAs(t, "mup-device.jsonld", m.URL(), "mup-1", creds("mup-1"),
		devices.MUPConfig{AppID: "myno-app", Version: 3, SlotSize: 256 << 10, VendorKey: &vendorKey.PublicKey, ServerKey: &serverKey.PublicKey})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if n := b.DynsecUpdates(); n != 1 {
		t.Errorf("%d role updates for one registration, want 1 (the device's and the Update Servers' roles in one request)", n)
	}
	s := dialBridge(t, b)
	if state, _ := deviceRPC(t, s, "getDeviceToken"); state != mup.StateOK {
		t.Fatalf("getDeviceToken through the dynamic-security ACL: %s", state)
	}

	// The Update Server's firmware topic was granted with the registration.
	image := make([]byte, 20000)
	rand.Read(image)
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, "myno-app", 4, 3, 0), vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	res, err := updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "mup-1", VendorSigned: signed, Image: image, ServerKey: serverKey,
		NETCONF: s, MQTTURL: m.URL(), MQTTCredentials: creds(updateServerName), Flow: updateserver.Windowed})
	if err != nil || res.Version != 4 || dev.FirmwareVersion() != 4 {
		t.Fatalf("update through the dynamic-security ACL: %+v %v (device at %d)", res, err, dev.FirmwareVersion())
	}

	// Another device may not act as mup-1.
	other, err := client.Dial(ctx, client.Config{URL: m.URL(), ClientID: "other", Protocol: client.MQTT5, Credentials: creds("other"), Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	for _, topic := range []string{wire.ResponseTopic("mup-1"), wire.DeviceBootstrapTopic(wire.TopicDelete, "mup-1"), wire.TopicUpdateServerCert, "yang/update/image/mup-1"} {
		if err := other.Publish(ctx, client.Message{Topic: topic, Payload: []byte("mup-1")}, 1); err == nil {
			t.Errorf("other may publish on %s", topic)
		}
	}
	if err := other.Subscribe(ctx, "yang/update/image/mup-1"); err == nil {
		t.Error("other may read mup-1's firmware topic")
	}

	// A restarted bridge finds the roles current: no role is sent again,
	// so the device is not disconnected, and it still takes commands.
	b.Close()
	b = startDynsecBridge()
	if n := b.DynsecUpdates(); n != 0 {
		t.Errorf("a restarted bridge sent %d role updates, want none", n)
	}
	s2 := dialBridge(t, b)
	c := updateserver.NewClient(s2)
	entry, err := c.Device("mup-1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Call(entry.Namespace, "getDeviceToken", updateserver.Leaf{Name: "uuidInput", Value: "mup-1"})
	if err != nil || out.Retval != mup.StateOK {
		t.Fatalf("after a bridge restart: %+v %v", out, err)
	}
}
