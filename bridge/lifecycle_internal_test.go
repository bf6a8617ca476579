package bridge

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// startInternal starts a bridge on the embedded broker with cfg's test
// hooks.
func startInternal(t *testing.T, cfg Config) *Bridge {
	t.Helper()
	cfg.NetconfListen, cfg.MQTTListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.AdminPassword, cfg.Logger, cfg.Out = "internal-test-pw", testenv.Logger(), os.Stderr
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The task that answers a retrieve request belongs to the bridge: Close
// waits for it instead of leaving it running against a stopped broker.
func TestCloseWaitsForLookupHandlers(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	b := startInternal(t, Config{Enrolment: access.EnrolOpen, beforeLookup: func() {
		entered <- struct{}{}
		<-release
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Device dev-1 asks about itself (--enrol open binds its token).
	pub, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "dev-1", Logger: testenv.Logger(),
		Credentials: client.Credentials{Username: "dev-1", Password: "lookup-test-token-0123456789abcdef"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.Publish(ctx, client.Message{Topic: wire.TopicRetrieve, Payload: []byte("dev-1")}, 1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("the retrieve request never reached its handler")
	}
	closed := make(chan struct{})
	go func() { b.Close(); close(closed) }()
	// A negative check needs a window: Close must still be waiting for the
	// handler after it.
	select {
	case <-closed:
		t.Fatal("Close returned while a lookup handler was still running")
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close did not return after the handler ended")
	}
}

// A function that the device's template lacks is not implemented: it
// used to resolve to the template's first function (indexOf returned 0).
func TestCommandTopicOfAMissingFunction(t *testing.T) {
	r, err := openRegistry(t.TempDir(), &ontology.Parser{}, shapeLimits{}, testenv.Logger())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	ch, err := r.register("led-1", data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := r.devices["led-1"]
	if len(d.template.Functions) == 0 {
		t.Fatal("led-color has no functions")
	}
	f := &d.template.Functions[0]
	if topic, res := r.commandTopic("led-1", ch.module, f); res != lookupOK || topic != f.Topic {
		t.Fatalf("known function: %q, %v", topic, res)
	}
	missing := *f
	missing.IRI += "-missing"
	if topic, res := r.commandTopic("led-1", ch.module, &missing); res != lookupNotImplemented {
		t.Fatalf("missing function resolved to %q (%v)", topic, res)
	}
	if _, res := r.commandTopic("led-2", ch.module, f); res != lookupUnknownDevice {
		t.Fatalf("unknown device: %v", res)
	}
}

// Temporary registry files left by a crash during a save are removed at
// start; the registry itself is kept.
func TestStartRemovesRegistryLeftovers(t *testing.T) {
	dir := t.TempDir()
	var leftovers []string
	for _, f := range []string{registryFile, snapshotFile, journalFile} {
		leftover := filepath.Join(dir, "."+f+".1234567")
		if err := os.WriteFile(leftover, []byte("{half a registry"), 0o600); err != nil {
			t.Fatal(err)
		}
		leftovers = append(leftovers, leftover)
	}
	cfg := Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir,
		AdminPassword: "internal-test-pw", Logger: testenv.Logger(), Out: os.Stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, leftover := range leftovers {
		if _, err := os.Stat(leftover); !os.IsNotExist(err) {
			t.Fatalf("leftover %s still there: %v", leftover, err)
		}
	}
}
