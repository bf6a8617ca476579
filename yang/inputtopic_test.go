package yang_test

import (
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// wantInputTopics is each rpc's input data point topic template, from the
// model.
func wantInputTopics(m *yang.Module) map[string]string {
	want := map[string]string{}
	for _, r := range m.RPCs {
		if r.Function.InputTopic != "" {
			want[r.Name] = r.Function.InputTopic
		}
	}
	return want
}

// Every module carries each operation's input data point topic in the
// mqtt-input-topic extension, and InputTopics reads back exactly those;
// a module without one declares no extension, so its text is as before.
func TestInputTopicExtension(t *testing.T) {
	files := append(allDescriptions(t), testenv.SharedSamples(t)...)
	withTopics := 0
	for _, f := range files {
		m := generateFile(t, f)
		want := wantInputTopics(m)
		got, err := yang.InputTopics(m.Text)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s: input topics %v, want %v", filepath.Base(f), got, want)
		}
		declared := strings.Contains(m.Text, "\n  extension "+yang.InputTopicExtension+" {\n    argument topic;\n")
		if declared != (len(want) > 0) || strings.Count(m.Text, "extension ") > 1 {
			t.Errorf("%s: extension declared %v with %d topics", filepath.Base(f), declared, len(want))
		}
		if len(want) > 0 {
			withTopics++
		}
	}
	if withTopics < 2 {
		t.Errorf("only %d modules with input topics: the test checks too little", withTopics)
	}
	mup := testdataModule(t, "mup-device.jsonld")
	use := "  rpc sendFirmwareImage {\n    description \"Finish the image transfer; the device checks the streamed digest\";\n    " +
		mup.Prefix + ":mqtt-input-topic \"yang/update/image/%s\";\n    input {\n"
	if !strings.Contains(mup.Text, use) {
		t.Errorf("sendFirmwareImage does not carry its topic as\n%s", use)
	}
}

