package ontology_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// variant is what one testdata/descriptions/variant-*.jsonld must parse to
// (see testdata/README.md for what each file covers).
type variant struct {
	file      string
	form      string // "compact" (@context + @graph) or "expanded" (top-level array)
	namespace string // MYNO namespace of the device's IRI
	category  string
	functions []string                         // rpc names, in model order
	kinds     map[string]ontology.FunctionKind // for chosen functions
	funcIRIs  map[string]string                // for chosen functions
	order     map[string][]string              // input names of chosen functions, in order
	inputs    []inputWant                      // chosen inputs
	topics    []topicWant                      // chosen command topics
	sensors   []sensorWant                     // every sensor, in model order
	warnings  []string                         // each must be part of some warning
	nWarnings int                              // exact number of warnings
	filled    string                           // Device.FilledUUID
	// shape names a group: rows of one group must share Device.Shape(),
	// rows of different groups must not.
	shape string
	// oneMessage: the description fits one bootstrap message of the
	// devices' default chunk size.
	oneMessage bool
}

type inputWant struct {
	fn, name string
	kind     ontology.InputKind
	typ      ontology.DataType
	rng      *ontology.Range // nil: no range
	enum     []string
	fields   []fieldWant
}

type fieldWant struct {
	name string
	typ  ontology.DataType
	rng  *ontology.Range
}

// topicWant is a command topic as the model keeps it (template), bound by
// Instantiate("u-1"), and as the bridge publishes to it (wire.CommandTopic:
// "/u-1" appended to a template without %s).
type topicWant struct{ fn, template, bound, command string }

type sensorWant struct {
	name         string
	kind         ontology.SensorKind
	unit         string // template ("%%" is a percent sign)
	topic, bound string
}

func rng(lo, hi string) *ontology.Range { return &ontology.Range{Min: lo, Max: hi} }

// oneMessageBytes is devices.DefaultChunkSize: a description of at most
// this size goes out as one bootstrap message (and END).
const oneMessageBytes = 4054

const (
	uuidA = "3b2f6c1e-8d4a-4f0b-9e7c-5a1d2c3b4e5f"
	uuidB = "7E1D-42A0-9C3B-D5F6A7B8C9D0"
	uuidC = "c0ffee00-1234-4abc-8def-00000000beef"
)

