package bridge

import (
	"context"
	_ "embed"
	"encoding/xml"
	"strconv"
	"time"

	"github.com/myno-bridge/myno/netconf"
)

// The bridge's own module (bridge/yang/myno-bridge.yang): its state in
// <get>, beside the modules of its devices.
const (
	bridgeModule    = "myno-bridge"
	bridgeNamespace = "urn:myno:bridge"
	bridgeRevision  = "2026-12-04"
)

//go:embed yang/myno-bridge.yang
var bridgeModuleSource string

// announceBridgeModule adds the bridge's module and its state.
func (b *Bridge) announceBridgeModule() {
	b.nc.AddModule(netconf.Module{Name: bridgeModule, Revision: bridgeRevision, Namespace: bridgeNamespace, Source: bridgeModuleSource})
	b.nc.AddStateSource(bridgeModule, netconf.StateSource{Roots: []xml.Name{{Space: bridgeNamespace, Local: "bridge"}},
		Get: func(ctx context.Context, _ *netconf.StateQuery) ([]*netconf.Element, error) {
			return b.bridgeState(ctx)
		}})
}

// bridgeState renders the bridge container of myno-bridge.
func (b *Bridge) bridgeState(ctx context.Context) ([]*netconf.Element, error) {
	leaf := func(name, v string) *netconf.Element { return netconf.NewLeaf(bridgeNamespace, name, v) }
	kind, refused, denied := "external", uint64(0), uint64(0)
	if b.broker != nil {
		kind, refused, denied = "embedded", b.broker.RefusedConnects(), b.broker.DeniedTopics()
	}
	acc := netconf.NewNode(bridgeNamespace, "mqtt-access",
		leaf("broker", kind),
		leaf("allow-anonymous", strconv.FormatBool(b.broker != nil && b.cfg.MQTTAllowAnonymous)))
	if b.broker != nil { // enrolment is the embedded broker's; an external one has its own
		acc.Children = append(acc.Children, leaf("enrolment", string(b.cfg.Enrolment)))
	}
	acc.Children = append(acc.Children,
		leaf("legacy-bootstrap-topics", strconv.FormatBool(b.broker != nil || b.cfg.LegacyBootstrapTopics)),
		leaf("refused-connections", strconv.FormatUint(refused, 10)),
		leaf("denied-topics", strconv.FormatUint(denied, 10)),
		leaf("untrusted-messages", strconv.FormatUint(b.calls.mismatched.Load(), 10)))
	top := netconf.NewNode(bridgeNamespace, "bridge")
	for _, d := range b.registry.invalidDevices() {
		top.Children = append(top.Children, netconf.NewNode(bridgeNamespace, "invalid-device",
			leaf("uuid", d.saved.UUID), leaf("reason", d.reason), leaf("registered-at", d.saved.RegisteredAt.Format(time.RFC3339))))
	}
	num := func(name string, v int) *netconf.Element { return leaf(name, strconv.Itoa(v)) }
	u := b.registry.shapeUsage()
	top.Children = append(top.Children, acc, netconf.NewNode(bridgeNamespace, "registry",
		num("devices", u.devices),
		num("shapes", u.shapes),
		num("max-shapes", u.limits.count),
		num("shape-description-bytes", u.bytes),
		num("max-shape-description-bytes", u.limits.bytes),
		leaf("refused-shapes", strconv.FormatUint(u.refused, 10))))
	p := b.assembly.usage()
	top.Children = append(top.Children, netconf.NewNode(bridgeNamespace, "pending-descriptions",
		num("descriptions", p.descriptions),
		num("bytes", p.bytes),
		num("max-bytes", b.cfg.MaxPendingDescriptionBytes),
		num("sources", p.sources),
		num("max-per-source", b.cfg.MaxPendingPerSource),
		num("max-bytes-per-source", b.cfg.MaxPendingBytesPerSource),
		leaf("busy-refusals", strconv.FormatUint(p.busy, 10)),
		leaf("source-busy-refusals", strconv.FormatUint(p.busySource, 10))))
	return []*netconf.Element{top}, nil
}
