package ontology

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/myno-bridge/myno/wire"
)

// Device is the typed model of one device description. String fields hold
// templates (see [Expand]) until [Device.Instantiate] binds a UUID.
type Device struct {
	IRI  string `json:"iri"`
	UUID string `json:"uuid"` // usually the template "%s"
	// FilledUUID is the UUID a description carried filled in (deviceUuid
	// and topic levels), which the parser turned back into "%s"; "" for a
	// template.
	FilledUUID  string `json:"-"`
	Category    string `json:"category"`
	Description string `json:"description"`
	// Functions are the invocable functionalities (controlling,
	// configuration, automation), in natural order of their names.
	Functions []Function `json:"functions"`
	// Sensors are the measuring and event functionalities, in natural order.
	Sensors []Sensor `json:"sensors"`

	// Warnings lists parts of the description that were ignored.
	Warnings []string `json:"-"`
	shape    string
}

// FunctionKind is the oneM2M/MYNO class of an invocable functionality.
type FunctionKind string

// Invocable functionality kinds.
const (
	Controlling   FunctionKind = "controlling"
	Configuration FunctionKind = "configuration"
	Automation    FunctionKind = "automation"
)

// Function is an invocable functionality together with the operation that
// carries it over MQTT. It becomes one YANG rpc.
type Function struct {
	IRI         string       `json:"iri"`
	Name        string       `json:"name"` // local name of the functionality IRI
	Kind        FunctionKind `json:"kind"`
	Description string       `json:"description"`
	Operation   string       `json:"operation"` // IRI of the onem2m:Operation
	Method      string       `json:"method"`    // myno:mqttMethod
	Topic       string       `json:"topic"`     // myno:mqttTopic (template)
	// InputTopic is the topic of the operation's input data point (raw data
	// such as firmware slices), or "".
	InputTopic string   `json:"inputTopic,omitempty"`
	Inputs     []Input  `json:"inputs"` // natural order of local names
	Outputs    []Output `json:"outputs,omitempty"`
	States     []State  `json:"states,omitempty"` // natural order of values
	// StateSet is the local name of the onem2m:OperationState the states
	// come from; operations that share one share the YANG typedef.
	StateSet string `json:"stateSet,omitempty"`
}

// Selector returns the device-selector input, or nil.
func (f *Function) Selector() *Input {
	for i := range f.Inputs {
		if f.Inputs[i].Kind == InputSelector {
			return &f.Inputs[i]
		}
	}
	return nil
}

// InputKind says what an operation input is.
type InputKind string

// Input kinds.
const (
	InputSelector    InputKind = "selector"    // selects the target device (points at deviceUuid)
	InputEnumeration InputKind = "enumeration" // hasDataRestriction_pattern
	InputStructure   InputKind = "structure"   // hasSubStructure of Variables
	InputValue       InputKind = "value"       // a typed ThingProperty
)

// Input is one operation input. Exactly one of Enum, Fields or Type is
// meaningful, according to Kind.
type Input struct {
	IRI         string    `json:"iri"`
	Name        string    `json:"name"`
	Kind        InputKind `json:"kind"`
	Description string    `json:"description"`
	Enum        []string  `json:"enum,omitempty"`   // InputEnumeration, natural order
	Fields      []Field   `json:"fields,omitempty"` // InputStructure, natural order
	Type        DataType  `json:"type,omitempty"`   // InputValue and InputSelector
	Range       *Range    `json:"range,omitempty"`  // InputValue
}

// Field is one member (onem2m:Variable) of a sub-structure input.
type Field struct {
	IRI         string   `json:"iri"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Type        DataType `json:"type"`
	Range       *Range   `json:"range,omitempty"`
}

// Output is a data-carrying output of an operation (onem2m:OperationOutput).
type Output struct {
	IRI         string   `json:"iri"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Type        DataType `json:"type"`
}

// State is one result value of an operation with its description.
type State struct {
	Value       string `json:"value"`
	Description string `json:"description,omitempty"`
}

// SensorKind distinguishes measurements from events.
type SensorKind string

// Sensor kinds.
const (
	Measuring SensorKind = "measuring"
	Event     SensorKind = "event"
)

// Sensor is a measuring or event functionality and the output data point
// its readings are published on.
type Sensor struct {
	IRI         string     `json:"iri"`
	Name        string     `json:"name"`
	Kind        SensorKind `json:"kind"`
	Description string     `json:"description"`
	Topic       string     `json:"topic"` // template; "" when no output data point is declared
	Unit        string     `json:"unit,omitempty"`
	Type        DataType   `json:"type,omitempty"`
}

// Range is an inclusive numeric range. Min and Max are canonical decimal
// strings; "" means unbounded on that side.
type Range struct {
	Min string `json:"min,omitempty"`
	Max string `json:"max,omitempty"`
}

// Shape identifies the description's content apart from the device UUID:
// the hex SHA-256 of a canonical encoding of the template model. Devices with
// the same shape share one YANG module.
func (d *Device) Shape() string { return d.shape }

func (d *Device) computeShape() {
	c := *d
	c.UUID = ""
	b, err := json.Marshal(&c)
	if err != nil { // cannot happen: the model holds only strings and slices
		panic(err)
	}
	sum := sha256.Sum256(b)
	d.shape = hex.EncodeToString(sum[:])
}

// Instantiate returns a deep copy of d with every template bound to uuid.
// The copy keeps d's shape.
func (d *Device) Instantiate(uuid string) *Device {
	x := func(s string) string { return wire.Expand(s, uuid) }
	c := *d
	c.UUID = x(d.UUID)
	c.Category = x(d.Category)
	c.Description = x(d.Description)
	c.Warnings = append([]string(nil), d.Warnings...)
	c.Functions = make([]Function, len(d.Functions))
	for i, f := range d.Functions {
		f.Description, f.Method, f.Topic, f.InputTopic = x(f.Description), x(f.Method), x(f.Topic), x(f.InputTopic)
		inputs := make([]Input, len(f.Inputs))
		for j, in := range f.Inputs {
			in.Description = x(in.Description)
			in.Enum = mapStrings(in.Enum, x)
			fields := make([]Field, len(in.Fields))
			for k, fl := range in.Fields {
				fl.Description = x(fl.Description)
				fields[k] = fl
			}
			if in.Fields != nil {
				in.Fields = fields
			}
			inputs[j] = in
		}
		f.Inputs = inputs
		outputs := make([]Output, len(f.Outputs))
		for j, o := range f.Outputs {
			o.Description = x(o.Description)
			outputs[j] = o
		}
		if f.Outputs != nil {
			f.Outputs = outputs
		}
		states := make([]State, len(f.States))
		for j, s := range f.States {
			states[j] = State{Value: x(s.Value), Description: x(s.Description)}
		}
		if f.States != nil {
			f.States = states
		}
		c.Functions[i] = f
	}
	c.Sensors = make([]Sensor, len(d.Sensors))
	for i, s := range d.Sensors {
		s.Description, s.Topic, s.Unit = x(s.Description), x(s.Topic), x(s.Unit)
		c.Sensors[i] = s
	}
	return &c
}

func mapStrings(in []string, f func(string) string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}
