package netconf

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Element is a small XML tree: the form in which state data, filters and
// rpc contents move between the server and its handlers.
type Element struct {
	Name     xml.Name   // Space is the namespace URI, not a prefix
	Attrs    []xml.Attr // namespace declarations excluded
	Text     string     // character data of a leaf; "" for inner nodes
	Children []*Element
}

// NewLeaf returns an element with text content.
func NewLeaf(space, local, text string) *Element {
	return &Element{Name: xml.Name{Space: space, Local: local}, Text: text}
}

// NewNode returns an element with children.
func NewNode(space, local string, children ...*Element) *Element {
	return &Element{Name: xml.Name{Space: space, Local: local}, Children: children}
}

// Child returns the first child with the given local name and namespace
// ("" matches any namespace), or nil.
func (e *Element) Child(space, local string) *Element {
	for _, c := range e.Children {
		if c.Name.Local == local && (space == "" || c.Name.Space == space) {
			return c
		}
	}
	return nil
}

// Attr returns the value of an attribute by local name and namespace ("" is
// an unqualified attribute).
func (e *Element) Attr(space, local string) (string, bool) {
	for _, a := range e.Attrs {
		if a.Name.Local == local && a.Name.Space == space {
			return a.Value, true
		}
	}
	return "", false
}

// xmlNamespace is bound to the prefix "xml" by definition; no other
// prefix may be declared for it (Namespaces in XML 1.0 §3).
const xmlNamespace = "http://www.w3.org/XML/1998/namespace"

var xmlLang = xml.Attr{Name: xml.Name{Space: xmlNamespace, Local: "lang"}, Value: "en"}

// Limits bound what ParseElement accepts from a peer.
type Limits struct {
	MaxDepth    int // nesting depth; 0 means 64
	MaxElements int // elements in one document; 0 means 100,000
}

// ErrXMLLimit is returned when a document exceeds Limits.
var ErrXMLLimit = errors.New("xml: document exceeds limits")

// ParseElement decodes one XML document into a tree. DTDs are refused, so
// no entity can be declared, let alone expanded; encoding/xml never
// expands external entities and knows only the five predefined ones.
// Non-UTF-8 input is an error (encoding/xml checks every character).
func ParseElement(data []byte, lim Limits) (*Element, error) {
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = 64
	}
	if lim.MaxElements <= 0 {
		lim.MaxElements = 100_000
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	var root *Element
	var stack []*Element
	var texts []*strings.Builder // text of each open element, kept apart so that appending stays linear
	count, tokens := 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("xml: %w", err)
		}
		// Comments, character data and the rest count too: they cost
		// work without being elements.
		if tokens++; tokens > 4*lim.MaxElements {
			return nil, fmt.Errorf("%w: more than %d tokens", ErrXMLLimit, 4*lim.MaxElements)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, errors.New("xml: DTDs and directives are not allowed")
		case xml.ProcInst:
			if t.Target != "xml" {
				return nil, fmt.Errorf("xml: processing instruction %q not allowed", t.Target)
			}
			if enc := procInstEncoding(string(t.Inst)); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return nil, fmt.Errorf("xml: encoding %q not supported, only UTF-8", enc)
			}
		case xml.StartElement:
			count++
			if count > lim.MaxElements {
				return nil, fmt.Errorf("%w: more than %d elements", ErrXMLLimit, lim.MaxElements)
			}
			if len(stack) >= lim.MaxDepth {
				return nil, fmt.Errorf("%w: nesting deeper than %d", ErrXMLLimit, lim.MaxDepth)
			}
			if root != nil && len(stack) == 0 {
				return nil, errors.New("xml: more than one root element")
			}
			if err := checkNames(t); err != nil {
				return nil, err
			}
			e := &Element{Name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				e.Attrs = append(e.Attrs, a)
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, e)
			} else {
				root = e
			}
			stack = append(stack, e)
			texts = append(texts, &strings.Builder{})
		case xml.EndElement:
			e := stack[len(stack)-1]
			text := texts[len(texts)-1].String()
			stack, texts = stack[:len(stack)-1], texts[:len(texts)-1]
			if len(e.Children) > 0 && strings.TrimSpace(text) == "" {
				text = ""
			}
			e.Text = text
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("xml: text outside the root element")
				}
				continue
			}
			texts[len(texts)-1].Write(t)
		}
	}
	if root == nil {
		return nil, errors.New("xml: no root element")
	}
	if len(stack) > 0 {
		return nil, errors.New("xml: unexpected end of document")
	}
	return root, nil
}

