package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/wire"
)

// registration is a bootstrap that acceptingBroker accepted: the device's
// uuid and the topic its description came on.
// registration is one bootstrap the accepting broker answered: the
// device, where it came, in how many chunks, and whether its description
// still held "%s" (false: the UUID was filled in).
type registration struct {
	uuid, topic string
	chunks      int
	template    bool
}

// acceptingBroker is the embedded broker with an inline client that
// accepts every bootstrap, on the shared topic wire.TopicCreate and on the
// devices' own (wire.DeviceBootstrapTopic), and reports each registration.
// Like the bridge, it answers an MQTT 5 request on its ResponseTopic with
// its CorrelationData, which a device checks.
func acceptingBroker(t *testing.T) (string, <-chan registration) {
	t.Helper()
	b, err := broker.Start(broker.Config{Access: broker.OpenAccess{}, Listen: "127.0.0.1:0", Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	registered := make(chan registration, 100)
	var tr client.Transport
	var mu sync.Mutex
	chunks := map[string][][]byte{}
	tr = b.InlineClient("accepting-bridge", func(m client.Message) {
		c, err := wire.DecodeChunk(m.Payload)
		if err != nil {
			return
		}
		mu.Lock()
		if !c.End {
			chunks[c.UUID] = append(chunks[c.UUID], bytes.Clone(c.Data))
			mu.Unlock()
			return
		}
		got := chunks[c.UUID]
		delete(chunks, c.UUID)
		mu.Unlock()
		answer := client.Message{Topic: wire.BootstrapResponseTopic(wire.TopicCreate, c.UUID), Payload: []byte(wire.AnswerOK)}
		if m.ResponseTopic != "" {
			answer.Topic, answer.CorrelationData = m.ResponseTopic, m.CorrelationData
		}
		if err := tr.Publish(context.Background(), answer, 1); err != nil {
			t.Errorf("answer to %s: %v", c.UUID, err)
		}
		registered <- registration{uuid: c.UUID, topic: m.Topic, chunks: len(got), template: bytes.Contains(bytes.Join(got, nil), []byte("%s"))}
	})
	for _, filter := range []string{wire.TopicCreate, wire.TopicLegacy, wire.DeviceBootstrapTopic(wire.TopicCreate, "+")} {
		if err := tr.Subscribe(context.Background(), filter); err != nil {
			t.Fatal(err)
		}
	}
	return b.URL(), registered
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestDeviceCommand(t *testing.T) {
	url, registered := acceptingBroker(t)
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	ownTopic := func(uuid string) string { return wire.DeviceBootstrapTopic(wire.TopicCreate, uuid) }
	sharedTopic := func(string) string { return wire.TopicCreate }
	for _, tc := range []struct {
		name  string
		args  []string
		uuid  string                   // of every registration; "" for a fleet's derived ones
		topic func(uuid string) string // where the description must arrive
		want  int                      // registrations to wait for
		logs  []string
	}{
		{"one device", []string{"--description", desc, "--uuid", "cli-dev-1", "--protocol", "3.1.1"}, "cli-dev-1", ownTopic, 1,
			[]string{"device registered", "topic=" + ownTopic("cli-dev-1"), "device stopped"}},
		{"a fleet", []string{"--description", desc, "--uuid", "cli-fleet", "--count", "3", "--chunk-size", "500"}, "", ownTopic, 3,
			[]string{"fleet: 3/3 connected, 3 bootstrapped, 0 failed"}},
		{"legacy bootstrap topics", []string{"--description", desc, "--uuid", "cli-legacy-1", "--legacy-bootstrap-topics"}, "cli-legacy-1", sharedTopic, 1,
			[]string{"device registered", "topic=" + wire.TopicCreate + " ", "device stopped"}},
		{"like MYNO's simulators", []string{"--description", desc, "--uuid", "SIMULATOR1-8A12", "--fill-uuid", "--chunk-size", "0", "--legacy-topic"}, "SIMULATOR1-8A12",
			func(string) string { return wire.TopicLegacy }, 1, []string{"device registered", "topic=" + wire.TopicLegacy + " ", "device stopped"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var out, errOut syncBuffer
			done := make(chan int, 1)
			args := append([]string{"myno", "device", "--mqtt-url", url, "--telemetry-interval", "0"}, tc.args...)
			go func() { done <- run(ctx, args, &out, &errOut) }()
			seen := map[string]bool{}
			for i := 0; i < tc.want; i++ {
				select {
				case r := <-registered:
					if tc.uuid != "" && r.uuid != tc.uuid {
						t.Errorf("registration of %q, want %q", r.uuid, tc.uuid)
					}
					if want := tc.topic(r.uuid); r.topic != want {
						t.Errorf("%s bootstrapped on %q, want %q", r.uuid, r.topic, want)
					}
					fills := slices.Contains(tc.args, "--fill-uuid")
					if r.template == fills || (slices.Contains(tc.args, "0") && r.chunks != 1) {
						t.Errorf("%s: %d chunks, description with %%s: %v", r.uuid, r.chunks, r.template)
					}
					seen[r.uuid] = true
				case <-time.After(20 * time.Second):
					t.Fatalf("registration %d missing:\n%s", i, errOut.String())
				}
			}
			if len(seen) != tc.want {
				t.Errorf("%d distinct devices registered, want %d: %v", len(seen), tc.want, seen)
			}
			// The broker saw the END; wait until the device has the answer too.
			testenv.WaitFor(t, "the device's log line "+tc.logs[0], func() bool { return strings.Contains(errOut.String(), tc.logs[0]) },
				errOut.String)
			cancel() // SIGTERM in the real binary
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d:\n%s", code, errOut.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("device did not stop")
			}
			for _, l := range tc.logs {
				if !strings.Contains(errOut.String(), l) {
					t.Errorf("missing %q in:\n%s", l, errOut.String())
				}
			}
		})
	}
}

func TestDeviceCommandErrors(t *testing.T) {
	url, _ := acceptingBroker(t)
	broken := filepath.Join(testenv.RepoRoot(t), "testdata", "broken", "no-device.jsonld")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"device"}, 2, "--description"},
		{[]string{"device", "--description", broken, "--mqtt-url", url}, 1, "no onem2m:Device"},
		{[]string{"device", "--description", broken, "--protocol", "4"}, 2, "unknown MQTT protocol"},
	} {
		code, _, errOut := runMyno(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, %s", tc.args, code, errOut)
		}
	}
}

