package yang_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/yang"
)

// inputCase is one rpc input. Each is checked by ParseInput and, as the
// reference, by yanglint -t rpc: both must accept or both must refuse.
type inputCase struct {
	name string
	body string   // children of the rpc element
	tag  string   // expected RFC 6241 error-tag; "" means accepted
	args []string // expected MQTT arguments when accepted
	uuid string   // expected device selector value when accepted
	// rpcXML, when set, replaces the whole rpc element (namespace tests).
	rpcXML string
}

func runInputCases(t *testing.T, m *yang.Module, rpc string, cases []inputCase) {
	t.Helper()
	lint := testenv.Tool(t, "yanglint")
	dir := t.TempDir()
	modPath := filepath.Join(dir, m.Name+".yang")
	if err := os.WriteFile(modPath, []byte(m.Text), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := tc.rpcXML
			if doc == "" {
				doc = fmt.Sprintf(`<%s xmlns="%s">%s</%s>`, rpc, m.Namespace, tc.body, rpc)
			}
			call, err := m.ParseInput([]byte(doc))
			if tc.tag == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !slices.Equal(call.Args, tc.args) {
					t.Errorf("args %q, want %q", call.Args, tc.args)
				}
				if call.UUID != tc.uuid {
					t.Errorf("uuid %q, want %q", call.UUID, tc.uuid)
				}
			} else {
				var ie *yang.InputError
				if !errors.As(err, &ie) {
					t.Fatalf("error %v, want an InputError with tag %s", err, tc.tag)
				}
				if ie.Tag != tc.tag {
					t.Errorf("tag %s (%v), want %s", ie.Tag, ie, tc.tag)
				}
				if !strings.HasPrefix(ie.Path, "/") {
					t.Errorf("path %q", ie.Path)
				}
			}
			// The reference validator must agree.
			xmlPath := filepath.Join(dir, fmt.Sprintf("case%d.xml", i))
			if err := os.WriteFile(xmlPath, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			out, lintErr := exec.Command(lint, "-t", "rpc", modPath, xmlPath).CombinedOutput()
			if (lintErr == nil) != (tc.tag == "") {
				t.Errorf("yanglint disagrees (accepts=%v): %s", lintErr == nil, out)
			}
		})
	}
}

func TestParseInputEnumeration(t *testing.T) {
	m := testdataModule(t, "led-color.jsonld")
	runInputCases(t, m, "setColor", []inputCase{
		{name: "valid", body: `<uuidInput>dev-1</uuidInput><input_1_Color>red</input_1_Color>`, args: []string{"red"}, uuid: "dev-1"},
		{name: "any order", body: `<input_1_Color>white</input_1_Color><uuidInput>dev-2</uuidInput>`, args: []string{"white"}, uuid: "dev-2"},
		{name: "unknown value", body: `<uuidInput>d</uuidInput><input_1_Color>purple</input_1_Color>`, tag: "invalid-value"},
		{name: "values are not trimmed", body: "<uuidInput>d</uuidInput><input_1_Color>\n  red\n</input_1_Color>", tag: "invalid-value"},
		{name: "case matters", body: `<uuidInput>d</uuidInput><input_1_Color>RED</input_1_Color>`, tag: "invalid-value"},
		{name: "missing selector", body: `<input_1_Color>red</input_1_Color>`, tag: "missing-element"},
		{name: "missing argument", body: `<uuidInput>d</uuidInput>`, tag: "missing-element"},
		{name: "unknown element", body: `<uuidInput>d</uuidInput><input_1_Color>red</input_1_Color><bogus>1</bogus>`, tag: "unknown-element"},
		{name: "duplicate leaf", body: `<uuidInput>d</uuidInput><input_1_Color>red</input_1_Color><input_1_Color>blue</input_1_Color>`, tag: "bad-element"},
		{name: "selector with topic separator", body: `<uuidInput>a/b</uuidInput><input_1_Color>red</input_1_Color>`, tag: "invalid-value"},
		{name: "selector with wildcard", body: `<uuidInput>#</uuidInput><input_1_Color>red</input_1_Color>`, tag: "invalid-value"},
		{name: "empty selector", body: `<uuidInput></uuidInput><input_1_Color>red</input_1_Color>`, tag: "invalid-value"},
		{name: "wrong rpc namespace", rpcXML: `<setColor xmlns="urn:other"><uuidInput>d</uuidInput><input_1_Color>red</input_1_Color></setColor>`, tag: "unknown-namespace"},
		{name: "wrong leaf namespace", body: `<uuidInput xmlns="urn:other">d</uuidInput><input_1_Color>red</input_1_Color>`, tag: "unknown-namespace"},
		{name: "malformed XML", rpcXML: `<setColor xmlns="` + m.Namespace + `"><uuidInput>d</uuidInput><input_1_Color>red</setColor>`, tag: "malformed-message"},
	})
}

