package ontology_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/piprate/json-gold/ld"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

func descriptionFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "*.jsonld"))
	if err != nil || len(files) < 8 {
		t.Fatalf("want at least 8 testdata descriptions, found %d (%v)", len(files), err)
	}
	return files
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseFile(t testing.TB, name string) *ontology.Device {
	t.Helper()
	dev, err := ontology.Parse(read(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return dev
}

func function(t *testing.T, dev *ontology.Device, name string) *ontology.Function {
	t.Helper()
	for i := range dev.Functions {
		if dev.Functions[i].Name == name {
			return &dev.Functions[i]
		}
	}
	t.Fatalf("no function %q in %s", name, dev.IRI)
	return nil
}

func inputNames(f *ontology.Function) []string {
	var names []string
	for _, in := range f.Inputs {
		names = append(names, in.Name)
	}
	return names
}

func TestEveryTestdataDescriptionParses(t *testing.T) {
	for _, file := range descriptionFiles(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			dev, err := ontology.Parse(read(t, file))
			if err != nil {
				t.Fatal(err)
			}
			if len(dev.Functions) == 0 {
				t.Errorf("no invocable functionality")
			}
			if dev.UUID != "%s" {
				t.Errorf("UUID template = %q, want %%s", dev.UUID)
			}
			for _, f := range dev.Functions {
				if f.Selector() == nil {
					t.Errorf("%s: no device selector input", f.Name)
				}
				if f.Method == "" || f.Topic == "" {
					t.Errorf("%s: method %q topic %q", f.Name, f.Method, f.Topic)
				}
			}
		})
	}
}

func TestReferenceSamples(t *testing.T) {
	for _, file := range testenv.SharedSamples(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			dev, err := ontology.Parse(read(t, file))
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Base(file) {
			case "MYNO-Update-opt.owl":
				if dev.Category != "SETUP-1" {
					t.Errorf("category %q", dev.Category)
				}
				f := function(t, dev, "funcPubUpdateManifest")
				want := []string{"input_1_AppId", "input_2_LinkOffset", "input_3_Hash", "input_4_Size", "input_5_Version",
					"input_6_OldVersion", "input_7_InnerSignature", "input_8_DeviceNonce", "input_9_OuterSignature", "uuidInput"}
				if got := inputNames(f); !slices.Equal(got, want) {
					t.Errorf("inputs %v, want %v", got, want)
				}
				if len(f.States) != 12 || f.States[0] != (ontology.State{Value: "10_OK", Description: "10 successful"}) ||
					f.States[11] != (ontology.State{Value: "28_IMAGE-INVALID", Description: "28 image invalid"}) {
					t.Errorf("states %v", f.States)
				}
				if img := function(t, dev, "funcPubUpdateImage"); img.InputTopic != "yang/update/image" || img.Inputs[0].Type != ontology.TypeHexBinary {
					t.Errorf("image rpc %+v", img)
				}
			case "bright_motion_led.owl":
				f := function(t, dev, "funcLed_1Color")
				if f.Inputs[0].Kind != ontology.InputEnumeration || !slices.Equal(f.Inputs[0].Enum, []string{"all", "green", "red"}) {
					t.Errorf("color input %+v", f.Inputs[0])
				}
				if f.Method != "color" || f.Topic != "actuator/led/led_1" {
					t.Errorf("method/topic %q %q", f.Method, f.Topic)
				}
				if len(dev.Sensors) != 2 || dev.Sensors[0].Topic != "sensor/motion/motion_1/%s" {
					t.Errorf("sensors %+v", dev.Sensors)
				}
			}
		})
	}
}

