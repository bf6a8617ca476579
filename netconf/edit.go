package netconf

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
)

// The edit-config engine (RFC 6241 §7.2): pure functions from data,
// <config> content and the schemas to new data. Data is never changed in
// place: an edited node is a new node, so a snapshot handed to readers
// stays as it was.

// editOperation is an edit-config operation (RFC 6241 §7.2, the
// operation attribute and default-operation).
type editOperation string

const (
	opMerge   editOperation = "merge"
	opReplace editOperation = "replace"
	opCreate  editOperation = "create"
	opDelete  editOperation = "delete"
	opRemove  editOperation = "remove"
	opNone    editOperation = "none" // default-operation only
)

// editor applies edits against the schemas of the configuration roots.
type editor struct {
	roots map[xml.Name]*ConfigRoot
}

// operationOf is x's operation attribute (in the base namespace), or the
// one it inherits.
func operationOf(x *Element, inherited editOperation) (editOperation, error) {
	for _, a := range x.Attrs {
		if a.Name.Space == NSBase && a.Name.Local == "operation" {
			continue
		}
		msg := fmt.Sprintf("attribute %s on <%s>: configuration nodes take only the operation attribute", a.Name.Local, x.Name.Local)
		if a.Name.Local == "operation" {
			// Taken as a merge, an unqualified operation="delete" would do
			// the opposite of what was asked.
			msg = fmt.Sprintf("operation on <%s> is in namespace %q: it must be in NETCONF's, %s (e.g. nc:operation with xmlns:nc bound to it)", x.Name.Local, a.Name.Space, NSBase)
		}
		return "", (&RPCError{Type: ErrTypeProtocol, Tag: TagUnknownAttribute, Message: msg}).
			WithInfo("bad-attribute", a.Name.Local).WithInfo("bad-element", x.Name.Local)
	}
	v, ok := x.Attr(NSBase, "operation")
	if !ok {
		return inherited, nil
	}
	switch op := editOperation(v); op {
	case opMerge, opReplace, opCreate, opDelete, opRemove:
		return op, nil
	}
	return "", (&RPCError{Type: ErrTypeProtocol, Tag: TagBadAttribute,
		Message: fmt.Sprintf("operation %q on <%s>: want merge, replace, create, delete or remove", v, x.Name.Local)}).
		WithInfo("bad-attribute", "operation").WithInfo("bad-element", x.Name.Local)
}

// root is the configuration root x edits, or the error naming why none.
func (ed editor) root(x *Element) (*ConfigRoot, error) {
	if r := ed.roots[x.Name]; r != nil {
		return r, nil
	}
	for _, r := range ed.roots {
		if r.Namespace == x.Name.Space {
			return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagUnknownElement,
				Message: fmt.Sprintf("module %s has no configuration <%s>", r.Module, x.Name.Local)}).WithInfo("bad-element", x.Name.Local)
		}
	}
	return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagUnknownNamespace,
		Message: fmt.Sprintf("no configuration in namespace %q", x.Name.Space)}).
		WithInfo("bad-element", x.Name.Local).WithInfo("bad-namespace", x.Name.Space)
}

// edit applies config (the children of <config>) to data.
func (ed editor) edit(data, config []*Element, defaultOp editOperation) ([]*Element, error) {
	out := slices.Clone(data)
	for _, x := range config {
		op, err := operationOf(x, defaultOp)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(out, func(e *Element) bool { return e.Name == x.Name })
		r, err := ed.root(x)
		if err != nil {
			// Data of a withdrawn module can still be deleted whole.
			if i >= 0 && (op == opDelete || op == opRemove) {
				out = place(out, i, nil)
				continue
			}
			return nil, err
		}
		var cur *Element
		if i >= 0 {
			cur = out[i]
		}
		p := dataPath{root: r}.child(x.Name.Local)
		n, err := ed.node(cur, x, r.Node, op, p)
		if err != nil {
			return nil, err
		}
		out = place(out, i, n)
	}
	return out, nil
}

// place puts n at i (-1: appended), or removes what is at i for nil.
func place(list []*Element, i int, n *Element) []*Element {
	switch {
	case i >= 0 && n == nil:
		return slices.Delete(list, i, i+1)
	case i >= 0:
		list[i] = n
	case n != nil:
		list = append(list, n)
	}
	return list
}