func TestParseInputStructure(t *testing.T) {
	m := testdataModule(t, "rgb-lamp.jsonld")
	rgb := func(r, g, b string) string {
		return `<uuidInput>lamp</uuidInput><input_1_Rgb><var_1_Red>` + r + `</var_1_Red><var_2_Green>` + g + `</var_2_Green><var_3_Blue>` + b + `</var_3_Blue></input_1_Rgb>`
	}
	runInputCases(t, m, "setRgb", []inputCase{
		{name: "valid", body: rgb("255", "0", "128"), args: []string{"255,0,128"}, uuid: "lamp"},
		{name: "canonical integers", body: rgb("+7", "007", "0"), args: []string{"7,7,0"}, uuid: "lamp"},
		{name: "above range", body: rgb("256", "0", "0"), tag: "invalid-value"},
		{name: "below range", body: rgb("0", "-1", "0"), tag: "invalid-value"},
		{name: "not an integer", body: rgb("0", "0", "1.5"), tag: "invalid-value"},
		{name: "integers may have surrounding spaces", body: rgb(" 1", "2 ", "\n3"), args: []string{"1,2,3"}, uuid: "lamp"},
		{name: "hex is not decimal", body: rgb("0x10", "0", "0"), tag: "invalid-value"},
		{name: "missing member", body: `<uuidInput>lamp</uuidInput><input_1_Rgb><var_1_Red>1</var_1_Red><var_2_Green>2</var_2_Green></input_1_Rgb>`, tag: "missing-element"},
		{name: "unknown member", body: `<uuidInput>lamp</uuidInput><input_1_Rgb><var_1_Red>1</var_1_Red><var_2_Green>2</var_2_Green><var_3_Blue>3</var_3_Blue><alpha>4</alpha></input_1_Rgb>`, tag: "unknown-element"},
		{name: "text instead of container", body: `<uuidInput>lamp</uuidInput><input_1_Rgb>1,2,3</input_1_Rgb>`, tag: "invalid-value"},
	})
}

// MUP v1's manifest rpc takes one field per call, as MYNO's Update Server
// sends it (MUP-V1.md §2.2): its fields are the cases of a mandatory
// choice, and only the one given goes on MQTT.
func TestParseInputOneFieldPerCall(t *testing.T) {
	m := testdataModule(t, "mup-v1-device.jsonld")
	if r := m.RPC("funcPubUpdateManifest"); r == nil || !r.OneInputPerCall {
		t.Fatal("funcPubUpdateManifest does not take one input per call")
	}
	if r := m.RPC("funcPubUpdateImage"); r == nil || r.OneInputPerCall {
		t.Fatal("funcPubUpdateImage takes one input per call")
	}
	runInputCases(t, m, "funcPubUpdateManifest", []inputCase{
		{name: "first field", body: `<uuidInput>d</uuidInput><input_1_AppId>0,APP</input_1_AppId>`, args: []string{"0,APP"}, uuid: "d"},
		{name: "field after the selector", body: `<input_7_InnerSignature>6,AE20</input_7_InnerSignature><uuidInput>d</uuidInput>`, args: []string{"6,AE20"}, uuid: "d"},
		{name: "start", body: `<uuidInput>d</uuidInput><input_9_OuterSignature>9,START-UPDATE</input_9_OuterSignature>`, args: []string{"9,START-UPDATE"}, uuid: "d"},
		{name: "no field", body: `<uuidInput>d</uuidInput>`, tag: "data-missing"},
		{name: "two fields", body: `<uuidInput>d</uuidInput><input_1_AppId>0,APP</input_1_AppId><input_2_LinkOffset>1,0</input_2_LinkOffset>`, tag: "bad-element"},
		{name: "missing selector", body: `<input_1_AppId>0,APP</input_1_AppId>`, tag: "missing-element"},
		{name: "field separator", body: `<uuidInput>d</uuidInput><input_1_AppId>0,A;PP</input_1_AppId>`, tag: "invalid-value"},
	})
	var ie *yang.InputError
	_, err := m.ParseInput([]byte(`<funcPubUpdateManifest xmlns="` + m.Namespace + `"><uuidInput>d</uuidInput></funcPubUpdateManifest>`))
	if !errors.As(err, &ie) || ie.AppTag != yang.AppTagMissingChoice || ie.Element != yang.OneInputChoice {
		t.Errorf("no field: %+v, want error-app-tag %s naming choice %s (RFC 7950 §15.6)", ie, yang.AppTagMissingChoice, yang.OneInputChoice)
	}
}

