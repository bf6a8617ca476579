package yang

import (
	"strings"

	"github.com/myno-bridge/myno/ontology"
)

// MYNONamespaceBase is the namespace MYNO's bridge gives each device
// category's module, the category appended; MYNO's Update Server needs a
// module's namespace to equal the namespace its devices have in <get>
// (MUP-V1 §1).
const MYNONamespaceBase = "https://www.cs.uni-potsdam.de/bs/research/myno/"

// MYNOModule is a module as MYNO's own bridge presents it (its generator,
// yang_generator_rdflib.py): for `myno bridge --profile myno`, so that
// MYNO's web client and Update Server, which read modules with pyang and
// replies with ElementTree, work unchanged.
type MYNOModule struct {
	Name      string // mqtt-<category>[-<suffix>]
	Namespace string // MYNONamespaceBase + <category>[-<suffix>]
	Text      string
}

// MYNO renders m as MYNO's bridge would. suffix, when not empty, tells a
// second shape of one category from the first (MYNO's bridge had one
// module per category and could not). The text differs from the standard
// module where MYNO's clients need it to: each rpc with an input data point
// carries its topic template as a "default" substatement (not valid YANG:
// MYNO's Update Server reads the image topic there), inputs and the result
// are written inline, and the state is MYNO's container device with
// device-id/uuid and device-category. The standard module (Text) stays
// the one that passes yanglint.
func (m *Module) MYNO(suffix string) *MYNOModule {
	dev := m.Device
	cat := identifier(dev.Category)
	if cat == "" {
		cat = "device"
	}
	if suffix != "" {
		cat += "-" + suffix
	}
	mm := &MYNOModule{Name: "mqtt-" + cat, Namespace: MYNONamespaceBase + cat}
	w := &writer{}
	w.open("module", mm.Name)
	w.text("namespace", mm.Namespace)
	w.stmt("prefix", quote(cat))
	for _, r := range m.RPCs {
		f := r.Function
		w.blank()
		w.open("rpc", r.Name)
		desc := m.text(f.Description)
		if desc == "" {
			desc = r.Name // MYNO's client needs one
		}
		w.text("description", desc)
		if f.InputTopic != "" {
			w.text("default", m.inputTopic(f.InputTopic))
		}
		w.open("input", "")
		for _, n := range r.Inputs {
			w.open("leaf", n.Name)
			d := m.text(n.Input.Description)
			if n.Selector() && d == "" {
				d = "The target device."
			}
			if d != "" {
				w.text("description", d)
			}
			if n.Input.Kind == ontology.InputStructure {
				// MYNO writes a sub-structure as a union of its members'
				// ranged types; the value goes on the wire as one string.
				w.open("type", "union")
				for _, fl := range n.Fields {
					writeInline(w, &fl.Type)
				}
				w.close()
			} else {
				writeInline(w, &n.Type)
			}
			w.close()
		}
		w.close()
		w.open("output", "")
		w.open("leaf", "retval")
		writeInline(w, &r.Retval)
		w.close()
		for _, o := range r.Outputs {
			w.open("leaf", o.Name)
			writeInline(w, &o.Type)
			w.close()
		}
		w.close()
		w.close()
	}
	w.blank()
	w.open("container", "device")
	w.text("description", m.text(dev.Description))
	w.open("list", "device-id")
	w.stmt("key", "uuid")
	w.open("leaf", "uuid")
	w.stmt("type", "string")
	w.close()
	w.close()
	w.open("leaf", "device-category")
	w.text("description", "Identifies the device category")
	w.stmt("type", "string")
	w.close()
	w.close()
	w.close()
	mm.Text = w.b.String()
	return mm
}

// writeInline writes lt without the module's typedefs (MYNO's modules
// have none): a typedef reference becomes its base type.
func writeInline(w *writer, lt *leafType) {
	switch {
	case lt.builtin == "enumeration" || lt.builtin == "decimal64" || lt.rangeArg != "":
		inline := *lt
		inline.ref = ""
		inline.write(w)
	case lt.ref != "" || lt.name != lt.builtin:
		w.stmt("type", strings.TrimSpace(lt.builtin))
	default:
		w.stmt("type", lt.name)
	}
}
