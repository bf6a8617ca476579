package bridge

import (
	"context"
	"encoding/xml"
	"strconv"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/yang"
)

// onReading keeps the latest reading of a telemetry topic and emits it as
// a notification (RFC 5277).
func (b *Bridge) onReading(m client.Message) {
	// A reading counts only from the device whose description names its
	// topic.
	if uuid, ok := b.registry.ownerOf(m.Topic); ok && !b.trusted(m, uuid) {
		b.untrusted(m, uuid, "reading")
		return
	}
	now := time.Now().UTC()
	n, ok := b.registry.record(m.Topic, m.Payload, now)
	if !ok {
		return
	}
	b.heard(n.uuid, m)
	b.nc.NotifyStream(streamTelemetry, netconf.NewNode(n.namespace, n.name,
		netconf.NewLeaf(n.namespace, "uuid", n.uuid),
		netconf.NewLeaf(n.namespace, "value", string(m.Payload)),
		netconf.NewLeaf(n.namespace, "timestamp", now.Format(time.RFC3339Nano))))
}

// stateFunc renders the module's device list for <get>, from a snapshot
// of the registry: the registry's lock is not held while rendering.
func (b *Bridge) stateFunc(mod *yang.Module) netconf.StateSource {
	root := xml.Name{Space: mod.Namespace, Local: "devices"}
	return netconf.StateSource{Roots: []xml.Name{root}, Get: func(ctx context.Context, q *netconf.StateQuery) ([]*netconf.Element, error) {
		ns := mod.Namespace
		leaf := func(name, v string) *netconf.Element { return netconf.NewLeaf(ns, name, v) }
		list := netconf.NewNode(ns, "devices")
		now := time.Now()
		// A filter that names its devices by uuid (the list's key) builds
		// only those: a one-device get costs the same in any fleet.
		var only []string
		if siblings, whole := q.Within(root); !whole {
			if keys, ok := netconf.ListKeys(siblings, xml.Name{Space: ns, Local: "device"}, "uuid"); ok {
				only = append(make([]string, 0, len(keys)), keys...)
			}
		}
		for _, d := range b.registry.snapshot(mod, only) {
			// Connected now, as far as the bridge can tell (presence.go).
			online := strconv.FormatBool(b.presence.isOnline(d.uuid, d.lastSeen, now))
			e := netconf.NewNode(ns, "device",
				leaf("uuid", d.uuid), leaf("category", d.category), leaf("module", mod.Name))
			if d.description != "" {
				e.Children = append(e.Children, leaf("description", d.description))
			}
			e.Children = append(e.Children, leaf("online", online),
				leaf("registered-at", d.registeredAt.Format(time.RFC3339)),
				leaf("last-seen", d.lastSeen.Format(time.RFC3339)))
			if d.firmware != "" {
				e.Children = append(e.Children, leaf("firmware-version", d.firmware))
			}
			if cs := b.config.stateOf(ns, d.uuid); cs != nil {
				e.Children = append(e.Children, cs)
			}
			if len(d.readings) > 0 {
				sensors := netconf.NewNode(ns, "sensors")
				for _, r := range d.readings {
					sensors.Children = append(sensors.Children, netconf.NewNode(ns, r.sensor,
						leaf("value", r.value), leaf("timestamp", r.at.Format(time.RFC3339Nano))))
				}
				e.Children = append(e.Children, sensors)
			}
			list.Children = append(list.Children, e)
		}
		return []*netconf.Element{list}, nil
	}}
}
