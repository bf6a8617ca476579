package yang_test

import (
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/yang"
)

// compactDevice is a description with operations op1 and op2 that share
// the operation state stateName, and an rpc "set" with the given inputs
// (JSON of OperationInput references) and extra nodes.
func compactDevice(stateName, inputs, nodes string) []byte {
	if inputs != "" {
		inputs = ", " + inputs
	}
	if nodes != "" {
		nodes = ",\n" + nodes
	}
	return []byte(`{
  "@context": {"o": "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#", "m": "http://yang-netconf-mqtt#",
               "xsd": "http://www.w3.org/2001/XMLSchema#"},
  "@graph": [
    {"@id": "m:dev", "@type": "o:Device", "o:hasFunctionality": [{"@id": "m:op1f"}, {"@id": "m:op2f"}, {"@id": "m:set"}],
     "o:hasThingProperty": {"@id": "m:deviceUuid"}},
    {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "%s"},
    {"@id": "m:uuidInput", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:deviceUuid"}},
    {"@id": "m:` + stateName + `", "@type": "o:OperationState", "o:hasDataRestriction_pattern": ["OK", "ERROR"],
     "o:hasThingProperty": {"@id": "m:stateDesc"}},
    {"@id": "m:stateDesc", "@type": "m:YangDescription", "o:hasDataRestriction_pattern": ["fine", "broken"]},
    {"@id": "m:op1f", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:c1"}},
    {"@id": "m:op2f", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:c2"}},
    {"@id": "m:set", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:c3"}},
    {"@id": "m:c1", "@type": "o:Command"}, {"@id": "m:c2", "@type": "o:Command"}, {"@id": "m:c3", "@type": "o:Command"},
    {"@id": "m:o1", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:c1"}, "m:mqttMethod": "A", "m:mqttTopic": "a/%s",
     "o:hasInput": {"@id": "m:uuidInput"}, "o:hasOperationState": {"@id": "m:` + stateName + `"}},
    {"@id": "m:o2", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:c2"}, "m:mqttMethod": "B", "m:mqttTopic": "b/%s",
     "o:hasInput": {"@id": "m:uuidInput"}, "o:hasOperationState": {"@id": "m:` + stateName + `"}},
    {"@id": "m:o3", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:c3"}, "m:mqttMethod": "SET", "m:mqttTopic": "set/%s",
     "o:hasInput": [{"@id": "m:uuidInput"}` + inputs + `]}` + nodes + `
  ]
}`)
}

// A shared state set named like a built-in type still gives a valid module.
func TestStateTypedefNeverTakesABuiltinName(t *testing.T) {
	for _, name := range []string{"string", "boolean", "identityref", "empty", "union", "device-uuid"} {
		m := generate(t, compactDevice(name, "", ""))
		yanglintModule(t, m)
		want := 0
		if name == "device-uuid" { // the module's own typedef, once
			want = 1
		}
		if n := strings.Count(m.Text, "typedef "+name+" "); n != want {
			t.Errorf("%d typedefs named %q", n, name)
		}
	}
}

func TestRetvalCarriesStateDescriptions(t *testing.T) {
	m := generate(t, compactDevice("opState", "", ""))
	contains := func(s string) {
		t.Helper()
		if !strings.Contains(m.Text, s) {
			t.Errorf("module lacks %q:\n%s", s, m.Text)
		}
	}
	// States pair with descriptions by sorted order: ERROR-broken, OK-fine.
	contains("enum \"ERROR\" {\n        description \"broken\";")
	contains("enum \"OK\" {\n        description \"fine\";")
	contains("uses opState-result;")
	mup := testdataModule(t, "mup-device.jsonld")
	if !strings.Contains(mup.Text, "enum \"28_IMAGE-INVALID\" {\n        description \"28 image invalid\";") {
		t.Errorf("MUP states lack descriptions")
	}
}

