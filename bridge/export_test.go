package bridge

import (
	"strings"
	"testing"

	"github.com/myno-bridge/myno/mqtt/broker"
)

// savedUUIDs lists the devices saved in dataDir's registry, sorted and
// joined by commas, read as myno acl export reads them: without the lock.
func savedUUIDs(t testing.TB, dataDir string) string {
	t.Helper()
	saved, err := readSaved(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var uuids []string
	for _, p := range saved {
		uuids = append(uuids, p.UUID)
	}
	return strings.Join(uuids, ",")
}

// SavedUUIDs is savedUUIDs for the package's external tests.
var SavedUUIDs = savedUUIDs

// RegistryWritten is what the registry of b wrote to disk so far.
func RegistryWritten(b *Bridge) storeStats { return b.registry.store.written() }

// EmbeddedBroker is b's embedded broker, for tests that act on it.
func EmbeddedBroker(b *Bridge) *broker.Broker { return b.broker }