func TestParseInputRange(t *testing.T) {
	m := testdataModule(t, "thermostat.jsonld")
	th := func(op, v string) string {
		return `<uuidInput>t1</uuidInput><input_1_Operator>` + op + `</input_1_Operator><input_2_Threshold>` + v + `</input_2_Threshold>`
	}
	runInputCases(t, m, "setThreshold", []inputCase{
		{name: "lower bound", body: th("ge", "-40"), args: []string{"ge", "-40"}, uuid: "t1"},
		{name: "upper bound", body: th("lt", "125"), args: []string{"lt", "125"}, uuid: "t1"},
		{name: "above", body: th("lt", "126"), tag: "invalid-value"},
		{name: "below", body: th("lt", "-41"), tag: "invalid-value"},
		{name: "int32 overflow", body: th("lt", "99999999999999999999"), tag: "invalid-value"},
		{name: "bad operator", body: th(">", "1"), tag: "invalid-value"},
	})
}

func TestParseInputBinary(t *testing.T) {
	m := testdataModule(t, "mup-device.jsonld")
	runInputCases(t, m, "sendExtendedManifest", []inputCase{
		{name: "base64", body: `<uuidInput>u</uuidInput><input_1_Manifest>AAECAwQ=</input_1_Manifest>`, args: []string{"AAECAwQ="}, uuid: "u"},
		{name: "base64 with line breaks", body: "<uuidInput>u</uuidInput><input_1_Manifest>AAEC\nAwQ=</input_1_Manifest>", tag: "invalid-value"},
		{name: "surrounding whitespace", body: "<uuidInput>u</uuidInput><input_1_Manifest>\n  AAECAwQ=\n</input_1_Manifest>", tag: "invalid-value"},
		{name: "not base64", body: `<uuidInput>u</uuidInput><input_1_Manifest>@@@@</input_1_Manifest>`, tag: "invalid-value"},
		{name: "bad padding", body: `<uuidInput>u</uuidInput><input_1_Manifest>AAE</input_1_Manifest>`, tag: "invalid-value"},
	})
	runInputCases(t, m, "sendFirmwareImage", []inputCase{
		{name: "hex", body: `<uuidInput>u</uuidInput><input_1_ImageDigest>00ffAB</input_1_ImageDigest>`, args: []string{"00ffAB"}, uuid: "u"},
		{name: "odd length", body: `<uuidInput>u</uuidInput><input_1_ImageDigest>abc</input_1_ImageDigest>`, tag: "invalid-value"},
		{name: "not hex", body: `<uuidInput>u</uuidInput><input_1_ImageDigest>zz</input_1_ImageDigest>`, tag: "invalid-value"},
	})
}

func TestParseInputBoolean(t *testing.T) {
	m := testdataModule(t, "smart-plug.jsonld")
	runInputCases(t, m, "setChildLock", []inputCase{
		{name: "true", body: `<uuidInput>p</uuidInput><input_1_Locked>true</input_1_Locked>`, args: []string{"true"}, uuid: "p"},
		{name: "false", body: `<uuidInput>p</uuidInput><input_1_Locked>false</input_1_Locked>`, args: []string{"false"}, uuid: "p"},
		{name: "boolean with spaces", body: `<uuidInput>p</uuidInput><input_1_Locked> true</input_1_Locked>`, tag: "invalid-value"},
		{name: "one is not a boolean", body: `<uuidInput>p</uuidInput><input_1_Locked>1</input_1_Locked>`, tag: "invalid-value"},
	})
}

