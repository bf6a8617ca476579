package ontology

import (
	"fmt"
	"math"
	"math/big"
	"slices"
	"sort"
	"strings"

	"github.com/myno-bridge/myno/wire"
)

// DefaultMaxBytes is the default limit on the size of one description.
const DefaultMaxBytes = 256 << 10

// Parser parses device descriptions. The zero value is ready to use.
type Parser struct {
	// MaxBytes limits the size of a description; 0 means DefaultMaxBytes.
	MaxBytes int

	slowPath bool // always expand with json-gold (differential tests)
}

// Parse parses one description with the default limits.
func Parse(data []byte) (*Device, error) { return (&Parser{}).Parse(data) }

// Parse turns a JSON-LD description into a device model. The returned error
// is always an *Error.
func (p *Parser) Parse(data []byte) (*Device, error) {
	limit := p.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(data) > limit {
		return nil, newError(ErrTooLarge, "", "%d bytes, limit %d", len(data), limit)
	}
	g, err := buildGraph(data, p.slowPath)
	if err != nil {
		return nil, err
	}
	r := &reader{g: g}
	dev, err := r.device()
	if r.err != nil {
		return nil, r.err
	}
	if err != nil {
		return nil, err
	}
	dev.computeShape()
	return dev, nil
}

// reader walks the graph from the device node.
type reader struct {
	g        *graph
	err      error  // first ambiguity found by literal
	uuidNode string // IRI of the deviceUuid ThingProperty
	warnings []string
}

// named requires an @id: names in the model and the shape come from IRIs,
// and a node without one has only an arbitrary label.
func (r *reader) named(n *node, what string) error {
	if isAnonymous(n.id) {
		return newError(ErrInvalid, "", "a %s without @id: its name comes from its IRI", what)
	}
	return nil
}

func (r *reader) warnf(format string, args ...any) {
	r.warnings = append(r.warnings, fmt.Sprintf(format, args...))
}

