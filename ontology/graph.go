package ontology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/piprate/json-gold/ld"
)

// Namespaces of the vocabulary. Terms under any of them are read by local
// name, so a MYNO term written under the oneM2M namespace is still found.
const (
	NamespaceOneM2M = "http://www.onem2m.org/ontology/Base_Ontology/base_ontology#"
	NamespaceMYNO   = "https://www.cs.uni-potsdam.de/bs/research/myno#"
	NamespaceMYNOv1 = "http://yang-netconf-mqtt#"
	NamespaceOM2    = "http://www.ontology-of-units-of-measure.org/resource/om-2/"
)

var vocabularyNamespaces = []string{NamespaceOneM2M, NamespaceMYNO, NamespaceMYNOv1, NamespaceOM2}

// term returns the local name of a vocabulary IRI.
func term(iri string) (string, bool) {
	for _, ns := range vocabularyNamespaces {
		if strings.HasPrefix(iri, ns) {
			return iri[len(ns):], true
		}
	}
	return "", false
}

// LocalName is the part of an IRI after its last '#', '/' or ':'.
func LocalName(iri string) string {
	if i := strings.LastIndexAny(iri, "#/:"); i >= 0 && i+1 < len(iri) {
		return iri[i+1:]
	}
	return iri
}

// value is one object of a property: a node reference or a literal.
type value struct {
	ref   string // IRI or blank node label when isRef
	lit   string
	isRef bool
}

// node is a subject of the description graph with its vocabulary types and
// properties keyed by local term name.
type node struct {
	id      string
	types   map[string]bool
	props   map[string][]value
	defined bool // has a type or a property, not only an @id
}

func (n *node) has(typ string) bool { return n.types[typ] }

type graph struct {
	nodes     map[string]*node
	anonymous int // labels issued to nodes without @id
}

// MaxJSONDepth bounds the nesting of a description's JSON. Real ones nest
// about 5 levels; deep nesting only serves to slow down the processor.
const MaxJSONDepth = 32

// normalizeJSON checks the nesting depth and turns JSON numbers into
// float64, except integers that float64 cannot hold exactly, which stay
// text ("18446744073709551615" is a valid unsignedLong bound).
func normalizeJSON(v any, depth int) (any, error) {
	if depth > MaxJSONDepth {
		return nil, newError(ErrNotJSONLD, "", "JSON nested deeper than %d levels", MaxJSONDepth)
	}
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		if err != nil || (!strings.ContainsAny(string(x), ".eE") && strconv.FormatFloat(f, 'f', -1, 64) != strings.TrimPrefix(string(x), "+")) {
			return string(x), nil
		}
		return f, nil
	case []any:
		for i, e := range x {
			n, err := normalizeJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[i] = n
		}
	case map[string]any:
		for k, e := range x {
			n, err := normalizeJSON(e, depth+1)
			if err != nil {
				return nil, err
			}
			x[k] = n
		}
	}
	return v, nil
}

// refusingLoader is the JSON-LD document loader: descriptions are processed
// offline, so any remote context or document is an error.
type refusingLoader struct{}

func (refusingLoader) LoadDocument(u string) (*ld.RemoteDocument, error) {
	return nil, ld.NewJsonLdError(ld.LoadingDocumentFailed, fmt.Sprintf("remote document %q refused: descriptions must be self-contained", u))
}

// buildGraph decodes JSON, expands it as JSON-LD and builds the node map.
// A document that is already in strict expanded form (see inExpandedForm)
// is read as it is: expanding it would give the same document. slowPath
// forces json-gold for every document (the differential tests compare both).
func buildGraph(data []byte, slowPath bool) (g *graph, err error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, newError(ErrNotJSON, "", "%v", err)
	}
	if dec.More() {
		return nil, newError(ErrNotJSON, "", "data after the JSON document")
	}
	if doc, err = normalizeJSON(doc, 0); err != nil {
		return nil, err
	}
	switch doc.(type) {
	case map[string]any, []any:
	default:
		return nil, newError(ErrNotJSONLD, "", "top level is %s, want an object or an array", jsonKind(doc))
	}
	g = &graph{nodes: map[string]*node{}}
	expanded, isExpanded := doc.([]any)
	if !isExpanded || slowPath || !inExpandedForm(expanded) {
		if expanded, err = expand(doc); err != nil {
			return nil, err
		}
	}
	for _, item := range expanded {
		if obj, ok := item.(map[string]any); ok {
			g.walk(obj)
		}
	}
	if !g.anyDefined() {
		return nil, newError(ErrNotJSONLD, "", "the document holds no JSON-LD nodes (missing @context?)")
	}
	return g, nil
}

