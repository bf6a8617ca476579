package netconf

import (
	"encoding/xml"
	"strconv"
	"testing"
)

// FuzzEditConfig feeds arbitrary <config> content to the edit engine over
// a small schema: it never panics, never changes the data it was given,
// and what it accepts holds only schema nodes with checked values.
func FuzzEditConfig(f *testing.F) {
	const ns = "urn:fuzz"
	for _, seed := range []string{
		`<config><s xmlns="urn:fuzz"><u><k>a</k><p><v>1</v></p></u></s></config>`,
		`<config xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><s xmlns="urn:fuzz"><u nc:operation="delete"><k>a</k></u></s></config>`,
		`<config xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><s xmlns="urn:fuzz" nc:operation="replace"><u><k>b</k><p nc:operation="create"><v>7</v></p></u></s></config>`,
		`<config><s xmlns="urn:fuzz"><u><k>a</k><k>b</k></u><u><k>a</k></u></s></config>`,
		`<config><s xmlns="urn:other"/></config>`,
	} {
		f.Add([]byte(seed))
	}
	digits := func(v string) (string, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 9 {
			return "", strconv.ErrRange
		}
		return strconv.Itoa(n), nil
	}
	schema := &SchemaNode{Name: "s", Kind: KindContainer, Children: []*SchemaNode{
		{Name: "u", Kind: KindList, Keys: []string{"k"}, Children: []*SchemaNode{
			{Name: "k", Kind: KindLeaf},
			{Name: "p", Kind: KindContainer, Presence: true, Children: []*SchemaNode{{Name: "v", Kind: KindLeaf, Mandatory: true, Check: digits}}},
		}},
	}}
	ed := editor{roots: map[xml.Name]*ConfigRoot{{Space: ns, Local: "s"}: {Module: "fuzz", Namespace: ns, Prefix: "f", Node: schema}}}
	base := []*Element{NewNode(ns, "s", NewNode(ns, "u", NewLeaf(ns, "k", "a"), NewNode(ns, "p", NewLeaf(ns, "v", "1"))))}
	before := base[0].String()
	f.Fuzz(func(t *testing.T, data []byte) {
		config, err := ParseElement(data, Limits{})
		if err != nil {
			return
		}
		for _, op := range []editOperation{opMerge, opReplace, opNone} {
			out, err := ed.edit(base, config.Children, op)
			if base[0].String() != before {
				t.Fatalf("the edit changed the data it was given")
			}
			if err != nil {
				continue
			}
			for _, e := range out {
				checkAgainst(t, e, schema, ns)
			}
			_ = ed.validate(out)
		}
	})
}

// checkAgainst fails unless e holds only schema nodes, leaves with values
// their check takes.
func checkAgainst(t *testing.T, e *Element, sn *SchemaNode, ns string) {
	t.Helper()
	if e.Name.Space != ns || e.Name.Local != sn.Name {
		t.Fatalf("node %v where the schema has %s", e.Name, sn.Name)
	}
	if sn.Kind == KindLeaf {
		if sn.Check != nil {
			if _, err := sn.Check(e.Text); err != nil {
				t.Fatalf("leaf %s holds %q: %v", sn.Name, e.Text, err)
			}
		}
		if len(e.Children) > 0 {
			t.Fatalf("leaf %s has children", sn.Name)
		}
		return
	}
	for _, c := range e.Children {
		cs := sn.child(c.Name.Local)
		if cs == nil {
			t.Fatalf("%s holds unknown %v", sn.Name, c.Name)
		}
		checkAgainst(t, c, cs, ns)
	}
}

// A long list edited with many entries goes through the index, also when
// a sibling was deleted earlier in the same edit.
func TestEditIndexAfterADeletedSibling(t *testing.T) {
	const ns = "urn:index"
	schema := &SchemaNode{Name: "s", Kind: KindContainer, Children: []*SchemaNode{
		{Name: "x", Kind: KindLeaf},
		{Name: "item", Kind: KindList, Keys: []string{"k"}, Children: []*SchemaNode{{Name: "k", Kind: KindLeaf}, {Name: "v", Kind: KindLeaf}}},
	}}
	ed := editor{roots: map[xml.Name]*ConfigRoot{{Space: ns, Local: "s"}: {Module: "index", Namespace: ns, Prefix: "i", Node: schema}}}
	root := NewNode(ns, "s", NewLeaf(ns, "x", "1"))
	for i := range 40 {
		root.Children = append(root.Children, NewNode(ns, "item", NewLeaf(ns, "k", strconv.Itoa(i)), NewLeaf(ns, "v", "old")))
	}
	edit := NewNode(ns, "s", &Element{Name: xml.Name{Space: ns, Local: "x"}, Attrs: []xml.Attr{{Name: xml.Name{Space: NSBase, Local: "operation"}, Value: "delete"}}})
	for i := 35; i < 45; i++ { // 5 changed, 5 new
		edit.Children = append(edit.Children, NewNode(ns, "item", NewLeaf(ns, "k", strconv.Itoa(i)), NewLeaf(ns, "v", "new")))
	}
	out, err := ed.edit([]*Element{root}, []*Element{edit}, opMerge)
	if err != nil {
		t.Fatal(err)
	}
	got := out[0]
	if got.Child(ns, "x") != nil || len(got.Children) != 45 {
		t.Fatalf("after the edit: x %v, %d items", got.Child(ns, "x"), len(got.Children))
	}
	for _, e := range got.Children {
		k, _ := strconv.Atoi(e.Child(ns, "k").Text)
		if want := map[bool]string{true: "new", false: "old"}[k >= 35]; e.Child(ns, "v").Text != want {
			t.Errorf("item %d holds %s, want %s", k, e.Child(ns, "v").Text, want)
		}
	}
}