func TestTestdataContent(t *testing.T) {
	t.Run("led colour enumeration and lux", func(t *testing.T) {
		dev := parseFile(t, "led-color.jsonld")
		f := function(t, dev, "setColor")
		if in := f.Inputs[0]; in.Kind != ontology.InputEnumeration || !slices.Equal(in.Enum, []string{"blue", "green", "red", "white"}) {
			t.Errorf("colour input %+v", in)
		}
		if s := dev.Sensors[0]; s.Unit != "lx" || s.Topic != "sensor/brightness/%s" {
			t.Errorf("sensor %+v", s)
		}
	})
	t.Run("rgb sub-structure 0..255", func(t *testing.T) {
		dev := parseFile(t, "rgb-lamp.jsonld")
		in := function(t, dev, "setRgb").Inputs[0]
		if in.Kind != ontology.InputStructure || len(in.Fields) != 3 {
			t.Fatalf("rgb input %+v", in)
		}
		for _, f := range in.Fields {
			if f.Range == nil || *f.Range != (ontology.Range{Min: "0", Max: "255"}) || f.Type != ontology.TypeInt {
				t.Errorf("field %+v range %+v", f, f.Range)
			}
		}
		if got := []string{in.Fields[0].Name, in.Fields[1].Name, in.Fields[2].Name}; !slices.Equal(got, []string{"var_1_Red", "var_2_Green", "var_3_Blue"}) {
			t.Errorf("field order %v", got)
		}
	})
	t.Run("configuration with operator enumeration and int range", func(t *testing.T) {
		dev := parseFile(t, "thermostat.jsonld")
		f := function(t, dev, "setThreshold")
		if f.Kind != ontology.Configuration {
			t.Errorf("kind %q", f.Kind)
		}
		if !slices.Equal(f.Inputs[0].Enum, []string{"eq", "ge", "gt", "le", "lt"}) {
			t.Errorf("operators %v", f.Inputs[0].Enum)
		}
		if r := f.Inputs[1].Range; r == nil || *r != (ontology.Range{Min: "-40", Max: "125"}) {
			t.Errorf("threshold range %+v", r)
		}
		if a := function(t, dev, "autoHeating"); a.Kind != ontology.Automation {
			t.Errorf("AutomationFunctionality under the onem2m prefix: kind %q", a.Kind)
		}
		var event *ontology.Sensor
		for i := range dev.Sensors {
			if dev.Sensors[i].Kind == ontology.Event {
				event = &dev.Sensors[i]
			}
		}
		if event == nil || event.Topic == "" {
			t.Errorf("no event functionality with a topic: %+v", dev.Sensors)
		}
	})
	t.Run("MUP device", func(t *testing.T) {
		dev := parseFile(t, "mup-device.jsonld")
		tok := function(t, dev, "getDeviceToken")
		if len(tok.Outputs) != 3 || tok.Outputs[1].Type != ontology.TypeHexBinary {
			t.Errorf("token outputs %+v", tok.Outputs)
		}
		img := function(t, dev, "sendFirmwareImage")
		if img.InputTopic != "yang/update/image/%s" {
			t.Errorf("firmware input data point %q", img.InputTopic)
		}
		var states []string
		for _, s := range img.States {
			states = append(states, s.Value)
			if s.Description == "" {
				t.Errorf("state %s has no description", s.Value)
			}
		}
		want := []string{"10_OK", "11_NOOP", "12_ERROR", "20_MANIFEST-NOT-VALID", "21_WRONG-APP-ID", "22_INVALID-NONCE",
			"23_OUTER-SIGN-INVALID", "24_INNER-SIGN-INVALID", "25_INVALID-VERSIONNR", "26_SAVESLOT-IN-USE", "27_IMAGE-TOO-BIG", "28_IMAGE-INVALID"}
		if !slices.Equal(states, want) {
			t.Errorf("states %v", states)
		}
		if m := function(t, dev, "sendExtendedManifest"); m.Inputs[0].Type != ontology.TypeBase64Binary {
			t.Errorf("manifest input %+v", m.Inputs[0])
		}
	})
	t.Run("percent placeholder in units", func(t *testing.T) {
		dev := parseFile(t, "relay-sensors.jsonld")
		var units []string
		for _, s := range dev.Sensors {
			units = append(units, ontology.Display(s.Unit))
		}
		if !slices.Contains(units, "%") || !slices.Contains(units, "°C") {
			t.Errorf("units %q", units)
		}
	})
}

func TestShape(t *testing.T) {
	a, b := parseFile(t, "led-color.jsonld"), parseFile(t, "led-color-same-shape.jsonld")
	if a.Shape() != b.Shape() {
		t.Errorf("byte-different descriptions of one graph have shapes %s and %s", a.Shape(), b.Shape())
	}
	if v := parseFile(t, "led-color-variant.jsonld"); v.Shape() == a.Shape() || v.Category != a.Category {
		t.Errorf("variant: category %q shape %s, original %q %s", v.Category, v.Shape(), a.Category, a.Shape())
	}
	if i := a.Instantiate("dev-1"); i.Shape() != a.Shape() {
		t.Errorf("instantiation changed the shape")
	}
}

