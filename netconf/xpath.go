package netconf

import (
	"fmt"
	"strings"

	"github.com/antchfx/xpath"
)

// XPath filters (RFC 6241 §8.9, :xpath), evaluated with
// github.com/antchfx/xpath, a maintained XPath 1.0 engine, over the
// data a <get> or <get-data> would return whole. Its one known gap: a
// name test "p:*" selects nothing (v1.3.9 compares the empty local name),
// so compileXPath rewrites it to "*[namespace-uri()='…']", which does what
// it means (prefixWildcards).

// CapXPath is the :xpath capability (RFC 6241 §8.9).
const CapXPath = "urn:ietf:params:netconf:capability:xpath:1.0"

// compileXPath compiles a filter's select expression with the namespace
// prefixes in scope on the filter element.
func compileXPath(expr string, namespaces map[string]string) (*xpath.Expr, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingAttribute, Message: "an xpath filter needs a select expression"}).
			WithInfo("bad-attribute", "select").WithInfo("bad-element", "filter")
	}
	e, err := xpath.CompileWithNS(prefixWildcards(expr, namespaces), namespaces)
	if err != nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("xpath %q: %v", expr, err)}).
			WithInfo("bad-attribute", "select").WithInfo("bad-element", "filter")
	}
	// A filter selects nodes: an expression of another type (a count, a
	// comparison) is refused now, not found to select nothing later.
	empty := &Element{}
	if _, ok := e.Evaluate(&elementNav{root: empty, path: []*Element{empty}, idx: []int{0}, attr: -1}).(*xpath.NodeIterator); !ok {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("xpath %q is not a node-set", expr)}).
			WithInfo("bad-attribute", "select").WithInfo("bad-element", "filter")
	}
	return e, nil
}

