package yang

import (
	"errors"
	"fmt"
	"strings"

	goyang "github.com/openconfig/goyang/pkg/yang"

	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// Revision is the revision date of every generated module. The module name
// carries the shape, so a module's content never changes under one name and
// the revision can stay fixed; it changes only when the mapping changes.
const Revision = "2026-12-02"

// InputTopicExtension is the YANG extension (RFC 7950 §7.19) that carries
// an operation's input data point topic: the MQTT topic where the device
// takes raw data such as firmware slices (the MUP paper's image topic).
// Every module with such an operation declares it,
//
//	extension mqtt-input-topic {
//	  argument topic;
//	  description "...";
//	}
//
// and the rpc uses it with the module's prefix, its argument a topic
// template ("%s" is the device's UUID, "%%" a "%"): the description's
// own, or with Options.UUID the bound topic with each "%" doubled:
//
//	rpc sendFirmwareImage {
//	  description "...";
//	  mup-setup-2-1a2b:mqtt-input-topic "yang/update/image/%s";
//	  ...
//
// A client binds it to a device with wire.Expand, as the device does; the
// Update Server reads its firmware topic from there (InputTopics).
const InputTopicExtension = "mqtt-input-topic"

// inputTopicArgument is the extension's argument name.
const inputTopicArgument = "topic"

// Options tunes generation.
type Options struct {
	// UUID, when set, binds the description's "%s" placeholders in
	// descriptions and enumeration values. Leave it empty for the module
	// shared by every device of a shape.
	UUID string
}

// Module is a generated YANG module and the schema it describes.
type Module struct {
	Name      string
	Namespace string
	Prefix    string
	Revision  string
	Text      string // the YANG 1.1 module source

	Device *ontology.Device // the (template) model it was generated from
	RPCs   []*RPC
	// Configurable are the rpcs of configuration functionalities whose
	// inputs are configuration: each is a container of them under the
	// device in ConfigContainer (see Configurable).
	Configurable  []*RPC
	Notifications []*Notification
	uuid          string
	stateTypedefs []*stateTypedef
}

// stateTypedef is a result-state enumeration shared by several rpcs,
// written once as a typedef.
type stateTypedef struct {
	name, stateSet, grouping string
	lt                       leafType
}

// RPC is the schema of one generated rpc.
type RPC struct {
	Name     string
	Function *ontology.Function
	Inputs   []*InputNode // in the order of the operation's inputs
	Outputs  []*OutputLeaf
	Retval   leafType
	// OneInputPerCall: a call carries exactly one of the inputs besides
	// the device selector. They are the cases of a mandatory choice
	// (OneInputChoice, RFC 7950 §7.9), and only the one given goes on
	// MQTT. See takesOneInputPerCall.
	OneInputPerCall bool
}

// OneInputChoice names the choice of an rpc that takes one input per call.
const OneInputChoice = "field"

// takesOneInputPerCall tells whether the rpc is MUP v1's manifest rpc:
// its inputs besides the selector are the nine manifest fields,
// input_1_AppId … input_9_OuterSignature. MYNO's Update Server sends them
// one per call as "<index>,<value>" (MUP-V1.md §2.2), and its bridge
// forwards the leaves present; the device stores each by its index
// prefix. Making all nine mandatory would refuse every such call.
func takesOneInputPerCall(r *RPC) bool {
	names := map[string]bool{}
	for _, n := range nonSelector(r.Inputs) {
		if n.Input.Kind == ontology.InputStructure {
			return false
		}
		names[n.Name] = true
	}
	if len(names) != v1.IndexStart {
		return false
	}
	for i := range v1.IndexStart {
		if !names[v1.Leaf(i)] {
			return false
		}
	}
	return true
}

// InputNode is one input of an rpc: a leaf, or a container for a
// sub-structure.
type InputNode struct {
	Name   string
	Input  *ontology.Input
	Type   leafType     // leaves
	Fields []*FieldLeaf // containers
}

// Selector reports whether this input selects the target device.
func (n *InputNode) Selector() bool { return n.Input.Kind == ontology.InputSelector }

// FieldLeaf is a leaf of a sub-structure container.
type FieldLeaf struct {
	Name  string
	Field *ontology.Field
	Type  leafType
}

// OutputLeaf is a data output of an rpc.
type OutputLeaf struct {
	Name   string
	Output *ontology.Output
	Type   leafType
}

// Notification is the schema of a sensor's or event's notification.
type Notification struct {
	Name     string
	Sensor   *ontology.Sensor
	Value    leafType
	grouping string
}

// RPC returns the rpc with the given YANG name, or nil.
func (m *Module) RPC(name string) *RPC {
	for _, r := range m.RPCs {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// ModuleName returns the stable module name for a device shape:
// "myno-<category>-<first 10 hex digits of the shape>".
func ModuleName(dev *ontology.Device) string {
	cat := strings.ToLower(identifier(dev.Category))
	cat = strings.Trim(cat, "_.-")
	if cat == "" {
		cat = "device"
	}
	if len(cat) > 32 {
		cat = strings.TrimRight(cat[:32], "_.-")
	}
	return "myno-" + cat + "-" + dev.Shape()[:10]
}

// Generate builds the YANG module for a device model and checks it with
// goyang.
func Generate(dev *ontology.Device, opts Options) (*Module, error) {
	if len(dev.Shape()) < 10 {
		return nil, fmt.Errorf("yang: device model has no shape; models must come from ontology.Parse")
	}
	uuid := opts.UUID
	if uuid == "" {
		uuid = "%s"
	}
	m := &Module{
		Name:     ModuleName(dev),
		Revision: Revision,
		Device:   dev,
		uuid:     uuid,
	}
	m.Namespace = NamespaceOf(m.Name)
	// The prefix is the category part plus 4 shape digits: short for
	// clients to type, and a valid identifier even for "16A-PLUG".
	m.Prefix = strings.TrimPrefix(m.Name, "myno-")
	m.Prefix = identifier(m.Prefix[:len(m.Prefix)-10] + dev.Shape()[:4])

	if err := m.buildSchema(); err != nil {
		return nil, err
	}
	m.Text = m.render()
	if err := checkWithGoyang(m.Name, m.Text); err != nil {
		return nil, fmt.Errorf("yang: generated module %s rejected by goyang: %w", m.Name, err)
	}
	return m, nil
}

// text binds a description literal for display in the module.
func (m *Module) text(s string) string { return wire.Expand(s, m.uuid) }

func (m *Module) buildSchema() error {
	top := namespaceAlloc{"devices": true, ConfigContainer: true}
	dev := m.Device
	// Result states shared by several rpcs become one typedef each.
	shared := map[string]int{}
	for i := range dev.Functions {
		if len(dev.Functions[i].States) > 0 {
			shared[stateKey(&dev.Functions[i])]++
		}
	}
	typedefNames := namespaceAlloc{}
	for _, name := range append(typedefOrder, builtinTypes...) {
		typedefNames[name] = true
	}
	byKey := map[string]*stateTypedef{}
	groupingNames := namespaceAlloc{}
	for i := range dev.Functions {
		f := &dev.Functions[i]
		r := &RPC{Name: top.take(f.Name), Function: f}
		inputs := namespaceAlloc{}
		for j := range f.Inputs {
			in := &f.Inputs[j]
			n := &InputNode{Name: inputs.take(in.Name), Input: in}
			switch in.Kind {
			case ontology.InputSelector:
				n.Type = leafType{name: typedefDeviceUUID, builtin: "string", pattern: typedefs[typedefDeviceUUID].pattern}
			case ontology.InputEnumeration:
				lt, err := m.enumType(f.IRI, in.Enum, nil)
				if err != nil {
					return err
				}
				n.Type = lt
			case ontology.InputStructure:
				fields := namespaceAlloc{}
				for k := range in.Fields {
					fl := &in.Fields[k]
					n.Fields = append(n.Fields, &FieldLeaf{Name: fields.take(fl.Name), Field: fl, Type: valueType(fl.Type, fl.Range, useField)})
				}
			case ontology.InputValue:
				n.Type = valueType(in.Type, in.Range, useInput)
			}
			r.Inputs = append(r.Inputs, n)
		}
		r.OneInputPerCall = takesOneInputPerCall(r)
		if configurable(r) {
			m.Configurable = append(m.Configurable, r)
		}
		outputs := namespaceAlloc{"retval": true}
		for j := range f.Outputs {
			o := &f.Outputs[j]
			r.Outputs = append(r.Outputs, &OutputLeaf{Name: outputs.take(o.Name), Output: o, Type: valueType(o.Type, nil, useOutput)})
		}
		if len(f.States) > 0 {
			values := make([]string, len(f.States))
			descs := map[string]string{}
			for k, s := range f.States {
				values[k] = s.Value
				descs[s.Value] = s.Description
			}
			lt, err := m.enumType(f.Operation, values, descs)
			if err != nil {
				return err
			}
			key := stateKey(f)
			if shared[key] > 1 {
				td := byKey[key]
				if td == nil {
					td = &stateTypedef{name: typedefNames.take(f.StateSet), stateSet: f.StateSet, lt: lt}
					td.grouping = groupingNames.take(td.name + "-result")
					byKey[key] = td
					m.stateTypedefs = append(m.stateTypedefs, td)
				}
				lt.ref = td.name
			}
			r.Retval = lt
		} else {
			r.Retval = leafType{name: "string", builtin: "string"}
		}
		m.RPCs = append(m.RPCs, r)
	}
	for i := range dev.Sensors {
		s := &dev.Sensors[i]
		name := top.take(s.Name)
		m.Notifications = append(m.Notifications, &Notification{Name: name, Sensor: s, Value: valueType(s.Type, nil, useOutput), grouping: groupingNames.take(name + "-reading")})
	}
	return nil
}

// stateKey identifies a function's result states: the state set's name
// and every value with its description.
func stateKey(f *ontology.Function) string {
	var b strings.Builder
	b.WriteString(f.StateSet)
	for _, s := range f.States {
		b.WriteString("\x00" + s.Value + "\x00" + s.Description)
	}
	return b.String()
}

// enumType builds an enumeration; YANG enum names are the bound values.
func (m *Module) enumType(iri string, values []string, descs map[string]string) (leafType, error) {
	lt := leafType{name: "enumeration", builtin: "enumeration"}
	seen := map[string]bool{}
	for _, v := range values {
		name := m.text(v)
		if seen[name] {
			return lt, fmt.Errorf("yang: <%s>: enumeration values %q collide once placeholders are bound", iri, name)
		}
		seen[name] = true
		lt.enum = append(lt.enum, enumValue{Name: name, Wire: v, Description: m.text(descs[v])})
	}
	return lt, nil
}

// usedTypedefs reports which local typedefs the module needs.
func (m *Module) usedTypedefs() map[string]bool {
	used := map[string]bool{typedefDeviceUUID: true, typedefDateAndTime: true}
	mark := func(lt leafType) { used[lt.name] = true }
	for _, r := range m.RPCs {
		for _, n := range r.Inputs {
			mark(n.Type)
			for _, f := range n.Fields {
				mark(f.Type)
			}
		}
		for _, o := range r.Outputs {
			mark(o.Type)
		}
	}
	for _, n := range m.Notifications {
		mark(n.Value)
	}
	return used
}

func (m *Module) render() string {
	w := &writer{}
	dev := m.Device
	w.open("module", m.Name)
	w.stmt("yang-version", "1.1")
	w.text("namespace", m.Namespace)
	w.stmt("prefix", m.Prefix)
	w.blank()
	w.text("organization", "Generated by the MYNO NETCONF-MQTT bridge")
	desc := fmt.Sprintf("Device category %s", m.text(dev.Category))
	if dev.Description != "" {
		desc += ": " + m.text(dev.Description)
	}
	desc += ".\n\nGenerated from the device's JSON-LD description <" + dev.IRI + ">; description shape " + dev.Shape() + "."
	w.text("description", desc)
	w.blank()
	w.open("revision", m.Revision)
	w.text("description", "Generated by the MYNO YANG generator. Results are a union of the states and a string.")
	w.close()

	if m.hasInputTopics() {
		w.blank()
		w.open("extension", InputTopicExtension)
		w.stmt("argument", inputTopicArgument)
		desc := "The MQTT topic of the operation's input data point, where the device takes raw data " +
			"such as firmware slices, outside NETCONF. "
		if m.uuid == "%s" {
			desc += "The argument is the device description's template: %s stands for the device's UUID and %% for a %."
		} else {
			desc += "The argument is the topic of the device this module was generated for, written as a template " +
				"without placeholders: each % is doubled."
		}
		w.text("description", desc)
		w.close()
	}

	used := m.usedTypedefs()
	for _, name := range typedefOrder {
		if !used[name] {
			continue
		}
		td := typedefs[name]
		w.blank()
		w.open("typedef", name)
		w.open("type", td.base)
		if td.length != "" {
			w.text("length", td.length)
		}
		w.stmt("pattern", singleQuote(td.pattern))
		w.close()
		w.text("description", td.description)
		w.close()
	}

	for _, td := range m.stateTypedefs {
		w.blank()
		w.open("typedef", td.name)
		td.lt.write(w)
		w.text("description", "Result states of the operations that use "+td.stateSet+".")
		w.close()
		// One grouping per shared state set, so that goyang and clients
		// resolve the enumeration once, not once per rpc.
		w.blank()
		w.open("grouping", td.grouping)
		ref := leafType{ref: td.name}
		renderRetval(w, &ref)
		w.close()
	}

	for _, n := range m.Notifications {
		w.blank()
		w.open("grouping", n.grouping)
		w.text("description", "The latest reading of "+n.Sensor.Name+", in the device list and in its notification.")
		m.renderReading(w, n)
		w.close()
	}

	w.blank()
	m.renderDevices(w)
	if len(m.Configurable) > 0 {
		w.blank()
		m.renderConfiguration(w)
	}
	for _, r := range m.RPCs {
		w.blank()
		m.renderRPC(w, r)
	}
	for _, n := range m.Notifications {
		w.blank()
		m.renderNotification(w, n)
	}
	w.close()
	return w.b.String()
}

// inputTopic is the argument of the InputTopicExtension for a topic
// template. It is always a template a reader binds with wire.Expand: the
// description's own for the shared module; with Options.UUID, the bound
// topic with each "%" doubled, which binds to itself for any UUID (binding
// it plainly would make a literal "%%s" a placeholder).
func (m *Module) inputTopic(template string) string {
	if m.uuid == "%s" {
		return template
	}
	return strings.ReplaceAll(wire.Expand(template, m.uuid), "%", "%%")
}

// hasInputTopics reports whether an rpc carries an input data point topic.
func (m *Module) hasInputTopics() bool {
	for _, r := range m.RPCs {
		if r.Function.InputTopic != "" {
			return true
		}
	}
	return false
}

// InputTopics reads a module's YANG source, as a client receives it from
// get-schema (RFC 6022 §3.1), and returns the input data point topic
// template of each rpc that has one, by rpc name: the argument of the
// module's own InputTopicExtension. The module must declare the extension
// (RFC 7950 §7.19) for its uses to count. A module with no such rpc gives
// an empty map; text that goyang cannot parse is an error.
func InputTopics(source string) (map[string]string, error) {
	// goyang's statement parser (RFC 7950 §6.3 syntax) is enough: the
	// extension is read from the statement tree, without building and
	// resolving the module, which costs several times more.
	stmts, err := goyang.Parse(source, "module.yang")
	if err != nil {
		return nil, fmt.Errorf("yang: module source: %w", err)
	}
	if len(stmts) != 1 || stmts[0].Keyword != "module" {
		return nil, errors.New("yang: the source holds no single module")
	}
	mod := stmts[0]
	var prefix string
	declared := false
	for _, st := range mod.SubStatements() {
		switch st.Keyword {
		case "prefix":
			prefix = st.Argument
		case "extension":
			if st.Argument != InputTopicExtension {
				continue
			}
			for _, arg := range st.SubStatements() {
				if arg.Keyword == "argument" && arg.Argument == inputTopicArgument {
					declared = true
				}
			}
		}
	}
	if prefix == "" {
		return nil, errors.New("yang: the module has no prefix")
	}
	topics := map[string]string{}
	if !declared {
		return topics, nil
	}
	keyword := prefix + ":" + InputTopicExtension
	for _, rpc := range mod.SubStatements() {
		if rpc.Keyword != "rpc" {
			continue
		}
		for _, ext := range rpc.SubStatements() {
			if ext.Keyword != keyword {
				continue
			}
			if _, twice := topics[rpc.Argument]; twice {
				return nil, fmt.Errorf("yang: module %s: rpc %s has two %s statements", mod.Argument, rpc.Argument, InputTopicExtension)
			}
			topics[rpc.Argument] = ext.Argument
		}
	}
	return topics, nil
}

// RPCOutputs reads a module's YANG source, as a client receives it from
// get-schema (RFC 6022 §3.1), and returns the names of the leaves each rpc
// declares directly in its output (RFC 7950 §7.14.3), in order, by rpc
// name: the device's outputs. The result leaf retval, inline or from a
// grouping, is not one of them.
func RPCOutputs(source string) (map[string][]string, error) {
	stmts, err := goyang.Parse(source, "module.yang")
	if err != nil {
		return nil, fmt.Errorf("yang: module source: %w", err)
	}
	if len(stmts) != 1 || stmts[0].Keyword != "module" {
		return nil, errors.New("yang: the source holds no single module")
	}
	outputs := map[string][]string{}
	for _, rpc := range stmts[0].SubStatements() {
		if rpc.Keyword != "rpc" {
			continue
		}
		for _, out := range rpc.SubStatements() {
			if out.Keyword != "output" {
				continue
			}
			for _, leaf := range out.SubStatements() {
				if leaf.Keyword == "leaf" && leaf.Argument != "retval" {
					outputs[rpc.Argument] = append(outputs[rpc.Argument], leaf.Argument)
				}
			}
		}
	}
	return outputs, nil
}

// RPCInputs reads a module's YANG source, as a client receives it from
// get-schema (RFC 6022 §3.1), and returns the names of the nodes each rpc
// declares directly in its input (RFC 7950 §7.14.2), in order, by rpc name.
func RPCInputs(source string) (map[string][]string, error) {
	stmts, err := goyang.Parse(source, "module.yang")
	if err != nil {
		return nil, fmt.Errorf("yang: module source: %w", err)
	}
	if len(stmts) != 1 || stmts[0].Keyword != "module" {
		return nil, errors.New("yang: the source holds no single module")
	}
	inputs := map[string][]string{}
	for _, rpc := range stmts[0].SubStatements() {
		if rpc.Keyword != "rpc" {
			continue
		}
		inputs[rpc.Argument] = []string{}
		for _, in := range rpc.SubStatements() {
			if in.Keyword != "input" {
				continue
			}
			inputs[rpc.Argument] = append(inputs[rpc.Argument], dataNodes(in)...)
		}
	}
	return inputs, nil
}

// dataNodes returns the names of the leaves and containers directly
// below st, through choices and cases (RFC 7950 §7.9: they are schema
// nodes, not data nodes, so their cases' nodes are st's children in data).
func dataNodes(st *goyang.Statement) []string {
	var out []string
	for _, n := range st.SubStatements() {
		switch n.Keyword {
		case "leaf", "container":
			out = append(out, n.Argument)
		case "choice", "case":
			out = append(out, dataNodes(n)...)
		}
	}
	return out
}

// singleQuote renders a pattern: single-quoted YANG strings have no escapes.
func singleQuote(s string) string { return "'" + s + "'" }

func (m *Module) renderDevices(w *writer) {
	w.open("container", "devices")
	w.stmt("config", "false")
	w.text("description", "Devices of this shape registered with the bridge.")
	w.open("list", "device")
	w.text("key", "uuid")
	leaf := func(name, typ, desc string) {
		w.open("leaf", name)
		w.stmt("type", typ)
		w.text("description", desc)
		w.close()
	}
	leaf("uuid", typedefDeviceUUID, "The device's UUID.")
	leaf("category", "string", "The device category from its description.")
	leaf("module", "string", "The YANG module generated for the device's description.")
	leaf("description", "string", "The device description.")
	leaf("online", "boolean", "Whether the device is currently connected.")
	leaf("registered-at", typedefDateAndTime, "When the device registered its description.")
	leaf("last-seen", typedefDateAndTime, "When the bridge last heard from the device.")
	leaf("firmware-version", "string", "The firmware version, where known.")
	if len(m.Configurable) > 0 {
		m.renderConfigurationState(w)
	}
	if len(m.Notifications) > 0 {
		w.open("container", "sensors")
		w.text("description", "The latest reading of each sensor and event.")
		for _, n := range m.Notifications {
			w.open("container", n.Name)
			if d := m.text(n.Sensor.Description); d != "" {
				w.text("description", d)
			}
			w.stmt("uses", n.grouping)
			w.close()
		}
		w.close()
	}
	w.close()
	w.close()
}

func (m *Module) renderReading(w *writer, n *Notification) {
	w.open("leaf", "value")
	n.Value.write(w)
	if n.Sensor.Unit != "" {
		w.text("units", m.text(n.Sensor.Unit))
	}
	w.text("description", "The reading as published by the device.")
	w.close()
	w.open("leaf", "timestamp")
	w.stmt("type", typedefDateAndTime)
	w.text("description", "When the bridge received the reading.")
	w.close()
}

// renderInput writes one input node of an rpc: a leaf, or a container of
// a sub-structure's leaves (always mandatory, as the wire joins them all).
func (m *Module) renderInput(w *writer, n *InputNode, mandatory bool) {
	desc := m.text(n.Input.Description)
	if n.Input.Kind == ontology.InputStructure {
		w.open("container", n.Name)
		if desc != "" {
			w.text("description", desc)
		}
		for _, fl := range n.Fields {
			w.open("leaf", fl.Name)
			fl.Type.write(w)
			w.stmt("mandatory", "true")
			if d := m.text(fl.Field.Description); d != "" {
				w.text("description", d)
			}
			w.close()
		}
		w.close()
		return
	}
	w.open("leaf", n.Name)
	n.Type.write(w)
	if mandatory {
		w.stmt("mandatory", "true")
	}
	if desc != "" {
		w.text("description", desc)
	} else if n.Selector() {
		w.text("description", "The target device.")
	}
	w.close()
}

func (m *Module) renderRPC(w *writer, r *RPC) {
	f := r.Function
	w.open("rpc", r.Name)
	if d := m.text(f.Description); d != "" {
		w.text("description", d)
	}
	if f.InputTopic != "" {
		w.text(m.Prefix+":"+InputTopicExtension, m.inputTopic(f.InputTopic))
	}
	w.open("input", "")
	choiceDone := false
	for _, n := range r.Inputs {
		if !r.OneInputPerCall || n.Selector() {
			m.renderInput(w, n, true)
			continue
		}
		if choiceDone {
			continue
		}
		// Every input but the selector is a case, at the first one's place.
		w.open("choice", OneInputChoice)
		w.stmt("mandatory", "true")
		w.text("description", "One field per call, as MUP v1 sends the manifest: the value is <index>,<text>, and the device stores it by the index alone.")
		for _, c := range nonSelector(r.Inputs) {
			m.renderInput(w, c, false)
		}
		w.close()
		choiceDone = true
	}
	w.close()
	w.open("output", "")
	if r.Retval.ref != "" {
		w.stmt("uses", m.stateTypedef(r.Retval.ref).grouping)
	} else {
		renderRetval(w, &r.Retval)
	}
	for _, o := range r.Outputs {
		w.open("leaf", o.Name)
		o.Type.write(w)
		if d := m.text(o.Output.Description); d != "" {
			w.text("description", d)
		}
		w.close()
	}
	w.close()
	w.close()
}

func (m *Module) stateTypedef(name string) *stateTypedef {
	for _, td := range m.stateTypedefs {
		if td.name == name {
			return td
		}
	}
	return nil
}

// renderRetval renders the result leaf. A result with states is their
// enumeration or, in a union with it, a string: MYNO's firmware answers
// OK, MANIFEST-SUCCESS or 123456,1 although its description lists 10_OK …
// 28_IMAGE-INVALID, and such an answer is returned as it is rather than
// turned into an error (issue 13; the bridge maps OK to 10_OK).
func renderRetval(w *writer, lt *leafType) {
	w.open("leaf", "retval")
	if lt.builtin == "string" && lt.ref == "" {
		lt.write(w)
		w.text("description", "The result reported by the device.")
		w.close()
		return
	}
	w.open("type", "union")
	lt.write(w)
	w.stmt("type", "string")
	w.close()
	w.text("description", "The result state reported by the device, or its answer as it is when that is none of the states.")
	w.close()
}

func (m *Module) renderNotification(w *writer, n *Notification) {
	w.open("notification", n.Name)
	kind := "A reading of"
	if n.Sensor.Kind == ontology.Event {
		kind = "An event from"
	}
	d := kind + " " + n.Sensor.Name
	if s := m.text(n.Sensor.Description); s != "" {
		d += ": " + s
	}
	w.text("description", d)
	w.open("leaf", "uuid")
	w.stmt("type", typedefDeviceUUID)
	w.text("description", "The device that published it.")
	w.close()
	w.stmt("uses", n.grouping)
	w.close()
}

// NamespaceOf is the namespace of the generated module name.
func NamespaceOf(module string) string { return "urn:myno:yang:" + module }