// typedTemplate describes a device with one rpc "set" whose inputs have
// the given XSD types and ranges.
func typedDescription(inputs ...[4]string) []byte {
	var nodes, refs []string
	for _, in := range inputs {
		name, typ, lo, hi := in[0], in[1], in[2], in[3]
		refs = append(refs, fmt.Sprintf(`{"@id": "m:%s"}`, name))
		rng := ""
		if lo != "" {
			rng += fmt.Sprintf(`, "o:hasDataRestriction_minInclusive": %q`, lo)
		}
		if hi != "" {
			rng += fmt.Sprintf(`, "o:hasDataRestriction_maxInclusive": %q`, hi)
		}
		nodes = append(nodes,
			fmt.Sprintf(`{"@id": "m:%s", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:prop_%s"}}`, name, name),
			fmt.Sprintf(`{"@id": "m:prop_%s", "@type": "o:ThingProperty", "o:hasDataType": {"@id": "xsd:%s"}%s}`, name, typ, rng))
	}
	refs = append(refs, `{"@id": "m:uuidInput"}`)
	return []byte(`{
  "@context": {"o": "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#", "m": "http://yang-netconf-mqtt#",
               "xsd": "http://www.w3.org/2001/XMLSchema#"},
  "@graph": [
    {"@id": "m:dev", "@type": "o:Device", "o:hasFunctionality": {"@id": "m:set"}, "o:hasThingProperty": {"@id": "m:deviceUuid"}},
    {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "%s"},
    {"@id": "m:uuidInput", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:deviceUuid"}},
    {"@id": "m:set", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:cmd"}},
    {"@id": "m:cmd", "@type": "o:Command"},
    {"@id": "m:op", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:cmd"}, "m:mqttMethod": "SET", "m:mqttTopic": "set/%s",
     "o:hasInput": [` + strings.Join(refs, ", ") + `]},
    ` + strings.Join(nodes, ",\n    ") + `
  ]
}`)
}

func TestParseInputTypedValues(t *testing.T) {
	m := generate(t, typedDescription(
		[4]string{"a_decimal", "decimal", "-1.5", "2.25"},
		[4]string{"b_string", "string", "", ""},
		[4]string{"c_long", "long", "", ""},
		[4]string{"d_ubyte", "unsignedByte", "", ""},
		[4]string{"e_when", "dateTime", "", ""},
		[4]string{"f_positive", "positiveInteger", "", "10"},
	))
	yanglintModule(t, m)
	body := func(dec, str, long, ub, when, pos string) string {
		return "<uuidInput>x</uuidInput><a_decimal>" + dec + "</a_decimal><b_string>" + str + "</b_string><c_long>" + long +
			"</c_long><d_ubyte>" + ub + "</d_ubyte><e_when>" + when + "</e_when><f_positive>" + pos + "</f_positive>"
	}
	const when = "2026-11-21T10:00:00Z"
	runInputCases(t, m, "set", []inputCase{
		{name: "valid", body: body("2.25", "hello world", "-9223372036854775808", "255", when, "10"),
			args: []string{"2.25", "hello world", "-9223372036854775808", "255", when, "10"}, uuid: "x"},
		{name: "decimal canonical", body: body("-1.50", "", "0", "0", "2026-11-21T10:00:00.5+01:00", "1"),
			args: []string{"-1.5", "", "0", "0", "2026-11-21T10:00:00.5+01:00", "1"}, uuid: "x"},
		{name: "decimal with spaces", body: body(" 1.5 ", "", "0", "0", when, "1"), args: []string{"1.5", "", "0", "0", when, "1"}, uuid: "x"},
		{name: "decimal out of range", body: body("2.26", "s", "0", "0", when, "1"), tag: "invalid-value"},
		{name: "decimal without digits after point", body: body("1.", "s", "0", "0", when, "1"), tag: "invalid-value"},
		{name: "string with field separator", body: body("0", "a;b", "0", "0", when, "1"), tag: "invalid-value"},
		{name: "long overflow", body: body("0", "s", "9223372036854775808", "0", when, "1"), tag: "invalid-value"},
		{name: "unsigned negative", body: body("0", "s", "0", "-1", when, "1"), tag: "invalid-value"},
		{name: "unsigned byte overflow", body: body("0", "s", "0", "256", when, "1"), tag: "invalid-value"},
		{name: "bad date", body: body("0", "s", "0", "0", "21.11.2026", "1"), tag: "invalid-value"},
		{name: "positive zero", body: body("0", "s", "0", "0", when, "0"), tag: "invalid-value"},
		{name: "positive above max", body: body("0", "s", "0", "0", when, "11"), tag: "invalid-value"},
	})
}

func TestParseInputOversized(t *testing.T) {
	m := testdataModule(t, "led-color.jsonld")
	big := `<setColor xmlns="` + m.Namespace + `"><uuidInput>` + strings.Repeat("a", yang.MaxInputBytes) + `</uuidInput></setColor>`
	_, err := m.ParseInput([]byte(big))
	var ie *yang.InputError
	if !errors.As(err, &ie) || ie.Tag != yang.TagMalformedMessage {
		t.Fatalf("oversized input: %v", err)
	}
	if _, err := m.ParseInput([]byte(`<nosuchrpc xmlns="` + m.Namespace + `"/>`)); !errors.As(err, &ie) || ie.Tag != yang.TagOperationNotSupp {
		t.Fatalf("unknown rpc: %v", err)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
