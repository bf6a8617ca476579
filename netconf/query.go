package netconf

import (
	"context"
	"encoding/xml"
)

// Filters pushed down to the state sources.
//
// A <get> with a subtree filter (RFC 6241 §6) used to build every state
// source whole, then filter: a one-leaf get cost as much as the whole
// state, which grows with the fleet. A StateQuery lets a source, and the
// server's own monitoring state, build only what the filter can select.
// Narrowing is conservative: whatever a query cannot rule out is built,
// and the server still applies the filter to what the sources return
// (FilterSubtree), so a source that ignores the query is correct, only
// slower.

// StateQuery is what a <get> asks of the state: everything, or the
// top-level nodes of a subtree filter.
type StateQuery struct {
	filter []*Element
	all    bool
}

// AllState is the query of a <get> without a filter.
func AllState() *StateQuery { return &StateQuery{all: true} }

// FilterQuery is the query of a subtree filter; filter holds the children
// of <filter type="subtree">.
func FilterQuery(filter []*Element) *StateQuery { return &StateQuery{filter: filter} }

// All reports whether everything is asked for.
func (q *StateQuery) All() bool { return q == nil || q.all }

// Wants reports whether the query may select data in a top-level node
// named root. §6.2.5: content match nodes alone at the top level select
// every node of their namespace, so they want every root there.
func (q *StateQuery) Wants(root xml.Name) bool {
	if q.All() {
		return true
	}
	// The top level is evaluated per namespace (FilterSubtree): a
	// content match node there wants only the roots of its namespace.
	for _, f := range q.filter {
		if nameMatches(f.Name, root) || (kindOf(f) == contentMatchNode && nameSpaceMatches(f.Name.Space, root.Space)) {
			return true
		}
	}
	return false
}

// Within returns the filter's sibling set for the children of root: the
// children of every containment node naming root. whole is true when the
// filter selects root entirely, or more than the sibling set tells (a
// selection node, or top-level content match nodes in its namespace);
// children is then nil.
func (q *StateQuery) Within(root xml.Name) (children []*Element, whole bool) {
	if q.All() {
		return nil, true
	}
	return within(q.filter, root)
}

func within(filter []*Element, node xml.Name) (children []*Element, whole bool) {
	for _, f := range filter {
		switch kindOf(f) {
		case contentMatchNode:
			if nameSpaceMatches(f.Name.Space, node.Space) {
				return nil, true
			}
		case selectionNode:
			if nameMatches(f.Name, node) {
				return nil, true
			}
		case containmentNode:
			if nameMatches(f.Name, node) {
				children = append(children, f.Children...)
			}
		}
	}
	return children, false
}

// WantsChild reports whether a sibling set of filter nodes (from Within)
// may select a child named name of the node it applies to. §6.2.5: a set
// of content match nodes only selects every node at its level.
func WantsChild(siblings []*Element, name xml.Name) bool { return wantsChild(siblings, name) }

func wantsChild(siblings []*Element, name xml.Name) bool {
	onlyContentMatches := true
	for _, f := range siblings {
		if kindOf(f) != contentMatchNode {
			onlyContentMatches = false
		}
		if nameMatches(f.Name, name) {
			return true
		}
	}
	return onlyContentMatches && len(siblings) > 0
}

// ListKeys returns the values that a sibling set (from Within) gives to
// the leaf key of the list entries named entry, when every node of the set
// is such an entry with a content match on key (RFC 6241 §6.4.5, §6.4.6:
// "select one entry by its key"). ok is false when the set may select
// entries by anything else; a source then builds every entry.
func ListKeys(siblings []*Element, entry xml.Name, key string) (values []string, ok bool) {
	if len(siblings) == 0 {
		return nil, false
	}
	for _, f := range siblings {
		if kindOf(f) != containmentNode || !nameMatches(f.Name, entry) {
			return nil, false
		}
		found := false
		for _, c := range f.Children {
			if kindOf(c) == contentMatchNode && c.Name.Local == key && nameSpaceMatches(c.Name.Space, entry.Space) {
				values = append(values, trimXMLSpace(c.Text))
				found = true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return values, true
}

// nameMatches is nodeMatches by name alone (§6.2.1; attributes, §6.2.2,
// are checked on the data by FilterSubtree).
func nameMatches(filter, data xml.Name) bool {
	return filter.Local == data.Local && nameSpaceMatches(filter.Space, data.Space)
}

// nameSpaceMatches: a filter node without a namespace matches any.
func nameSpaceMatches(filter, data string) bool { return filter == "" || filter == data }

// StateSource produces state data (config false) for <get>.
type StateSource struct {
	// Roots are the top-level nodes the source produces; a <get> whose
	// filter can select none of them does not call it. Empty: it may
	// produce anything and is always called.
	Roots []xml.Name
	// Get returns the source's top-level nodes. It may build only what q
	// can select (StateQuery.Within, WantsChild, ListKeys); the server
	// applies the filter to the result.
	Get func(ctx context.Context, q *StateQuery) ([]*Element, error)
}

// wanted reports whether q may select something src produces.
func (src StateSource) wanted(q *StateQuery) bool {
	if len(src.Roots) == 0 || q.All() {
		return true
	}
	for _, r := range src.Roots {
		if q.Wants(r) {
			return true
		}
	}
	return false
}
