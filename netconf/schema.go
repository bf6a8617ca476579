package netconf

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
)

// NodeKind is what a schema node is (RFC 7950 §7.5–§7.8).
type NodeKind int

// Node kinds of configuration schemas.
const (
	KindContainer NodeKind = iota
	KindList
	KindLeaf
)

// SchemaNode is one node of a configuration subtree's schema: what the
// server checks an edit against. Its namespace is its ConfigRoot's.
type SchemaNode struct {
	Name string
	Kind NodeKind
	// Presence: a container that means something by existing (RFC 7950
	// §7.5.1); its mandatory leaves are required only when it exists.
	Presence bool
	// Keys are a list's key leaves, in order (RFC 7950 §7.8.2).
	Keys []string
	// Mandatory: a leaf that must exist when its parent does (RFC 7950
	// §7.6.5).
	Mandatory bool
	// Check takes a leaf's value as written and returns its canonical
	// form, or why the value is invalid (invalid-value). nil takes any.
	Check    func(value string) (string, error)
	Children []*SchemaNode
}

// child is the schema child named local, or nil.
func (n *SchemaNode) child(local string) *SchemaNode {
	for _, c := range n.Children {
		if c.Name == local {
			return c
		}
	}
	return nil
}

// order is the position of a child in the schema, for a stable output.
func (n *SchemaNode) order(local string) int {
	for i, c := range n.Children {
		if c.Name == local {
			return i
		}
	}
	return len(n.Children)
}

// isKey reports whether local is a key leaf of list n.
func (n *SchemaNode) isKey(local string) bool {
	for _, k := range n.Keys {
		if k == local {
			return true
		}
	}
	return false
}

// ConfigRoot is a top-level configuration container of a module: the
// data the configuration datastores hold (RFC 6241 §5.1, config true).
type ConfigRoot struct {
	Module    string // the module that defines it
	Namespace string
	Prefix    string // for error-path
	Node      *SchemaNode
}

// Configuration is the application's side of the configuration
// datastores (RFC 6241 §5, §8.3, §8.4): running and candidate are held
// by the server; the application stores running and makes the world
// follow it.
type Configuration struct {
	// Running is the running configuration at start (top-level nodes),
	// as Save last stored it. Rollback is the configuration before a
	// confirmed commit that was not confirmed when Save last ran: the
	// server goes back to it at start (RFC 6241 §8.4.1: a reboot before
	// the confirming commit restores the configuration before it).
	Running, Rollback []*Element
	// Save stores running after every change, and rollback while a
	// confirmed commit waits for its confirmation (nil otherwise). A
	// change Save refuses is not made.
	Save func(running, rollback []*Element) error
	// Apply makes the world follow running's change from old to next.
	// It returns what running is afterwards: next when everything took,
	// else next with what failed as it was in old (the application keeps
	// its units all-or-nothing), and the error that names what failed.
	Apply func(ctx context.Context, old, next []*Element) ([]*Element, error)
	// Check bounds a change of running or the candidate from old to next
	// (how many entries, how many bytes): an error, an *RPCError such as
	// resource-denied, refuses it before anything is stored. Going back
	// (Undoing) is not checked. nil: no bounds.
	Check func(old, next []*Element) error
	// Operational returns the configuration in use, from running: what
	// the world took (RFC 8342 §5.3). nil: running's.
	Operational func(running []*Element) []*Element
}

// AddConfigRoot makes a top-level configuration container editable. It
// goes with its module: RemoveModule removes it. Data already held under
// it is kept, and checked against the schema at the next edit.
func (s *Server) AddConfigRoot(r ConfigRoot) {
	if s.ds == nil {
		return
	}
	s.ds.view.Lock()
	s.ds.roots[xml.Name{Space: r.Namespace, Local: r.Node.Name}] = &r
	s.ds.view.Unlock()
}

// removeConfigRoots forgets the configuration schemas of module. Its data
// stays in the datastores: a device's intended configuration outlives
// its shape's last registration.
func (d *datastores) removeConfigRoots(module string) {
	if d == nil {
		return
	}
	d.view.Lock()
	defer d.view.Unlock()
	for name, r := range d.roots {
		if r.Module == module {
			delete(d.roots, name)
		}
	}
}

// dataPath is an instance path (RFC 6241 §4.3 error-path), rendered in
// the root's prefix only when an error needs it:
// /p:configuration/p:device[p:uuid='a']/p:setColor. Each step points to
// its parent, so a walk over many nodes builds no strings.
type dataPath struct {
	root   *ConfigRoot
	parent *dataPath
	local  string
	// A list entry's step: its keys are read from entry when rendered.
	entry  *Element
	schema *SchemaNode
}

func (p dataPath) child(local string) dataPath {
	parent := p
	return dataPath{root: p.root, parent: &parent, local: local}
}

// withEntry qualifies the step with the keys of list entry e.
func (p dataPath) withEntry(e *Element, sn *SchemaNode) dataPath {
	p.entry, p.schema = e, sn
	return p
}

func (p dataPath) String() string {
	var steps []string
	for q := &p; q != nil && q.local != ""; q = q.parent {
		var b strings.Builder
		b.WriteString(p.root.Prefix + ":" + q.local)
		if q.entry != nil {
			for i, k := range q.schema.Keys {
				v := entryKeys(q.entry, q.schema, p.root.Namespace)[i]
				quote := "'"
				if strings.Contains(v, "'") {
					quote = `"`
				}
				fmt.Fprintf(&b, "[%s:%s=%s%s%s]", p.root.Prefix, k, quote, v, quote)
			}
		}
		steps = append(steps, b.String())
	}
	slices.Reverse(steps)
	return "/" + strings.Join(steps, "/")
}

// errorAt is an rpc-error about the node at p.
func (p dataPath) errorAt(tag, element, format string, args ...any) *RPCError {
	e := &RPCError{Type: ErrTypeApplication, Tag: tag, Message: fmt.Sprintf(format, args...)}
	if p.root != nil && p.local != "" {
		e.Path = p.String()
		e.PathPrefixes = map[string]string{p.root.Prefix: p.root.Namespace}
	}
	if element != "" {
		e.WithInfo("bad-element", element)
	}
	return e
}
