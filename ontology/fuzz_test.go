package ontology_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

// FuzzParse feeds arbitrary bytes to the parser. Seeds are every testdata
// description, valid and broken, and the reference samples when present.
// Properties: no panic; a parse error is an *ontology.Error; a description
// that parses always yields a module goyang accepts; parsing is
// deterministic.
func FuzzParse(f *testing.F) {
	root := testenv.RepoRoot(f)
	var seeds []string
	for _, pattern := range []string{
		filepath.Join(root, "testdata", "descriptions", "*.jsonld"),
		filepath.Join(root, "testdata", "broken", "*.jsonld"),
		filepath.Join(root, "..", "shared", "samples", "*.owl"),
	} {
		m, _ := filepath.Glob(pattern)
		seeds = append(seeds, m...)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dev, err := ontology.Parse(data)
		if err != nil {
			if _, ok := err.(*ontology.Error); !ok {
				t.Fatalf("error %T is not an *ontology.Error: %v", err, err)
			}
			return
		}
		again, err := ontology.Parse(data)
		if err != nil || again.Shape() != dev.Shape() {
			t.Fatalf("second parse differs: %v", err)
		}
		if _, err := yang.Generate(dev, yang.Options{}); err != nil {
			t.Fatalf("parsed description gives no module: %v", err)
		}
	})
}
