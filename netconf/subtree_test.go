package netconf

import (
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
)

// subtreeData is the datastore the RFC 6241 §6.4 examples run against:
// the "http://example.com/schema/1.2/config" users model of §6.4.3-§6.4.7
// and the "http://example.com/schema/1.2/stats" interfaces model of §6.4.8,
// both at the top level as a <get> would see them. The <groups> subtree is
// not in the RFC; it is there to show what the filters leave out.
const subtreeData = `<data>
  <top xmlns="http://example.com/schema/1.2/config">
    <users>
      <user>
        <name>root</name>
        <type>superuser</type>
        <full-name>Charlie Root</full-name>
        <company-info>
          <dept>1</dept>
          <id>1</id>
        </company-info>
      </user>
      <user>
        <name>fred</name>
        <type>admin</type>
        <full-name>Fred Flintstone</full-name>
        <company-info>
          <dept>2</dept>
          <id>2</id>
        </company-info>
      </user>
      <user>
        <name>barney</name>
        <type>admin</type>
        <full-name>Barney Rubble</full-name>
        <company-info>
          <dept>2</dept>
          <id>3</id>
        </company-info>
      </user>
    </users>
    <groups>
      <group>
        <name>wheel</name>
        <member>root</member>
        <member>fred</member>
      </group>
    </groups>
  </top>
  <t:top xmlns:t="http://example.com/schema/1.2/stats">
    <t:interfaces>
      <t:interface t:ifName="eth0">
        <t:ifInOctets>45621</t:ifInOctets>
        <t:ifOutOctets>774344</t:ifOutOctets>
      </t:interface>
      <t:interface t:ifName="eth1">
        <t:ifInOctets>123</t:ifInOctets>
        <t:ifOutOctets>456</t:ifOutOctets>
      </t:interface>
    </t:interfaces>
  </t:top>
</data>`

const (
	nsConfig = "http://example.com/schema/1.2/config"
	nsStats  = "http://example.com/schema/1.2/stats"
)

// mustChildren parses doc and returns its root's children.
func mustChildren(t testing.TB, doc string) []*Element {
	t.Helper()
	e, err := ParseElement([]byte(doc), Limits{})
	if err != nil {
		t.Fatalf("parse %q: %v", doc, err)
	}
	return e.Children
}