// The same graph in compact and in expanded JSON-LD is the same model.
func TestCompactAndExpandedFormsAgree(t *testing.T) {
	for _, name := range []string{"led-color.jsonld", "mup-device.jsonld", "rgb-lamp.jsonld", "smart-plug.jsonld"} {
		t.Run(name, func(t *testing.T) {
			compact := read(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name))
			var doc any
			if err := json.Unmarshal(compact, &doc); err != nil {
				t.Fatal(err)
			}
			expanded, err := ld.NewJsonLdProcessor().Expand(doc, nil)
			if err != nil {
				t.Fatal(err)
			}
			expandedJSON, _ := json.Marshal(expanded)
			if bytes.Contains(expandedJSON, []byte(`"@context"`)) {
				t.Fatal("expansion kept a context")
			}
			d1, err := ontology.Parse(compact)
			if err != nil {
				t.Fatal(err)
			}
			d2, err := ontology.Parse(expandedJSON)
			if err != nil {
				t.Fatal(err)
			}
			if d1.Shape() != d2.Shape() {
				t.Errorf("compact and expanded forms have different shapes")
			}
		})
	}
}

// JSON-LD arrays are sets: shuffling node and value order changes nothing.
func TestArrayOrderDoesNotMatter(t *testing.T) {
	src := read(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-device.jsonld"))
	want, err := ontology.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 5; i++ {
		var doc any
		if err := json.Unmarshal(src, &doc); err != nil {
			t.Fatal(err)
		}
		shuffle(doc, rng)
		b, _ := json.Marshal(doc)
		got, err := ontology.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Shape() != want.Shape() {
			t.Fatalf("shuffle %d changed the shape", i)
		}
	}
}

func shuffle(v any, rng *rand.Rand) {
	switch x := v.(type) {
	case []any:
		rng.Shuffle(len(x), func(i, j int) { x[i], x[j] = x[j], x[i] })
		for _, e := range x {
			shuffle(e, rng)
		}
	case map[string]any:
		for _, e := range x {
			shuffle(e, rng)
		}
	}
}

// Both MYNO namespace IRIs name the same vocabulary.
func TestBothMYNONamespaces(t *testing.T) {
	src := read(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	a, err := ontology.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	var from, to string
	switch {
	case bytes.Contains(src, []byte(ontology.NamespaceMYNO)):
		from, to = ontology.NamespaceMYNO, ontology.NamespaceMYNOv1
	case bytes.Contains(src, []byte(ontology.NamespaceMYNOv1)):
		from, to = ontology.NamespaceMYNOv1, ontology.NamespaceMYNO
	default:
		t.Fatal("led-color.jsonld uses neither MYNO namespace")
	}
	b, err := ontology.Parse(bytes.ReplaceAll(src, []byte(from), []byte(to)))
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Functions) != len(b.Functions) || len(a.Sensors) != len(b.Sensors) {
		t.Fatalf("namespace swap changed the model: %d/%d functions, %d/%d sensors", len(a.Functions), len(b.Functions), len(a.Sensors), len(b.Sensors))
	}
	for i := range a.Functions {
		fa, fb := a.Functions[i], b.Functions[i]
		if fa.Name != fb.Name || fa.Method != fb.Method || fa.Topic != fb.Topic || !slices.Equal(inputNames(&fa), inputNames(&fb)) {
			t.Errorf("function %d differs: %+v vs %+v", i, fa, fb)
		}
	}
}

func TestBrokenDescriptions(t *testing.T) {
	cases := []struct {
		file string
		kind error
		node string // substring of the offending node IRI, "" when none applies
	}{
		{"not-json.jsonld", ontology.ErrNotJSON, ""},
		{"empty.jsonld", ontology.ErrNotJSON, ""},
		{"not-jsonld.jsonld", ontology.ErrNotJSONLD, ""},
		{"bad-context.jsonld", ontology.ErrNotJSONLD, ""},
		{"remote-context.jsonld", ontology.ErrNotJSONLD, ""},
		{"no-device.jsonld", ontology.ErrNoDevice, ""},
		{"two-devices.jsonld", ontology.ErrMultipleDevices, "#"},
		{"operation-without-method.jsonld", ontology.ErrMissingMethod, "#op"},
		{"operation-without-topic.jsonld", ontology.ErrMissingTopic, "#op"},
		{"dangling-reference.jsonld", ontology.ErrDanglingReference, "#"},
		{"functionality-without-operation.jsonld", ontology.ErrMissingOperation, "#"},
		{"bad-range.jsonld", ontology.ErrInvalidRange, "#"},
		{"non-numeric-range.jsonld", ontology.ErrInvalidRange, "#"},
	}
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "broken")
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			_, err := ontology.Parse(read(t, filepath.Join(dir, tc.file)))
			if !errors.Is(err, tc.kind) {
				t.Fatalf("error %v, want kind %v", err, tc.kind)
			}
			var oe *ontology.Error
			if !errors.As(err, &oe) {
				t.Fatalf("error %T is not an *ontology.Error", err)
			}
			if tc.node != "" && !strings.Contains(oe.Node, tc.node) {
				t.Errorf("error names node %q, want one containing %q (%v)", oe.Node, tc.node, err)
			}
		})
	}
	// Every broken file is covered by the table.
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonld"))
	for _, f := range files {
		if !slices.ContainsFunc(cases, func(c struct {
			file string
			kind error
			node string
		}) bool {
			return c.file == filepath.Base(f)
		}) {
			t.Errorf("broken description %s has no expected error in this table", filepath.Base(f))
		}
	}
}

