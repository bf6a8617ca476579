package console

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

// moduleOf generates the module of a testdata description and reads it
// back as the console does: its text, parsed with goyang.
func moduleOf(t *testing.T, description string) *Module {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", description))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ontology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := yang.Generate(dev, yang.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseModule(gen.Name, gen.Text, selectorLeaf)
	if err != nil {
		t.Fatal(err)
	}
	if m.Namespace != gen.Namespace {
		t.Errorf("namespace %q, want %q", m.Namespace, gen.Namespace)
	}
	return m
}

func rpcNamed(t *testing.T, m *Module, name string) RPCForm {
	t.Helper()
	i := slices.IndexFunc(m.RPCs, func(f RPCForm) bool { return f.Name == name })
	if i < 0 {
		t.Fatalf("module %s has no rpc %s", m.Name, name)
	}
	return m.RPCs[i]
}

// Each YANG input becomes the form field that enforces what the bridge
// enforces (RFC 7950 §9): the table covers every kind.
func TestFormsFollowTheModule(t *testing.T) {
	for _, tc := range []struct {
		description, rpc string
		want             []Field
		oneOf            string
	}{
		{"led-color.jsonld", "setColor", []Field{
			{Name: "uuidInput", Selector: true, Mandatory: true},
			{Name: "input_1_Color", Kind: FieldEnum, Enum: []string{"blue", "green", "red", "white"}, Mandatory: true},
		}, ""},
		{"thermostat.jsonld", "setThreshold", []Field{
			{Name: "uuidInput", Selector: true, Mandatory: true},
			{Name: "input_1_Operator", Kind: FieldEnum, Enum: []string{"eq", "ge", "gt", "le", "lt"}, Mandatory: true},
			{Name: "input_2_Threshold", Kind: FieldInteger, Min: "-40", Max: "125", Mandatory: true},
		}, ""},
		{"rgb-lamp.jsonld", "setRgb", []Field{
			{Name: "uuidInput", Selector: true, Mandatory: true},
			{Name: "input_1_Rgb", Kind: FieldGroup, Fields: []Field{
				{Name: "var_1_Red", Kind: FieldInteger, Min: "0", Max: "255", Mandatory: true},
				{Name: "var_2_Green", Kind: FieldInteger, Min: "0", Max: "255", Mandatory: true},
				{Name: "var_3_Blue", Kind: FieldInteger, Min: "0", Max: "255", Mandatory: true},
			}},
		}, ""},
		{"smart-plug.jsonld", "setChildLock", []Field{
			{Name: "uuidInput", Selector: true, Mandatory: true},
			{Name: "input_1_Locked", Kind: FieldBoolean, Enum: []string{"true", "false"}, Mandatory: true},
		}, ""},
		{"mup-device.jsonld", "sendExtendedManifest", []Field{
			{Name: "uuidInput", Selector: true, Mandatory: true},
			{Name: "input_1_Manifest", Kind: FieldBinary, Mandatory: true},
		}, ""},
		{"mup-v1-device.jsonld", "funcGetDeviceToken", []Field{{Name: "uuidInput", Selector: true, Mandatory: true}}, ""},
	} {
		t.Run(tc.description+"/"+tc.rpc, func(t *testing.T) {
			f := rpcNamed(t, moduleOf(t, tc.description), tc.rpc)
			if f.OneOf != tc.oneOf {
				t.Errorf("one of %q, want %q", f.OneOf, tc.oneOf)
			}
			if len(f.Fields) != len(tc.want) {
				t.Fatalf("fields %+v", f.Fields)
			}
			for i, want := range tc.want {
				got := f.Fields[i]
				got.Description, got.Pattern, got.MinLength, got.MaxLength = "", "", 0, 0
				if got.Selector {
					got.Kind = ""
				}
				for j := range got.Fields {
					got.Fields[j].Description = ""
				}
				if !fieldEqual(got, want) {
					t.Errorf("field %d: %+v, want %+v", i, got, want)
				}
			}
		})
	}
	// A string keeps its pattern where the browser means the same by it.
	plug := rpcNamed(t, moduleOf(t, "smart-plug.jsonld"), "setSchedule")
	if hex := plug.Fields[1]; hex.Kind != FieldString || hex.Pattern == "" {
		t.Errorf("hex-binary input: %+v", hex)
	}
	// MUP v1's manifest rpc: one field per call (the module's choice).
	manifest := rpcNamed(t, moduleOf(t, "mup-v1-device.jsonld"), "funcPubUpdateManifest")
	if manifest.OneOf != yang.OneInputChoice || len(manifest.Fields) != 10 || manifest.Fields[1].Name != "input_1_AppId" || manifest.Fields[9].Name != "input_9_OuterSignature" {
		t.Errorf("MUP v1 manifest form: %+v", manifest)
	}
}

