package netconf

import (
	"encoding/xml"
	"fmt"
	"strconv"
	"testing"
)

// BenchmarkEditOneDevice is one merge of one device's value into running
// that holds n devices, with the whole-configuration check a change of
// running gets: the server's own cost of an edit-config, before the
// application stores and applies it.
func BenchmarkEditOneDevice(b *testing.B) {
	const ns = "urn:bench"
	check := func(v string) (string, error) {
		n, err := strconv.Atoi(v)
		return strconv.Itoa(n), err
	}
	schema := &SchemaNode{Name: "configuration", Kind: KindContainer, Children: []*SchemaNode{
		{Name: "device", Kind: KindList, Keys: []string{"uuid"}, Children: []*SchemaNode{
			{Name: "uuid", Kind: KindLeaf},
			{Name: "setThreshold", Kind: KindContainer, Presence: true, Children: []*SchemaNode{
				{Name: "input_1_Operator", Kind: KindLeaf, Mandatory: true},
				{Name: "input_2_Threshold", Kind: KindLeaf, Mandatory: true, Check: check},
			}},
		}},
	}}
	ed := editor{roots: map[xml.Name]*ConfigRoot{{Space: ns, Local: "configuration"}: {Module: "bench", Namespace: ns, Prefix: "b", Node: schema}}}
	for _, n := range []int{100, 10_000} {
		root := NewNode(ns, "configuration")
		for i := range n {
			root.Children = append(root.Children, NewNode(ns, "device", NewLeaf(ns, "uuid", fmt.Sprintf("th-%d", i)),
				NewNode(ns, "setThreshold", NewLeaf(ns, "input_1_Operator", "gt"), NewLeaf(ns, "input_2_Threshold", "20"))))
		}
		running := []*Element{root}
		edit := []*Element{NewNode(ns, "configuration", NewNode(ns, "device", NewLeaf(ns, "uuid", fmt.Sprintf("th-%d", n/2)),
			NewNode(ns, "setThreshold", NewLeaf(ns, "input_2_Threshold", "25"))))}
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				next, err := ed.edit(running, edit, opMerge)
				if err != nil {
					b.Fatal(err)
				}
				if err := ed.validate(next); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
