package bridge

import (
	"context"
	"encoding/xml"
	"sort"
	"strings"
	"sync"

	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// The MYNO profile (`myno bridge --profile myno`, issue 13): the bridge
// shows its modules, state and replies as MYNO's own bridge does, so that
// MYNO's web client and Update Server work through it unchanged
// (MUP-V1.md §1–2, read from their code):
//
//   - a module per device shape named mqtt-<category>, in namespace
//     yang.MYNONamespaceBase + <category>; a second shape of one category
//     gets "-" and 6 digits of its shape appended to both (MYNO's bridge had
//     one module per category);
//   - <get> lists each device as <device><device-id><uuid/></device-id>
//     <device-category/></device> in its module's namespace;
//   - rpc replies are <data><retval>answer</retval></data> in no
//     namespace, the device's answer passed through unchanged; a device
//     that does not answer gives the retval MYNO's bridge gave;
//   - get-schema with an empty identifier returns every device module.
//
// The rpcs themselves are the standard ones: the same validation, topics
// and wire format.

// mynoNoResponse is MYNO's bridge's retval when a device does not answer.
const mynoNoResponse = "NO RESPONSE FROM DEVICE"

// mynoModules are the device modules as the MYNO profile shows them, by
// the name of the standard module they present.
type mynoModules struct {
	mu       sync.Mutex
	byModule map[string]*yang.MYNOModule
	// categories holds the MYNO names taken, so that a second shape of a
	// category gets a suffix.
	taken map[string]bool
}

func newMYNOModules() *mynoModules {
	return &mynoModules{byModule: map[string]*yang.MYNOModule{}, taken: map[string]bool{}}
}

// assign gives mod its MYNO module: the category's name if free, else the
// category with a suffix from the shape.
func (m *mynoModules) assign(mod *yang.Module) *yang.MYNOModule {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mm := m.byModule[mod.Name]; mm != nil {
		return mm
	}
	mm := mod.MYNO("")
	if m.taken[mm.Name] {
		mm = mod.MYNO(mod.Device.Shape()[:6])
	}
	m.taken[mm.Name] = true
	m.byModule[mod.Name] = mm
	return mm
}

// release forgets mod's MYNO module.
func (m *mynoModules) release(mod *yang.Module) *yang.MYNOModule {
	m.mu.Lock()
	defer m.mu.Unlock()
	mm := m.byModule[mod.Name]
	if mm != nil {
		delete(m.byModule, mod.Name)
		delete(m.taken, mm.Name)
	}
	return mm
}

// texts returns every MYNO module's text, in name order.
func (m *mynoModules) texts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.byModule))
	byName := map[string]string{}
	for _, mm := range m.byModule {
		names = append(names, mm.Name)
		byName[mm.Name] = mm.Text
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// announceMYNO is announce for the MYNO profile.
func (b *Bridge) announceMYNO(mod *yang.Module) {
	mm := b.myno.assign(mod)
	h := b.rpcHandler(mod, b.mynoReply)
	for _, r := range mod.RPCs {
		b.nc.Handle(mm.Name, mm.Namespace, r.Name, netconf.HandlerFunc(func(ctx context.Context, req *netconf.Request) ([]*netconf.Element, error) {
			// The rpc arrives in the MYNO namespace (the server put an
			// unqualified one there); the module checks it in its own.
			requalify(req.Operation, mm.Namespace, mod.Namespace)
			out, err := h.ServeRPC(ctx, req)
			if re, ok := err.(*netconf.RPCError); ok && re.AppTag == "device-timeout" {
				return mynoData(mynoNoResponse), nil
			}
			return out, err
		}))
	}
	b.nc.AddStateSource(mm.Name, b.mynoState(mod, mm))
	b.nc.AddModule(netconf.Module{Name: mm.Name, Namespace: mm.Namespace, Source: mm.Text})
}

// withdrawMYNO is withdraw for the MYNO profile.
func (b *Bridge) withdrawMYNO(mod *yang.Module) {
	mm := b.myno.release(mod)
	if mm == nil {
		return
	}
	b.nc.RemoveState(mm.Name)
	b.nc.RemoveModule(mm.Name)
	b.log.Info("module withdrawn", "module", mm.Name)
}

// requalify moves e and its descendants from namespace from to to.
func requalify(e *netconf.Element, from, to string) {
	if e.Name.Space == from {
		e.Name.Space = to
	}
	for _, c := range e.Children {
		requalify(c, from, to)
	}
}

// mynoReply is the reply MYNO's clients read: <data><retval>, no
// namespace, the device's answer as it is, and its data outputs beside.
func (b *Bridge) mynoReply(_ *yang.Module, c *yang.Call, r wire.Response) ([]*netconf.Element, error) {
	out := mynoData(r.Value)
	data := out[0]
	for i, o := range c.RPC.Outputs {
		if i < len(r.Outputs) {
			data.Children = append(data.Children, netconf.NewLeaf("", o.Name, r.Outputs[i]))
		}
	}
	return out, nil
}

func mynoData(retval string) []*netconf.Element {
	return []*netconf.Element{netconf.NewNode("", "data", netconf.NewLeaf("", "retval", retval))}
}

// mynoState lists mod's devices as MYNO's bridge does.
func (b *Bridge) mynoState(mod *yang.Module, mm *yang.MYNOModule) netconf.StateSource {
	return netconf.StateSource{Roots: []xml.Name{{Space: mm.Namespace, Local: "device"}}, Get: func(ctx context.Context, _ *netconf.StateQuery) ([]*netconf.Element, error) {
		var out []*netconf.Element
		for _, d := range b.registry.snapshot(mod, nil) {
			out = append(out, netconf.NewNode(mm.Namespace, "device",
				netconf.NewNode(mm.Namespace, "device-id", netconf.NewLeaf(mm.Namespace, "uuid", d.uuid)),
				netconf.NewLeaf(mm.Namespace, "device-category", d.category)))
		}
		return out, nil
	}}
}

// allSchemas answers get-schema with an empty identifier in the MYNO
// profile: every device module, one after another (MYNO's clients split
// the text on "module").
func (b *Bridge) allSchemas() func() string {
	if b.myno == nil {
		return nil
	}
	return func() string { return strings.Join(b.myno.texts(), "\n") }
}

// of returns the MYNO module presenting the standard module named module,
// or nil.
func (m *mynoModules) of(module string) *yang.MYNOModule {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byModule[module]
}
