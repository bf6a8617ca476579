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

// Mutual TLS: Mosquitto admits only clients with a certificate of its CA
// (require_certificate, the certificate as identity). The bridge and myno
// device connect with theirs (--mqtt-ca, --mqtt-cert, --mqtt-key); a client
// without a certificate, or with one of another CA, is refused.
func TestClientsOverMutualTLS(t *testing.T) {
	pki := testenv.NewPKI(t, "broker-ca")
	srvCert, srvKey := pki.Server("mosquitto")
	m := testenv.StartMosquittoWith(t, testenv.MosquittoConfig{TLS: &testenv.MosquittoTLS{CAFile: pki.CAFile, CertFile: srvCert, KeyFile: srvKey, RequireCertificate: true}})
	bridgeCert, bridgeKey := pki.Client("bridge")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bridge.Start(ctx, bridge.Config{NetconfListen: "127.0.0.1:0", MQTTURL: m.URL(), MQTTCAFile: pki.CAFile, MQTTCertFile: bridgeCert, MQTTKeyFile: bridgeKey,
		DataDir: t.TempDir(), AdminPassword: "pw", Logger: testenv.Logger(), Out: os.Stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	devCert, devKey := pki.Client("tls-dev-1")
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	dctx, stop := context.WithCancel(context.Background())
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(dctx, []string{"myno", "device", "--description", desc, "--uuid", "tls-dev-1", "--telemetry-interval", "0",
			"--mqtt-url", m.URL(), "--mqtt-ca", pki.CAFile, "--mqtt-cert", devCert, "--mqtt-key", devKey}, &out, &errOut)
	}()
	testenv.WaitFor(t, "tls-dev-1 registered over mutual TLS", func() bool { return slices.Contains(b.Devices(), "tls-dev-1") }, errOut.String)
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("device: exit %d\n%s", code, errOut.String())
	}
	rogue := testenv.NewPKI(t, "rogue-ca")
	rogueCert, rogueKey := rogue.Client("tls-dev-1")
	// The broker's TLS alert (certificate required, unknown certificate
	// authority) reaches the client only when it reads before the broker
	// resets the connection; the error always names the last attempt.
	for _, tc := range []struct{ name, cert, key string }{
		{"no client certificate", "", ""},
		{"a certificate of another CA", rogueCert, rogueKey},
	} {
		tlsCfg, err := client.LoadTLS(pki.CAFile, tc.cert, tc.key)
		if err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		tr, err := client.Dial(dctx, client.Config{URL: m.URL(), ClientID: "tls-refused", Logger: testenv.Logger(), Credentials: client.Credentials{TLSConfig: tlsCfg}})
		cancel()
		if err == nil {
			tr.Close(context.Background())
			t.Fatalf("%s: connected", tc.name)
		}
		if !strings.Contains(err.Error(), "last attempt: failed to connect to tls://") {
			t.Errorf("%s: %v, want the failed TLS connection named", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}
