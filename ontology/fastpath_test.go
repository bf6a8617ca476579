package ontology

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// parseBoth parses data on the expanded-form fast path and through
// json-gold, and fails if the two disagree.
func parseBoth(t *testing.T, data []byte) {
	t.Helper()
	fast, fastErr := (&Parser{}).Parse(data)
	slow, slowErr := (&Parser{slowPath: true}).Parse(data)
	switch {
	case fastErr == nil && slowErr == nil:
		if fast.Shape() != slow.Shape() {
			t.Fatalf("fast path and json-gold give different models")
		}
	case fastErr != nil && slowErr != nil:
		var fe, se *Error
		errors.As(fastErr, &fe)
		errors.As(slowErr, &se)
		if fe.Kind != se.Kind {
			t.Fatalf("different errors: fast %v, json-gold %v", fastErr, slowErr)
		}
	default:
		t.Fatalf("fast path error %v, json-gold error %v", fastErr, slowErr)
	}
}

func expandedSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, pattern := range []string{"../testdata/descriptions/*.jsonld", "../testdata/broken/*.jsonld", "../../shared/samples/*.owl"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func TestExpandedFastPathAgreesWithJSONGold(t *testing.T) {
	fastPathTaken := 0
	for _, data := range expandedSeeds(t) {
		parseBoth(t, data)
		if g, err := buildGraph(data, false); err == nil && g != nil && data[0] == '[' {
			fastPathTaken++
		}
	}
	if fastPathTaken < 3 {
		t.Errorf("only %d expanded descriptions in testdata", fastPathTaken)
	}
	// Documents at the edge of the fast path's subset.
	for _, doc := range []string{
		`[{"@id": "_:b0", "@type": ["http://www.onem2m.org/ontology/Base_Ontology/base_ontology#Device"]}]`,
		`[{"@id": "x:d", "@type": []}]`,
		`[{"@id": "x:d", "http://x#p": []}]`,
		`[{"@id": "x:d", "@type": ["http://www.onem2m.org/ontology/Base_Ontology/base_ontology#Device"], "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#hasThingProperty": [{"http://www.onem2m.org/ontology/Base_Ontology/base_ontology#hasValue": [{"@value": "c"}]}]}]`,
		`[{"@id": "relative", "@type": ["x:y"]}]`,
		`[{"@value": "x"}]`,
		`[{"@id": "x:d", "x:p": [{"@value": null}]}]`,
		`[{"@id": "x:d", "x:p": [{"@value": "a", "@language": "en"}]}]`,
		`[{"@id": "x:d", "x:p": [{"@list": [{"@value": 1}]}]}]`,
		`[{"@id": "x:d", "@graph": [{"@id": "x:e", "@type": ["x:T"]}]}]`,
	} {
		parseBoth(t, []byte(doc))
	}
}

// FuzzExpandedFastPath checks that reading an expanded document directly
// gives exactly what json-gold's expansion gives.
func FuzzExpandedFastPath(f *testing.F) {
	for _, s := range expandedSeeds(f) {
		if len(s) > 0 && s[0] == '[' {
			f.Add(s)
		}
	}
	f.Add([]byte(`[{"@id": "x:d", "x:p": [{"@id": "_:a", "x:q": [{"@value": 1.5, "@type": "x:t"}]}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseBoth(t, data)
	})
}