func variants() []variant {
	led := func(file, form, filled string) variant {
		v := variant{
			file: file, form: form, namespace: ontology.NamespaceMYNOv1, category: "LED-MOTION-2",
			functions: []string{"funcLed_1Color", "funcLed_1Dim", "funcLed_1Off", "funcLed_1On"},
			kinds:     map[string]ontology.FunctionKind{"funcLed_1On": ontology.Controlling, "funcLed_1Dim": ontology.Controlling},
			order:     map[string][]string{"funcLed_1Color": {"colorInput", "uuidInput"}},
			inputs: []inputWant{
				{fn: "funcLed_1Color", name: "colorInput", kind: ontology.InputEnumeration, enum: []string{"blue", "green", "red", "white"}},
				// Untyped in a MYNO-style LED device: a string, with a warning.
				{fn: "funcLed_1Dim", name: "input_1_Dim", kind: ontology.InputValue, typ: ontology.TypeString},
				{fn: "funcLed_1On", name: "uuidInput", kind: ontology.InputSelector, typ: ontology.TypeString},
			},
			topics: []topicWant{
				// Ends in the UUID: bound once, never "/u-1/u-1".
				{"funcLed_1On", "actuator/led/led_1/%s", "actuator/led/led_1/u-1", "actuator/led/led_1/u-1"},
				{"funcLed_1Color", "actuator/led/led_1/%s", "actuator/led/led_1/u-1", "actuator/led/led_1/u-1"},
			},
			sensors: []sensorWant{
				{"funcDetectMotion", ontology.Measuring, "", "sensor/motion/motion_1/%s", "sensor/motion/motion_1/u-1"},
				{"funcGetBrightness", ontology.Measuring, "lx", "sensor/brightness/brightness_1/%s", "sensor/brightness/brightness_1/u-1"},
			},
			warnings:  []string{"input <" + ontology.NamespaceMYNOv1 + "input_1_Dim> has no type", "taken as a string"},
			nWarnings: 1,
			shape:     "led-motion",
		}
		if filled != "" {
			v.filled = filled
			v.warnings = append(v.warnings, `device UUID "`+filled+`" filled in`, "in 6 topic levels")
			v.nWarnings = 2
		}
		return v
	}
	inLevel := led("variant-led-uuid-in-level.jsonld", "compact", uuidC)
	inLevel.sensors[1].topic = "sensor/brightness/brightness_" + uuidC + "/%s"
	inLevel.sensors[1].bound = "sensor/brightness/brightness_" + uuidC + "/u-1"
	inLevel.shape = "led-motion-uuid-in-level"

	heater := func(file string) variant {
		return variant{
			file: file, form: "compact", namespace: ontology.NamespaceMYNO, category: "HEATER-CTRL-1",
			functions: []string{"setLabel", "setMode", "setTarget"},
			kinds: map[string]ontology.FunctionKind{"setLabel": ontology.Configuration, "setMode": ontology.Controlling,
				"setTarget": ontology.Configuration},
			order: map[string][]string{"setMode": {"input_1_Mode", "input_2_Hours", "uuidInput"}},
			inputs: []inputWant{
				// datatype typed literal "xsd:decimal"^^xsd:string, range on the property
				{fn: "setTarget", name: "input_1_Target", kind: ontology.InputValue, typ: ontology.TypeDecimal, rng: rng("5.5", "30")},
				{fn: "setMode", name: "input_1_Mode", kind: ontology.InputEnumeration, enum: []string{"comfort", "eco", "off"}},
				// {"@id": "xsd:unsignedByte"}, bounds typed xsd:integer
				{fn: "setMode", name: "input_2_Hours", kind: ontology.InputValue, typ: "unsignedByte", rng: rng("0", "23")},
				// datatype typed literal "string"^^xsd:string
				{fn: "setLabel", name: "input_1_Label", kind: ontology.InputValue, typ: ontology.TypeString},
			},
			topics: []topicWant{
				{"setTarget", "heater/%s/command", "heater/u-1/command", "heater/u-1/command"},
				{"setLabel", "heater/%s/config", "heater/u-1/config", "heater/u-1/config"},
			},
			sensors: []sensorWant{
				{"temperature", ontology.Measuring, "°C", "heater/%s/temperature", "heater/u-1/temperature"},
				{"valve", ontology.Measuring, "%%", "heater/%s/valve", "heater/u-1/valve"},
			},
			shape: "heater",
		}
	}

	return []variant{
		led("variant-led-template.jsonld", "compact", ""),
		led("variant-led-filled-a.jsonld", "expanded", uuidA),
		led("variant-led-filled-b.jsonld", "compact", uuidB),
		inLevel,
		{
			file: "variant-bootstrap-mini.jsonld", form: "compact", namespace: ontology.NamespaceMYNO, category: "MINI-SWITCH-1",
			functions: []string{"toggle"},
			inputs:    []inputWant{{fn: "toggle", name: "uuidInput", kind: ontology.InputSelector, typ: ontology.TypeString}},
			topics:    []topicWant{{"toggle", "actuator/switch", "actuator/switch", "actuator/switch/u-1"}},
			shape:     "mini", oneMessage: true,
		},
		{
			file: "variant-range-on-input.jsonld", form: "expanded", namespace: ontology.NamespaceMYNO, category: "DIMMER-3",
			functions: []string{"dimmerOff", "setFadeTime", "setLevel", "setOffset"},
			kinds: map[string]ontology.FunctionKind{"dimmerOff": ontology.Controlling, "setFadeTime": ontology.Configuration,
				"setLevel": ontology.Controlling, "setOffset": ontology.Configuration},
			inputs: []inputWant{
				// {"@id": "xsd:int"} on the property, range on the input as xsd:int typed literals
				{fn: "setLevel", name: "input_1_Level", kind: ontology.InputValue, typ: ontology.TypeInt, rng: rng("0", "100")},
				// plain literal "integer", range on the property as JSON numbers
				{fn: "setFadeTime", name: "input_1_Millis", kind: ontology.InputValue, typ: "integer", rng: rng("0", "60000")},
				// plain literal "int", range on the input as strings
				{fn: "setOffset", name: "input_1_Offset", kind: ontology.InputValue, typ: ontology.TypeInt, rng: rng("-50", "50")},
			},
			topics: []topicWant{
				{"setLevel", "actuator/dimmer", "actuator/dimmer", "actuator/dimmer/u-1"},
				{"dimmerOff", "actuator/dimmer", "actuator/dimmer", "actuator/dimmer/u-1"},
				{"setOffset", "config/dimmer", "config/dimmer", "config/dimmer/u-1"},
			},
			sensors: []sensorWant{{"level", ontology.Measuring, "%%", "sensor/dimmer/level/%s", "sensor/dimmer/level/u-1"}},
			shape:   "dimmer",
		},
		heater("variant-range-on-property.jsonld"),
		heater("variant-range-on-property-reordered.jsonld"),
		{
			file: "variant-substructure.jsonld", form: "compact", namespace: ontology.NamespaceMYNOv1, category: "LED-STRIP-HSV",
			functions: []string{"setHsv", "setPixel", "stripOff"},
			order:     map[string][]string{"setPixel": {"input_1_Index", "input_2_Rgb", "uuidInput"}},
			inputs: []inputWant{
				{fn: "setHsv", name: "input_1_Hsv", kind: ontology.InputStructure, fields: []fieldWant{
					{"var_1_Hue", ontology.TypeInt, rng("0", "359")},                // {"@id": "xsd:int"}, xsd:int typed bounds
					{"var_2_Saturation", ontology.TypeInt, rng("0", "100")},         // "int", string bounds
					{"var_3_Value", "integer", rng("0", "")},                        // "integer", lower bound only
					{"var_4_Gamma", ontology.TypeDecimal, rng("0.1", "4")},          // "xsd:decimal"^^xsd:string
					{"var_10_Fade", ontology.TypeInt, &ontology.Range{Max: "5000"}}, // no type: int; upper bound only
				}},
				{fn: "setPixel", name: "input_1_Index", kind: ontology.InputValue, typ: "unsignedShort", rng: rng("0", "299")},
				{fn: "setPixel", name: "input_2_Rgb", kind: ontology.InputStructure, fields: []fieldWant{
					{"inputBlue", ontology.TypeInt, rng("0", "255")},
					{"inputGreen", ontology.TypeInt, rng("0", "255")},
					{"inputRed", ontology.TypeInt, rng("0", "255")},
				}},
			},
			topics: []topicWant{{"setHsv", "actuator/strip/strip_1/%s", "actuator/strip/strip_1/u-1", "actuator/strip/strip_1/u-1"}},
			shape:  "strip",
		},
		{
			file: "variant-owl-mixed.jsonld", form: "expanded", namespace: ontology.NamespaceMYNOv1, category: "PUMP-BOARD-4",
			functions: []string{"funcAutoWater", "funcConfMoisture", "funcPump_1Off", "funcPump_1On"},
			kinds: map[string]ontology.FunctionKind{"funcAutoWater": ontology.Automation, "funcConfMoisture": ontology.Configuration,
				"funcPump_1On": ontology.Controlling},
			funcIRIs: map[string]string{"funcPump_1On": ontology.NamespaceOneM2M + "funcPump_1On",
				"funcConfMoisture": ontology.NamespaceMYNOv1 + "funcConfMoisture"},
			order: map[string][]string{"funcConfMoisture": {"input_1_EventName", "input_2_Operator", "input_3_Threshold",
				"input_4_Duration", "input_5_Action", "uuidInput"}},
			inputs: []inputWant{
				{fn: "funcConfMoisture", name: "input_1_EventName", kind: ontology.InputValue, typ: ontology.TypeString},
				{fn: "funcConfMoisture", name: "input_2_Operator", kind: ontology.InputEnumeration, enum: []string{"<", "<=", "==", ">", ">="}},
				{fn: "funcConfMoisture", name: "input_3_Threshold", kind: ontology.InputValue, typ: ontology.TypeInt, rng: rng("0", "100")},
				// typed onem2m:OperationInput and time:Duration
				{fn: "funcConfMoisture", name: "input_4_Duration", kind: ontology.InputValue, typ: ontology.TypeInt},
				{fn: "funcConfMoisture", name: "input_5_Action", kind: ontology.InputEnumeration, enum: []string{"CREATE", "DELETE", "READ", "UPDATE"}},
				{fn: "funcAutoWater", name: "inputAutoWater", kind: ontology.InputValue, typ: ontology.TypeBoolean},
			},
			topics: []topicWant{
				{"funcPump_1On", "actuator/pump/pump_1/%s", "actuator/pump/pump_1/u-1", "actuator/pump/pump_1/u-1"},
				{"funcConfMoisture", "config/sensor/moisture/moisture_1/%s", "config/sensor/moisture/moisture_1/u-1", "config/sensor/moisture/moisture_1/u-1"},
			},
			sensors: []sensorWant{
				{"funcEvMoisture", ontology.Event, "", "event/sensor/moisture/moisture_1/%s", "event/sensor/moisture/moisture_1/u-1"},
				{"funcGetMoisture", ontology.Measuring, "%%", "sensor/moisture/moisture_1/%s", "sensor/moisture/moisture_1/u-1"},
			},
			shape: "pump",
		},
		{
			file: "variant-untyped-inputs.jsonld", form: "expanded", namespace: ontology.NamespaceMYNO, category: "BUZZER-1",
			functions: []string{"buzzerOff", "playTone"},
			order:     map[string][]string{"playTone": {"input_1_Melody", "input_2_Volume", "input_3_Repeat", "input_4_Pitch", "uuidInput"}},
			inputs: []inputWant{
				{fn: "playTone", name: "input_1_Melody", kind: ontology.InputValue, typ: ontology.TypeString},
				{fn: "playTone", name: "input_2_Volume", kind: ontology.InputValue, typ: ontology.TypeString},
				// "xsd:int" as a plain literal, range on the input
				{fn: "playTone", name: "input_3_Repeat", kind: ontology.InputValue, typ: ontology.TypeInt, rng: rng("1", "10")},
				// the datatype and range on the input, its property untyped
				{fn: "playTone", name: "input_4_Pitch", kind: ontology.InputValue, typ: ontology.TypeInt, rng: rng("-12", "12")},
			},
			topics: []topicWant{{"playTone", "actuator/buzzer/%s", "actuator/buzzer/u-1", "actuator/buzzer/u-1"}},
			warnings: []string{
				"input <" + ontology.NamespaceMYNO + "input_1_Melody> has no type",
				"input <" + ontology.NamespaceMYNO + "input_2_Volume> has no datatype",
			},
			nWarnings: 2,
			shape:     "buzzer",
		},
		{
			file: "variant-topics.jsonld", form: "compact", namespace: ontology.NamespaceMYNOv1, category: "GATE-OPENER-1",
			functions: []string{"closeGate", "lockGate", "openGate", "stopGate"},
			topics: []topicWant{
				{"openGate", "gate/%s/open", "gate/u-1/open", "gate/u-1/open"},
				{"closeGate", "gate/close", "gate/close", "gate/close/u-1"},
				{"stopGate", "%s/gate/stop", "u-1/gate/stop", "u-1/gate/stop"}, // under onem2m:mqttTopic
				{"lockGate", "gate/lock/%s", "gate/lock/u-1", "gate/lock/u-1"}, // typed literal
			},
			sensors: []sensorWant{
				{"obstacle", ontology.Event, "", "gate/%s/event/obstacle", "gate/u-1/event/obstacle"},
				{"position", ontology.Measuring, "%%", "gate/%s/position", "gate/u-1/position"},
			},
			shape: "gate",
		},
	}
}

