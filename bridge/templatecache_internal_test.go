package bridge

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
)

// A template taken from the cache is the template a parse would give:
// for every description of testdata, filled in with one uuid (as MYNO's
// simulators send it) and then another, and unfilled, the cached template
// instantiated for the second device equals the parse of its own
// description instantiated, field for field.
func TestTemplateCacheGivesWhatParsingGives(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "*.jsonld"))
	if err != nil || len(files) < 10 {
		t.Fatalf("descriptions: %v %d", err, len(files))
	}
	p := &ontology.Parser{}
	reused := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, fill := range []bool{false, true} {
			desc := func(uuid string) []byte {
				if fill {
					return bytes.ReplaceAll(raw, []byte("%s"), []byte(uuid))
				}
				return raw
			}
			c := newTemplateCache(16)
			first, err := p.Parse(desc("dev-aaa-1"))
			if err != nil {
				continue // a description of the variety the bridge refuses
			}
			c.store(desc("dev-aaa-1"), "dev-aaa-1", first)
			for _, uuid := range []string{"dev-bbb-2", "zz", "dev-aaa-10"} {
				cached := c.lookup(desc(uuid), uuid)
				if cached == nil {
					continue // not safe to reuse: parsed each time
				}
				reused++
				parsed, err := p.Parse(desc(uuid))
				if err != nil {
					t.Fatalf("%s (filled %v) as %s: the cache has a template, the parser refuses: %v", filepath.Base(f), fill, uuid, err)
				}
				a, _ := json.Marshal(cached.Instantiate(uuid))
				b, _ := json.Marshal(parsed.Instantiate(uuid))
				if !bytes.Equal(a, b) || cached.Shape() != parsed.Shape() {
					t.Errorf("%s (filled %v) as %s: cached\n%s\nparsed\n%s", filepath.Base(f), fill, uuid, a, b)
				}
			}
		}
	}
	t.Logf("%d reuses checked against a parse, from %d descriptions", reused, len(files))
	if reused < len(files) {
		t.Errorf("only %d reuses from %d descriptions: the cache is hardly used", reused, len(files))
	}
}

// Descriptions whose uuid sits where renaming it changes the meaning are
// never taken from the cache: in a key, in a @type, escaped, or kept in
// the template (a name taken from an IRI).
func TestTemplateCacheRefusesUnsafeRenames(t *testing.T) {
	base := `{"@context": {"o": "http://example.org/onto#", "m": "http://example.org/dev/"},
 "@graph": [{"@id": "m:d", "@type": "o:Device", "o:hasThingProperty": {"@id": "m:deviceUuid"}},
            {"@id": "m:deviceUuid", "@type": "o:ThingProperty", "o:hasValue": "UUID"}]}`
	for _, tc := range []struct {
		name, desc, uuid string
		tmpl             *ontology.Device
		want             bool
	}{
		{"value only", base, "abc-1", &ontology.Device{UUID: "%s", FilledUUID: "abc-1"}, true},
		{"not the parsed device uuid", base, "abc-1", &ontology.Device{UUID: "%s"}, false},
		{"in a key", strings.Replace(base, `"o:hasValue"`, `"o:abc-1"`, 1), "abc-1", &ontology.Device{UUID: "%s", FilledUUID: "abc-1"}, false},
		{"in a @type", strings.Replace(base, `"o:Device"`, `"o:abc-1"`, 1), "abc-1", &ontology.Device{UUID: "%s", FilledUUID: "abc-1"}, false},
		{"also escaped", strings.Replace(base, `"o:hasValue": "UUID"`, `"o:hasValue": "UUID", "o:label": "abc\u002d1"`, 1), "abc-1", &ontology.Device{UUID: "%s", FilledUUID: "abc-1"}, false},
		{"kept in the template", base, "abc-1", &ontology.Device{UUID: "%s", FilledUUID: "abc-1", Category: "abc-1 lamp"}, false},
		{"not in the description", strings.Replace(base, `"UUID"`, `"%s"`, 1), "abc-1", &ontology.Device{UUID: "%s"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desc := strings.Replace(tc.desc, `"UUID"`, `"`+tc.uuid+`"`, 1)
			c := newTemplateCache(4)
			c.store([]byte(desc), tc.uuid, tc.tmpl)
			other := strings.ReplaceAll(desc, tc.uuid, "xyz-2")
			if got := c.lookup([]byte(other), "xyz-2") != nil; got != tc.want {
				t.Errorf("reused: %v, want %v", got, tc.want)
			}
		})
	}
	// The key tells descriptions apart, and NUL bytes are not cached.
	c := newTemplateCache(4)
	tmpl := &ontology.Device{UUID: "%s", FilledUUID: "abc-1"}
	desc := strings.Replace(base, `"UUID"`, `"abc-1"`, 1)
	c.store([]byte(desc), "abc-1", tmpl)
	if c.lookup([]byte(strings.Replace(desc, "Device", "Devise", 1)), "abc-1") != nil {
		t.Error("another description was taken from the cache")
	}
	if !storeDescription([]byte("a\x00b"), "abc-1").verbatim {
		t.Error("a description with a NUL byte has a key")
	}
	// The cache is bounded: the oldest entry goes.
	for i := range 6 {
		c.store([]byte(desc+strings.Repeat(" ", i+1)), "abc-1", tmpl)
	}
	if len(c.entries) != 4 || len(c.order) != 4 || c.lookup([]byte(desc), "abc-1") != nil {
		t.Errorf("%d entries (%d in order); the first still there", len(c.entries), len(c.order))
	}
}

// BenchmarkRegisterKnownShape is one more registration of a known
// description (filled in with the device's uuid, as MYNO's simulators
// send it), with and without the template cache: the registry's CPU per
// device, without MQTT or saving.
func BenchmarkRegisterKnownShape(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(b), "testdata", "descriptions", "led-color.jsonld"))
	if err != nil {
		b.Fatal(err)
	}
	for _, cached := range []bool{false, true} {
		b.Run(map[bool]string{false: "parse", true: "cached"}[cached], func(b *testing.B) {
			r := newRegistry(b.TempDir(), &ontology.Parser{})
			if !cached {
				r.templates = newTemplateCache(0)
			}
			i := 0
			for b.Loop() {
				uuid := "led-bench-" + strconv.Itoa(i)
				if _, err := r.register(uuid, bytes.ReplaceAll(raw, []byte("%s"), []byte(uuid)), time.Now()); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
