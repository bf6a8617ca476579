package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
)

// prettyXML indents an XML document (a NETCONF reply) by two spaces per
// level, one element per line, for people to read. It keeps what the
// reply means: element and attribute names with their prefixes as
// written (encoding/xml's Encoder would rename prefixed names), the
// namespace declarations, and the text of leaves character for character.
// It drops only the whitespace between elements. An element that mixes
// text and child elements is printed on one line, its text untouched.
// A document that is not well-formed (or holds no root element, or more
// than one) is returned unchanged with ok false.
func prettyXML(doc string) (pretty string, ok bool) {
	nodes, err := parseXMLNodes(doc)
	if err != nil {
		return doc, false
	}
	var b strings.Builder
	for i, n := range nodes {
		if i > 0 {
			b.WriteByte('\n')
		}
		n.writeIndented(&b, 0)
	}
	return b.String(), true
}

// xmlNode is an element, a run of text, a comment, a processing
// instruction or a directive, with the names as written in the document.
type xmlNode struct {
	kind     xmlNodeKind
	name     xml.Name // element: Space is the prefix, not the namespace
	attrs    []xml.Attr
	children []*xmlNode
	text     string // text, comment, processing instruction, directive
	target   string // processing instruction
}

type xmlNodeKind int

const (
	xmlElement xmlNodeKind = iota
	xmlText
	xmlComment
	xmlProcInst
	xmlDirective
)

var errNotWellFormed = errors.New("not well-formed")

// parseXMLNodes reads the top-level nodes of a document with
// encoding/xml's strict tokenizer. RawToken leaves prefixes as written;
// it does not match end tags to start tags, so the stack here does.
func parseXMLNodes(doc string) ([]*xmlNode, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	d.Strict = true
	root := &xmlNode{kind: xmlElement}
	stack := []*xmlNode{root}
	roots := 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 1 {
				roots++
			}
			n := &xmlNode{kind: xmlElement, name: t.Name, attrs: t.Copy().Attr}
			top.children = append(top.children, n)
			stack = append(stack, n)
		case xml.EndElement:
			if len(stack) == 1 || top.name != t.Name {
				return nil, errNotWellFormed
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 1 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errNotWellFormed // text outside the root element
				}
				continue
			}
			// Adjacent runs (text, then a CDATA section) are one text.
			if k := len(top.children); k > 0 && top.children[k-1].kind == xmlText {
				top.children[k-1].text += string(t)
			} else {
				top.children = append(top.children, &xmlNode{kind: xmlText, text: string(t)})
			}
		case xml.Comment:
			top.children = append(top.children, &xmlNode{kind: xmlComment, text: string(t)})
		case xml.ProcInst:
			top.children = append(top.children, &xmlNode{kind: xmlProcInst, target: t.Target, text: string(t.Inst)})
		case xml.Directive:
			top.children = append(top.children, &xmlNode{kind: xmlDirective, text: string(t)})
		}
	}
	if len(stack) != 1 || roots != 1 {
		return nil, errNotWellFormed
	}
	return root.children, nil
}

// writeIndented writes n at depth levels of indentation, without a
// trailing newline.
func (n *xmlNode) writeIndented(b *strings.Builder, depth int) {
	b.WriteString(strings.Repeat("  ", depth))
	if n.kind != xmlElement || !n.hasElementChildren() || n.hasText() {
		// A leaf, an empty element, text mixed with elements, or no
		// element at all: on one line, as it is.
		n.writeInline(b)
		return
	}
	n.writeStartTag(b, false)
	for _, c := range n.children {
		if c.kind == xmlText { // whitespace only: hasText is false
			continue
		}
		b.WriteByte('\n')
		c.writeIndented(b, depth+1)
	}
	b.WriteByte('\n')
	b.WriteString(strings.Repeat("  ", depth))
	n.writeEndTag(b)
}

// writeInline writes n and everything in it without adding whitespace.
func (n *xmlNode) writeInline(b *strings.Builder) {
	switch n.kind {
	case xmlText:
		b.WriteString(escapeXMLText(n.text))
	case xmlComment:
		b.WriteString("<!--")
		b.WriteString(n.text)
		b.WriteString("-->")
	case xmlProcInst:
		b.WriteString("<?")
		b.WriteString(n.target)
		if n.text != "" {
			b.WriteByte(' ')
			b.WriteString(n.text)
		}
		b.WriteString("?>")
	case xmlDirective:
		b.WriteString("<!")
		b.WriteString(n.text)
		b.WriteString(">")
	case xmlElement:
		if len(n.children) == 0 {
			n.writeStartTag(b, true)
			return
		}
		n.writeStartTag(b, false)
		for _, c := range n.children {
			c.writeInline(b)
		}
		n.writeEndTag(b)
	}
}

func (n *xmlNode) hasElementChildren() bool {
	for _, c := range n.children {
		if c.kind != xmlText {
			return true
		}
	}
	return false
}

// hasText reports whether n holds text other than whitespace.
func (n *xmlNode) hasText() bool {
	for _, c := range n.children {
		if c.kind == xmlText && strings.TrimSpace(c.text) != "" {
			return true
		}
	}
	return false
}

func (n *xmlNode) writeStartTag(b *strings.Builder, empty bool) {
	b.WriteByte('<')
	writeXMLName(b, n.name)
	for _, a := range n.attrs {
		b.WriteByte(' ')
		writeXMLName(b, a.Name)
		b.WriteString(`="`)
		b.WriteString(escapeXMLAttr(a.Value))
		b.WriteByte('"')
	}
	if empty {
		b.WriteByte('/')
	}
	b.WriteByte('>')
}

func (n *xmlNode) writeEndTag(b *strings.Builder) {
	b.WriteString("</")
	writeXMLName(b, n.name)
	b.WriteByte('>')
}

// writeXMLName writes a raw name: prefix:local, or local.
func writeXMLName(b *strings.Builder, name xml.Name) {
	if name.Space != "" {
		b.WriteString(name.Space)
		b.WriteByte(':')
	}
	b.WriteString(name.Local)
}

// escapeXMLText escapes character data. Newlines and tabs stay as they
// are, so multi-line text (a YANG module from get-schema) stays readable;
// a carriage return, which a parser would turn into a newline, becomes a
// character reference; ">" is escaped so that no "]]>" appears.
var xmlTextEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")

func escapeXMLText(s string) string { return xmlTextEscaper.Replace(s) }

// escapeXMLAttr escapes an attribute value for double quotes, with
// xml.EscapeText: it also writes tabs and newlines as character
// references, which attribute value normalization would otherwise turn
// into spaces.
func escapeXMLAttr(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
