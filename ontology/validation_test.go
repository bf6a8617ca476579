package ontology_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/ontology"
)

// device builds a small compact description: one controlling
// functionality "act" whose operation has the given extra JSON members,
// with a selector input plus the given extra inputs and nodes.
func device(opExtra, inputs, nodes string) []byte {
	if inputs != "" {
		inputs = ", " + inputs
	}
	if nodes != "" {
		nodes = ",\n" + nodes
	}
	return []byte(`{
  "@context": {"o": "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#", "m": "http://yang-netconf-mqtt#",
               "b": "https://www.cs.uni-potsdam.de/bs/research/myno#", "xsd": "http://www.w3.org/2001/XMLSchema#"},
  "@graph": [
    {"@id": "m:dev", "@type": "o:Device", "o:hasFunctionality": {"@id": "m:act"}, "o:hasThingProperty": [{"@id": "m:deviceUuid"}, {"@id": "m:deviceCategory"}]},
    {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "%s"},
    {"@id": "m:deviceCategory", "@type": "o:ThingProperty", "o:hasValue": "T-1"},
    {"@id": "m:uuidInput", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:deviceUuid"}},
    {"@id": "m:act", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:cmd"}},
    {"@id": "m:cmd", "@type": "o:Command"},
    {"@id": "m:op", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:cmd"}` + opExtra + `,
     "o:hasInput": [{"@id": "m:uuidInput"}` + inputs + `]}` + nodes + `
  ]
}`)
}

const methodTopic = `, "m:mqttMethod": "ACT", "m:mqttTopic": "act/%s"`

// The rules a description must satisfy beyond being JSON-LD: one value
// where one is meant, @id on nodes whose names reach the model, one device
// selector, the topic policy, range bounds that fit the type, and bounded
// work on hostile documents. device is the fixture they vary.

func TestDeviceHelperParses(t *testing.T) {
	dev, err := ontology.Parse(device(methodTopic, "", ""))
	if err != nil || len(dev.Functions) != 1 || dev.Functions[0].Selector() == nil {
		t.Fatalf("%v %+v", err, dev)
	}
}

func TestAmbiguousValuesAreRefused(t *testing.T) {
	cases := map[string][]byte{
		"datatype under two namespaces": device(methodTopic, `{"@id": "m:in_1"}`, `
    {"@id": "m:in_1", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:p1"}},
    {"@id": "m:p1", "@type": "o:ThingProperty", "o:hasDataType": {"@id": "xsd:int"}, "m:hasDataType": {"@id": "xsd:string"}}`),
		"two methods": device(`, "m:mqttMethod": ["A", "B"], "m:mqttTopic": "act/%s"`, "", ""),
		"two topics":  device(`, "m:mqttMethod": "A", "m:mqttTopic": "a/%s", "b:mqttTopic": "b/%s"`, "", ""),
		"two maximums": device(methodTopic, `{"@id": "m:in_1"}`, `
    {"@id": "m:in_1", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:p1"}},
    {"@id": "m:p1", "@type": "o:ThingProperty", "o:hasDataType": {"@id": "xsd:int"}, "o:hasDataRestriction_maxInclusive": [1, 2]}`),
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			// The same bytes give the same answer every time, whatever the
			// map order inside the parser.
			var first string
			for i := 0; i < 30; i++ {
				_, err := ontology.Parse(doc)
				if !errors.Is(err, ontology.ErrInvalid) {
					t.Fatalf("run %d: %v, want ErrInvalid", i, err)
				}
				if i == 0 {
					first = err.Error()
				} else if err.Error() != first {
					t.Fatalf("run %d: %q, first %q", i, err, first)
				}
			}
		})
	}
}

func TestNodesWhoseNamesMatterNeedAnID(t *testing.T) {
	anonymousInput := device(methodTopic, `{"o:hasInput": {"@id": "m:p1"}, "@type": "o:OperationInput"}`, `
    {"@id": "m:p1", "@type": "o:ThingProperty", "o:hasDataType": {"@id": "xsd:int"}}`)
	if _, err := ontology.Parse(anonymousInput); !errors.Is(err, ontology.ErrInvalid) || !strings.Contains(err.Error(), "without @id") {
		t.Errorf("anonymous input: %v", err)
	}
	// An anonymous description node is fine: its label never reaches the model.
	withAnonDescription := strings.Replace(string(device(methodTopic, "", "")), `"o:hasCommand": {"@id": "m:cmd"}`,
		`"o:hasCommand": {"@id": "m:cmd"}, "o:hasThingProperty": {"@type": "m:YangDescription", "o:hasValue": "does things"}`, 1)
	dev, err := ontology.Parse([]byte(withAnonDescription))
	if err != nil || dev.Functions[0].Description != "does things" {
		t.Errorf("anonymous description: %v", err)
	}
}