// myno demo (what make run starts): the bridge on the embedded broker and
// three devices; a NETCONF client can call a device rpc.
func TestDemoCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("MYNO_ADMIN_PASSWORD", "demo-pw")
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	t.Setenv("MYNO_KNOWN_HOSTS", knownHosts)
	// Outside the repository: the demo's descriptions are built in.
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"myno", "demo", "--data-dir", dir, "--netconf-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0",
			"--console-metrics-listen", "127.0.0.1:0", "--log-level", "warn"}, &out, &errOut)
	}()
	testenv.WaitFor(t, "the demo to come up", func() bool { return strings.Contains(out.String(), "Stop with Ctrl-C") },
		out.String, errOut.String)
	text := out.String()
	// The web console is up at the printed URL: its login page answers.
	consoleURL := regexp.MustCompile(`Web console: (http://127\.0\.0\.1:\d+/)`).FindStringSubmatch(text)
	if consoleURL == nil {
		t.Fatalf("no console URL in:\n%s", text)
	}
	if resp, err := http.Get(consoleURL[1] + "login"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("console login page: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Its E2E page renews demo-mup-1's certificate through the broker and
	// shows the new serial and expiry.
	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar}
	if resp, err := web.PostForm(consoleURL[1]+"login", url.Values{"user": {"admin"}, "password": {"demo-pw"}}); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	page := func(path string) string {
		resp, err := web.Get(consoleURL[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	e2ePage := page("e2e")
	csrf := regexp.MustCompile(`name="csrf" content="([0-9a-f]+)"`).FindStringSubmatch(e2ePage)
	if csrf == nil || !strings.Contains(e2ePage, `data-uuid="demo-mup-1"`) {
		t.Fatalf("console E2E page:\n%s", e2ePage)
	}
	req, _ := http.NewRequest(http.MethodPost, consoleURL[1]+"e2e/renew", strings.NewReader(url.Values{"device": {"demo-mup-1"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", csrf[1])
	resp, err := web.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var renewed struct{ Serial, NotAfter, Error string }
	if err := json.NewDecoder(resp.Body).Decode(&renewed); err != nil || renewed.Serial == "" || renewed.Error != "" {
		t.Fatalf("console renewal: %v %+v", err, renewed)
	}
	resp.Body.Close()
	if !strings.Contains(page("e2e"), renewed.Serial) {
		t.Errorf("the E2E page does not show the new serial %s", renewed.Serial)
	}
	// The console's metrics, at the printed address, count the renewal.
	metricsURL := regexp.MustCompile(`its metrics on (http://127\.0\.0\.1:\d+/metrics)`).FindStringSubmatch(text)
	if metricsURL == nil {
		t.Fatalf("no console metrics URL in:\n%s", text)
	}
	if resp, err := http.Get(metricsURL[1]); err != nil {
		t.Error(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `myno_e2e_handshakes_total{kind="renewal",result="ok"} 1`) {
			t.Errorf("console metrics lack the renewal:\n%s", body)
		}
	}
	for _, want := range []string{"ssh -p ", "-s netconf", "ncclient", "myno rpc", "yangcli"} {
		if !strings.Contains(text, want) {
			t.Errorf("instructions lack %q:\n%s", want, text)
		}
	}
	addr := regexp.MustCompile(`NETCONF on (127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	ns := regexp.MustCompile(`urn:myno:yang:myno-led-color-1-[0-9a-f]+`).FindString(text)
	if addr == nil || ns == "" {
		t.Fatalf("no address or namespace in:\n%s", text)
	}
	// The printed ncclient one-liner works as printed (with the password
	// filled in), also for a user whose ~/.ssh holds keys.
	oneLiner := regexp.MustCompile(`(?m)^  (/usr/bin/python3 -c '.*')$`).FindStringSubmatch(text)
	if oneLiner == nil {
		t.Fatalf("no ncclient one-liner in:\n%s", text)
	}
	testenv.DebianPython(t, "ncclient")
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(testenv.Tool(t, "ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(home, ".ssh", "id_ed25519")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	py := exec.Command("sh", "-c", strings.Replace(oneLiner[1], "PASSWORD", "demo-pw", 1))
	py.Env = append(os.Environ(), "HOME="+home)
	if out, err := py.CombinedOutput(); err != nil || !strings.Contains(string(out), "retval") {
		t.Errorf("the printed ncclient one-liner: %v\n%s", err, out)
	}
	code, reply, rpcErr := runMyno(t, "rpc", "--addr", addr[1], "--password", "demo-pw",
		`<ledOn xmlns="`+ns+`"><uuidInput>demo-led-1</uuidInput></ledOn>`)
	if code != 0 || !strings.Contains(reply, "<retval") {
		t.Fatalf("rpc: exit %d %s %s", code, reply, rpcErr)
	}
	// The bridge's host key was trusted on first use: its fingerprint is
	// printed and it is in the known_hosts file for the next commands.
	if !strings.Contains(rpcErr, "Trusted the host key of "+addr[1]+" on first use: ssh-ed25519 SHA256:") {
		t.Errorf("no trust-on-first-use notice: %s", rpcErr)
	}
	if kh, err := os.ReadFile(knownHosts); err != nil || strings.Count(string(kh), "\n") != 1 {
		t.Errorf("known_hosts after the first connection: %q %v", kh, err)
	}
	// The printed configuration command works as printed (issue 20).
	configure := regexp.MustCompile(`(?m)^  .*\brpc .* '(<edit-config>.*</edit-config>)'$`).FindStringSubmatch(text)
	if configure == nil {
		t.Fatalf("no configuration command in:\n%s", text)
	}
	if code, reply, rpcErr := runMyno(t, "rpc", "--addr", addr[1], "--password", "demo-pw", configure[1]); code != 0 || !strings.Contains(reply, "<ok/>") {
		t.Errorf("the printed configuration command: exit %d %s %s", code, reply, rpcErr)
	}
	// The demo's broker admits only provisioned clients, as it says.
	brokerURL := regexp.MustCompile(`MQTT broker on (mqtt://127\.0\.0\.1:\d+)`).FindStringSubmatch(text)
	if brokerURL == nil || !strings.Contains(text, "admits only provisioned clients") {
		t.Fatalf("no broker URL or no word on its access control in:\n%s", text)
	}
	dctx, dcancel := context.WithTimeout(ctx, 3*time.Second)
	anon, err := client.Dial(dctx, client.Config{URL: brokerURL[1], ClientID: "demo-anonymous", Logger: testenv.Logger()})
	dcancel()
	if err == nil {
		anon.Close(context.Background())
		t.Error("the demo's broker admitted an anonymous client")
	} else if !strings.Contains(err.Error(), "not authorized (CONNACK reason 0x87)") {
		t.Errorf("anonymous client: %v, want CONNACK 0x87", err)
	}
	// The printed MUP update works: demo-mup-1 goes from version 1 to 2,
	// and a second run is refused by the device as a same-version update.
	// It logs in as the demo's Update Server, with the token the demo
	// provisioned.
	m := regexp.MustCompile(`myno update --bridge \S+ --password PASSWORD --mqtt-url (\S+) --device demo-mup-1 \\\s+` +
		`--mqtt-username (\S+) --mqtt-password-file (\S+) \\\s+--image (\S+) --manifest (\S+) --key (\S+) \\\s+--device-ca (\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no myno update command in:\n%s", text)
	}
	if tokenDir := filepath.Join(dir, "tokens"); m[2] != "demo-manager" || m[3] != filepath.Join(tokenDir, "demo-manager.token") {
		t.Errorf("update logs in as %s with %s, want demo-manager with its token in %s", m[2], m[3], tokenDir)
	}
	checkMode(t, m[3], 0o600)
	updateBase := []string{"update", "--bridge", addr[1], "--password", "demo-pw", "--mqtt-url", m[1], "--mqtt-username", m[2], "--mqtt-password-file", m[3]}
	artifacts := []string{"--image", m[4], "--manifest", m[5], "--key", m[6], "--device-ca", m[7]}
	update := slices.Clip(slices.Concat(updateBase, []string{"--device", "demo-mup-1"}, artifacts))
	// The first run is the confidential one (--encrypt with the demo's
	// E2E CA): the key phase shows in the result.
	enc := regexp.MustCompile(`add:\s+--encrypt --ca-dir (\S+)`).FindStringSubmatch(text)
	if enc == nil {
		t.Fatalf("no --encrypt instructions in:\n%s", text)
	}
	code, updOut, updErr := runMyno(t, append(update, "--encrypt", "--ca-dir", enc[1])...)
	if code != 0 || !strings.Contains(updOut, "runs version 2") || !strings.Contains(updOut, "verified (receipt signed by demo-mup-1)") ||
		!regexp.MustCompile(`(?m)^key\s`).MatchString(updOut) ||
		!strings.Contains(updErr, "firmware demo-mup-1") {
		t.Fatalf("update --encrypt: exit %d\n%s\n%.600s", code, updOut, updErr)
	}
	code, _, updErr = runMyno(t, append(update, "--quiet")...)
	if code != 1 || !strings.Contains(updErr, mup.StateInvalidVersion) {
		t.Errorf("repeated update: exit %d %.300s", code, updErr)
	}
	// demo-mup-1 signs receipts: with no CA to check them, the update
	// fails before it starts, and says why.
	noCA := slices.Concat(updateBase, []string{"--device", "demo-mup-1", "--quiet", "--ca-dir", t.TempDir()}, artifacts[:6])
	if code, _, updErr = runMyno(t, noCA...); code != 1 || !strings.Contains(updErr, "declares a signed receipt") {
		t.Errorf("update with no CA: exit %d %.300s", code, updErr)
	}
	// A campaign: one at a time, stop after the first failure; the table
	// tells what happened to each device.
	campaign := slices.Concat(updateBase, []string{"--device", "demo-mup-1", "--device", "demo-relay-1", "--parallel", "1", "--max-failures", "1", "--quiet"},
		artifacts)
	code, table, updErr := runMyno(t, campaign...)
	if code != 1 || !regexp.MustCompile(`demo-mup-1\s+1\s+MUP\s+failed\s+1\s+.*25_INVALID-VERSIONNR`).MatchString(table) ||
		!regexp.MustCompile(`demo-relay-1\s+1\s+-\s+skipped\s+0\s+.*campaign stopped: 1 of its devices failed \(at most 1\)`).MatchString(table) {
		t.Errorf("campaign: exit %d\n%s\n%.300s", code, table, updErr)
	}
	// demo-myno-1 speaks MYNO's MUP (v1): the printed command updates it
	// to version 2, unverified since it cannot sign; a campaign over both
	// devices, with both manifests, then finds each at version 2 already
	// (the COSE device refuses the same version; the v1 Update Server
	// refuses a non-upgrade before the device hears of it).
	v1m := regexp.MustCompile(`myno update --bridge \S+ --password PASSWORD --mqtt-url \S+ --device demo-myno-1 \\\s+` +
		`--mqtt-username \S+ --mqtt-password-file \S+ \\\s+--image \S+ --manifest (\S+) --key \S+\n`).FindStringSubmatch(text)
	if v1m == nil {
		t.Fatalf("no MUP v1 update command in:\n%s", text)
	}
	code, updOut, updErr = runMyno(t, slices.Concat(updateBase, []string{"--device", "demo-myno-1", "--image", m[4], "--manifest", v1m[1], "--key", m[6]})...)
	if code != 0 || !strings.Contains(updOut, "device demo-myno-1 runs version 2 (MUP v1, 147 slices") ||
		!strings.Contains(updOut, "unverified: the device cannot sign") || !strings.Contains(updErr, "firmware demo-myno-1") {
		t.Fatalf("MUP v1 update: exit %d\n%s\n%.600s", code, updOut, updErr)
	}
	mixed := slices.Concat(updateBase, []string{"--device", "demo-mup-1", "--device", "demo-myno-1", "--quiet"}, artifacts, []string{"--manifest", v1m[1]})
	code, table, updErr = runMyno(t, mixed...)
	if code != 1 || !regexp.MustCompile(`demo-mup-1\s+1\s+MUP\s+failed\s+.*25_INVALID-VERSIONNR`).MatchString(table) ||
		!regexp.MustCompile(`demo-myno-1\s+1\s+MUP v1\s+failed\s+.*no upgrade`).MatchString(table) {
		t.Errorf("mixed campaign: exit %d\n%s\n%.300s", code, table, updErr)
	}
	// The printed E2E renewal works: demo-mup-1 gets a new certificate and
	// stores it; a device nobody runs fails within --timeout.
	r := regexp.MustCompile(`myno e2e renew --ca-dir (\S+) --mqtt-url (\S+) --device demo-mup-1 \\\s+--mqtt-username (\S+) --mqtt-password-file (\S+)`).FindStringSubmatch(text)
	if r == nil {
		t.Fatalf("no myno e2e renew command in:\n%s", text)
	}
	renew := []string{"e2e", "renew", "--ca-dir", r[1], "--mqtt-url", r[2], "--mqtt-username", r[3], "--mqtt-password-file", r[4]}
	before, err := mup.ReadCertificate(filepath.Join(r[1], "demo-mup-1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	code, table, renewErr := runMyno(t, append(renew, "--device", "demo-mup-1")...)
	after, err := mup.ReadCertificate(filepath.Join(r[1], "demo-mup-1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !regexp.MustCompile(`demo-mup-1\s+renewed\s+`+after.SerialNumber.Text(16)).MatchString(table) ||
		!strings.Contains(renewErr, "renewing") || after.Equal(before) {
		t.Fatalf("e2e renew: exit %d\n%s\n%.600s", code, table, renewErr)
	}
	code, table, _ = runMyno(t, append(renew, "--device", "demo-mup-1", "--device", "nobody-runs-me", "--timeout", "3s", "--quiet")...)
	if code != 1 || !regexp.MustCompile(`demo-mup-1\s+renewed`).MatchString(table) || !regexp.MustCompile(`nobody-runs-me\s+failed`).MatchString(table) {
		t.Errorf("e2e renew with a missing device: exit %d\n%s", code, table)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("demo exit %d:\n%s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
}
