package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
	// resets the connection; the error always names the last attempt first.
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
		if !strings.Contains(err.Error(), ": failed to connect to tls://") {
			t.Errorf("%s: %v, want the failed TLS connection named", tc.name, err)
		}
		t.Logf("%s: %v", tc.name, err)
	}
}

// Credentials that stop working end the process with a clear message:
// the bridge and two devices (MQTT 5 and 3.1.1) run on a Mosquitto that
// admits them; their passwords are changed and the broker restarted, so
// each reconnect is refused (not authorized). Every failed attempt is a
// warning with its cause, and each process exits 1 saying the broker
// refused it, instead of retrying for ever without a word.
func TestCredentialsRefusedOnReconnectEndTheProcess(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	setPasswords := func(pw map[string]string) {
		t.Helper()
		os.Remove(passwd)
		for user, p := range pw {
			args := []string{"-b", passwd, user, p}
			if _, err := os.Stat(passwd); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command(testenv.Tool(t, "mosquitto_passwd"), args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v %s", err, out)
			}
		}
	}
	setPasswords(map[string]string{"bridge": "bridge-pw", "dev5": "dev-pw", "dev311": "dev-pw"})
	m := testenv.StartMosquittoWith(t, testenv.MosquittoConfig{PasswordFile: passwd})
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	type proc struct {
		name   string
		errOut *syncBuffer
		done   chan int
	}
	start := func(name string, args ...string) proc {
		p := proc{name: name, errOut: &syncBuffer{}, done: make(chan int, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(func() {
			cancel()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop", name)
			}
		})
		go func() {
			var out syncBuffer
			code := run(ctx, append([]string{"myno"}, args...), &out, p.errOut)
			p.done <- code
			p.done <- code // for the cleanup
		}()
		return p
	}
	br := start("bridge", "bridge", "--mqtt-url", m.URL(), "--mqtt-username", "bridge", "--mqtt-password", "bridge-pw",
		"--netconf-listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	testenv.WaitFor(t, "the bridge to start", func() bool { return strings.Contains(br.errOut.String(), "bridge started") }, br.errOut.String)
	var devs []proc
	for _, d := range []struct{ user, protocol string }{{"dev5", "5"}, {"dev311", "3.1.1"}} {
		p := start(d.user, "device", "--description", desc, "--uuid", d.user, "--telemetry-interval", "0", "--protocol", d.protocol,
			"--mqtt-url", m.URL(), "--mqtt-username", d.user, "--mqtt-password", "dev-pw")
		testenv.WaitFor(t, d.user+" registered", func() bool { return strings.Contains(p.errOut.String(), "device registered") }, p.errOut.String)
		devs = append(devs, p)
	}
	setPasswords(map[string]string{"bridge": "changed", "dev5": "changed", "dev311": "changed"})
	m.Restart()
	for _, p := range append([]proc{br}, devs...) {
		var code int
		select {
		case code = <-p.done:
		case <-time.After(testenv.WaitTimeout):
			t.Fatalf("%s still runs after the broker refused its credentials:\n%s", p.name, p.errOut.String())
		}
		log := p.errOut.String()
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", p.name, code)
		}
		if !strings.Contains(log, "level=WARN msg=\"mqtt connect failed; retrying\"") || !strings.Contains(log, "attempt=1") {
			t.Errorf("%s: the failed reconnect is not a warning with its attempt:\n%s", p.name, log)
		}
		last := strings.ToLower(strings.TrimSpace(log[strings.LastIndex(strings.TrimSpace(log), "\n")+1:]))
		if !strings.HasPrefix(last, "myno: ") || !strings.Contains(last, "broker refused the connection: not authorized") {
			t.Errorf("%s: the last line does not say the broker refused it: %q", p.name, last)
		}
		t.Logf("%s: %s", p.name, last)
	}
}

// With no broker at --mqtt-url, myno device and myno bridge say so at once
// and at each attempt: a warning with the attempt's number and its cause.
func TestUnreachableBrokerIsLoggedAtEachAttempt(t *testing.T) {
	dead := "mqtt://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	for name, args := range map[string][]string{
		"device": {"device", "--description", desc, "--uuid", "lonely-1", "--mqtt-url", dead},
		"bridge": {"bridge", "--mqtt-url", dead, "--netconf-listen", "127.0.0.1:0", "--data-dir", t.TempDir()},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var out, errOut syncBuffer
		done := make(chan int, 1)
		go func() { done <- run(ctx, append([]string{"myno"}, args...), &out, &errOut) }()
		for _, attempt := range []string{"attempt=1 ", "attempt=2 "} {
			testenv.WaitFor(t, name+" to warn of "+attempt, func() bool {
				return regexp.MustCompile(`level=WARN msg="mqtt connect failed; retrying" (uuid=lonely-1 )?broker=` + regexp.QuoteMeta(dead) + " " + attempt + `err=".*connection refused"`).
					MatchString(errOut.String())
			}, errOut.String)
		}
		cancel()
		<-done
	}
}
