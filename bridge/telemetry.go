package bridge

import (
	"context"
	"time"

	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/yang"
)

// sensorRef says which device and sensor a telemetry topic belongs to.
type sensorRef struct {
	uuid   string
	sensor int // index into the model's Sensors and the module's Notifications
}

// sensorTopicsLocked maps the device's output data point topics.
func (b *Bridge) sensorTopicsLocked(d *device) []string {
	d.topics = nil
	for i, s := range d.model.Sensors {
		if s.Topic == "" {
			continue
		}
		b.telemetry[s.Topic] = sensorRef{uuid: d.UUID, sensor: i}
		d.topics = append(d.topics, s.Topic)
	}
	return d.topics
}

// onReading keeps the latest reading and emits it as a notification.
func (b *Bridge) onReading(m client.Message) {
	now := time.Now().UTC()
	b.mu.Lock()
	ref, ok := b.telemetry[m.Topic]
	var d *device
	if ok {
		d = b.devices[ref.uuid]
	}
	if d == nil {
		b.mu.Unlock()
		return
	}
	n := d.module.mod.Notifications[ref.sensor]
	d.readings[n.Name] = reading{value: string(m.Payload), at: now}
	d.lastSeen = now
	ns := d.module.mod.Namespace
	b.mu.Unlock()
	b.nc.Notify(netconf.NewNode(ns, n.Name,
		netconf.NewLeaf(ns, "uuid", ref.uuid),
		netconf.NewLeaf(ns, "value", string(m.Payload)),
		netconf.NewLeaf(ns, "timestamp", now.Format(time.RFC3339Nano))))
}

// stateFunc renders the module's device list for <get>.
func (b *Bridge) stateFunc(mod *yang.Module) netconf.StateFunc {
	return func(ctx context.Context) ([]*netconf.Element, error) {
		ns := mod.Namespace
		leaf := func(name, v string) *netconf.Element { return netconf.NewLeaf(ns, name, v) }
		list := netconf.NewNode(ns, "devices")
		b.mu.Lock()
		defer b.mu.Unlock()
		now := time.Now()
		for _, uuid := range sortedKeys(b.devices) {
			d := b.devices[uuid]
			if d.module.mod != mod {
				continue
			}
			online := "false"
			if now.Sub(d.lastSeen) < b.cfg.OfflineAfter {
				online = "true"
			}
			e := netconf.NewNode(ns, "device",
				leaf("uuid", d.UUID), leaf("category", d.model.Category), leaf("module", mod.Name))
			if d.model.Description != "" {
				e.Children = append(e.Children, leaf("description", d.model.Description))
			}
			e.Children = append(e.Children, leaf("online", online),
				leaf("registered-at", d.RegisteredAt.Format(time.RFC3339)),
				leaf("last-seen", d.lastSeen.Format(time.RFC3339)))
			if d.firmware != "" {
				e.Children = append(e.Children, leaf("firmware-version", d.firmware))
			}
			if len(d.readings) > 0 {
				sensors := netconf.NewNode(ns, "sensors")
				for _, n := range mod.Notifications {
					if r, ok := d.readings[n.Name]; ok {
						sensors.Children = append(sensors.Children, netconf.NewNode(ns, n.Name,
							leaf("value", r.value), leaf("timestamp", r.at.Format(time.RFC3339Nano))))
					}
				}
				e.Children = append(e.Children, sensors)
			}
			list.Children = append(list.Children, e)
		}
		return []*netconf.Element{list}, nil
	}
}

func sortedKeys(m map[string]*device) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