// walk adds an expanded node object, and every node embedded in it, to the
// graph and returns its id. This is the node-map generation of JSON-LD
// flattening (JSON-LD 1.1 API §7.2) restricted to what the model reads:
// nodes are merged by @id, named graphs are merged into one, blank nodes
// get fresh labels.
func (g *graph) walk(obj map[string]any) string {
	id, _ := obj["@id"].(string)
	switch {
	case id == "":
		// The NUL prefix keeps the label apart from every identifier a
		// document can write. Labels depend on traversal order, so the
		// model never uses them: every node whose name matters must have
		// an @id (see reader.named).
		g.anonymous++
		id = anonymousPrefix + strconv.Itoa(g.anonymous)
	case strings.HasPrefix(id, "\x00"):
		id = "\x00" + id
	}
	n := g.nodes[id]
	if n == nil {
		n = &node{id: id, types: map[string]bool{}, props: map[string][]value{}}
		g.nodes[id] = n
	}
	for key, v := range obj {
		switch key {
		case "@id":
			continue
		case "@type":
			n.defined = true
			for _, t := range asList(v) {
				if s, ok := t.(string); ok {
					if local, ok := term(s); ok {
						n.types[local] = true
					}
				}
			}
			continue
		case "@graph", "@included":
			for _, item := range asList(v) {
				if child, ok := item.(map[string]any); ok {
					g.walk(child)
				}
			}
			continue
		case "@reverse":
			rev, _ := v.(map[string]any)
			for prop, items := range rev {
				local, known := term(prop)
				for _, item := range asList(items) {
					child, ok := item.(map[string]any)
					if !ok {
						continue
					}
					cid := g.walk(child)
					if known {
						c := g.nodes[cid]
						c.defined = true
						c.props[local] = append(c.props[local], value{ref: id, isRef: true})
					}
				}
			}
			continue
		}
		if strings.HasPrefix(key, "@") {
			continue
		}
		n.defined = true
		local, known := term(key)
		for _, item := range asList(v) {
			vs := g.values(nil, item)
			if known { // rdf:, rdfs:, owl: and foreign properties are noise
				n.props[local] = append(n.props[local], vs...)
			}
		}
	}
	return id
}

// values turns one expanded property value into literals and references,
// walking embedded nodes.
func (g *graph) values(vs []value, item any) []value {
	m, ok := item.(map[string]any)
	if !ok {
		return vs
	}
	if list, ok := m["@list"]; ok {
		for _, e := range asList(list) {
			vs = g.values(vs, e)
		}
		return vs
	}
	if lit, ok := m["@value"]; ok {
		return append(vs, value{lit: literalString(lit)})
	}
	return append(vs, value{ref: g.walk(m), isRef: true})
}

// anonymousPrefix starts the names given to nodes without @id.
const anonymousPrefix = "\x00anonymous:"

// isAnonymous reports whether id was given to a node without @id.
func isAnonymous(id string) bool { return strings.HasPrefix(id, anonymousPrefix) }

// expand runs json-gold's expansion with remote loading refused.
func expand(doc any) (expanded []any, err error) {
	// json-gold is third-party code running on untrusted input: a panic in
	// it must become an error, never a crashed bridge.
	defer func() {
		if r := recover(); r != nil {
			expanded, err = nil, newError(ErrNotJSONLD, "", "JSON-LD processor failed: %v", r)
		}
	}()
	opts := ld.NewJsonLdOptions("")
	opts.DocumentLoader = refusingLoader{}
	// JSON-LD 1.0 processing: 1.1 features such as scoped contexts let a
	// small document make the processor do unbounded work, and MYNO
	// descriptions need none of them.
	opts.ProcessingMode = ld.JsonLd_1_0
	expanded, err = ld.NewJsonLdProcessor().Expand(doc, opts)
	if err != nil {
		return nil, newError(ErrNotJSONLD, "", "expansion failed: %v", err)
	}
	return expanded, nil
}

// inExpandedForm reports whether doc is a JSON-LD document in a strict
// subset of expanded form (JSON-LD 1.1 API §5.1.2) for which expansion is
// the identity: node objects whose keys are @id, @type, @graph or absolute
// IRIs, property values that are arrays of node objects or value objects
// (@value with an optional datatype @type), no @context anywhere, no lists,
// no language tags. Anything else goes through json-gold.
func inExpandedForm(nodes []any) bool {
	c := &formCheck{absolute: map[string]bool{}}
	for _, n := range nodes {
		obj, ok := n.(map[string]any)
		if !ok || !c.node(obj, 0) {
			return false
		}
	}
	return true
}

// formCheck remembers which strings are absolute IRIs: a description
// repeats a few dozen property IRIs thousands of times.
type formCheck struct {
	absolute map[string]bool
}

// iri reports whether s is an absolute IRI to json-gold; blank node
// identifiers only where allowBlank.
func (c *formCheck) iri(s string, allowBlank bool) bool {
	if strings.HasPrefix(s, "_:") {
		return allowBlank
	}
	abs, seen := c.absolute[s]
	if !seen {
		abs = ld.IsAbsoluteIri(s)
		c.absolute[s] = abs
	}
	return abs
}

func (c *formCheck) node(obj map[string]any, depth int) bool {
	if depth > 64 {
		return false
	}
	for key, v := range obj {
		switch key {
		case "@id":
			if s, ok := v.(string); !ok || !c.iri(s, true) {
				return false
			}
		case "@type":
			types, ok := v.([]any)
			if !ok {
				return false
			}
			for _, t := range types {
				if s, ok := t.(string); !ok || !c.iri(s, false) {
					return false
				}
			}
		case "@graph":
			items, ok := v.([]any)
			if !ok {
				return false
			}
			for _, item := range items {
				child, ok := item.(map[string]any)
				if !ok || !c.node(child, depth+1) {
					return false
				}
			}
		default:
			if strings.HasPrefix(key, "@") || !c.iri(key, false) {
				return false
			}
			items, ok := v.([]any)
			if !ok {
				return false
			}
			for _, item := range items {
				child, ok := item.(map[string]any)
				if !ok {
					return false
				}
				if _, isValue := child["@value"]; isValue {
					if !c.value(child) {
						return false
					}
				} else if !c.node(child, depth+1) {
					return false
				}
			}
		}
	}
	return true
}

func (c *formCheck) value(obj map[string]any) bool {
	for key, v := range obj {
		switch key {
		case "@value":
			switch v.(type) {
			case string, float64, bool:
			default:
				return false
			}
		case "@type":
			if s, ok := v.(string); !ok || !c.iri(s, false) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func literalString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func (g *graph) anyDefined() bool {
	for _, n := range g.nodes {
		if n.defined {
			return true
		}
	}
	return false
}