func fieldEqual(a, b Field) bool {
	if a.Name != b.Name || a.Kind != b.Kind || a.Mandatory != b.Mandatory || a.Selector != b.Selector || a.Min != b.Min || a.Max != b.Max ||
		!slices.Equal(a.Enum, b.Enum) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if !fieldEqual(a.Fields[i], b.Fields[i]) {
			return false
		}
	}
	return true
}

// Only modules with an update protocol's rpcs offer updates.
func TestUpdatableModules(t *testing.T) {
	for description, want := range map[string]updateserver.Protocol{
		"mup-device.jsonld": updateserver.ProtocolCOSE, "mup-v1-device.jsonld": updateserver.ProtocolV1, "led-color.jsonld": "",
	} {
		p, ok := moduleOf(t, description).Updatable()
		if p != want || ok != (want != "") {
			t.Errorf("%s: %q %v, want %q", description, p, ok, want)
		}
	}
}

// The rules a bridge shows a user decide as NACM does (RFC 8341
// §3.4.4): the first matching exec rule, else the default.
func TestAccessRules(t *testing.T) {
	readOnly := &accessRules{Enabled: true, ExecDefault: "deny"}
	readOnly.RuleLists = append(readOnly.RuleLists, struct {
		Rules []struct {
			Module string `xml:"module-name"`
			RPC    string `xml:"rpc-name"`
			Ops    string `xml:"access-operations"`
			Action string `xml:"action"`
		} `xml:"rule"`
	}{})
	add := func(a *accessRules, module, rpc, action string) {
		a.RuleLists[0].Rules = append(a.RuleLists[0].Rules, struct {
			Module string `xml:"module-name"`
			RPC    string `xml:"rpc-name"`
			Ops    string `xml:"access-operations"`
			Action string `xml:"action"`
		}{module, rpc, "exec", action})
	}
	add(readOnly, "ietf-netconf", "get", "permit")
	add(readOnly, "*", "*", "deny")
	if readOnly.allowed("myno-led", "setColor") || readOnly.allowed("myno-mup", "*") || !readOnly.allowed("ietf-netconf", "get") {
		t.Error("read-only rules")
	}
	if !(&accessRules{}).allowed("any", "thing") {
		t.Error("no rules shown: the console must not hide (the bridge still checks)")
	}
	operator := &accessRules{Enabled: true, ExecDefault: "deny", RuleLists: readOnly.RuleLists[:0:0]}
	operator.RuleLists = append(operator.RuleLists, readOnly.RuleLists[0])
	operator.RuleLists[0].Rules = nil
	add(operator, "myno-led", "*", "permit")
	if !operator.allowed("myno-led", "setColor") || operator.allowed("myno-mup", "getDeviceToken") {
		t.Error("module rule")
	}
	// "Every rpc of the module" is refused when one rpc is denied before
	// the permit of all (the bridge would refuse it).
	mostly := &accessRules{Enabled: true, ExecDefault: "deny", RuleLists: readOnly.RuleLists[:0:0]}
	mostly.RuleLists = append(mostly.RuleLists, readOnly.RuleLists[0])
	mostly.RuleLists[0].Rules = nil
	add(mostly, "myno-mup", "rebootDevice", "deny")
	add(mostly, "*", "*", "permit")
	if mostly.allowed("myno-mup", "*") || !mostly.allowed("myno-mup", "getDeviceToken") || !mostly.allowed("myno-led", "*") {
		t.Error("a denied rpc before a permit of all")
	}
}