// TestDescriptionVariants parses each variant description and checks its
// model, warnings and shape (issue 13).
func TestDescriptionVariants(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions")
	rows := variants()
	shapes := make([]string, len(rows))
	for i, v := range rows {
		t.Run(v.file, func(t *testing.T) {
			data := read(t, filepath.Join(dir, v.file))
			checkForm(t, data, v.form)
			if v.oneMessage {
				if n := len(wire.SplitDescription("u-1", data, oneMessageBytes)); len(data) > oneMessageBytes || n != 2 {
					t.Errorf("%d bytes, %d bootstrap messages: not one message and END", len(data), n)
				}
			}
			if v.filled != "" && (bytes.Contains(data, []byte("%s")) || !bytes.Contains(data, []byte(v.filled))) {
				t.Errorf("the file does not carry its UUID %s filled in everywhere", v.filled)
			}
			dev, err := ontology.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			shapes[i] = dev.Shape()
			if !strings.HasPrefix(dev.IRI, v.namespace) {
				t.Errorf("device IRI %s, want one in %s", dev.IRI, v.namespace)
			}
			if dev.Category != v.category || dev.UUID != "%s" || dev.FilledUUID != v.filled {
				t.Errorf("category %q uuid %q filled %q, want %q %%s %q", dev.Category, dev.UUID, dev.FilledUUID, v.category, v.filled)
			}
			var names []string
			for _, f := range dev.Functions {
				names = append(names, f.Name)
			}
			if !slices.Equal(names, v.functions) {
				t.Errorf("functions %v, want %v", names, v.functions)
			}
			for fn, kind := range v.kinds {
				if f := function(t, dev, fn); f.Kind != kind {
					t.Errorf("%s: kind %q, want %q", fn, f.Kind, kind)
				}
			}
			for fn, iri := range v.funcIRIs {
				if f := function(t, dev, fn); f.IRI != iri {
					t.Errorf("%s: IRI %s, want %s", fn, f.IRI, iri)
				}
			}
			for fn, want := range v.order {
				if got := inputNames(function(t, dev, fn)); !slices.Equal(got, want) {
					t.Errorf("%s: inputs %v, want %v", fn, got, want)
				}
			}
			for _, w := range v.inputs {
				checkInput(t, function(t, dev, w.fn), w)
			}
			bound := dev.Instantiate("u-1")
			if bound.UUID != "u-1" || bound.Shape() != dev.Shape() {
				t.Errorf("instantiated: uuid %q, shape changed %v", bound.UUID, bound.Shape() != dev.Shape())
			}
			for _, w := range v.topics {
				f, b := function(t, dev, w.fn), function(t, bound, w.fn)
				if f.Topic != w.template || b.Topic != w.bound || wire.CommandTopic(f.Topic, "u-1") != w.command {
					t.Errorf("%s: topic %q, bound %q, command topic %q; want %q %q %q",
						w.fn, f.Topic, b.Topic, wire.CommandTopic(f.Topic, "u-1"), w.template, w.bound, w.command)
				}
			}
			if len(dev.Sensors) != len(v.sensors) {
				t.Errorf("%d sensors, want %d: %+v", len(dev.Sensors), len(v.sensors), dev.Sensors)
			}
			for j := range min(len(dev.Sensors), len(v.sensors)) {
				s, b, w := dev.Sensors[j], bound.Sensors[j], v.sensors[j]
				if s.Name != w.name || s.Kind != w.kind || s.Unit != w.unit || s.Topic != w.topic || b.Topic != w.bound {
					t.Errorf("sensor %d: %s %s unit %q topic %q bound %q; want %s %s %q %q %q",
						j, s.Name, s.Kind, s.Unit, s.Topic, b.Topic, w.name, w.kind, w.unit, w.topic, w.bound)
				}
			}
			if len(dev.Warnings) != v.nWarnings {
				t.Errorf("%d warnings, want %d: %q", len(dev.Warnings), v.nWarnings, dev.Warnings)
			}
			for _, want := range v.warnings {
				if !slices.ContainsFunc(dev.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
					t.Errorf("no warning says %q: %q", want, dev.Warnings)
				}
			}
		})
	}

	// Shape groups: the same group shares a shape, different groups do not.
	for i := range rows {
		for j := i + 1; j < len(rows); j++ {
			if shapes[i] == "" || shapes[j] == "" {
				continue
			}
			if same := shapes[i] == shapes[j]; same != (rows[i].shape == rows[j].shape) {
				t.Errorf("%s and %s: same shape %v, want %v", rows[i].file, rows[j].file, same, !same)
			}
		}
	}

	// Every variant file has a row.
	files, _ := filepath.Glob(filepath.Join(dir, "variant-*.jsonld"))
	for _, f := range files {
		if !slices.ContainsFunc(rows, func(v variant) bool { return v.file == filepath.Base(f) }) {
			t.Errorf("%s has no row in this table", filepath.Base(f))
		}
	}
	if len(files) < 10 {
		t.Errorf("%d variant descriptions, want at least 10", len(files))
	}
}

