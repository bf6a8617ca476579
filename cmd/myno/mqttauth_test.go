package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

// The MQTT clients authenticate to a broker that admits no anonymous
// client (Mosquitto, allow_anonymous false, a password file): the bridge,
// and myno device with the credentials in the URL or in --mqtt-username
// and --mqtt-password-file. An anonymous client and a wrong password are
// refused, and the error says what the broker answered.
func TestClientsAuthenticateToBroker(t *testing.T) {
	m := testenv.StartMosquittoWith(t, testenv.MosquittoConfig{Users: map[string]string{"bridge": "bridge-pw", "dev": "dev-pw"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", MQTTURL: m.URL(), MQTTUsername: "bridge", MQTTPassword: "bridge-pw",
		DataDir: t.TempDir(), AdminPassword: "pw", Logger: testenv.Logger(), Out: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	passwordFile := filepath.Join(t.TempDir(), "mqtt-password")
	if err := os.WriteFile(passwordFile, []byte("dev-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uuid string
		args []string
	}{
		{"auth-url-1", []string{"--mqtt-url", "mqtt://dev:dev-pw@" + m.Addr()}},
		{"auth-flags-1", []string{"--mqtt-url", m.URL(), "--mqtt-username", "dev", "--mqtt-password-file", passwordFile, "--protocol", "3.1.1"}},
	} {
		dctx, stop := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() {
			done <- run(dctx, append([]string{"myno", "device", "--description", desc, "--uuid", tc.uuid, "--telemetry-interval", "0"}, tc.args...), &out, &errOut)
		}()
		testenv.WaitFor(t, tc.uuid+" registered through the authenticated broker", func() bool { return slices.Contains(b.Devices(), tc.uuid) },
			errOut.String)
		stop()
		if code := <-done; code != 0 {
			t.Fatalf("%s: exit %d\n%s", tc.uuid, code, errOut.String())
		}
		if strings.Contains(errOut.String(), "dev-pw") {
			t.Errorf("%s: the password is in the log:\n%s", tc.uuid, errOut.String())
		}
	}
	for _, tc := range []struct {
		name string
		cfg  client.Config
	}{
		{"anonymous", client.Config{URL: m.URL()}},
		{"wrong password", client.Config{URL: m.URL(), Credentials: client.Credentials{Username: "dev", Password: "guess"}}},
	} {
		tc.cfg.ClientID, tc.cfg.Logger = "refused-"+strings.ReplaceAll(tc.name, " ", "-"), testenv.Logger()
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		tr, err := client.Dial(dctx, tc.cfg)
		cancel()
		if err == nil {
			tr.Close(context.Background())
			t.Fatalf("%s: connected", tc.name)
		}
		if !strings.Contains(err.Error(), "not authorized (CONNACK reason 0x87)") {
			t.Errorf("%s: the error does not say what the broker answered: %v", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}
