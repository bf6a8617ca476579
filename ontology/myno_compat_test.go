package ontology_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// An input with only a description is a string value, as MYNO's generator
// makes it, and the warning names it.
func TestUntypedInputIsAString(t *testing.T) {
	dev := parseFile(t, "untyped-input.jsonld")
	f := function(t, dev, "setLevel")
	var in *ontology.Input
	for i := range f.Inputs {
		if f.Inputs[i].Name == "input_1_Level" {
			in = &f.Inputs[i]
		}
	}
	if in == nil || in.Kind != ontology.InputValue || in.Type != ontology.TypeString {
		t.Fatalf("input_1_Level: %+v", in)
	}
	warned := false
	for _, w := range dev.Warnings {
		warned = warned || (strings.Contains(w, "input_1_Level") && strings.Contains(w, "taken as a string"))
	}
	if !warned {
		t.Errorf("no warning names the untyped input: %q", dev.Warnings)
	}
}

// fill replaces every %s as MYNO's simulators do before they publish.
func fill(t *testing.T, name, uuid string) []byte {
	t.Helper()
	return bytes.ReplaceAll(read(t, filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name)), []byte("%s"), []byte(uuid))
}

// A description with its UUID filled in reads as the template: the same
// shape (one module for all devices of the shape), %s in deviceUuid and in
// the topic levels that were the UUID, so that binding it gives each topic
// once.
func TestFilledInUUIDReadsAsTheTemplate(t *testing.T) {
	for _, name := range []string{"led-color.jsonld", "relay-sensors.jsonld", "mup-device.jsonld", "rgb-lamp.jsonld"} { // rgb-lamp: %s in its deviceDesc text
		t.Run(name, func(t *testing.T) {
			template := parseFile(t, name)
			a, err := ontology.Parse(fill(t, name, "3f2a9c1e-led-0042"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := ontology.Parse(fill(t, name, "b7-other-device"))
			if err != nil {
				t.Fatal(err)
			}
			if a.Shape() != template.Shape() || b.Shape() != template.Shape() {
				t.Fatalf("shapes differ: template %.12s, filled %.12s and %.12s", template.Shape(), a.Shape(), b.Shape())
			}
			if a.UUID != "%s" || a.FilledUUID != "3f2a9c1e-led-0042" {
				t.Errorf("UUID %q, filled %q", a.UUID, a.FilledUUID)
			}
			bound, want := a.Instantiate("3f2a9c1e-led-0042"), template.Instantiate("3f2a9c1e-led-0042")
			for i := range want.Functions {
				if got := bound.Functions[i].Topic; got != want.Functions[i].Topic || strings.Count(got, "3f2a9c1e-led-0042") > 1 {
					t.Errorf("%s: topic %q, want %q", want.Functions[i].Name, got, want.Functions[i].Topic)
				}
			}
			for i := range want.Sensors {
				if got := bound.Sensors[i].Topic; got != want.Sensors[i].Topic {
					t.Errorf("%s: topic %q, want %q", want.Sensors[i].Name, got, want.Sensors[i].Topic)
				}
			}
			warned := false
			for _, w := range a.Warnings {
				warned = warned || strings.Contains(w, "filled in")
			}
			if !warned {
				t.Errorf("no warning says the UUID was filled in: %q", a.Warnings)
			}
		})
	}
}

// Only whole topic levels are the UUID: inside a level it is text.
func TestFilledInUUIDOnlyWholeLevels(t *testing.T) {
	const uuid = "dev-7"
	data := fill(t, "led-color.jsonld", uuid)
	data = bytes.Replace(data, []byte(`"sensor/brightness/`+uuid+`"`), []byte(`"sensor/brightness_`+uuid+`/`+uuid+`"`), 1)
	dev, err := ontology.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := dev.Sensors[0].Topic; got != "sensor/brightness_"+uuid+"/%s" {
		t.Fatalf("sensor topic %q", got)
	}
	if got := wire.Expand(dev.Sensors[0].Topic, "x"); got != "sensor/brightness_"+uuid+"/x" {
		t.Fatalf("bound sensor topic %q", got)
	}
	// A deviceUuid value that is no valid UUID is left alone.
	odd, err := ontology.Parse(fill(t, "led-color.jsonld", "not a uuid"))
	if err != nil {
		t.Fatal(err)
	}
	if odd.FilledUUID != "" || odd.UUID != "not a uuid" {
		t.Errorf("an invalid UUID was recognised: %q %q", odd.UUID, odd.FilledUUID)
	}
}