// node edits one data node: cur as it is (nil: absent), x its edit, op
// the operation in force. It returns the node after, nil for none.
func (ed editor) node(cur, x *Element, sn *SchemaNode, op editOperation, p dataPath) (*Element, error) {
	if cur == nil && sn.Kind == KindContainer && !sn.Presence {
		// A non-presence container exists whenever its parent does
		// (RFC 7950 §7.5.1): edits below it need no level to exist.
		cur = &Element{Name: x.Name}
		if op == opDelete {
			return nil, p.errorAt(TagDataMissing, x.Name.Local, "<%s> holds no data to delete", x.Name.Local)
		}
	}
	switch op {
	case opDelete:
		if cur == nil {
			return nil, p.errorAt(TagDataMissing, x.Name.Local, "nothing to delete at %s", p)
		}
		return nil, nil
	case opRemove:
		return nil, nil
	case opCreate:
		if cur != nil && (sn.Kind != KindContainer || sn.Presence) {
			return nil, p.errorAt(TagDataExists, x.Name.Local, "%s exists already", p)
		}
		return ed.build(x, sn, opMerge, p)
	case opReplace:
		return ed.build(x, sn, opReplace, p)
	case opNone:
		if cur == nil {
			return nil, p.errorAt(TagDataMissing, x.Name.Local, "%s does not exist, and default-operation none creates nothing", p)
		}
		if sn.Kind == KindLeaf {
			return cur, nil
		}
	}
	// merge, or none over an existing node
	if cur == nil || sn.Kind == KindLeaf {
		return ed.build(x, sn, op, p)
	}
	children, err := ed.children(cur.Children, x, sn, op, p)
	if err != nil {
		return nil, err
	}
	return &Element{Name: cur.Name, Children: children}, nil
}

// build makes the node x describes from nothing; its children inherit
// op.
func (ed editor) build(x *Element, sn *SchemaNode, op editOperation, p dataPath) (*Element, error) {
	if sn.Kind == KindLeaf {
		if len(x.Children) > 0 {
			return nil, p.errorAt(TagBadElement, x.Name.Local, "leaf %s holds elements", p)
		}
		v := x.Text
		if sn.Check != nil {
			canonical, err := sn.Check(v)
			if err != nil {
				return nil, p.errorAt(TagInvalidValue, x.Name.Local, "%s: %v", p, err)
			}
			v = canonical
		}
		return NewLeaf(x.Name.Space, x.Name.Local, v), nil
	}
	if strings.TrimSpace(x.Text) != "" {
		return nil, p.errorAt(TagBadElement, x.Name.Local, "%s holds text", p)
	}
	children, err := ed.children(nil, x, sn, op, p)
	if err != nil {
		return nil, err
	}
	return &Element{Name: x.Name, Children: children}, nil
}

// children edits the children cur of a node with the children of x.
func (ed editor) children(cur []*Element, x *Element, sn *SchemaNode, op editOperation, p dataPath) ([]*Element, error) {
	out := slices.Clone(cur) // a deleted node is nil until the end
	ns := p.root.Namespace
	given := map[string]bool{}
	// index finds list entries by their keys when an edit of many
	// entries meets a long list: linear, not quadratic.
	var index map[string]int
	useIndex := len(x.Children) > 8
	for _, c := range x.Children {
		if c.Name.Space != ns {
			return nil, p.child(c.Name.Local).errorAt(TagUnknownNamespace, c.Name.Local,
				"<%s> in namespace %q inside %s, whose namespace is %q", c.Name.Local, c.Name.Space, p, ns).WithInfo("bad-namespace", c.Name.Space)
		}
		csn := sn.child(c.Name.Local)
		if csn == nil {
			return nil, p.child(c.Name.Local).errorAt(TagUnknownElement, c.Name.Local, "%s has no <%s>", p, c.Name.Local)
		}
		cop, err := operationOf(c, op)
		if err != nil {
			return nil, err
		}
		cp := p.child(c.Name.Local)
		id := c.Name.Local
		find := func() int {
			return slices.IndexFunc(out, func(e *Element) bool { return e != nil && e.Name == c.Name })
		}
		if csn.Kind == KindList {
			values, err := keyValues(c, csn, ns, cp)
			if err != nil {
				return nil, err
			}
			keyed := &Element{Name: c.Name}
			for i, k := range csn.Keys {
				keyed.Children = append(keyed.Children, NewLeaf(ns, k, values[i]))
			}
			cp = cp.withEntry(keyed, csn)
			id = entryID(c.Name.Local, values)
			find = func() int {
				if useIndex {
					if index == nil {
						index = map[string]int{}
						for i, e := range out {
							if e == nil {
								continue // deleted earlier in this edit
							}
							if ls := sn.child(e.Name.Local); ls != nil && ls.Kind == KindList {
								index[entryID(e.Name.Local, entryKeys(e, ls, ns))] = i
							}
						}
					}
					if i, ok := index[id]; ok && out[i] != nil {
						return i
					}
					return -1
				}
				return slices.IndexFunc(out, func(e *Element) bool { return e != nil && e.Name == c.Name && hasKeys(e, csn, ns, values) })
			}
		}
		if sn.Kind == KindList && sn.isKey(c.Name.Local) {
			if cop != op && (cop == opDelete || cop == opRemove || cop == opCreate) {
				return nil, cp.errorAt(TagBadAttribute, c.Name.Local, "key leaf %s cannot be %sd on its own", cp, cop).WithInfo("bad-attribute", "operation")
			}
			cop = opMerge // a key identifies the entry: it is never changed
		}
		if given[id] {
			return nil, cp.errorAt(TagBadElement, c.Name.Local, "%s is given twice", cp)
		}
		given[id] = true
		i := find()
		var old *Element
		if i >= 0 {
			old = out[i]
		}
		n, err := ed.node(old, c, csn, cop, cp)
		if err != nil {
			return nil, err
		}
		if n != nil && csn.Kind == KindContainer && !csn.Presence && len(n.Children) == 0 {
			n = nil // an empty non-presence container is not data
		}
		switch {
		case i >= 0:
			out[i] = n
		case n != nil:
			out = append(out, n)
			if index != nil {
				index[id] = len(out) - 1
			}
		}
	}
	out = slices.DeleteFunc(out, func(e *Element) bool { return e == nil })
	byOrder := func(a, b *Element) int { return sn.order(a.Name.Local) - sn.order(b.Name.Local) }
	if !slices.IsSortedFunc(out, byOrder) {
		slices.SortStableFunc(out, byOrder)
	}
	return out, nil
}

