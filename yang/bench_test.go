package yang_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

var benchDescriptions = []string{"mup-device.jsonld", "mup-device-expanded.jsonld"}

func benchData(b *testing.B, name string) []byte {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(b), "testdata", "descriptions", name))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkGenerate measures model -> YANG text, including the goyang check.
func BenchmarkGenerate(b *testing.B) {
	for _, name := range benchDescriptions {
		dev, err := ontology.Parse(benchData(b, name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := yang.Generate(dev, yang.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseAndGenerate is the whole bootstrap cost of one description:
// the figure the ≤ 2 ms / ≤ 2 MB target is stated for.
func BenchmarkParseAndGenerate(b *testing.B) {
	for _, name := range benchDescriptions {
		data := benchData(b, name)
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				dev, err := ontology.Parse(data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := yang.Generate(dev, yang.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseInput is the per-RPC validation cost on the bridge's hot path.
func BenchmarkParseInput(b *testing.B) {
	m := testdataModule(b, "rgb-lamp.jsonld")
	rpc := []byte(`<setRgb xmlns="` + m.Namespace + `"><uuidInput>lamp-1</uuidInput><input_1_Rgb><var_1_Red>255</var_1_Red><var_2_Green>0</var_2_Green><var_3_Blue>128</var_3_Blue></input_1_Rgb></setRgb>`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.ParseInput(rpc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInputTopics measures what a client pays to read the input data
// point topics from a module's source (the Update Server does it once per
// module and campaign).
func BenchmarkInputTopics(b *testing.B) {
	for _, name := range benchDescriptions {
		dev, err := ontology.Parse(benchData(b, name))
		if err != nil {
			b.Fatal(err)
		}
		mod, err := yang.Generate(dev, yang.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(mod.Text)))
			for b.Loop() {
				if topics, err := yang.InputTopics(mod.Text); err != nil || len(topics) == 0 {
					b.Fatal(topics, err)
				}
			}
		})
	}
}
