package netconf

import (
	"encoding/xml"
	"strings"
)

// Subtree filtering, RFC 6241 §6.
//
// Filtering happens in two passes. The first walks the filter against the
// data and records, per data node, whether it is selected whole or only in
// part (and then which children are selected), without copying anything.
// Because the record is keyed by position in the data tree, several filter
// nodes that select the same data node (§6.4.7's sibling <user> entries, or
// two fragments selecting different leaves of one entry) merge into one
// record, so no data node is emitted twice. The second pass copies the
// recorded selection out of the data in document order.

// FilterSubtree applies an RFC 6241 §6 subtree filter to data and returns
// the selected data (new trees; the input is not modified). filter holds the
// children of the <filter type="subtree"> element. An empty filter (no
// children) selects nothing (§6.4.2). A nil filter means "no filter" and is
// handled by the caller, not here.
//
// FilterSubtree itself treats a nil filter like an empty one. Filter nodes
// are classified by §6.2.3-§6.2.5: a node with child elements is a
// containment node, a node whose text is empty or only whitespace is a
// selection node, anything else is a content match node. A filter node
// whose namespace is empty matches data nodes in any namespace (§6.2.1);
// attributes of filter nodes must be present with equal values, and equal
// namespaces, on the data node (§6.2.2).
func FilterSubtree(data []*Element, filter []*Element) []*Element {
	if len(filter) == 0 {
		return nil // §6.4.2: an empty filter selects nothing
	}
	// §6.3: "The root elements in the filter are considered in the same
	// sibling set (assuming they are in the same namespace), even though
	// they do not have a common parent." The top level is therefore
	// evaluated like the children of a containment node whose parent is
	// the datastore, once per namespace, and the results are merged: a
	// failed content match in one module's fragment does not prune
	// another module's.
	root := &Element{Children: data}
	groups := make(map[string][]*Element)
	var order []string
	for _, f := range filter {
		ns := f.Name.Space
		if _, seen := groups[ns]; !seen {
			order = append(order, ns)
		}
		groups[ns] = append(groups[ns], f)
	}
	var sel *selection
	for _, ns := range order {
		s := evalContainment(root, groups[ns])
		if s == nil {
			continue
		}
		if s.whole {
			// Only content match nodes in this sibling set, and all
			// matched: §6.2.5 selects "all the nodes at this level",
			// here the top-level data nodes of that namespace (all of
			// them for a filter without a namespace, §6.2.1).
			s = &selection{kids: make(map[int]*selection)}
			for i, d := range data {
				if ns == "" || d.Name.Space == ns {
					s.kids[i] = wholeSelection
				}
			}
		}
		sel = merge(sel, s)
	}
	if sel == nil {
		return nil
	}
	var out []*Element
	for i, d := range data {
		if k := sel.kids[i]; k != nil {
			out = append(out, k.copyOf(d))
		}
	}
	return out
}

// selection records what a filter selects of one data node: either the
// whole subtree, or the node itself with the selected children listed by
// their index in Children.
type selection struct {
	whole bool
	kids  map[int]*selection
}

// wholeSelection is shared: it is never modified (merge copies before
// writing and never writes to a whole selection).
var wholeSelection = &selection{whole: true}

// merge combines two selections of the same data node (either may be nil)
// into their union. It may modify and return a, and may share parts of b
// with the result, so b must not be used afterwards. wholeSelection is
// never modified.
func merge(a, b *selection) *selection {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.whole:
		return a
	case b.whole:
		return b
	}
	if a.kids == nil {
		a.kids = make(map[int]*selection, len(b.kids))
	}
	for i, bk := range b.kids {
		a.kids[i] = merge(a.kids[i], bk)
	}
	return a
}

// copyOf returns a new tree holding the part of d that s selects, children
// in document order.
func (s *selection) copyOf(d *Element) *Element {
	if s.whole {
		return deepCopy(d)
	}
	out := &Element{Name: d.Name, Attrs: copyAttrs(d.Attrs), Text: d.Text}
	for i, c := range d.Children {
		if k := s.kids[i]; k != nil {
			out.Children = append(out.Children, k.copyOf(c))
		}
	}
	return out
}

func deepCopy(d *Element) *Element {
	out := &Element{Name: d.Name, Attrs: copyAttrs(d.Attrs), Text: d.Text}
	if len(d.Children) > 0 {
		out.Children = make([]*Element, len(d.Children))
		for i, c := range d.Children {
			out.Children[i] = deepCopy(c)
		}
	}
	return out
}

func copyAttrs(a []xml.Attr) []xml.Attr {
	if a == nil {
		return nil
	}
	return append([]xml.Attr(nil), a...)
}

// filterKind is the node type of a filter element, RFC 6241 §6.2.
type filterKind int

const (
	selectionNode    filterKind = iota // §6.2.4: empty leaf
	contentMatchNode                   // §6.2.5: leaf with non-whitespace text
	containmentNode                    // §6.2.3: has child elements
)

