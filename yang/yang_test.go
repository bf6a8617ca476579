package yang_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	goyang "github.com/openconfig/goyang/pkg/yang"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

func allDescriptions(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "*.jsonld"))
	if len(files) < 8 {
		t.Fatalf("found %d testdata descriptions, want at least 8", len(files))
	}
	return files
}

func generateFile(t testing.TB, path string) *yang.Module {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return generate(t, data)
}

func generate(t testing.TB, data []byte) *yang.Module {
	t.Helper()
	dev, err := ontology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := yang.Generate(dev, yang.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testdataModule(t testing.TB, name string) *yang.Module {
	t.Helper()
	return generateFile(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name))
}

// yanglintModule writes m to a temporary directory and validates it.
func yanglintModule(t testing.TB, m *yang.Module) string {
	t.Helper()
	lint := testenv.Tool(t, "yanglint")
	path := filepath.Join(t.TempDir(), m.Name+".yang")
	if err := os.WriteFile(path, []byte(m.Text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(lint, path).CombinedOutput()
	if err != nil {
		t.Fatalf("yanglint rejects %s: %v\n%s", m.Name, err, out)
	}
	if len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("yanglint warns on %s:\n%s", m.Name, out)
	}
	return path
}

func TestYanglintAcceptsEveryGeneratedModule(t *testing.T) {
	files := allDescriptions(t)
	files = append(files, testenv.SharedSamples(t)...)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			yanglintModule(t, generateFile(t, f))
		})
	}
}

func TestReferenceSampleModules(t *testing.T) {
	for _, f := range testenv.SharedSamples(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			m := generateFile(t, f)
			lint := testenv.Tool(t, "yanglint")
			path := yanglintModule(t, m)
			tree, err := exec.Command(lint, "-f", "tree", path).CombinedOutput()
			if err != nil {
				t.Fatalf("yanglint -f tree: %v\n%s", err, tree)
			}
			for _, r := range m.Device.Functions {
				if !bytes.Contains(tree, []byte("+---x "+r.Name)) {
					t.Errorf("rpc %s missing from yanglint's tree", r.Name)
				}
				for _, in := range r.Inputs {
					if !bytes.Contains(tree, []byte("+---w "+in.Name)) {
						t.Errorf("input %s of %s missing from yanglint's tree", in.Name, r.Name)
					}
				}
				for _, s := range r.States {
					if !strings.Contains(m.Text, fmt.Sprintf("enum %q", s.Value)) {
						t.Errorf("state %s of %s missing from the module", s.Value, r.Name)
					}
				}
			}
			if filepath.Base(f) == "MYNO-Update-opt.owl" {
				// The ordered inputs appear in order in the rpc.
				rpc := m.Text[strings.Index(m.Text, "rpc funcPubUpdateManifest"):]
				last := 0
				for i := 1; i <= 9; i++ {
					at := regexp.MustCompile(fmt.Sprintf(`leaf input_%d_`, i)).FindStringIndex(rpc)
					if at == nil || at[0] < last {
						t.Fatalf("input_%d missing or out of order", i)
					}
					last = at[0]
				}
			}
		})
	}
}

func TestGenerationIsDeterministic(t *testing.T) {
	for _, f := range allDescriptions(t) {
		a, b := generateFile(t, f), generateFile(t, f)
		if a.Text != b.Text {
			t.Errorf("%s: two generations differ", filepath.Base(f))
		}
	}
	same, orig := testdataModule(t, "led-color-same-shape.jsonld"), testdataModule(t, "led-color.jsonld")
	if same.Text != orig.Text {
		t.Errorf("descriptions of the same shape give different modules")
	}
	variant := testdataModule(t, "led-color-variant.jsonld")
	if variant.Name == orig.Name || variant.Namespace == orig.Namespace || variant.Prefix == orig.Prefix {
		t.Errorf("different shapes share name/namespace/prefix: %s %s", variant.Name, orig.Name)
	}
}

var identifierRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

func TestNamesAreValidIdentifiers(t *testing.T) {
	for _, f := range allDescriptions(t) {
		m := generateFile(t, f)
		for _, id := range []string{m.Name, m.Prefix} {
			if !identifierRE.MatchString(id) || strings.HasPrefix(strings.ToLower(id), "xml") {
				t.Errorf("%s: %q is not a YANG identifier", filepath.Base(f), id)
			}
		}
		if m.Namespace != "urn:myno:yang:"+m.Name {
			t.Errorf("namespace %q", m.Namespace)
		}
		for _, r := range m.RPCs {
			if !identifierRE.MatchString(r.Name) {
				t.Errorf("rpc name %q", r.Name)
			}
		}
	}
}

