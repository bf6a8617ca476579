package console

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
	"github.com/myno-bridge/myno/netconf"
)

// metricsWorld is a bridge with a MUP device that signs receipts with
// its E2E key, and a console with an Update Server and an E2E manager
// whose metrics are served on a listener of their own.
type metricsWorld struct {
	httpWorld
	vendorKey *ecdsa.PrivateKey
}

const metricsDevice = "mup-1"

func startMetricsWorld(t *testing.T) *metricsWorld {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("admin-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("admin:"+string(hash)+":"+netconf.AdminGroup+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir,
		RPCTimeout: 5 * time.Second, Logger: testenv.Logger(), Out: io.Discard, Enrolment: access.EnrolOpen})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	w := &metricsWorld{httpWorld: httpWorld{b: b}}

	// The keys: vendor, Update Server, and the E2E CA with the manager's
	// and the device's certificates (the device signs receipts with its
	// own, which the Update Server checks against the CA).
	if w.vendorKey, err = mup.GenerateKey(); err != nil {
		t.Fatal(err)
	}
	serverKey, err := mup.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := e2e.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, role e2e.Role) (*x509.Certificate, *ecdsa.PrivateKey) {
		cert, key, err := e2e.Issue(ca, caKey, name, role, time.Now().Add(-time.Minute), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}

	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-device-signed.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	dcert, dkey := issue(metricsDevice, e2e.RoleDevice)
	w.dev = devicetest.Boot(t, devices.Config{Description: desc, UUID: metricsDevice, BrokerURL: b.BrokerURL(), Logger: testenv.Logger(),
		Credentials: client.Credentials{Username: metricsDevice, Password: "metrics-test-token-of-" + metricsDevice + "-0123456789"}},
		func(d *devices.Device) error {
			return d.EnableMUP(devices.MUPConfig{AppID: "myno-app", Version: 1, SlotSize: 1 << 20, VendorKey: &w.vendorKey.PublicKey, ServerKey: &serverKey.PublicKey})
		},
		func(d *devices.Device) error { return d.EnableE2E(devices.E2EConfig{CA: ca, Cert: dcert, Key: dkey}) })
	serving, stopServing := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = w.dev.Serve(serving) }()
	t.Cleanup(func() { stopServing(); <-served })

	// The Update Server's and the manager's broker identity (one, as in
	// the demo), named as the manager's certificate.
	store, err := access.OpenStore(b.CredentialsFile())
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.Add("mgr", access.RoleUpdateServer, access.AddOptions{Replace: true})
	if err != nil {
		t.Fatal(err)
	}
	creds := client.Credentials{Username: "mgr", Password: token}
	mcert, mkey := issue("mgr", e2e.RoleManager)
	m, err := manager.New(manager.Config{CA: ca, Cert: mcert, Key: mkey, CAKey: caKey, ResendAfter: 500 * time.Millisecond, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "console-metrics-manager", Protocol: client.MQTT5, Credentials: creds,
		Logger: testenv.Logger(), AtMostOnce: true, OnMessage: m.HandleMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	if err := m.Start(ctx, tr); err != nil {
		t.Fatal(err)
	}

	hostKey, err := netconf.LoadOrCreateHostKey(filepath.Join(dir, "ssh_host_ed25519_key"))
	if err != nil {
		t.Fatal(err)
	}
	w.hostKey = hostKey.PublicKey()
	w.console, err = New(Config{Bridges: []string{b.NetconfAddr()}, HostKey: ssh.FixedHostKey(w.hostKey), Logger: testenv.Logger(),
		Update:        UpdateSettings{MQTTURL: b.BrokerURL(), Credentials: creds, ServerKey: serverKey, DeviceCA: ca},
		E2E:           E2ESettings{Manager: m},
		MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.console.Close) // before the manager's connection closes
	w.srv = httptest.NewServer(w.console.Handler())
	t.Cleanup(w.srv.Close)
	return w
}

// update uploads image with a manifest the vendor signed for app at
// version, for the device, as the updates page's form does, and waits
// for the job to finish; it returns the device's final state in the job.
func (w *metricsWorld) update(t *testing.T, hc *http.Client, csrf string, image []byte, app string, version uint32) jobEvent {
	t.Helper()
	manifest, err := mup.SignVendorManifest(mup.NewVendorManifest(image, app, version, 0, 0), w.vendorKey)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("csrf", csrf)
	_ = mw.WriteField("device", metricsDevice)
	for name, data := range map[string][]byte{"image": image, "manifest": manifest} {
		f, _ := mw.CreateFormFile(name, fmt.Sprintf("%s-%d.%s", app, version, name))
		_, _ = f.Write(data)
	}
	_ = mw.Close()
	resp, err := hc.Post(w.srv.URL+"/updates", mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`^/updates/([0-9]+)$`).FindStringSubmatch(resp.Request.URL.Path)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("starting the update: %d at %s: %s", resp.StatusCode, resp.Request.URL.Path, page)
	}
	id, _ := strconv.Atoi(m[1])
	j := w.console.jobs.get(id)
	testenv.WaitFor(t, "update job "+m[1]+" to finish", j.Done, func() string { return fmt.Sprintf("%+v", j.snapshot()) })
	return j.snapshot()[0]
}

// The issue's "done when", for the console: after a scripted flow of
// two updates that succeed, one the device refuses (a manifest for
// another application) and one E2E renewal, /metrics on the metrics
// listener holds exactly the counts that flow produced: transfers by
// protocol and result, each phase's histogram count the updates that
// went through it, the image bytes of the two that were sent, no
// resends, one handshake and one renewal; and the Go and process
// collectors. The console's own listener does not serve /metrics, and
// Close shuts the metrics listener down.
func TestMetricsCountUpdatesAndHandshakes(t *testing.T) {
	w := startMetricsWorld(t)
	hc, csrf, resp := w.login(t, "admin", "admin-pw")
	if csrf == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	// 4000 bytes: 7 slices of 600, all in the first window, acked on
	// loopback in milliseconds (a resend takes a 1 s ack timeout).
	image := func() []byte { b := make([]byte, 4000); rand.Read(b); return b }

	if e := w.update(t, hc, csrf, image(), "myno-app", 2); e.State != "verified" || e.Version != 2 {
		t.Fatalf("update to version 2: %+v", e)
	}
	if e := w.update(t, hc, csrf, image(), "other-app", 3); e.State != "failed" || !strings.Contains(e.Detail, mup.StateWrongAppID) {
		t.Fatalf("update with another application's manifest: %+v", e)
	}
	if e := w.update(t, hc, csrf, image(), "myno-app", 3); e.State != "verified" || e.Version != 3 {
		t.Fatalf("update to version 3: %+v", e)
	}

	// One renewal through the E2E page's button.
	req, _ := http.NewRequest(http.MethodPost, w.srv.URL+"/e2e/renew", strings.NewReader(url.Values{"device": {metricsDevice}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-CSRF-Token", csrf)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var renewed certView
	err = json.NewDecoder(resp.Body).Decode(&renewed)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || renewed.Error != "" || renewed.Source != "renewed" {
		t.Fatalf("renewal: %d %+v %v", resp.StatusCode, renewed, err)
	}

	families := testenv.ScrapeMetrics(t, w.console.MetricsAddr())
	for name, want := range map[string]map[string]float64{
		"myno_update_transfers_total": {
			"protocol=cose,result=ok":                     2,
			"phase=manifest,protocol=cose,result=refused": 1,
		},
		// Histogram sample counts: the updates that went through each
		// phase (the refused one through the token only; no key phase
		// without an encrypted transfer).
		"myno_update_phase_duration_seconds": {
			"phase=token": 3, "phase=manifest": 2, "phase=transfer": 2, "phase=image": 2, "phase=reboot": 2,
		},
		"myno_update_bytes_total":         {"": 2 * 4000},
		"myno_update_slices_resent_total": {"": 0},
		"myno_e2e_handshakes_total": {
			"kind=key-agreement,result=ok": 1,
			"kind=renewal,result=ok":       1,
		},
		"myno_e2e_refused_messages_total": {"": 0},
	} {
		if got := samples(families[name]); !maps.Equal(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if families[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	var phaseSeconds float64
	for _, m := range families["myno_update_phase_duration_seconds"].GetMetric() {
		phaseSeconds += m.GetHistogram().GetSampleSum()
	}
	if phaseSeconds <= 0 {
		t.Errorf("the phases took %v s in all", phaseSeconds)
	}

	// Not on the console's listener, logged in or not.
	for _, c := range []*http.Client{hc, http.DefaultClient} {
		resp, err := c.Get(w.srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || bytes.Contains(body, []byte("myno_update")) {
			t.Errorf("the console's listener answers /metrics: %d %.200s", resp.StatusCode, body)
		}
	}

	addr := w.console.MetricsAddr()
	w.console.Close()
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Errorf("metrics still served after Close: %d", resp.StatusCode)
	}
}

// A metrics address that cannot be listened on stops New.
func TestMetricsListenFailureStopsNew(t *testing.T) {
	taken, err := New(Config{Bridges: []string{"127.0.0.1:1"}, HostKey: ssh.InsecureIgnoreHostKey(), MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if _, err := New(Config{Bridges: []string{"127.0.0.1:1"}, HostKey: ssh.InsecureIgnoreHostKey(), MetricsListen: taken.MetricsAddr()}); err == nil {
		t.Errorf("a second console listens on %s too", taken.MetricsAddr())
	}
	off, err := New(Config{Bridges: []string{"127.0.0.1:1"}, HostKey: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	if off.MetricsAddr() != "" {
		t.Errorf("metrics on %s by default", off.MetricsAddr())
	}
}

// samples is a family's series as "name=value,…" (sorted, labels with an
// empty value left out, as Prometheus does) → the counter's value or the
// histogram's sample count.
func samples(f *dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f.GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			if l.GetValue() != "" {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
		}
		slices.Sort(labels)
		v := m.GetCounter().GetValue()
		if m.Histogram != nil {
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out[strings.Join(labels, ",")] = v
	}
	return out
}
