package netconf

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
)

// NMDA's <get-data> (RFC 8526 §3.1.1) over the datastores the YANG
// library lists (RFC 8342): running and candidate when the server has
// configuration datastores (datastore.go), and operational: running's
// configuration, which is in use, and the state.

// Namespaces of NMDA.
const (
	NSNMDA       = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
	NSDatastores = "urn:ietf:params:xml:ns:yang:ietf-datastores"
)

// opGetData answers get-data: the datastore's data that the filters
// select, in <data> of ietf-netconf-nmda.
func (s *Server) opGetData(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	var datastore string
	filter := dataFilter{}
	configFilter, maxDepth := "", 0
	for _, c := range op.Children {
		if c.Name.Space != NSNMDA || countChildren(op, c.Name) > 1 {
			return nil, unknownIn("get-data", c)
		}
		switch c.Name.Local {
		case "datastore":
			ds, err := datastoreIdentity(op, c)
			if err != nil {
				return nil, err
			}
			if ds == "candidate" && s.ds == nil {
				return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
					Message: "this server has no candidate datastore"}).WithInfo("bad-element", "datastore")
			}
			datastore = ds
		case "subtree-filter":
			filter = dataFilter{present: true, subtree: c.Children}
		case "xpath-filter": // if-feature nc:xpath
			expr, err := compileXPath(strings.TrimSpace(c.Text), inScope(op, c))
			if err != nil {
				return nil, err
			}
			filter = dataFilter{present: true, xpath: expr}
		case "config-filter":
			configFilter = strings.TrimSpace(c.Text)
			if configFilter != "true" && configFilter != "false" {
				return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
					Message: fmt.Sprintf("config-filter %q: want true or false", configFilter)}).WithInfo("bad-element", "config-filter")
			}
		case "max-depth":
			v := strings.TrimSpace(c.Text)
			if v != "unbounded" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 65535 {
					return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
						Message: fmt.Sprintf("max-depth %q: want 1 to 65535 or unbounded", v)}).WithInfo("bad-element", "max-depth")
				}
				maxDepth = n
			}
		case "with-defaults": // if-feature with-defaults (RFC 8526 §3.1.1, RFC 6243)
		default:
			// origin-filter, negated-origin-filter and with-origin
			// belong to a feature this server does not have (origin).
			return nil, unknownIn("get-data", c)
		}
	}
	if err := checkWithDefaults(op, NSNMDA); err != nil {
		return nil, err
	}
	if op.Child(NSNMDA, "subtree-filter") != nil && op.Child(NSNMDA, "xpath-filter") != nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagBadElement,
			Message: "subtree-filter and xpath-filter are a choice: give one"}).WithInfo("bad-element", "xpath-filter")
	}
	var data []*Element
	switch datastore {
	case "":
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement, Message: "<datastore> is missing"}).WithInfo("bad-element", "datastore")
	case "operational":
		// The configuration in use (Configuration.Operational) and the
		// state. config-filter true keeps configuration, false the state
		// (RFC 8526 §3.1.1).
		var err error
		if data, err = s.stateData(ctx, sess, filter, configUsed, configFilter != "false", configFilter != "true"); err != nil {
			return nil, err
		}
	case "running", "candidate":
		// Configuration only: config-filter false selects nothing.
		if s.ds != nil && configFilter != "false" && !filter.empty() {
			var err error
			if data, err = filter.apply(s.ds.visible(datastore)); err != nil {
				return nil, err
			}
		}
	}
	if maxDepth > 0 {
		data = pruneDepth(data, maxDepth)
	}
	return []*Element{NewNode(NSNMDA, "data", data...)}, nil
}

// datastoreIdentity reads <datastore>, an identityref to a datastore of
// ietf-datastores, its prefix declared in scope; only running and
// operational exist here.
func datastoreIdentity(op, e *Element) (string, error) {
	prefix, name, ok := strings.Cut(strings.TrimSpace(e.Text), ":")
	if !ok {
		return "", (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
			Message: fmt.Sprintf("datastore %q: want a prefixed identity, e.g. ds:operational", e.Text)}).WithInfo("bad-element", "datastore")
	}
	if ns := inScope(op, e)[prefix]; ns != NSDatastores {
		return "", (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
			Message: fmt.Sprintf("datastore %q: prefix %q is bound to %q, not %s", e.Text, prefix, ns, NSDatastores)}).WithInfo("bad-element", "datastore")
	}
	if name != "running" && name != "operational" && name != "candidate" {
		return "", (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
			Message: fmt.Sprintf("datastore %s is not supported here: running, candidate and operational are", name)}).WithInfo("bad-element", "datastore")
	}
	return name, nil
}

// inScope are the prefixes declared on the operation (and <rpc>) and on
// its child e.
func inScope(op, e *Element) map[string]string {
	scope := map[string]string{}
	maps.Copy(scope, op.Prefixes)
	maps.Copy(scope, e.Prefixes)
	return scope
}

// unknownIn is unknown-element for child c of operation op.
func unknownIn(op string, c *Element) error {
	return (&RPCError{Type: ErrTypeProtocol, Tag: TagUnknownElement,
		Message: fmt.Sprintf("unexpected <%s> (namespace %q) in <%s>", c.Name.Local, c.Name.Space, op)}).WithInfo("bad-element", c.Name.Local)
}

// pruneDepth keeps depth levels of each tree (RFC 8526 §3.1.1
// max-depth: the top-level nodes are at depth 1).
func pruneDepth(data []*Element, depth int) []*Element {
	out := make([]*Element, 0, len(data))
	for _, e := range data {
		c := &Element{Name: e.Name, Attrs: e.Attrs, Text: e.Text}
		if depth > 1 {
			c.Children = pruneDepth(e.Children, depth-1)
		}
		out = append(out, c)
	}
	return out
}