// refs returns the nodes that n's property prop points at. A reference to a
// node the description does not define is an error.
func (r *reader) refs(n *node, prop string) ([]*node, error) {
	var out []*node
	for _, v := range n.props[prop] {
		if !v.isRef {
			return nil, newError(ErrInvalid, n.id, "%s must reference a node, got literal %q", prop, v.lit)
		}
		t := r.g.nodes[v.ref]
		if t == nil || !t.defined {
			return nil, newError(ErrDanglingReference, n.id, "%s -> <%s>", prop, v.ref)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// one returns the single node behind prop, nil when there is none.
func (r *reader) one(n *node, prop string) (*node, error) {
	ns, err := r.refs(n, prop)
	if err != nil || len(ns) == 0 {
		return nil, err
	}
	if len(ns) > 1 {
		return nil, newError(ErrInvalid, n.id, "%s is ambiguous: %s", prop, iris(ns))
	}
	return ns[0], nil
}

// literal returns the literal values of prop, trimmed of surrounding space.
func literals(n *node, prop string) []string {
	var out []string
	for _, v := range n.props[prop] {
		if !v.isRef {
			out = append(out, strings.TrimSpace(v.lit))
		}
	}
	return out
}

// joined returns every literal of prop, sorted and joined by spaces: for
// free text that an untidy description may split.
func joined(n *node, prop string) string {
	ls := dedupe(literals(n, prop))
	sort.Strings(ls)
	return strings.Join(ls, " ")
}

// literal returns the one value of a single-valued property, literal or
// IRI. Two different values (say hasDataType under both the oneM2M and a
// MYNO namespace) make the description ambiguous: the first such problem
// is kept in r.err, so that no result ever depends on map or array order.
func (r *reader) literal(n *node, prop string) string {
	var vals []string
	for _, v := range n.props[prop] {
		s := v.ref
		if !v.isRef {
			s = strings.TrimSpace(v.lit)
		}
		if s != "" && !slices.Contains(vals, s) {
			vals = append(vals, s)
		}
	}
	switch len(vals) {
	case 0:
		return ""
	case 1:
		return vals[0]
	}
	sort.Strings(vals)
	if r.err == nil {
		r.err = newError(ErrInvalid, n.id, "%s has several values: %q", prop, vals)
	}
	return vals[0]
}

// description reads the text of n's hasThingProperty YangDescription.
func (r *reader) description(n *node) (string, error) {
	ds, err := r.refs(n, "hasThingProperty")
	if err != nil {
		return "", err
	}
	var parts []string
	for _, d := range ds {
		if v := joined(d, "hasValue"); v != "" {
			parts = append(parts, v)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, " "), nil
}

func (r *reader) device() (*Device, error) {
	var devs []*node
	for _, n := range r.g.nodes {
		if n.has("Device") {
			devs = append(devs, n)
		}
	}
	sortNodes(devs)
	switch len(devs) {
	case 0:
		return nil, newError(ErrNoDevice, "", "the description must describe exactly one device")
	case 1:
	default:
		return nil, newError(ErrMultipleDevices, devs[1].id, "devices %s", iris(devs))
	}
	dn := devs[0]
	if err := r.named(dn, "device"); err != nil {
		return nil, err
	}
	dev := &Device{IRI: dn.id, UUID: "%s", Category: "device"}

	props, err := r.refs(dn, "hasThingProperty")
	if err != nil {
		return nil, err
	}
	for _, p := range props {
		switch LocalName(p.id) {
		case "deviceUuid":
			r.uuidNode = p.id
			if v := r.literal(p, "hasValue"); v != "" {
				dev.UUID = v
			}
		case "deviceCategory":
			if v := r.literal(p, "hasValue"); v != "" {
				dev.Category = v
			}
		case "deviceDesc":
			dev.Description = joined(p, "hasValue")
		}
	}

	funcs, err := r.functionalities(dn)
	if err != nil {
		return nil, err
	}
	ops, err := r.operationsByCommand()
	if err != nil {
		return nil, err
	}
	for _, fn := range funcs {
		switch {
		case fn.has("ControllingFunctionality"), fn.has("ConfigurationFunctionality"), fn.has("AutomationFunctionality"):
			f, err := r.function(fn, ops)
			if err != nil {
				return nil, err
			}
			dev.Functions = append(dev.Functions, *f)
		case fn.has("MeasuringFunctionality"), fn.has("EventFunctionality"):
			s, err := r.sensor(fn, dn)
			if err != nil {
				return nil, err
			}
			dev.Sensors = append(dev.Sensors, *s)
		default:
			r.warnf("functionality <%s> has no known type and is ignored", fn.id)
		}
	}
	sort.SliceStable(dev.Functions, func(i, j int) bool {
		return lessByNameIRI(dev.Functions[i].Name, dev.Functions[i].IRI, dev.Functions[j].Name, dev.Functions[j].IRI)
	})
	sort.SliceStable(dev.Sensors, func(i, j int) bool {
		return lessByNameIRI(dev.Sensors[i].Name, dev.Sensors[i].IRI, dev.Sensors[j].Name, dev.Sensors[j].IRI)
	})
	r.unfillUUID(dev)
	sort.Strings(r.warnings)
	dev.Warnings = r.warnings
	return dev, nil
}

// unfillUUID turns a description whose device UUID is filled in (MYNO's
// simulators replace %s with the device's UUID before they publish) back
// into the template: the deviceUuid value, every topic level equal to it,
// and every occurrence in text (category, descriptions, units: a MYNO
// board fills in "%sBoardName") become %s (VOCABULARY.md). Devices of one
// shape then share one module, and a command topic that ends in the UUID
// gets no second one (wire.Expand appends the UUID only to a topic without
// %s). Only a value that is a valid device UUID is recognised, and in
// topics only whole levels: a UUID inside a level (led_<uuid>) is part of
// that level's name. Names (from IRIs), methods and enumeration values are
// left as they are.
func (r *reader) unfillUUID(dev *Device) {
	filled := dev.UUID
	if filled == "%s" || strings.Contains(filled, "%") || !wire.ValidUUID(filled) {
		return
	}
	dev.UUID, dev.FilledUUID = "%s", filled
	levels := 0
	unfill := func(topic string) string {
		if topic == "" {
			return topic
		}
		parts := strings.Split(topic, "/")
		for i, p := range parts {
			if p == filled {
				parts[i] = "%s"
				levels++
			}
		}
		return strings.Join(parts, "/")
	}
	// In text (category, descriptions, units) the UUID may sit inside a
	// word ("%sBoardName" filled in by a MYNO board): every occurrence.
	text := func(s string) string { return strings.ReplaceAll(s, filled, "%s") }
	dev.Category, dev.Description = text(dev.Category), text(dev.Description)
	for i := range dev.Functions {
		f := &dev.Functions[i]
		f.Topic, f.InputTopic = unfill(f.Topic), unfill(f.InputTopic)
		f.Description = text(f.Description)
		for j := range f.Inputs {
			in := &f.Inputs[j]
			in.Description = text(in.Description)
			for k := range in.Fields {
				in.Fields[k].Description = text(in.Fields[k].Description)
			}
		}
		for j := range f.Outputs {
			f.Outputs[j].Description = text(f.Outputs[j].Description)
		}
		for j := range f.States {
			f.States[j].Description = text(f.States[j].Description)
		}
	}
	for i := range dev.Sensors {
		sn := &dev.Sensors[i]
		sn.Topic, sn.Description, sn.Unit = unfill(sn.Topic), text(sn.Description), text(sn.Unit)
	}
	r.warnf("the description carries its device UUID %q filled in: it is read as the %%s placeholder in deviceUuid and in %d topic levels", filled, levels)
}

// functionalities collects the device's functionalities: the ones it names
// and the ones exposed by its services and their sub-services.
func (r *reader) functionalities(dn *node) ([]*node, error) {
	seen := map[string]bool{}
	var out []*node
	addAll := func(ns []*node) {
		for _, n := range ns {
			if !seen[n.id] {
				seen[n.id] = true
				out = append(out, n)
			}
		}
	}
	fs, err := r.refs(dn, "hasFunctionality")
	if err != nil {
		return nil, err
	}
	addAll(fs)
	services, err := r.services(dn)
	if err != nil {
		return nil, err
	}
	for _, s := range services {
		fs, err := r.refs(s, "exposesFunctionality")
		if err != nil {
			return nil, err
		}
		addAll(fs)
	}
	sortNodes(out)
	return out, nil
}

// services returns every service reachable from the device.
func (r *reader) services(dn *node) ([]*node, error) {
	seen := map[string]bool{}
	var out []*node
	queue, err := r.refs(dn, "hasService")
	if err != nil {
		return nil, err
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		if seen[s.id] {
			continue
		}
		seen[s.id] = true
		out = append(out, s)
		subs, err := r.refs(s, "hasSubService")
		if err != nil {
			return nil, err
		}
		queue = append(queue, subs...)
	}
	sortNodes(out)
	return out, nil
}

// operationsByCommand indexes every onem2m:Operation by the command it exposes.
func (r *reader) operationsByCommand() (map[string][]*node, error) {
	idx := map[string][]*node{}
	for _, n := range r.g.nodes {
		if !n.has("Operation") {
			continue
		}
		cmds, err := r.refs(n, "exposesCommand")
		if err != nil {
			return nil, err
		}
		for _, c := range cmds {
			idx[c.id] = append(idx[c.id], n)
		}
	}
	for _, ops := range idx {
		sortNodes(ops)
	}
	return idx, nil
}

func (r *reader) function(fn *node, opsByCmd map[string][]*node) (*Function, error) {
	if err := r.named(fn, "functionality"); err != nil {
		return nil, err
	}
	f := &Function{IRI: fn.id, Name: LocalName(fn.id)}
	switch {
	case fn.has("ConfigurationFunctionality"):
		f.Kind = Configuration
	case fn.has("AutomationFunctionality"):
		f.Kind = Automation
	default:
		f.Kind = Controlling
	}
	var err error
	if f.Description, err = r.description(fn); err != nil {
		return nil, err
	}
	cmd, err := r.one(fn, "hasCommand")
	if err != nil {
		return nil, err
	}
	if cmd == nil {
		return nil, newError(ErrMissingOperation, fn.id, "no onem2m:hasCommand")
	}
	ops := opsByCmd[cmd.id]
	switch len(ops) {
	case 0:
		return nil, newError(ErrMissingOperation, fn.id, "no onem2m:Operation exposes command <%s>", cmd.id)
	case 1:
	default:
		return nil, newError(ErrInvalid, fn.id, "command <%s> is exposed by several operations: %s", cmd.id, iris(ops))
	}
	op := ops[0]
	if err := r.named(op, "operation of <"+fn.id+">"); err != nil {
		return nil, err
	}
	f.Operation = op.id
	if f.Method = r.literal(op, "mqttMethod"); f.Method == "" {
		return nil, newError(ErrMissingMethod, op.id, "operation of <%s>", fn.id)
	}
	if f.Topic = r.literal(op, "mqttTopic"); f.Topic == "" {
		return nil, newError(ErrMissingTopic, op.id, "operation of <%s>", fn.id)
	}
	if err := checkTopic(op.id, f.Topic); err != nil {
		return nil, err
	}
	if strings.ContainsAny(f.Method, ";\n\r") || !wire.Printable(f.Method) {
		return nil, newError(ErrInvalid, op.id, "mqttMethod %q contains a field separator", f.Method)
	}
	if idp, err := r.one(op, "hasInputDataPoint"); err != nil {
		return nil, err
	} else if idp != nil {
		if f.InputTopic = r.literal(idp, "mqttTopic"); f.InputTopic == "" {
			return nil, newError(ErrMissingTopic, idp.id, "input data point of <%s>", fn.id)
		}
		if err := checkTopic(idp.id, f.InputTopic); err != nil {
			return nil, err
		}
	}

	// Inputs: the operation's and the command's, which normally agree.
	opIn, err := r.refs(op, "hasInput")
	if err != nil {
		return nil, err
	}
	cmdIn, err := r.refs(cmd, "hasInput")
	if err != nil {
		return nil, err
	}
	inputs := opIn
	for _, n := range cmdIn {
		if !slices.Contains(inputs, n) {
			inputs = append(inputs, n)
		}
	}
	names := map[string]string{}
	for _, in := range inputs {
		input, err := r.input(in)
		if err != nil {
			return nil, err
		}
		if other, dup := names[input.Name]; dup {
			return nil, newError(ErrInvalid, in.id, "input name %q is also used by <%s>", input.Name, other)
		}
		names[input.Name] = in.id
		f.Inputs = append(f.Inputs, *input)
	}
	sort.SliceStable(f.Inputs, func(i, j int) bool {
		return lessByNameIRI(f.Inputs[i].Name, f.Inputs[i].IRI, f.Inputs[j].Name, f.Inputs[j].IRI)
	})
	selectors := 0
	for _, in := range f.Inputs {
		if in.Kind == InputSelector {
			selectors++
		}
	}
	if selectors != 1 {
		return nil, newError(ErrInvalid, op.id, "operation of <%s> has %d device selector inputs (inputs whose hasInput is deviceUuid), want exactly 1", fn.id, selectors)
	}

	if f.Outputs, err = r.outputs(op); err != nil {
		return nil, err
	}
	if f.States, f.StateSet, err = r.states(op); err != nil {
		return nil, err
	}
	return f, nil
}

func (r *reader) input(n *node) (*Input, error) {
	if err := r.named(n, "operation input"); err != nil {
		return nil, err
	}
	in := &Input{IRI: n.id, Name: LocalName(n.id)}
	var err error
	if in.Description, err = r.description(n); err != nil {
		return nil, err
	}
	targets, err := r.refs(n, "hasInput")
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		if t.id == r.uuidNode || (r.uuidNode == "" && LocalName(t.id) == "deviceUuid") {
			in.Kind = InputSelector
			in.Type = TypeString
			return in, nil
		}
	}
	patterns := literals(n, "hasDataRestriction_pattern")
	subs, err := r.refs(n, "hasSubStructure")
	if err != nil {
		return nil, err
	}
	kinds := 0
	for _, present := range []bool{len(patterns) > 0, len(subs) > 0, len(targets) > 0} {
		if present {
			kinds++
		}
	}
	if kinds > 1 {
		return nil, newError(ErrInvalid, n.id, "an input is either an enumeration, a sub-structure or a typed value, not several")
	}
	switch {
	case len(patterns) > 0:
		in.Kind = InputEnumeration
		if in.Enum, err = enumValues(n.id, patterns); err != nil {
			return nil, err
		}
	case len(subs) > 0:
		in.Kind = InputStructure
		for _, v := range subs {
			fl, err := r.field(v)
			if err != nil {
				return nil, err
			}
			in.Fields = append(in.Fields, *fl)
		}
		sort.SliceStable(in.Fields, func(i, j int) bool {
			return lessByNameIRI(in.Fields[i].Name, in.Fields[i].IRI, in.Fields[j].Name, in.Fields[j].IRI)
		})
		for i := 1; i < len(in.Fields); i++ {
			if in.Fields[i].Name == in.Fields[i-1].Name {
				return nil, newError(ErrInvalid, in.Fields[i].IRI, "sub-structure member name %q is used twice", in.Fields[i].Name)
			}
		}
	case len(targets) == 1:
		in.Kind = InputValue
		t := targets[0]
		dt := r.literal(t, "hasDataType")
		if dt == "" {
			dt = r.literal(n, "hasDataType")
		}
		if dt == "" {
			// MYNO's generator makes it a string leaf.
			r.warnf("input <%s> has no datatype (its value <%s> has no onem2m:hasDataType): taken as a string", n.id, t.id)
			dt = string(TypeString)
		}
		in.Type = dataTypeFrom(dt)
		// The range may sit on the ThingProperty or, untidily, on the input.
		rng, err := r.readRange(t, in.Type)
		if err == nil && rng == nil {
			rng, err = r.readRange(n, in.Type)
		}
		if err != nil {
			return nil, err
		}
		in.Range = rng
		if !in.Type.Known() {
			r.warnf("input <%s> has unknown datatype %q, mapped to string", n.id, in.Type)
		}
	case len(targets) > 1:
		return nil, newError(ErrInvalid, n.id, "hasInput is ambiguous: %s", iris(targets))
	default:
		// Only a description (hasThingProperty): MYNO's generator makes
		// such an input a string leaf, and so does this parser, saying so.
		in.Kind = InputValue
		in.Type = TypeString
		r.warnf("input <%s> has no type (no hasDataRestriction_pattern, hasSubStructure or typed hasInput): taken as a string", n.id)
	}
	return in, nil
}

func (r *reader) field(v *node) (*Field, error) {
	if err := r.named(v, "sub-structure variable"); err != nil {
		return nil, err
	}
	fl := &Field{IRI: v.id, Name: LocalName(v.id), Type: TypeInt}
	var err error
	if fl.Description, err = r.description(v); err != nil {
		return nil, err
	}
	if dt := r.literal(v, "hasDataType"); dt != "" {
		fl.Type = dataTypeFrom(dt)
	}
	if fl.Range, err = r.readRange(v, fl.Type); err != nil {
		return nil, err
	}
	return fl, nil
}

func (r *reader) outputs(op *node) ([]Output, error) {
	ons, err := r.refs(op, "hasOutput")
	if err != nil {
		return nil, err
	}
	var outs []Output
	for _, on := range ons {
		if err := r.named(on, "operation output"); err != nil {
			return nil, err
		}
		o := Output{IRI: on.id, Name: LocalName(on.id)}
		if o.Description, err = r.description(on); err != nil {
			return nil, err
		}
		dt := r.literal(on, "hasDataType")
		if dt == "" { // typed like an input: hasOutput -> ThingProperty
			t, err := r.one(on, "hasOutput")
			if err != nil {
				return nil, err
			}
			if t != nil {
				dt = r.literal(t, "hasDataType")
			}
		}
		if dt == "" {
			return nil, newError(ErrInvalid, on.id, "operation output has no onem2m:hasDataType")
		}
		o.Type = dataTypeFrom(dt)
		if o.Name == "retval" {
			return nil, newError(ErrInvalid, on.id, "output name %q is reserved for the operation state", o.Name)
		}
		outs = append(outs, o)
	}
	sort.SliceStable(outs, func(i, j int) bool { return lessByNameIRI(outs[i].Name, outs[i].IRI, outs[j].Name, outs[j].IRI) })
	for i := 1; i < len(outs); i++ {
		if outs[i].Name == outs[i-1].Name {
			return nil, newError(ErrInvalid, outs[i].IRI, "output name %q is used twice", outs[i].Name)
		}
	}
	return outs, nil
}

// states reads the operation's result values and pairs them with the
// descriptions of its YangDescription by sorted order.
func (r *reader) states(op *node) ([]State, string, error) {
	sns, err := r.refs(op, "hasOperationState")
	if err != nil {
		return nil, "", err
	}
	var values, descs []string
	for _, sn := range sns {
		values = append(values, literals(sn, "hasDataRestriction_pattern")...)
		dns, err := r.refs(sn, "hasThingProperty")
		if err != nil {
			return nil, "", err
		}
		for _, dn := range dns {
			descs = append(descs, literals(dn, "hasDataRestriction_pattern")...)
		}
	}
	if len(values) == 0 {
		return nil, "", nil
	}
	values, err = enumValues(op.id, values)
	if err != nil {
		return nil, "", err
	}
	sorted := slices.Clone(values)
	sort.Strings(sorted)
	descs = dedupe(descs)
	sort.Strings(descs)
	if len(descs) != len(sorted) && len(descs) > 0 {
		r.warnf("operation <%s> has %d states but %d state descriptions; unpaired states have none", op.id, len(sorted), len(descs))
	}
	byValue := map[string]string{}
	for i, v := range sorted {
		if i < len(descs) {
			byValue[v] = descs[i]
		}
	}
	states := make([]State, len(values))
	for i, v := range values {
		states[i] = State{Value: v, Description: byValue[v]}
	}
	var names []string
	for _, sn := range sns {
		names = append(names, LocalName(sn.id))
	}
	sort.Strings(names)
	return states, strings.Join(names, "_"), nil
}

func (r *reader) sensor(fn *node, dn *node) (*Sensor, error) {
	if err := r.named(fn, "functionality"); err != nil {
		return nil, err
	}
	s := &Sensor{IRI: fn.id, Name: LocalName(fn.id), Kind: Measuring}
	if fn.has("EventFunctionality") {
		s.Kind = Event
	}
	var err error
	if s.Description, err = r.description(fn); err != nil {
		return nil, err
	}
	services, err := r.services(dn)
	if err != nil {
		return nil, err
	}
	// A service that exposes only this sensor says most precisely where its
	// readings go (a root service often exposes every functionality).
	var points []*node
	best := -1
	for _, svc := range services {
		exposed, err := r.refs(svc, "exposesFunctionality")
		if err != nil {
			return nil, err
		}
		if !slices.Contains(exposed, fn) {
			continue
		}
		odps, err := r.refs(svc, "hasOutputDataPoint")
		if err != nil {
			return nil, err
		}
		if len(odps) == 0 {
			continue
		}
		sensors := 0
		for _, e := range exposed {
			if e.has("MeasuringFunctionality") || e.has("EventFunctionality") {
				sensors++
			}
		}
		switch {
		case best == -1 || sensors < best:
			best, points = sensors, nil
		case sensors > best:
			continue
		}
		for _, p := range odps {
			if !slices.Contains(points, p) {
				points = append(points, p)
			}
		}
	}
	switch len(points) {
	case 0:
		r.warnf("sensor <%s> has no output data point; it will have no readings", fn.id)
		return s, nil
	case 1:
	default:
		sortNodes(points)
		return nil, newError(ErrInvalid, fn.id, "several output data points: %s", iris(points))
	}
	p := points[0]
	if s.Topic = r.literal(p, "mqttTopic"); s.Topic == "" {
		return nil, newError(ErrMissingTopic, p.id, "output data point of <%s>", fn.id)
	}
	if err := checkTopic(p.id, s.Topic); err != nil {
		return nil, err
	}
	if dt := r.literal(p, "hasDataType"); dt != "" {
		s.Type = dataTypeFrom(dt)
	}
	// Units are usually om-2 IRIs that the description does not define:
	// the unit's om-2:symbol when present, else its local name.
	if unit := r.literal(p, "hasUnit"); unit != "" {
		s.Unit = unit
		for _, v := range p.props["hasUnit"] {
			if v.isRef {
				s.Unit = LocalName(v.ref)
				if u := r.g.nodes[v.ref]; u != nil {
					if sym := r.literal(u, "symbol"); sym != "" {
						s.Unit = sym
					}
				}
			}
		}
	}
	return s, nil
}

// readRange reads hasDataRestriction_minInclusive/maxInclusive on n.
func (r *reader) readRange(n *node, t DataType) (*Range, error) {
	minS, maxS := r.literal(n, "hasDataRestriction_minInclusive"), r.literal(n, "hasDataRestriction_maxInclusive")
	if minS == "" && maxS == "" {
		return nil, nil
	}
	if !t.IsNumeric() {
		return nil, newError(ErrInvalidRange, n.id, "a range on non-numeric type %q", t)
	}
	rng := &Range{}
	lo, hi, isInt := t.IntegerBounds()
	bound := func(name, s, def string) (string, error) {
		if s == "" {
			return "", nil
		}
		v, ok := parseDecimal(s)
		if !ok {
			return "", newError(ErrInvalidRange, n.id, "%s %q is not a decimal number", name, s)
		}
		if i := strings.IndexByte(s, '.'); i >= 0 && len(strings.TrimRight(s[i+1:], "0")) > 18 {
			return "", newError(ErrInvalidRange, n.id, "%s %q has more than 18 fraction digits", name, s)
		}
		if isInt {
			if !v.IsInt() {
				return "", newError(ErrInvalidRange, n.id, "%s %q is not an integer, but the type is %s", name, s, t)
			}
			l, _ := parseDecimal(lo)
			h, _ := parseDecimal(hi)
			if v.Cmp(l) < 0 || v.Cmp(h) > 0 {
				return "", newError(ErrInvalidRange, n.id, "%s %s is outside the value space of %s (%s..%s)", name, s, t, lo, hi)
			}
		}
		return canonicalDecimal(v), nil
	}
	var err error
	if rng.Min, err = bound("minInclusive", minS, lo); err != nil {
		return nil, err
	}
	if rng.Max, err = bound("maxInclusive", maxS, hi); err != nil {
		return nil, err
	}
	if !isInt {
		// YANG decimal64 (RFC 7950 §9.3): 18 fraction digits at most, and
		// the value times 10^fraction-digits must fit in an int64.
		fd := DecimalFractionDigits(rng)
		if fd > 18 {
			return nil, newError(ErrInvalidRange, n.id, "bounds with more than 18 fraction digits")
		}
		limit := new(big.Rat).SetFrac(big.NewInt(math.MaxInt64), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(fd)), nil))
		for _, b := range []string{rng.Min, rng.Max} {
			if v, ok := parseDecimal(b); ok && new(big.Rat).Abs(v).Cmp(limit) > 0 {
				return nil, newError(ErrInvalidRange, n.id, "bound %s does not fit a decimal64 with %d fraction digits", b, fd)
			}
		}
	}
	if rng.Min != "" && rng.Max != "" {
		a, _ := parseDecimal(rng.Min)
		b, _ := parseDecimal(rng.Max)
		if a.Cmp(b) > 0 {
			return nil, newError(ErrInvalidRange, n.id, "minInclusive %s is greater than maxInclusive %s", rng.Min, rng.Max)
		}
	}
	return rng, nil
}

// enumValues checks and orders enumeration values (natural order, no
// duplicates, none empty).
func enumValues(iri string, vs []string) ([]string, error) {
	out := dedupe(vs)
	for _, v := range out {
		if v == "" {
			return nil, newError(ErrInvalid, iri, "empty enumeration value")
		}
		if strings.ContainsAny(v, ";\r\n") {
			return nil, newError(ErrInvalid, iri, "enumeration value %q contains a field separator", v)
		}
		if !wire.Printable(v) {
			return nil, newError(ErrInvalid, iri, "enumeration value %q contains a control or non-character", v)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return NaturalLess(out[i], out[j]) })
	return out, nil
}

func dedupe(vs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range vs {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

func sortNodes(ns []*node) { sort.Slice(ns, func(i, j int) bool { return ns[i].id < ns[j].id }) }

func iris(ns []*node) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = "<" + n.id + ">"
	}
	return strings.Join(parts, ", ")
}

func lessByNameIRI(n1, iri1, n2, iri2 string) bool {
	if c := naturalCompare(n1, n2); c != 0 {
		return c < 0
	}
	return iri1 < iri2
}

// checkTopic rejects topic templates that a device cannot or must not use
// (wire.CheckDeviceTopic says which).
func checkTopic(iri, topic string) error {
	if err := wire.CheckDeviceTopic(topic); err != nil {
		return newError(ErrInvalid, iri, "mqttTopic: %s", strings.TrimPrefix(err.Error(), wire.ErrTopic.Error()+": "))
	}
	return nil
}