func TestEnumerationPlaceholdersBindOnTheWire(t *testing.T) {
	desc := compactDevice("opState", `{"@id": "m:in_1_Mode"}`, `
    {"@id": "m:in_1_Mode", "@type": "o:OperationInput", "o:hasDataRestriction_pattern": ["dev-%s", "full%%", "plain"]}`)
	m := generate(t, desc)
	ns := m.Namespace
	for value, wire := range map[string]string{"dev-%s": "dev-lamp-7", "full%": "full%", "plain": "plain"} {
		call, err := m.ParseInput([]byte(`<set xmlns="` + ns + `"><uuidInput>lamp-7</uuidInput><in_1_Mode>` + value + `</in_1_Mode></set>`))
		if err != nil {
			t.Fatalf("%s: %v", value, err)
		}
		if call.Args[0] != wire {
			t.Errorf("%s went out as %q, want %q", value, call.Args[0], wire)
		}
	}
}

func TestParseInputStrictXML(t *testing.T) {
	desc := compactDevice("opState", `{"@id": "m:in_1_Rgb"}, {"@id": "m:in_2_Dec"}`, `
    {"@id": "m:in_1_Rgb", "@type": "o:OperationInput", "o:hasSubStructure": [{"@id": "m:v_1_Name"}, {"@id": "m:v_2_Level"}]},
    {"@id": "m:v_1_Name", "@type": "o:Variable", "o:hasDataType": {"@id": "xsd:string"}},
    {"@id": "m:v_2_Level", "@type": "o:Variable", "o:hasDataRestriction_minInclusive": 0, "o:hasDataRestriction_maxInclusive": 9},
    {"@id": "m:in_2_Dec", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:decProp"}},
    {"@id": "m:decProp", "@type": "o:ThingProperty", "o:hasDataType": {"@id": "xsd:decimal"}}`)
	m := generate(t, desc)
	body := func(name, level, dec string) string {
		return `<uuidInput>d</uuidInput><in_1_Rgb><v_1_Name>` + name + `</v_1_Name><v_2_Level>` + level + `</v_2_Level></in_1_Rgb><in_2_Dec>` + dec + `</in_2_Dec>`
	}
	runInputCases(t, m, "set", []inputCase{
		{name: "valid", body: body("lamp", "3", "1.5"), args: []string{"lamp,3", "1.5"}, uuid: "d"},
		{name: "comma in a member", body: body("a,b", "3", "1"), tag: "invalid-value"},
		{name: "comment inside a value", body: body("la<!-- x -->mp", "3", "1"), tag: "invalid-value"},
		{name: "decimal beyond decimal64", body: body("x", "3", "99999999999999999"), tag: "invalid-value"},
		{name: "decimal at the decimal64 limit", body: body("x", "3", "9223372036854.775807"), args: []string{"x,3", "9223372036854.775807"}, uuid: "d"},
		{name: "element inside a member", body: body("<b>x</b>", "3", "1"), tag: "bad-element"},
		{name: "second rpc after the first", rpcXML: `<set xmlns="` + m.Namespace + `">` + body("x", "3", "1") + `</set><set xmlns="` + m.Namespace + `">` + body("y", "3", "1") + `</set>`, tag: "malformed-message"},
	})
}

// Hostile nesting is refused at the first unexpected element.
func TestParseInputDeepNestingFailsFast(t *testing.T) {
	m := testdataModule(t, "led-color.jsonld")
	n := 50000
	doc := `<setColor xmlns="` + m.Namespace + `"><uuidInput>` + strings.Repeat("<a>", n) + strings.Repeat("</a>", n) + `</uuidInput></setColor>`
	start := time.Now()
	_, err := m.ParseInput([]byte(doc))
	if err == nil {
		t.Fatal("accepted")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
	var ie *yang.InputError
	if !errorsAs(err, &ie) || len(ie.Path) > 200 {
		t.Errorf("error %v", err)
	}
}