// A description whose names are not YANG identifiers still gives a valid
// module: names are sanitised and collisions get suffixes.
func TestHostileNames(t *testing.T) {
	category, _ := json.Marshal(`9 lamps "deluxe"\ %%`)
	desc := strings.NewReplacer(
		`"CATEGORY"`, string(category),
		"FUNC_A", "2turn.on",
		"FUNC_B", "2turn_on",
		"DEVICES", "devices",
	).Replace(minimalTemplate)
	m := generate(t, []byte(desc))
	yanglintModule(t, m)
	var names []string
	for _, r := range m.RPCs {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"_2turn.on", "_2turn_on", "devices_2"}) {
		t.Errorf("rpc names %v", names)
	}
	if !strings.Contains(m.Text, `Device category 9 lamps \"deluxe\"\\ %`) {
		t.Errorf("category not quoted in the description:\n%s", m.Text[:400])
	}
}

// minimalTemplate is a compact description with three functionalities whose
// names and category are placeholders for tests.
const minimalTemplate = `{
  "@context": {"o": "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#", "m": "http://yang-netconf-mqtt#"},
  "@graph": [
    {"@id": "m:dev", "@type": "o:Device", "o:hasFunctionality": [{"@id": "m:FUNC_A"}, {"@id": "m:FUNC_B"}, {"@id": "m:DEVICES"}],
     "o:hasThingProperty": [{"@id": "m:deviceUuid"}, {"@id": "m:deviceCategory"}]},
    {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "%s"},
    {"@id": "m:deviceCategory", "@type": "o:ThingProperty", "o:hasValue": "CATEGORY"},
    {"@id": "m:uuidInput", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:deviceUuid"}},
    {"@id": "m:FUNC_A", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:cmdA"}},
    {"@id": "m:FUNC_B", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:cmdB"}},
    {"@id": "m:DEVICES", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:cmdC"}},
    {"@id": "m:cmdA", "@type": "o:Command", "o:hasInput": {"@id": "m:uuidInput"}},
    {"@id": "m:cmdB", "@type": "o:Command", "o:hasInput": {"@id": "m:uuidInput"}},
    {"@id": "m:cmdC", "@type": "o:Command", "o:hasInput": {"@id": "m:uuidInput"}},
    {"@id": "m:opA", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:cmdA"}, "m:mqttMethod": "A", "m:mqttTopic": "t/%s"},
    {"@id": "m:opB", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:cmdB"}, "m:mqttMethod": "B", "m:mqttTopic": "t/%s"},
    {"@id": "m:opC", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:cmdC"}, "m:mqttMethod": "C", "m:mqttTopic": "t/%s"}
  ]
}`

// GoyangSeesTheSchema: the module's rpcs, inputs, enumerations and
// units are what goyang reads back.
func TestGoyangReadsTheSchema(t *testing.T) {
	m := testdataModule(t, "thermostat.jsonld")
	ms := goyang.NewModules()
	if err := ms.Parse(m.Text, m.Name+".yang"); err != nil {
		t.Fatal(err)
	}
	if errs := ms.Process(); len(errs) > 0 {
		t.Fatal(errs)
	}
	mod, errs := ms.GetModule(m.Name)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	rpc := mod.Dir["setThreshold"]
	if rpc == nil || rpc.RPC == nil {
		t.Fatalf("no rpc setThreshold; have %v", keys(mod.Dir))
	}
	op := rpc.RPC.Input.Dir["input_1_Operator"]
	if op == nil || op.Type.Kind != goyang.Yenum || !slices.Equal(op.Type.Enum.Names(), []string{"eq", "ge", "gt", "le", "lt"}) {
		t.Errorf("operator input %+v", op)
	}
	th := rpc.RPC.Input.Dir["input_2_Threshold"]
	if th == nil || th.Type.Kind != goyang.Yint32 || th.Type.Range.String() != "-40..125" {
		t.Errorf("threshold input: %+v", th)
	}
	if uuid := rpc.RPC.Input.Dir["uuidInput"]; uuid == nil || uuid.Mandatory != goyang.TSTrue {
		t.Errorf("device selector is not mandatory: %+v", uuid)
	}
	// retval: the states' enumeration, or any other answer as a string.
	retval := rpc.RPC.Output.Dir["retval"]
	if retval == nil || retval.Type.Kind != goyang.Yunion || len(retval.Type.Type) != 2 ||
		retval.Type.Type[0].Kind != goyang.Yenum || retval.Type.Type[1].Kind != goyang.Ystring {
		t.Fatalf("retval %+v", retval)
	}
	devices := mod.Dir["devices"]
	if devices == nil || devices.Config != goyang.TSFalse {
		t.Fatalf("devices is not config false: %+v", devices)
	}
	temp := devices.Dir["device"].Dir["sensors"].Dir["temperature"].Dir["value"]
	if temp == nil {
		t.Fatal("no temperature reading leaf")
	}
	// goyang v1.6.3 leaves Entry.Units empty for leaves; read the statement.
	if leaf, ok := temp.Node.(*goyang.Leaf); !ok || leaf.Units == nil || leaf.Units.Name != "°C" {
		t.Errorf("temperature units: %+v", temp.Node)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