func TestRemoteContextIsNeverFetched(t *testing.T) {
	// An address nothing listens on: if the parser tried to fetch it, the
	// error would be a connection error instead of the refusal.
	doc := `{"@context": "http://127.0.0.1:9/context.jsonld", "@id": "x:d", "@type": "onem2m:Device"}`
	_, err := ontology.Parse([]byte(doc))
	if !errors.Is(err, ontology.ErrNotJSONLD) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("error %v, want a refused remote context", err)
	}
}

func TestSizeLimit(t *testing.T) {
	src := read(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld"))
	if _, err := (&ontology.Parser{MaxBytes: len(src) - 1}).Parse(src); !errors.Is(err, ontology.ErrTooLarge) {
		t.Errorf("limit below size: %v, want ErrTooLarge", err)
	}
	if _, err := (&ontology.Parser{MaxBytes: len(src)}).Parse(src); err != nil {
		t.Errorf("limit equal to size: %v", err)
	}
	big := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), ontology.DefaultMaxBytes)...)
	big = append(big, `"}`...)
	if _, err := ontology.Parse(big); !errors.Is(err, ontology.ErrTooLarge) {
		t.Errorf("default limit: %v, want ErrTooLarge", err)
	}
}

func TestNonDocumentJSON(t *testing.T) {
	for _, doc := range []string{`"http://127.0.0.1:9/doc"`, `42`, `null`, `true`, `[]`, `{}`, `[1,2,3]`} {
		_, err := ontology.Parse([]byte(doc))
		if !errors.Is(err, ontology.ErrNotJSONLD) {
			t.Errorf("%s: %v, want ErrNotJSONLD", doc, err)
		}
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct{ in, uuid, want string }{
		{"sensor/%s", "u1", "sensor/u1"},
		{"%s/%s", "u", "u/u"},
		{"100%%", "u", "100%"},
		{"%%s", "u", "%s"},
		{"%%%s", "u", "%u"},
		{"50%", "u", "50%"},
		{"%d %", "u", "%d %"},
		{"plain", "u", "plain"},
	} {
		if got := wire.Expand(tc.in, tc.uuid); got != tc.want {
			t.Errorf("wire.Expand(%q, %q) = %q, want %q", tc.in, tc.uuid, got, tc.want)
		}
	}
	dev := parseFile(t, "relay-sensors.jsonld").Instantiate("abc-1")
	for _, s := range dev.Sensors {
		if strings.Contains(s.Topic, "%") {
			t.Errorf("instantiated topic %q still has a placeholder", s.Topic)
		}
	}
}

func TestNaturalLess(t *testing.T) {
	sorted := []string{"a", "input_1_X", "input_2_Y", "input_9_Z", "input_10_A", "input_10_B", "input_11", "uuidInput"}
	shuffled := slices.Clone(sorted)
	rand.New(rand.NewSource(3)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	slices.SortFunc(shuffled, func(a, b string) int {
		switch {
		case ontology.NaturalLess(a, b):
			return -1
		case ontology.NaturalLess(b, a):
			return 1
		}
		return 0
	})
	if !slices.Equal(shuffled, sorted) {
		t.Errorf("natural order %v, want %v", shuffled, sorted)
	}
	if ontology.NaturalLess("x01", "x1") == ontology.NaturalLess("x1", "x01") {
		t.Errorf("numerically equal runs must still be ordered")
	}
}
