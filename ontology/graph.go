package ontology

import (
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
	nodes map[string]*node
	blank int // blank node labels issued
}

// refusingLoader is the JSON-LD document loader: descriptions are processed
// offline, so any remote context or document is an error.
type refusingLoader struct{}

func (refusingLoader) LoadDocument(u string) (*ld.RemoteDocument, error) {
	return nil, ld.NewJsonLdError(ld.LoadingDocumentFailed, fmt.Sprintf("remote document %q refused: descriptions must be self-contained", u))
}

// buildGraph decodes JSON, expands it as JSON-LD and builds the node map.
func buildGraph(data []byte) (g *graph, err error) {
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, newError(ErrNotJSON, "", "%v", err)
	}
	switch doc.(type) {
	case map[string]any, []any:
	default:
		return nil, newError(ErrNotJSONLD, "", "top level is %s, want an object or an array", jsonKind(doc))
	}
	// json-gold is third-party code running on untrusted input: a panic in
	// it must become an error, never a crashed bridge.
	defer func() {
		if r := recover(); r != nil {
			g, err = nil, newError(ErrNotJSONLD, "", "JSON-LD processor failed: %v", r)
		}
	}()
	opts := ld.NewJsonLdOptions("")
	opts.DocumentLoader = refusingLoader{}
	proc := ld.NewJsonLdProcessor()
	expanded, err := proc.Expand(doc, opts)
	if err != nil {
		return nil, newError(ErrNotJSONLD, "", "expansion failed: %v", err)
	}
	g = &graph{nodes: map[string]*node{}}
	for _, item := range expanded {
		if obj, ok := item.(map[string]any); ok {
			g.walk(obj)
		}
	}
	if len(g.nodes) == 0 {
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
	if id == "" {
		g.blank++
		id = "_:b" + strconv.Itoa(g.blank)
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