// checkNames refuses what encoding/xml lets through in a start tag: an
// element or attribute name that is not an XML name (XML 1.0 §2.3, with no
// ':' after the prefix: Namespaces in XML 1.0 §4, NCName), and an attribute
// given twice, also through two prefixes of one namespace (XML 1.0 §3.1
// "Unique Att Spec", Namespaces in XML 1.0 §6.3). Such a tree, echoed
// back, would not be well-formed XML.
func checkNames(t xml.StartElement) error {
	if !isNCName(t.Name.Local) {
		return fmt.Errorf("xml: element name %q is not an XML name", t.Name.Local)
	}
	for i, a := range t.Attr {
		if !isNCName(a.Name.Local) {
			return fmt.Errorf("xml: attribute name %q is not an XML name", a.Name.Local)
		}
		for _, b := range t.Attr[:i] {
			if a.Name == b.Name {
				return fmt.Errorf("xml: attribute %q given twice in <%s>", a.Name.Local, t.Name.Local)
			}
		}
	}
	return nil
}

// isNCName reports whether s is a non-colonised XML name.
func isNCName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !isNameStartChar(r) && (i == 0 || !isNameChar(r)) {
			return false
		}
	}
	return true
}

// isNameStartChar is XML 1.0 §2.3 NameStartChar without ':'.
func isNameStartChar(r rune) bool {
	switch {
	case r >= 'A' && r <= 'Z', r == '_', r >= 'a' && r <= 'z':
		return true
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

// isNameChar is XML 1.0 §2.3 NameChar without ':'.
func isNameChar(r rune) bool {
	return isNameStartChar(r) || r == '-' || r == '.' || r >= '0' && r <= '9' || r == 0xB7 ||
		r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040
}

func procInstEncoding(inst string) string {
	i := strings.Index(inst, "encoding=")
	if i < 0 {
		return ""
	}
	v := inst[i+len("encoding="):]
	if len(v) < 2 {
		return ""
	}
	q := v[0]
	if j := strings.IndexByte(v[1:], q); j >= 0 {
		return v[1 : 1+j]
	}
	return ""
}

// AppendXML appends e as XML. A namespace is declared where it differs from
// the enclosing element's default namespace (parentSpace).
func (e *Element) AppendXML(b *bytes.Buffer, parentSpace string) {
	b.WriteByte('<')
	b.WriteString(e.Name.Local)
	if e.Name.Space != parentSpace {
		b.WriteString(` xmlns="`)
		xmlEscape(b, e.Name.Space)
		b.WriteByte('"')
	}
	prefixes := 0
	for _, a := range e.Attrs {
		b.WriteByte(' ')
		if a.Name.Space == "xmlns" { // a prefix declaration, e.g. for identityref values
			b.WriteString("xmlns:" + a.Name.Local + `="`)
			xmlEscape(b, a.Value)
			b.WriteByte('"')
			continue
		}
		if a.Name.Space == xmlNamespace {
			b.WriteString("xml:")
		} else if a.Name.Space != "" {
			p := fmt.Sprintf("a%d", prefixes)
			prefixes++
			b.WriteString("xmlns:" + p + `="`)
			xmlEscape(b, a.Name.Space)
			b.WriteString(`" ` + p + ":")
		}
		b.WriteString(a.Name.Local)
		b.WriteString(`="`)
		xmlEscape(b, a.Value)
		b.WriteByte('"')
	}
	if len(e.Children) == 0 && e.Text == "" {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	xmlEscape(b, e.Text)
	for _, c := range e.Children {
		c.AppendXML(b, e.Name.Space)
	}
	b.WriteString("</")
	b.WriteString(e.Name.Local)
	b.WriteByte('>')
}

// String renders e as a standalone XML fragment.
func (e *Element) String() string {
	var b bytes.Buffer
	e.AppendXML(&b, "")
	return b.String()
}

func xmlEscape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s))
}