func TestSelectorIsRequiredOnce(t *testing.T) {
	none := strings.Replace(string(device(methodTopic, "", "")), `"o:hasInput": [{"@id": "m:uuidInput"}]`, `"o:hasInput": []`, 1)
	if _, err := ontology.Parse([]byte(none)); !errors.Is(err, ontology.ErrInvalid) || !strings.Contains(err.Error(), "device selector") {
		t.Errorf("no selector: %v", err)
	}
	two := device(methodTopic, `{"@id": "m:uuidInput2"}`, `
    {"@id": "m:uuidInput2", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:deviceUuid"}}`)
	if _, err := ontology.Parse(two); !errors.Is(err, ontology.ErrInvalid) || !strings.Contains(err.Error(), "2 device selector") {
		t.Errorf("two selectors: %v", err)
	}
}

func TestTopicPolicy(t *testing.T) {
	for _, topic := range []string{"$SYS/broker", "yang/config/create", "yang/config", "response/abc", "a/+/b", "a/#",
		strings.Repeat("t", 5000)} {
		doc := device(fmt.Sprintf(`, "m:mqttMethod": "A", "m:mqttTopic": %q`, topic), "", "")
		if _, err := ontology.Parse(doc); !errors.Is(err, ontology.ErrInvalid) {
			t.Errorf("topic %.20q: %v, want ErrInvalid", topic, err)
		}
	}
	for _, topic := range []string{"yang/update/%s", "responses/x", "yang/configuration/%s"} {
		if _, err := ontology.Parse(device(fmt.Sprintf(`, "m:mqttMethod": "A", "m:mqttTopic": %q`, topic), "", "")); err != nil {
			t.Errorf("topic %q refused: %v", topic, err)
		}
	}
	if _, err := ontology.Parse(device(`, "m:mqttMethod": "A;B", "m:mqttTopic": "a"`, "", "")); !errors.Is(err, ontology.ErrInvalid) {
		t.Errorf("method with ';': %v", err)
	}
}

func typedInput(typ, lo, hi string) []byte {
	rng := ""
	if lo != "" {
		rng += `, "o:hasDataRestriction_minInclusive": ` + lo
	}
	if hi != "" {
		rng += `, "o:hasDataRestriction_maxInclusive": ` + hi
	}
	return device(methodTopic, `{"@id": "m:in_1"}`, `
    {"@id": "m:in_1", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:p1"}},
    {"@id": "m:p1", "@type": "o:ThingProperty", "o:hasDataType": {"@id": "xsd:`+typ+`"}`+rng+`}`)
}

func TestRangeBounds(t *testing.T) {
	for _, tc := range []struct {
		typ, lo, hi string
		ok          bool
	}{
		{"unsignedLong", "0", "18446744073709551615", true}, // needs exact integers, not float64
		{"unsignedLong", "0", "18446744073709551616", false},
		{"decimal", `"-1.5"`, `"2.25"`, true},
		{"decimal", "0", "100000000000000", false}, // over decimal64 with 6 fraction digits
		{"decimal", `"0.000000000000000001"`, "10", false},
		{"decimal", `"0.0000000000000000001"`, "1", false}, // 19 fraction digits
		{"int", `"abc"`, "", false},
		{"int", "5", "1", false},
		{"string", "1", "2", false},
	} {
		_, err := ontology.Parse(typedInput(tc.typ, tc.lo, tc.hi))
		if tc.ok != (err == nil) {
			t.Errorf("%s [%s..%s]: %v", tc.typ, tc.lo, tc.hi, err)
		}
		if err != nil && !errors.Is(err, ontology.ErrInvalidRange) {
			t.Errorf("%s [%s..%s]: %v, want ErrInvalidRange", tc.typ, tc.lo, tc.hi, err)
		}
	}
}

// Hostile documents are refused quickly: deep nesting and JSON-LD 1.1
// scoped contexts made the processor do unbounded work.
func TestHostileDocumentsFailFast(t *testing.T) {
	deep := `{"@context": {"a": "http://example.org/a"}, "@graph": [{"a": ` + strings.Repeat(`{"a":`, 5000) + `"x"` + strings.Repeat("}", 5000) + `}]}`
	var ctx strings.Builder
	ctx.WriteString(`{"@context": {"@version": 1.1, "t": {"@id": "http://example.org/t", "@context": {`)
	for i := 0; i < 1500; i++ {
		if i > 0 {
			ctx.WriteString(",")
		}
		fmt.Fprintf(&ctx, `"k%d": "http://example.org/k%d"`, i, i)
	}
	ctx.WriteString(`}}}, "@graph": [` + strings.TrimSuffix(strings.Repeat(`{"t": {"k1": "v"}},`, 2000), ",") + `]}`)
	for name, doc := range map[string]string{"deep nesting": deep, "scoped contexts": ctx.String()} {
		start := time.Now()
		_, err := ontology.Parse([]byte(doc))
		if !errors.Is(err, ontology.ErrNotJSONLD) {
			t.Errorf("%s: %v, want ErrNotJSONLD", name, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v", name, d)
		}
	}
}