// render is the canonical form compared in tests: each top-level element's
// String(), one per line.
func render(es []*Element) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(e.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// applyFilter stands in for the <get>/<get-config> caller: no <filter>
// element at all (§6.4.1) returns the data unfiltered; otherwise the
// filter element's children go to FilterSubtree.
func applyFilter(data []*Element, filter *Element) []*Element {
	if filter == nil {
		return data
	}
	return FilterSubtree(data, filter.Children)
}

var subtreeCases = []struct {
	name   string
	filter string // a whole <filter> element; "" means no filter
	want   string // children of <data>
}{
	{
		name: "6.4.1 no filter",
		want: subtreeData[len("<data>") : len(subtreeData)-len("</data>")],
	},
	{
		name:   "6.4.2 empty filter",
		filter: `<filter type="subtree"></filter>`,
		want:   ``,
	},
	{
		name: "6.4.3 entire users subtree",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users/>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user>
      <name>root</name>
      <type>superuser</type>
      <full-name>Charlie Root</full-name>
      <company-info><dept>1</dept><id>1</id></company-info>
    </user>
    <user>
      <name>fred</name>
      <type>admin</type>
      <full-name>Fred Flintstone</full-name>
      <company-info><dept>2</dept><id>2</id></company-info>
    </user>
    <user>
      <name>barney</name>
      <type>admin</type>
      <full-name>Barney Rubble</full-name>
      <company-info><dept>2</dept><id>3</id></company-info>
    </user>
  </users>
</top>`,
	},
	{
		name: "6.4.4 all name elements within users",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><name/></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user><name>root</name></user>
    <user><name>fred</name></user>
    <user><name>barney</name></user>
  </users>
</top>`,
	},
	{
		name: "6.4.5 one specific user entry",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><name>fred</name></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user>
      <name>fred</name>
      <type>admin</type>
      <full-name>Fred Flintstone</full-name>
      <company-info><dept>2</dept><id>2</id></company-info>
    </user>
  </users>
</top>`,
	},
	{
		name: "6.4.6 specific elements from a specific user entry",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users>
      <user>
        <name>fred</name>
        <type/>
        <full-name/>
      </user>
    </users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user>
      <name>fred</name>
      <type>admin</type>
      <full-name>Fred Flintstone</full-name>
    </user>
  </users>
</top>`,
	},
	{
		name: "6.4.7 multiple subtrees",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users>
      <user>
        <name>root</name>
        <company-info/>
      </user>
      <user>
        <name>fred</name>
        <company-info><id/></company-info>
      </user>
      <user>
        <name>barney</name>
        <type>superuser</type>
        <company-info><dept/></company-info>
      </user>
    </users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user>
      <name>root</name>
      <company-info><dept>1</dept><id>1</id></company-info>
    </user>
    <user>
      <name>fred</name>
      <company-info><id>2</id></company-info>
    </user>
  </users>
</top>`,
	},
	{
		name: "6.4.8 elements with attribute naming",
		filter: `<filter type="subtree">
  <t:top xmlns:t="http://example.com/schema/1.2/stats">
    <t:interfaces>
      <t:interface t:ifName="eth0"/>
    </t:interfaces>
  </t:top>
</filter>`,
		want: `
<t:top xmlns:t="http://example.com/schema/1.2/stats">
  <t:interfaces>
    <t:interface t:ifName="eth0">
      <t:ifInOctets>45621</t:ifInOctets>
      <t:ifOutOctets>774344</t:ifOutOctets>
    </t:interface>
  </t:interfaces>
</t:top>`,
	},

	// §6.2.1 namespace selection.
	{
		name: "namespace mismatch selects nothing",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/other"><users/></top>
</filter>`,
		want: ``,
	},
	{
		name: "namespace mismatch below a matching node",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users xmlns="http://example.com/schema/1.2/stats"/>
  </top>
</filter>`,
		want: ``,
	},
	{
		name: "filter in the config namespace leaves the stats top out",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config"><groups/></top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <groups>
    <group><name>wheel</name><member>root</member><member>fred</member></group>
  </groups>
</top>`,
	},
	{
		name: "empty namespace is a wildcard",
		filter: `<filter type="subtree">
  <top xmlns=""><interfaces><interface><ifInOctets>123</ifInOctets></interface></interfaces></top>
</filter>`,
		want: `
<t:top xmlns:t="http://example.com/schema/1.2/stats">
  <t:interfaces>
    <t:interface t:ifName="eth1">
      <t:ifInOctets>123</t:ifInOctets>
      <t:ifOutOctets>456</t:ifOutOctets>
    </t:interface>
  </t:interfaces>
</t:top>`,
	},
	{
		name: "wildcard top selects in every namespace, in document order",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/stats"><interfaces><interface><ifOutOctets/></interface></interfaces></top>
  <top xmlns=""><users><user><name>barney</name><type/></user></users></top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users><user><name>barney</name><type>admin</type></user></users>
</top>
<t:top xmlns:t="http://example.com/schema/1.2/stats">
  <t:interfaces>
    <t:interface t:ifName="eth0"><t:ifOutOctets>774344</t:ifOutOctets></t:interface>
    <t:interface t:ifName="eth1"><t:ifOutOctets>456</t:ifOutOctets></t:interface>
  </t:interfaces>
</t:top>`,
	},

	// §6.2.2 attribute match expressions.
	{
		name: "attribute value mismatch",
		filter: `<filter type="subtree">
  <t:top xmlns:t="http://example.com/schema/1.2/stats">
    <t:interfaces><t:interface t:ifName="eth9"/></t:interfaces>
  </t:top>
</filter>`,
		want: ``,
	},
	{
		name: "attribute namespace must match (unqualified is not t:ifName)",
		filter: `<filter type="subtree">
  <t:top xmlns:t="http://example.com/schema/1.2/stats">
    <t:interfaces><t:interface ifName="eth0"/></t:interfaces>
  </t:top>
</filter>`,
		want: ``,
	},
	{
		name: "attribute the data node lacks",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config" version="2"><users/></top>
</filter>`,
		want: ``,
	},
	{
		name: "attribute on a containment node with a selection child",
		filter: `<filter type="subtree">
  <t:top xmlns:t="http://example.com/schema/1.2/stats">
    <t:interfaces><t:interface t:ifName="eth1"><t:ifInOctets/></t:interface></t:interfaces>
  </t:top>
</filter>`,
		want: `
<t:top xmlns:t="http://example.com/schema/1.2/stats">
  <t:interfaces>
    <t:interface t:ifName="eth1"><t:ifInOctets>123</t:ifInOctets></t:interface>
  </t:interfaces>
</t:top>`,
	},

	// §6.2.3-§6.2.5 node types.
	{
		name: "content match text is compared with outer white space trimmed",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><full-name>
        Fred Flintstone
    </full-name><type>  </type></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users><user><type>admin</type><full-name>Fred Flintstone</full-name></user></users>
</top>`,
	},
	{
		name: "inner white space of content match text is significant",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><full-name>Fred  Flintstone</full-name></user></users>
  </top>
</filter>`,
		want: ``,
	},
	{
		name: "content match nodes are ANDed",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><type>admin</type><full-name>Barney Rubble</full-name><name/></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users><user><name>barney</name><type>admin</type><full-name>Barney Rubble</full-name></user></users>
</top>`,
	},
	{
		name: "content match on each list entry independently",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><type>admin</type><name/></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user><name>fred</name><type>admin</type></user>
    <user><name>barney</name><type>admin</type></user>
  </users>
</top>`,
	},
	{
		// A content match node constrains only its own sibling set: the
		// failed <dept> test prunes <company-info> of root, not root's
		// <user> entry, which its <name> selection node still selects.
		name: "content match nested in a containment node prunes only that node",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><company-info><dept>2</dept></company-info><name/></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user><name>root</name></user>
    <user><name>fred</name><company-info><dept>2</dept><id>2</id></company-info></user>
    <user><name>barney</name><company-info><dept>2</dept><id>3</id></company-info></user>
  </users>
</top>`,
	},
	{
		name: "content match against a non-leaf never matches",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><company-info>21</company-info></user></users>
  </top>
</filter>`,
		want: ``,
	},
	{
		name: "matched content match nodes are kept when their siblings select nothing",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><name>fred</name><nickname/><company-info><room/></company-info></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users><user><name>fred</name></user></users>
</top>`,
	},
	{
		name: "containment nodes that select nothing leave no empty shells",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><nickname/></user></users>
  </top>
</filter>`,
		want: ``,
	},
	{
		name: "leaf-list values: each content match must be present",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <groups><group><member>fred</member><member>root</member></group></groups>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <groups>
    <group><name>wheel</name><member>root</member><member>fred</member></group>
  </groups>
</top>`,
	},
	{
		name: "leaf-list value absent",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <groups><group><member>barney</member></group></groups>
  </top>
</filter>`,
		want: ``,
	},

	// Merging of overlapping selections.
	{
		name: "two filter entries selecting parts of one data entry merge",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users>
      <user><name>fred</name><full-name/></user>
      <user><name>fred</name><type/></user>
      <user><name>root</name><type/></user>
    </users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user><name>root</name><type>superuser</type></user>
    <user><name>fred</name><type>admin</type><full-name>Fred Flintstone</full-name></user>
  </users>
</top>`,
	},
	{
		name: "repeated top-level fragments do not duplicate data",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config"><users><user><name/></user></users></top>
  <top xmlns="http://example.com/schema/1.2/config"><users/></top>
  <top xmlns="http://example.com/schema/1.2/config"><users><user><name>fred</name></user></users></top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users>
    <user>
      <name>root</name>
      <type>superuser</type>
      <full-name>Charlie Root</full-name>
      <company-info><dept>1</dept><id>1</id></company-info>
    </user>
    <user>
      <name>fred</name>
      <type>admin</type>
      <full-name>Fred Flintstone</full-name>
      <company-info><dept>2</dept><id>2</id></company-info>
    </user>
    <user>
      <name>barney</name>
      <type>admin</type>
      <full-name>Barney Rubble</full-name>
      <company-info><dept>2</dept><id>3</id></company-info>
    </user>
  </users>
</top>`,
	},
	{
		name: "selection and containment of the same node merge",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config">
    <users><user><name>root</name><company-info><id/></company-info><company-info/></user></users>
  </top>
</filter>`,
		want: `
<top xmlns="http://example.com/schema/1.2/config">
  <users><user><name>root</name><company-info><dept>1</dept><id>1</id></company-info></user></users>
</top>`,
	},
	{
		name: "failed content match in one namespace does not prune another",
		filter: `<filter type="subtree">
  <top xmlns="http://example.com/schema/1.2/config"><users><user><name>nobody</name></user></users></top>
  <t:top xmlns:t="http://example.com/schema/1.2/stats"><t:interfaces><t:interface t:ifName="eth1"/></t:interfaces></t:top>
</filter>`,
		want: `
<t:top xmlns:t="http://example.com/schema/1.2/stats">
  <t:interfaces>
    <t:interface t:ifName="eth1">
      <t:ifInOctets>123</t:ifInOctets>
      <t:ifOutOctets>456</t:ifOutOctets>
    </t:interface>
  </t:interfaces>
</t:top>`,
	},
}

func TestFilterSubtreeRFC6241(t *testing.T) {
	for _, tc := range subtreeCases {
		t.Run(tc.name, func(t *testing.T) {
			data := mustChildren(t, subtreeData)
			var filter *Element
			if tc.filter != "" {
				var err error
				filter, err = ParseElement([]byte(tc.filter), Limits{})
				if err != nil {
					t.Fatalf("parse filter: %v", err)
				}
			}
			got := render(applyFilter(data, filter))
			want := render(mustChildren(t, "<data>"+tc.want+"</data>"))
			if got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestFilterSubtreeEmptyAndNil(t *testing.T) {
	data := mustChildren(t, subtreeData)
	if got := FilterSubtree(data, nil); got != nil {
		t.Errorf("nil filter: got %s, want nothing", render(got))
	}
	if got := FilterSubtree(data, []*Element{}); got != nil {
		t.Errorf("empty filter: got %s, want nothing", render(got))
	}
	if got := FilterSubtree(nil, []*Element{NewNode(nsConfig, "top")}); got != nil {
		t.Errorf("empty data: got %s, want nothing", render(got))
	}
}

func TestFilterSubtreeTopLevelContentMatch(t *testing.T) {
	// §6.2.5: only content match nodes, all true, select "all the nodes
	// at this level"; at the top level that is every top-level node in the
	// filter's namespace (§6.3 groups root filter nodes by namespace).
	data := []*Element{
		NewLeaf("urn:a", "hostname", "box"),
		NewLeaf("urn:a", "location", "attic"),
		NewLeaf("urn:b", "hostname", "box"),
	}
	got := render(FilterSubtree(data, []*Element{NewLeaf("urn:a", "hostname", " box ")}))
	want := render(data[:2])
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if got := FilterSubtree(data, []*Element{NewLeaf("urn:a", "hostname", "other")}); got != nil {
		t.Errorf("mismatch: got %s, want nothing", render(got))
	}
}

// deepChain builds n nested elements e0/e1/.../e(n-1), the innermost
// holding the given children.
func deepChain(space string, n int, inner ...*Element) *Element {
	e := NewNode(space, fmt.Sprintf("e%d", n-1), inner...)
	for i := n - 2; i >= 0; i-- {
		e = NewNode(space, fmt.Sprintf("e%d", i), e)
	}
	return e
}

func TestFilterSubtreeDeepNesting(t *testing.T) {
	const depth = 200
	data := []*Element{deepChain("urn:deep", depth,
		NewNode("urn:deep", "entry", NewLeaf("urn:deep", "k", "1"), NewLeaf("urn:deep", "v", "one")),
		NewNode("urn:deep", "entry", NewLeaf("urn:deep", "k", "2"), NewLeaf("urn:deep", "v", "two")),
		NewLeaf("urn:deep", "other", "x"),
	)}

	// Content match at the bottom of the chain: only entry k=2, whole.
	filter := []*Element{deepChain("urn:deep", depth,
		NewNode("urn:deep", "entry", NewLeaf("urn:deep", "k", "2")))}
	want := render([]*Element{deepChain("urn:deep", depth,
		NewNode("urn:deep", "entry", NewLeaf("urn:deep", "k", "2"), NewLeaf("urn:deep", "v", "two")))})
	if got := render(FilterSubtree(data, filter)); got != want {
		t.Errorf("content match at depth %d:\ngot  %.300s...\nwant %.300s...", depth, got, want)
	}

	// A wrong name half-way down selects nothing.
	broken := deepChain("", depth, NewNode("", "entry"))
	n := broken
	for range depth / 2 {
		n = n.Children[0]
	}
	n.Name.Local = "nope"
	if got := FilterSubtree(data, []*Element{broken}); got != nil {
		t.Errorf("broken chain selected %.300s", render(got))
	}

	// A selection node at depth selects everything below it.
	sel := []*Element{deepChain("", depth/2)}
	if got, want := render(FilterSubtree(data, sel)), render(data); got != want {
		t.Errorf("selection at depth %d did not select the whole subtree", depth/2)
	}
}

// collect adds every element of the trees to into.
func collect(es []*Element, into map[*Element]bool) {
	for _, e := range es {
		into[e] = true
		collect(e.Children, into)
	}
}

func TestFilterSubtreeDoesNotMutateOrAlias(t *testing.T) {
	data := mustChildren(t, subtreeData)
	before := render(data)
	inputs := make(map[*Element]bool)
	collect(data, inputs)

	for _, tc := range subtreeCases {
		if tc.filter == "" {
			continue
		}
		f, err := ParseElement([]byte(tc.filter), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		filterBefore := f.String()
		got := FilterSubtree(data, f.Children)
		if after := render(data); after != before {
			t.Fatalf("%s: data changed:\n%s", tc.name, after)
		}
		if f.String() != filterBefore {
			t.Fatalf("%s: filter changed:\n%s", tc.name, f.String())
		}
		outputs := make(map[*Element]bool)
		collect(got, outputs)
		for e := range outputs {
			if inputs[e] {
				t.Fatalf("%s: output shares element <%s> with the input", tc.name, e.Name.Local)
			}
		}
		// Changing the output must not reach the input through shared
		// slices either.
		for e := range outputs {
			e.Text += "!"
			for i := range e.Attrs {
				e.Attrs[i].Value += "!"
			}
			e.Children = append(e.Children[:len(e.Children):len(e.Children)], NewLeaf("", "extra", ""))
		}
		if after := render(data); after != before {
			t.Fatalf("%s: editing the output changed the data:\n%s", tc.name, after)
		}
	}
}

func TestFilterSubtreeAttributeOnContentMatchNode(t *testing.T) {
	// §6.2.2: attributes may appear on any type of filter node.
	data := []*Element{NewNode(nsConfig, "top",
		&Element{Name: xml.Name{Space: nsConfig, Local: "leaf"}, Text: "v", Attrs: []xml.Attr{{Name: xml.Name{Local: "unit"}, Value: "s"}}},
		&Element{Name: xml.Name{Space: nsConfig, Local: "leaf"}, Text: "v", Attrs: []xml.Attr{{Name: xml.Name{Local: "unit"}, Value: "ms"}}},
		NewLeaf(nsConfig, "other", "o"),
	)}
	filter := []*Element{NewNode(nsConfig, "top",
		&Element{Name: xml.Name{Space: nsConfig, Local: "leaf"}, Text: "v", Attrs: []xml.Attr{{Name: xml.Name{Local: "unit"}, Value: "ms"}}},
		NewLeaf(nsConfig, "other", ""),
	)}
	want := `<top xmlns="` + nsConfig + `"><leaf unit="ms">v</leaf><other>o</other></top>` + "\n"
	if got := render(FilterSubtree(data, filter)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// benchUsers returns a <top><users> tree with n user entries.
func benchUsers(n int) []*Element {
	users := NewNode(nsConfig, "users")
	users.Children = make([]*Element, n)
	for i := range n {
		users.Children[i] = NewNode(nsConfig, "user",
			NewLeaf(nsConfig, "name", fmt.Sprintf("user%d", i)),
			NewLeaf(nsConfig, "type", []string{"admin", "operator", "viewer"}[i%3]),
			NewLeaf(nsConfig, "full-name", fmt.Sprintf("User Number %d", i)),
			NewNode(nsConfig, "company-info",
				NewLeaf(nsConfig, "dept", fmt.Sprint(i%7)),
				NewLeaf(nsConfig, "id", fmt.Sprint(i))),
		)
	}
	return []*Element{NewNode(nsConfig, "top", users)}
}

func TestFilterSubtreeBenchData(t *testing.T) {
	data := benchUsers(1000)
	got := FilterSubtree(data, benchFilter())
	users := got[0].Child(nsConfig, "users").Children
	if len(users) != 333 { // operators: i%3 == 1 for i < 1000
		t.Fatalf("selected %d users, want 333", len(users))
	}
	for _, u := range users {
		if len(u.Children) != 3 || u.Child("", "type").Text != "operator" ||
			len(u.Child("", "company-info").Children) != 2 {
			t.Fatalf("bad entry %s", u)
		}
	}
}

// benchFilter selects the name, type and company-info of every operator
// (§6.4.6 style: a content match node with selection siblings).
func benchFilter() []*Element {
	return []*Element{NewNode(nsConfig, "top",
		NewNode(nsConfig, "users",
			NewNode(nsConfig, "user",
				NewLeaf(nsConfig, "type", "operator"),
				NewLeaf(nsConfig, "name", ""),
				NewLeaf(nsConfig, "company-info", ""))))}
}

func BenchmarkFilterSubtree(b *testing.B) {
	data := benchUsers(1000)
	b.Run("content-match-entry", func(b *testing.B) {
		// One entry by its key, whole (§6.4.5 style).
		filter := []*Element{NewNode(nsConfig, "top",
			NewNode(nsConfig, "users",
				NewNode(nsConfig, "user", NewLeaf(nsConfig, "name", "user500"))))}
		b.ReportAllocs()
		for b.Loop() {
			if out := FilterSubtree(data, filter); len(out) != 1 {
				b.Fatal("no match")
			}
		}
	})
	b.Run("content-match-with-selections", func(b *testing.B) {
		filter := benchFilter()
		b.ReportAllocs()
		for b.Loop() {
			if out := FilterSubtree(data, filter); len(out) != 1 {
				b.Fatal("no match")
			}
		}
	})
}
