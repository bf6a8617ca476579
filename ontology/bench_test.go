package ontology_test

import (
	"path/filepath"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
)

// benchDescriptions are the two sizes the targets are stated for: a ~26 kB
// compact MUP description and a ~56 kB expanded one.
var benchDescriptions = []string{"mup-device.jsonld", "mup-device-expanded.jsonld"}

func BenchmarkParse(b *testing.B) {
	for _, name := range benchDescriptions {
		data := read(b, filepath.Join(testenv.RepoRoot(b), "testdata", "descriptions", name))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ontology.Parse(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
