package e2e

import (
	"fmt"
	"strings"

	"github.com/myno-bridge/myno/wire"
)

// DefaultPrefix roots the E2E topic tree. The paper's "$iot" is not used:
// topics that start with '$' are reserved for the broker's own use (MQTT 5
// §4.7.2) and brokers refuse or hide them.
const DefaultPrefix = wire.DefaultE2EPrefix

// The leaves of one manager-device channel (paper Fig. 5 to 7).
const (
	LeafNotify = "notify"
	LeafReady  = "ready"
	LeafUpdate = "update"
	LeafStatus = "update/status"
)

// Topics names the channel between one manager and one device:
// <prefix>/<manager>/<device>/{notify,ready,update,update/status}.
type Topics struct {
	Prefix, Manager, Device string
}

func (t Topics) leaf(l string) string { return t.Prefix + "/" + t.Manager + "/" + t.Device + "/" + l }

// Notify is where the manager publishes its retained notify.
func (t Topics) Notify() string { return t.leaf(LeafNotify) }

// Ready is where the device answers.
func (t Topics) Ready() string { return t.leaf(LeafReady) }

// Update is where the manager sends sealed updates.
func (t Topics) Update() string { return t.leaf(LeafUpdate) }

// Status is where the device reports on an update.
func (t Topics) Status() string { return t.leaf(LeafStatus) }

// ManagerFilter is what a manager subscribes to for one leaf of every
// device: <prefix>/<manager>/+/<leaf>.
func ManagerFilter(prefix, manager, leaf string) string {
	return prefix + "/" + manager + "/+/" + leaf
}

// DeviceFilter is what a device subscribes to for one leaf from every
// manager: <prefix>/+/<device>/<leaf>.
func DeviceFilter(prefix, device, leaf string) string {
	return prefix + "/+/" + device + "/" + leaf
}

// CheckPrefix refuses a prefix that is empty, starts with '$', has a
// wildcard or an empty level.
func CheckPrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("e2e: empty topic prefix")
	case strings.HasPrefix(prefix, "$"):
		return fmt.Errorf("e2e: topic prefix %q: topics starting with '$' are reserved for the broker (MQTT 5 §4.7.2)", prefix)
	case strings.ContainsAny(prefix, "+#\x00"):
		return fmt.Errorf("e2e: topic prefix %q has a wildcard or NUL", prefix)
	case strings.HasPrefix(prefix, "/") || strings.HasSuffix(prefix, "/") || strings.Contains(prefix, "//"):
		return fmt.Errorf("e2e: topic prefix %q has an empty level", prefix)
	}
	return nil
}

// CheckName refuses a manager or device name that cannot be one topic
// level.
func CheckName(name string) error {
	if name == "" || strings.ContainsAny(name, "/+#$\x00") {
		return fmt.Errorf("e2e: name %q cannot be a topic level", name)
	}
	return nil
}

// ParseTopic splits a topic of the tree under prefix into its manager,
// device and leaf.
func ParseTopic(prefix, topic string) (Topics, string, bool) {
	rest, ok := strings.CutPrefix(topic, prefix+"/")
	if !ok {
		return Topics{}, "", false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return Topics{}, "", false
	}
	switch parts[2] {
	case LeafNotify, LeafReady, LeafUpdate, LeafStatus:
		return Topics{Prefix: prefix, Manager: parts[0], Device: parts[1]}, parts[2], true
	}
	return Topics{}, "", false
}