// entryID names a list entry among its siblings: the list and its keys.
func entryID(list string, values []string) string {
	return list + "\x00" + strings.Join(values, "\x00")
}

// keyValues are the canonical key values list entry x gives.
func keyValues(x *Element, sn *SchemaNode, ns string, p dataPath) ([]string, error) {
	values := make([]string, len(sn.Keys))
	for i, k := range sn.Keys {
		var found *Element
		for _, c := range x.Children {
			if c.Name.Space == ns && c.Name.Local == k {
				if found != nil {
					return nil, p.child(k).errorAt(TagBadElement, k, "key %s is given twice in %s", k, p)
				}
				found = c
			}
		}
		if found == nil {
			return nil, p.errorAt(TagMissingElement, k, "list entry %s has no key %s", p, k)
		}
		v := found.Text
		if ks := sn.child(k); ks != nil && ks.Check != nil {
			canonical, err := ks.Check(v)
			if err != nil {
				return nil, p.child(k).errorAt(TagInvalidValue, k, "key %s: %v", k, err)
			}
			v = canonical
		}
		values[i] = v
	}
	return values, nil
}

// hasKeys reports whether list entry e has the key values.
func hasKeys(e *Element, sn *SchemaNode, ns string, values []string) bool {
	for i, k := range sn.Keys {
		c := e.Child(ns, k)
		if c == nil || c.Text != values[i] {
			return false
		}
	}
	return true
}

// entryKeys are a stored list entry's key values.
func entryKeys(e *Element, sn *SchemaNode, ns string) []string {
	values := make([]string, len(sn.Keys))
	for i, k := range sn.Keys {
		if c := e.Child(ns, k); c != nil {
			values[i] = c.Text
		}
	}
	return values
}

// validate checks whole data against the schemas beyond what each edit
// checks: every mandatory leaf is there (RFC 7950 §7.6.5, §8.1). Data of
// a root whose module is gone is left as it is.
func (ed editor) validate(data []*Element) error {
	var steps []pathStep // the walk's path, rendered only for an error
	for _, e := range data {
		r := ed.roots[e.Name]
		if r == nil {
			continue
		}
		steps = append(steps[:0], pathStep{local: e.Name.Local})
		if err := mandatory(e, r.Node, r, &steps); err != nil {
			return err
		}
	}
	return nil
}

// pathStep is one step of a walk's path: a node, or a list entry.
type pathStep struct {
	local  string
	entry  *Element
	schema *SchemaNode
}

// pathOf is the dataPath of a walk's steps.
func pathOf(r *ConfigRoot, steps []pathStep) dataPath {
	p := dataPath{root: r}
	for _, s := range steps {
		p = p.child(s.local)
		if s.entry != nil {
			p = p.withEntry(s.entry, s.schema)
		}
	}
	return p
}

func mandatory(e *Element, sn *SchemaNode, r *ConfigRoot, steps *[]pathStep) error {
	ns := r.Namespace
	for _, c := range sn.Children {
		switch c.Kind {
		case KindLeaf:
			if c.Mandatory && e.Child(ns, c.Name) == nil {
				p := pathOf(r, *steps)
				return p.errorAt(TagMissingElement, c.Name, "%s is mandatory in %s", c.Name, p)
			}
		case KindContainer:
			child := e.Child(ns, c.Name)
			if child == nil {
				if c.Presence {
					continue
				}
				child = &Element{} // a non-presence container's leaves are its parent's
			}
			*steps = append(*steps, pathStep{local: c.Name})
			err := mandatory(child, c, r, steps)
			*steps = (*steps)[:len(*steps)-1]
			if err != nil {
				return err
			}
		case KindList:
			for _, entry := range e.Children {
				if entry.Name.Space != ns || entry.Name.Local != c.Name {
					continue
				}
				*steps = append(*steps, pathStep{local: c.Name, entry: entry, schema: c})
				err := mandatory(entry, c, r, steps)
				*steps = (*steps)[:len(*steps)-1]
				if err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// cloneData deep-copies data.
func cloneData(data []*Element) []*Element {
	out := make([]*Element, len(data))
	for i, e := range data {
		out[i] = deepCopy(e)
	}
	return out
}

// sameData reports whether a and b hold the same nodes in the same order.
func sameData(a, b []*Element) bool {
	return slices.EqualFunc(a, b, sameElement)
}

func sameElement(a, b *Element) bool {
	return a.Name == b.Name && a.Text == b.Text && sameData(a.Children, b.Children)
}