// Bound to one device, the argument is still a template, whose binding is
// that device's topic whatever the UUID it is bound with: a literal "%%s"
// does not become a placeholder, and no "%s" is left in the module.
func TestInputTopicWhenBound(t *testing.T) {
	dev, err := ontology.Parse(inputTopicDevice(t, "fw/100%%s/%s"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := yang.Generate(dev, yang.Options{UUID: "dev-1"})
	if err != nil {
		t.Fatal(err)
	}
	yanglintModule(t, m)
	got, err := yang.InputTopics(m.Text)
	if err != nil || got["upload"] != "fw/100%%s/dev-1" {
		t.Fatalf("bound module: %v %v", got, err)
	}
	if topic := wire.Expand(got["upload"], "dev-1"); topic != "fw/100%s/dev-1" {
		t.Errorf("binds to %q", topic)
	}
	if strings.Contains(strings.ReplaceAll(m.Text, "%%s", ""), "%s") {
		t.Errorf("the bound module holds a placeholder")
	}
}

// Topics with characters YANG strings escape survive the round trip, and
// yanglint accepts the module.
func TestInputTopicQuoting(t *testing.T) {
	for _, topic := range []string{`fw/"quoted"/%s`, `fw\back\slash/%s`, "fw/ünï/%s", "plain"} {
		m := generate(t, inputTopicDevice(t, topic))
		yanglintModule(t, m)
		got, err := yang.InputTopics(m.Text)
		if err != nil || len(got) != 1 || got["upload"] != topic {
			t.Errorf("%q: %v %v", topic, got, err)
		}
	}
}

// InputTopics takes only its own module's declared extension, once per
// rpc, and refuses what is not one YANG module.
func TestInputTopicsRefuses(t *testing.T) {
	module := func(body string) string {
		return `module m { yang-version 1.1; namespace "urn:m"; prefix p; ` + body + ` }`
	}
	const decl = `extension mqtt-input-topic { argument topic; }`
	for name, tc := range map[string]struct {
		src  string
		want map[string]string
		bad  bool
	}{
		"declared and used":         {src: module(decl + ` rpc r { p:mqtt-input-topic "a/%s"; }`), want: map[string]string{"r": "a/%s"}},
		"used but not declared":     {src: module(`rpc r { p:mqtt-input-topic "a/%s"; }`), want: map[string]string{}},
		"another argument name":     {src: module(`extension mqtt-input-topic { argument name; } rpc r { p:mqtt-input-topic "a/%s"; }`), want: map[string]string{}},
		"another module's prefix":   {src: module(decl + ` rpc r { q:mqtt-input-topic "a/%s"; }`), want: map[string]string{}},
		"another extension":         {src: module(decl + ` extension other { argument topic; } rpc r { p:other "a/%s"; }`), want: map[string]string{}},
		"twice in one rpc":          {src: module(decl + ` rpc r { p:mqtt-input-topic "a"; p:mqtt-input-topic "b"; }`), bad: true},
		"not YANG":                  {src: `{"@graph": []}`, bad: true},
		"empty":                     {src: ``, bad: true},
		"unterminated":              {src: module(decl + ` rpc r { p:mqtt-input-topic "a`), bad: true},
		"a submodule, not a module": {src: `submodule s { yang-version 1.1; belongs-to m { prefix p; } }`, bad: true},
	} {
		got, err := yang.InputTopics(tc.src)
		switch {
		case tc.bad && err == nil:
			t.Errorf("%s: accepted as %v", name, got)
		case !tc.bad && (err != nil || !maps.Equal(got, tc.want)):
			t.Errorf("%s: %v %v, want %v", name, got, err, tc.want)
		}
	}
}

// inputTopicDevice is a description with one rpc, upload, whose input data
// point has topic.
func inputTopicDevice(t *testing.T, topic string) []byte {
	t.Helper()
	quoted, err := json.Marshal(topic)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`{
  "@context": {"o": "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#", "m": "http://yang-netconf-mqtt#"},
  "@graph": [
    {"@id": "m:dev", "@type": "o:Device", "o:hasFunctionality": {"@id": "m:upload"}, "o:hasThingProperty": {"@id": "m:deviceUuid"}},
    {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "%s"},
    {"@id": "m:uuidInput", "@type": "o:OperationInput", "o:hasInput": {"@id": "m:deviceUuid"}},
    {"@id": "m:upload", "@type": "o:ControllingFunctionality", "o:hasCommand": {"@id": "m:cmd"}},
    {"@id": "m:cmd", "@type": "o:Command", "o:hasInput": {"@id": "m:uuidInput"}},
    {"@id": "m:op", "@type": "o:Operation", "o:exposesCommand": {"@id": "m:cmd"}, "m:mqttMethod": "UPLOAD", "m:mqttTopic": "up/%s",
     "o:hasInputDataPoint": {"@id": "m:idp"}},
    {"@id": "m:idp", "@type": "o:InputDataPoint", "m:mqttTopic": ` + string(quoted) + `}
  ]
}`)
}

// RPCOutputs reads back each rpc's output leaves, in order, from every
// module's text: the Update Server finds a receipt output this way.
func TestRPCOutputs(t *testing.T) {
	withOutputs := 0
	for _, f := range append(allDescriptions(t), testenv.SharedSamples(t)...) {
		m := generateFile(t, f)
		want := map[string][]string{}
		for _, r := range m.RPCs {
			for _, o := range r.Outputs {
				want[r.Name] = append(want[r.Name], o.Name)
			}
		}
		got, err := yang.RPCOutputs(m.Text)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		if !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%s: outputs %v, want %v", filepath.Base(f), got, want)
		}
		if len(want) > 0 {
			withOutputs++
		}
	}
	if withOutputs < 2 {
		t.Errorf("only %d modules with outputs: the test checks too little", withOutputs)
	}
	signed := testdataModule(t, "mup-device-signed.jsonld")
	outs, err := yang.RPCOutputs(signed.Text)
	if err != nil || !slices.Equal(outs["sendFirmwareImage"], []string{"output_1_Receipt"}) {
		t.Fatalf("signed MUP device: sendFirmwareImage outputs %v (%v)", outs["sendFirmwareImage"], err)
	}
	if _, err := yang.RPCOutputs("module {"); err == nil {
		t.Fatal("broken source accepted")
	}
}