// checkForm checks that data is in the JSON-LD form its row says.
func checkForm(t *testing.T, data []byte, form string) {
	t.Helper()
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	switch form {
	case "compact":
		obj, ok := doc.(map[string]any)
		if !ok || obj["@context"] == nil || obj["@graph"] == nil {
			t.Errorf("not compact (@context + @graph)")
		}
	case "expanded":
		if _, ok := doc.([]any); !ok || bytes.Contains(data, []byte(`"@context"`)) {
			t.Errorf("not expanded (a top-level array without @context)")
		}
	default:
		t.Fatalf("form %q", form)
	}
}

func checkInput(t *testing.T, f *ontology.Function, w inputWant) {
	t.Helper()
	var in *ontology.Input
	for i := range f.Inputs {
		if f.Inputs[i].Name == w.name {
			in = &f.Inputs[i]
		}
	}
	if in == nil {
		t.Errorf("%s: no input %s", f.Name, w.name)
		return
	}
	if in.Kind != w.kind || in.Type != w.typ || !sameRange(in.Range, w.rng) || !slices.Equal(in.Enum, w.enum) {
		t.Errorf("%s/%s: kind %q type %q range %v enum %q; want %q %q %v %q",
			f.Name, w.name, in.Kind, in.Type, in.Range, in.Enum, w.kind, w.typ, w.rng, w.enum)
	}
	if len(in.Fields) != len(w.fields) {
		t.Errorf("%s/%s: %d fields, want %d", f.Name, w.name, len(in.Fields), len(w.fields))
		return
	}
	for i, fw := range w.fields {
		fl := in.Fields[i]
		if fl.Name != fw.name || fl.Type != fw.typ || !sameRange(fl.Range, fw.rng) {
			t.Errorf("%s/%s field %d: %s %q %v; want %s %q %v", f.Name, w.name, i, fl.Name, fl.Type, fl.Range, fw.name, fw.typ, fw.rng)
		}
	}
}

func sameRange(a, b *ontology.Range) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
