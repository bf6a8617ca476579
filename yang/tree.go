package yang

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/myno-bridge/myno/ontology"
)

// WriteTree writes a compact view of the module: its rpcs with their
// inputs (types, enumeration values, ranges), outputs and MQTT binding,
// and its sensors.
func (m *Module) WriteTree(out io.Writer) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	dev := m.Device
	fmt.Fprintf(w, "module: %s\t(category %s, %d rpcs, %d sensors)\n", m.Name, m.text(dev.Category), len(m.RPCs), len(m.Notifications))
	if len(m.RPCs) > 0 {
		fmt.Fprintf(w, "  rpcs:\n")
	}
	for _, r := range m.RPCs {
		f := r.Function
		fmt.Fprintf(w, "    +---x %s\t%s %s\n", r.Name, f.Method, m.topicLabel(f.Topic))
		for _, n := range r.Inputs {
			switch n.Input.Kind {
			case ontology.InputStructure:
				fmt.Fprintf(w, "    |  +---w %s\tcontainer\n", n.Name)
				for _, fl := range n.Fields {
					fmt.Fprintf(w, "    |  |  +---w %s\t%s\n", fl.Name, fl.Type.summary())
				}
			case ontology.InputSelector:
				fmt.Fprintf(w, "    |  +---w %s\t%s (device selector)\n", n.Name, n.Type.summary())
			default:
				fmt.Fprintf(w, "    |  +---w %s\t%s\n", n.Name, n.Type.summary())
			}
		}
		if f.InputTopic != "" {
			fmt.Fprintf(w, "    |  +--- data point\t%s\n", m.topicLabel(f.InputTopic))
		}
		fmt.Fprintf(w, "    |  +--ro retval\t%s\n", r.Retval.summary())
		for _, o := range r.Outputs {
			fmt.Fprintf(w, "    |  +--ro %s\t%s\n", o.Name, o.Type.summary())
		}
	}
	if len(m.Configurable) > 0 {
		fmt.Fprintf(w, "  configuration:\n")
		fmt.Fprintf(w, "    +--rw %s/%s* [%s]\n", ConfigContainer, ConfigList, ConfigKey)
		for _, r := range m.Configurable {
			fmt.Fprintf(w, "       +--rw %s!\t(calls %s)\n", r.Name, r.Name)
			for _, n := range nonSelector(r.Inputs) {
				if n.Input.Kind == ontology.InputStructure {
					fmt.Fprintf(w, "       |  +--rw %s\tcontainer\n", n.Name)
					for _, fl := range n.Fields {
						fmt.Fprintf(w, "       |  |  +--rw %s\t%s\n", fl.Name, fl.Type.summary())
					}
					continue
				}
				fmt.Fprintf(w, "       |  +--rw %s\t%s\n", n.Name, n.Type.summary())
			}
		}
	}
	if len(m.Notifications) > 0 {
		fmt.Fprintf(w, "  sensors:\n")
	}
	for _, n := range m.Notifications {
		unit := ""
		if n.Sensor.Unit != "" {
			unit = " [" + m.text(n.Sensor.Unit) + "]"
		}
		topic := "(no topic)"
		if n.Sensor.Topic != "" {
			topic = m.topicLabel(n.Sensor.Topic)
		}
		fmt.Fprintf(w, "    +--n %s\t%s%s %s\n", n.Name, n.Value.summary(), unit, topic)
	}
	return w.Flush()
}

func (m *Module) topicLabel(t string) string { return "@" + m.text(t) }

// summary is a one-line rendering of a type for the tree view.
func (lt *leafType) summary() string {
	switch {
	case lt.builtin == "enumeration":
		var names []string
		for i, e := range lt.enum {
			if i == 4 && len(lt.enum) > 6 {
				names = append(names, fmt.Sprintf("… %d values", len(lt.enum)))
				break
			}
			names = append(names, e.Name)
		}
		return "enumeration {" + strings.Join(names, "|") + "}"
	case lt.rangeArg != "":
		return lt.name + " [" + lt.rangeArg + "]"
	}
	return lt.name
}
