package manager_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
)

// pki is a CA with its manager and device credentials.
type pki struct {
	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

func newPKI(t testing.TB, name string) *pki {
	t.Helper()
	ca, key, err := e2e.NewCA(name, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{ca: ca, caKey: key}
}

func (p *pki) issue(t testing.TB, name string, role e2e.Role) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	cert, key, err := e2e.Issue(p.ca, p.caKey, name, role, time.Now().Add(-time.Minute), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// testBroker is a real broker on a random loopback port.
type testBroker struct {
	name    string
	url     string
	cap     *testenv.Capture
	hook    *testenv.CuriousHook // embedded only
	counter *packetCounter       // embedded only
	restart func(t *testing.T)
}

func embedded(t testing.TB) *testBroker {
	t.Helper()
	b := &testBroker{name: "embedded", cap: testenv.NewCapture()}
	b.hook = &testenv.CuriousHook{Capture: b.cap}
	b.counter = &packetCounter{prefix: e2e.DefaultPrefix, publish: map[string]int{}, qos1: map[string]int{}, aliases: map[string]string{}, awaited: map[string]bool{}, early: map[string]bool{}}
	e := testenv.StartEmbedded(t, broker.Config{DataDir: t.TempDir()}, b.hook, b.counter) // DataDir keeps retained messages across a restart
	b.url = e.URL()
	b.restart = func(t *testing.T) { e.Restart() }
	return b
}

// mosquittoBroker is Mosquitto 2.0; its curious eye is a client
// subscribed to '#', which receives every payload the broker relays.
func mosquittoBroker(t testing.TB) *testBroker {
	t.Helper()
	m := testenv.StartMosquitto(t)
	return &testBroker{name: "mosquitto", url: m.URL(), cap: testenv.WatchAll(t, m.URL()), restart: func(t *testing.T) { m.Restart() }}
}

func eachBroker(t *testing.T, f func(t *testing.T, b *testBroker)) {
	t.Run("embedded", func(t *testing.T) { f(t, embedded(t)) })
	t.Run("mosquitto", func(t *testing.T) { f(t, mosquittoBroker(t)) })
}

// startManager connects a manager to the broker.
func startManager(t testing.TB, b *testBroker, cfg manager.Config) (*manager.Manager, client.Transport) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger()
	}
	if cfg.ResendAfter == 0 {
		cfg.ResendAfter = 500 * time.Millisecond
	}
	m, err := manager.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: b.url, ClientID: "manager-" + m.Name() + "-" + t.Name(), Protocol: client.MQTT5, Logger: testenv.Logger(),
		AtMostOnce: true, OnMessage: m.HandleMessage})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	if err := m.Start(ctx, tr); err != nil {
		t.Fatal(err)
	}
	return m, tr
}

// startDevice runs a virtual device with the E2E side enabled.
func startDevice(t testing.TB, b *testBroker, uuid string, cfg devices.E2EConfig) *devices.Device {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := devices.New(devices.Config{Description: desc, UUID: uuid, BrokerURL: b.url, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.EnableE2E(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// pair is a manager ("mgr-a") and a device of one CA, connected to a broker.
type pair struct {
	p     *pki
	m     *manager.Manager
	tr    client.Transport // the manager's
	d     *devices.Device
	uuid  string
	dcert *x509.Certificate // the device's first certificate
}

func newPair(t testing.TB, b *testBroker, uuid string, mode e2e.Mode) *pair {
	t.Helper()
	pr := &pair{p: newPKI(t, "ca"), uuid: uuid}
	mcert, mkey := pr.p.issue(t, "mgr-a", e2e.RoleManager)
	pr.m, pr.tr = startManager(t, b, manager.Config{Mode: mode, CA: pr.p.ca, Cert: mcert, Key: mkey, CAKey: pr.p.caKey})
	var dkey *ecdsa.PrivateKey
	pr.dcert, dkey = pr.p.issue(t, uuid, e2e.RoleDevice)
	pr.d = startDevice(t, b, uuid, devices.E2EConfig{CA: pr.p.ca, Cert: pr.dcert, Key: dkey})
	return pr
}