// prefixWildcards rewrites each name test "p:*" (any name in p's
// namespace, XPath 1.0 §2.3) whose prefix is declared to
// "*[namespace-uri()='…']", which antchfx/xpath evaluates as XPath
// means; it selects nothing for "p:*" itself. String literals are left
// as they are, and an undeclared prefix is left for the compiler to
// refuse.
func prefixWildcards(expr string, namespaces map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(expr); {
		c := expr[i]
		if c == '\'' || c == '"' { // a literal, to its closing quote
			end := strings.IndexByte(expr[i+1:], c)
			if end < 0 {
				b.WriteString(expr[i:])
				break
			}
			b.WriteString(expr[i : i+end+2])
			i += end + 2
			continue
		}
		if isNameStartByte(c) && (i == 0 || expr[i-1] == ':' || !isNameByte(expr[i-1])) {
			j := i + 1
			for j < len(expr) && isNameByte(expr[j]) && expr[j] != ':' {
				j++
			}
			if j+1 < len(expr) && expr[j] == ':' && expr[j+1] == '*' && (j+2 == len(expr) || expr[j+2] != ':') {
				if uri, ok := namespaces[expr[i:j]]; ok {
					quote := "'"
					if strings.Contains(uri, "'") {
						quote = `"`
					}
					b.WriteString("*[namespace-uri()=" + quote + uri + quote + "]")
					i = j + 2
					continue
				}
			}
			b.WriteString(expr[i:j])
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

// isNameStartByte reports whether c may start an NCName (ASCII; other
// characters are left as they are).
func isNameStartByte(c byte) bool { return c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

// FilterXPath returns what expr selects in data: each selected node with
// its whole subtree, inside copies of its ancestors (RFC 6241 §8.9). A
// selected attribute or text selects its element. An expression that
// does not evaluate to a node-set is invalid-value.
func FilterXPath(data []*Element, expr *xpath.Expr) ([]*Element, error) {
	root := &Element{Children: data}
	nav := &elementNav{root: root, path: []*Element{root}, idx: []int{0}, attr: -1}
	var selected map[*Element]bool
	switch v := expr.Evaluate(nav).(type) {
	case *xpath.NodeIterator:
		selected = map[*Element]bool{}
		for v.MoveNext() {
			n := v.Current().(*elementNav)
			selected[n.path[len(n.path)-1]] = true
		}
	default:
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue,
			Message: fmt.Sprintf("xpath %q is a %T, not a node-set", expr.String(), v)}).WithInfo("bad-attribute", "select")
	}
	if selected[root] {
		return data, nil
	}
	var out []*Element
	for _, e := range data {
		if c := pruneTo(e, selected); c != nil {
			out = append(out, c)
		}
	}
	return out, nil
}

// pruneTo is e if selected, else a copy of e holding only the children
// that lead to a selected node; nil if none does.
func pruneTo(e *Element, selected map[*Element]bool) *Element {
	if selected[e] {
		return e
	}
	var kept []*Element
	for _, c := range e.Children {
		if p := pruneTo(c, selected); p != nil {
			kept = append(kept, p)
		}
	}
	if kept == nil {
		return nil
	}
	return &Element{Name: e.Name, Attrs: e.Attrs, Children: kept}
}

// elementNav is an xpath.NodeNavigator over an Element tree under a
// document root. It matches names by namespace URI (NamespaceURL), so
// the expression's prefixes need not be those of the data.
type elementNav struct {
	root *Element
	path []*Element // from root to the current element
	idx  []int      // idx[i]: where path[i] is among path[i-1]'s children
	attr int        // the current attribute of the current element, or -1
	text bool       // on the current element's text
}

func (n *elementNav) cur() *Element { return n.path[len(n.path)-1] }

func (n *elementNav) NodeType() xpath.NodeType {
	switch {
	case n.attr >= 0:
		return xpath.AttributeNode
	case n.text:
		return xpath.TextNode
	case len(n.path) == 1:
		return xpath.RootNode
	}
	return xpath.ElementNode
}

func (n *elementNav) LocalName() string {
	switch {
	case n.attr >= 0:
		return n.cur().Attrs[n.attr].Name.Local
	case n.text:
		return ""
	}
	return n.cur().Name.Local
}

func (n *elementNav) NamespaceURL() string {
	switch {
	case n.attr >= 0:
		return n.cur().Attrs[n.attr].Name.Space
	case n.text:
		return ""
	}
	return n.cur().Name.Space
}

func (n *elementNav) Prefix() string { return "" }

// Value is the node's string-value (XPath 1.0 §5): an element's is the
// text of all its descendants.
func (n *elementNav) Value() string {
	switch {
	case n.attr >= 0:
		return n.cur().Attrs[n.attr].Value
	case n.text:
		return n.cur().Text
	}
	var b strings.Builder
	var walk func(*Element)
	walk = func(e *Element) {
		b.WriteString(e.Text)
		for _, c := range e.Children {
			walk(c)
		}
	}
	walk(n.cur())
	return b.String()
}

func (n *elementNav) Copy() xpath.NodeNavigator {
	c := *n
	c.path = append([]*Element(nil), n.path...)
	c.idx = append([]int(nil), n.idx...)
	return &c
}

func (n *elementNav) MoveToRoot() {
	n.path, n.idx, n.attr, n.text = n.path[:1], n.idx[:1], -1, false
}

func (n *elementNav) MoveToParent() bool {
	switch {
	case n.attr >= 0:
		n.attr = -1
	case n.text:
		n.text = false
	case len(n.path) > 1:
		n.path, n.idx = n.path[:len(n.path)-1], n.idx[:len(n.idx)-1]
	default:
		return false
	}
	return true
}

func (n *elementNav) MoveToNextAttribute() bool {
	if n.text || n.attr+1 >= len(n.cur().Attrs) {
		return false
	}
	n.attr++
	return true
}

func (n *elementNav) MoveToChild() bool {
	if n.attr >= 0 || n.text {
		return false
	}
	e := n.cur()
	if len(e.Children) > 0 {
		n.path, n.idx = append(n.path, e.Children[0]), append(n.idx, 0)
		return true
	}
	if e.Text != "" && len(n.path) > 1 {
		n.text = true
		return true
	}
	return false
}

// sibling moves to the child of the parent at index i, if there is one.
func (n *elementNav) sibling(i int) bool {
	if n.attr >= 0 || n.text || len(n.path) == 1 {
		return false
	}
	parent := n.path[len(n.path)-2]
	if i < 0 || i >= len(parent.Children) {
		return false
	}
	n.path[len(n.path)-1], n.idx[len(n.idx)-1] = parent.Children[i], i
	return true
}

func (n *elementNav) MoveToFirst() bool    { return n.sibling(0) }
func (n *elementNav) MoveToNext() bool     { return n.sibling(n.idx[len(n.idx)-1] + 1) }
func (n *elementNav) MoveToPrevious() bool { return n.sibling(n.idx[len(n.idx)-1] - 1) }

func (n *elementNav) MoveTo(other xpath.NodeNavigator) bool {
	o, ok := other.(*elementNav)
	if !ok || o.root != n.root {
		return false
	}
	n.path, n.idx = append(n.path[:0], o.path...), append(n.idx[:0], o.idx...)
	n.attr, n.text = o.attr, o.text
	return true
}