func kindOf(f *Element) filterKind {
	switch {
	case len(f.Children) > 0:
		// §6.2.5: "A content match node must not contain nested
		// elements", so any node with children is a containment node;
		// mixed-content text is ignored ("Filtering of mixed content is
		// not supported").
		return containmentNode
	case trimXMLSpace(f.Text) == "":
		// §6.2.4: "an empty leaf node can be declared either with an
		// empty tag (e.g., <foo/>) or with explicit start and end tags
		// (e.g., <foo> </foo>). Any whitespace characters are ignored in
		// this form." §6.2.5 agrees: whitespace-only content is a
		// selection node.
		return selectionNode
	default:
		return contentMatchNode
	}
}

// trimXMLSpace removes leading and trailing XML white space (space, tab,
// CR, LF: XML 1.0 production S). §6.2.5: "Leading and trailing whitespace
// characters are ignored, but any whitespace characters within a block of
// text characters are not ignored or modified."
func trimXMLSpace(s string) string {
	return strings.Trim(s, " \t\r\n")
}

// nodeMatches reports whether data node d is an instance of filter node f
// by name, namespace and attributes, ignoring content and children.
func nodeMatches(f, d *Element) bool {
	if f.Name.Local != d.Name.Local {
		return false
	}
	// §6.2.1: a filter node in a namespace matches only data in that
	// namespace. A filter node without a namespace (xmlns="" or none
	// declared) is taken as a wildcard matching any namespace, as
	// RFC 6241 allows servers to do for the namespace wildcard.
	if f.Name.Space != "" && f.Name.Space != d.Name.Space {
		return false
	}
	// §6.2.2: "the selected data MUST have matching values for every
	// attribute specified in the node. If an element is not defined to
	// include a specified attribute, then it is not selected." Attribute
	// names, namespaces included, must match exactly.
	for _, fa := range f.Attrs {
		v, ok := d.Attr(fa.Name.Space, fa.Name.Local)
		if !ok || v != fa.Value {
			return false
		}
	}
	return true
}

// contentMatches reports whether data node d satisfies content match node
// f (§6.2.5): same name, namespace and attributes, d is a leaf, and the
// texts are equal once leading and trailing white space is removed.
func contentMatches(f, d *Element) bool {
	// Data with child elements never matches: "A content match node ...
	// represents an exact-match filter on the leaf node element content"
	// and "Filtering of mixed content is not supported".
	return len(d.Children) == 0 && nodeMatches(f, d) &&
		trimXMLSpace(d.Text) == trimXMLSpace(f.Text)
}

// evalContainment evaluates the sibling set filter (the children of a
// containment node, §6.2.3) against the children of data node d, which
// already matched that containment node by name, namespace and attributes.
// It returns what is selected of d, or nil when d is not selected.
func evalContainment(d *Element, filter []*Element) *selection {
	// §6.3: "The server first determines which types of nodes are present
	// in the sibling set and processes the nodes according to the rules
	// for their type."
	var kids map[int]*selection // allocated on first use
	set := func(i int, s *selection) {
		if kids == nil {
			kids = make(map[int]*selection)
		}
		kids[i] = merge(kids[i], s)
	}
	others := 0
	for _, f := range filter {
		if kindOf(f) != contentMatchNode {
			others++
			continue
		}
		// §6.2.5: "Multiple content match nodes (i.e., sibling nodes)
		// are logically combined in an "AND" expression." Each must be
		// satisfied by at least one data child; every child that
		// satisfies it is selected ("Each content match node in the
		// sibling set is included in the filter output"), which keeps
		// all equal leaf-list values.
		found := false
		for i, c := range d.Children {
			if contentMatches(f, c) {
				set(i, wholeSelection)
				found = true
			}
		}
		if !found {
			// §6.2.5: "If any of the sibling content match node tests
			// are "false", then no further filter processing is
			// performed on that sibling set, and none of the sibling
			// subtrees are selected by the filter, including the
			// content match node(s)."
			return nil
		}
	}
	if others == 0 {
		// §6.2.5: "If no other sibling nodes are present (i.e., only
		// content match nodes exist), then all the nodes at this level
		// in the underlying data model (and their subnodes, if any) are
		// included in the filter output."
		return wholeSelection
	}
	hasContentMatch := len(kids) > 0
	// Each data child is tested independently against each selection and
	// containment node, so list entries (repeated elements) are filtered
	// one by one, and several filter nodes of the same name (§6.4.7) each
	// contribute; merge takes the union.
	for i, c := range d.Children {
		for _, f := range filter {
			switch kindOf(f) {
			case selectionNode:
				// §6.2.4: a selection node selects the whole
				// matching data subtree. (§6.2.5 lets a server also
				// add list keys next to it; without a schema there
				// are no known keys, so none are added.)
				if nodeMatches(f, c) {
					set(i, wholeSelection)
				}
			case containmentNode:
				// §6.2.3 and §6.2.5: "If any containment nodes are
				// present in the sibling set, then they are processed
				// further and included if any nested filter criteria
				// are also met."
				if kids[i] != nil && kids[i].whole {
					continue // already selected whole; nothing to add
				}
				if nodeMatches(f, c) {
					if s := evalContainment(c, f.Children); s != nil {
						set(i, s)
					}
				}
			}
		}
	}
	// A containment node whose children selected nothing is not itself
	// selected (the §6.3 fragment did not match the data), unless its
	// content match nodes held: those are then part of the output.
	if len(kids) == 0 && !hasContentMatch {
		return nil
	}
	return &selection{kids: kids}
}
