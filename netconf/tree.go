package netconf

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Element is a small XML tree: the form in which state data, filters and
// rpc contents move between the server and its handlers.
type Element struct {
	Name     xml.Name   // Space is the namespace URI, not a prefix
	Attrs    []xml.Attr // namespace declarations excluded
	Text     string     // character data of a leaf; "" for inner nodes
	Children []*Element
	// Prefixes are the prefixed namespace declarations made on the
	// element when parsed (prefix → URI), for the XPath expressions an
	// attribute may hold (an xpath filter's select, RFC 6241 §8.9). They
	// are not written back.
	Prefixes map[string]string
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

// Limits bound what ParseElement accepts from a peer. A zero field takes
// its default. The defaults are far above what NETCONF clients send (an
// <rpc> with xmlns and message-id, an operation attribute or a few
// namespace declarations on an element, names of a few dozen bytes) and
// bound the memory one message can cost: without them, 1.4 million empty
// attributes in a 15.7 MB <rpc> cost 340 MB and more before any check ran
// (issue 12). All of them are counted by scanXML on the raw bytes, before
// encoding/xml builds a start tag.
type Limits struct {
	MaxDepth    int // nesting depth; 0 means 64
	MaxElements int // elements in one document; 0 means 100,000
	// MaxAttributes bounds the attributes of one start tag, namespace
	// declarations included; 0 means 256.
	MaxAttributes int
	// MaxDocumentAttributes bounds the attributes of the whole document,
	// namespace declarations included; 0 means 100,000. Without it, 64
	// attributes on each of 35,000 elements of a 15.7 MB <rpc>, no start
	// tag beyond the other limits, cost 562 MB.
	MaxDocumentAttributes int
	// MaxStartTagBytes bounds one start tag, from its '<' to its '>'
	// (attribute values included); 0 means 256 KiB.
	MaxStartTagBytes int
	// MaxNameBytes bounds one name of an element, attribute or processing
	// instruction, prefix included; 0 means 1024.
	MaxNameBytes int
}

// withDefaults returns l with every zero or negative field set to its
// default.
func (l Limits) withDefaults() Limits {
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxDepth, 64)
	set(&l.MaxElements, 100_000)
	set(&l.MaxAttributes, 256)
	set(&l.MaxDocumentAttributes, 100_000)
	set(&l.MaxStartTagBytes, 256<<10)
	set(&l.MaxNameBytes, 1024)
	return l
}

// ErrXMLLimit is returned when a document exceeds Limits.
var ErrXMLLimit = errors.New("xml: document exceeds limits")

// ParseElement decodes one XML document into a tree. DTDs are refused, so
// no entity can be declared, let alone expanded; encoding/xml never
// expands external entities and knows only the five predefined ones.
// Non-UTF-8 input is an error (encoding/xml checks every character).
//
// The limits are checked first by scanXML, in one pass over data with no
// allocation: encoding/xml builds a whole start tag, every attribute with
// its namespace translated, before it returns the token, so a check on
// the tokens comes after the memory is spent.
func ParseElement(data []byte, lim Limits) (*Element, error) {
	lim = lim.withDefaults()
	if err := scanXML(data, lim); err != nil {
		return nil, err
	}
	return parseTree(data, lim)
}

// parseTree is ParseElement after the scan: the tree, built by
// encoding/xml. The depth and element checks here repeat scanXML's.
func parseTree(data []byte, lim Limits) (*Element, error) {
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
			return nil, shortError(err)
		}
		// Comments, character data and the rest count too: they cost
		// work without being elements.
		if tokens++; tokens > 4*lim.MaxElements {
			return nil, fmt.Errorf("%w: more than %d tokens", ErrXMLLimit, 4*lim.MaxElements)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, errDirective
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
				if a.Name.Space == "xmlns" {
					if e.Prefixes == nil {
						e.Prefixes = map[string]string{}
					}
					e.Prefixes[a.Name.Local] = a.Value
					continue
				}
				if a.Name.Space == "" && a.Name.Local == "xmlns" {
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
	var seen map[xml.Name]bool // past a few attributes, so that the check stays linear
	if len(t.Attr) > 16 {
		seen = make(map[xml.Name]bool, len(t.Attr))
	}
	for i, a := range t.Attr {
		if !isNCName(a.Name.Local) {
			return fmt.Errorf("xml: attribute name %q is not an XML name", a.Name.Local)
		}
		twice := false
		if seen != nil {
			twice = seen[a.Name]
			seen[a.Name] = true
		} else {
			for _, b := range t.Attr[:i] {
				twice = twice || a.Name == b.Name
			}
		}
		if twice {
			return fmt.Errorf("xml: attribute %q given twice in <%s>", a.Name.Local, t.Name.Local)
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

// errDirective refuses a DTD or another directive (XML 1.0 §2.8).
var errDirective = errors.New("xml: DTDs and directives are not allowed")

// maxErrorText bounds the text of an encoding/xml error passed on.
const maxErrorText = 256

// xmlError is an encoding/xml error with its text cut to maxErrorText
// bytes: the text can quote a whole name or entity reference of the input
// (megabytes of it), and it goes back to the peer in the rpc-error.
type xmlError struct {
	text string
	err  error
}

func (e *xmlError) Error() string { return e.text }
func (e *xmlError) Unwrap() error { return e.err }

func shortError(err error) error {
	text := err.Error()
	if len(text) > maxErrorText {
		text = strings.ToValidUTF8(text[:maxErrorText], "") + "..."
	}
	return &xmlError{text: "xml: " + text, err: err}
}

// scanXML checks lim over data before encoding/xml reads it: one pass,
// no allocation, a few counters. encoding/xml builds a whole start tag,
// every attribute with its namespace translated, before it returns the
// token; this scan counts the attributes, the bytes of the start tag, the
// length of each name and the nesting depth as it goes, and stops at the
// first limit exceeded with an error wrapping ErrXMLLimit.
//
// It reads enough of XML 1.0 (Fifth Edition) to find every start tag where
// encoding/xml finds one:
//
//   - character data (§2.4) runs to the next '<'; the references in it
//     (§4.1) are left to encoding/xml;
//   - a comment (§2.5) runs from "<!--" to the next "--", which must be
//     followed by '>';
//   - a processing instruction (§2.6) is "<?", a target name, and anything
//     up to the next "?>";
//   - a CDATA section (§2.7) runs from "<![CDATA[" to the next "]]>";
//   - a document type declaration (§2.8) or any other "<!" markup is
//     refused, as ParseElement refuses it;
//   - a start tag or empty-element tag (§3.1 STag, EmptyElemTag) is '<', a
//     name, attributes (§3.1 Attribute: a name, Eq of §2.3, an AttValue of
//     §2.3 in either quote, which may hold '>' and the other quote but no
//     '<', §3.1 "WFC: No < in Attribute Values"), then '>' or "/>"; an end
//     tag (§3.1 ETag) is "</", a name, S? and '>'.
//
// Names are delimited as encoding/xml delimits them: ASCII letters, digits,
// '_', ':', '.', '-' and any non-ASCII byte (§2.3 NameChar; encoding/xml
// checks the characters afterwards). White space is §2.3 S. Like
// encoding/xml, it does not require white space between two attributes.
//
// Markup it cannot read is a syntax error, and encoding/xml refuses that
// markup too: a document that encoding/xml and ParseElement accept is
// refused only for a limit (FuzzScanXML and TestScanXMLAcceptsValid check
// both directions). Character validity, entity references, matching end
// tags and the single root are left to encoding/xml.
func scanXML(data []byte, lim Limits) error {
	depth, elements, docAttrs := 0, 0, 0
	i := 0
	for {
		j := bytes.IndexByte(data[i:], '<')
		if j < 0 {
			return nil
		}
		start := i + j
		i = start + 1
		if i == len(data) {
			return scanSyntax(start, "the document ends after <")
		}
		switch data[i] {
		case '/': // ETag ::= '</' Name S? '>'
			i++
			n := scanName(data[i:], lim.MaxNameBytes)
			if n == 0 {
				return scanSyntax(start, "no name after </")
			}
			if n > lim.MaxNameBytes {
				return scanLimit(start, "a name longer than %d bytes", lim.MaxNameBytes)
			}
			i = skipSpace(data, i+n)
			if i == len(data) || data[i] != '>' {
				return scanSyntax(start, "end tag not closed by >")
			}
			i++
			if depth == 0 {
				return scanSyntax(start, "end tag without a start tag")
			}
			depth--
		case '?': // PI ::= '<?' PITarget (S (Char* - (Char* '?>' Char*)))? '?>'
			i++
			n := scanName(data[i:], lim.MaxNameBytes)
			if n == 0 {
				return scanSyntax(start, "no target name after <?")
			}
			if n > lim.MaxNameBytes {
				return scanLimit(start, "a name longer than %d bytes", lim.MaxNameBytes)
			}
			k := bytes.Index(data[i+n:], []byte("?>"))
			if k < 0 {
				return scanSyntax(start, "processing instruction not closed by ?>")
			}
			i += n + k + 2
		case '!':
			rest := data[i+1:]
			switch {
			case bytes.HasPrefix(rest, []byte("--")):
				// Comment ::= '<!--' ((Char - '-') | ('-' (Char - '-')))* '-->'
				i += 3
				k := bytes.Index(data[i:], []byte("--"))
				if k < 0 {
					return scanSyntax(start, "comment not closed by -->")
				}
				i += k + 2
				if i == len(data) || data[i] != '>' {
					return scanSyntax(start, `"--" inside a comment`)
				}
				i++
			case bytes.HasPrefix(rest, []byte("[CDATA[")):
				// CDSect ::= '<![CDATA[' CData ']]>'
				i += 8
				k := bytes.Index(data[i:], []byte("]]>"))
				if k < 0 {
					return scanSyntax(start, "CDATA section not closed by ]]>")
				}
				i += k + 3
			case len(rest) > 0 && (rest[0] == '-' || rest[0] == '['):
				return scanSyntax(start, "<! neither a comment nor a CDATA section")
			default:
				return errDirective
			}
		default:
			// STag ::= '<' Name (S Attribute)* S? '>'
			// EmptyElemTag ::= '<' Name (S Attribute)* S? '/>'
			// The whole tag must lie within w.
			w, cut := data, false
			if len(data)-start > lim.MaxStartTagBytes {
				w, cut = data[:start+lim.MaxStartTagBytes], true
			}
			unclosed := func() error {
				if cut {
					return scanLimit(start, "a start tag longer than %d bytes", lim.MaxStartTagBytes)
				}
				return scanSyntax(start, "the document ends inside a start tag")
			}
			n := scanName(w[i:], lim.MaxNameBytes)
			if i+n == len(w) {
				return unclosed()
			}
			if n == 0 {
				return scanSyntax(start, "no name after <")
			}
			if n > lim.MaxNameBytes {
				return scanLimit(start, "a name longer than %d bytes", lim.MaxNameBytes)
			}
			if elements++; elements > lim.MaxElements {
				return scanLimit(start, "more than %d elements", lim.MaxElements)
			}
			if depth >= lim.MaxDepth {
				return scanLimit(start, "nesting deeper than %d", lim.MaxDepth)
			}
			i += n
			attrs := 0
		tag:
			for {
				i = skipSpace(w, i)
				if i == len(w) {
					return unclosed()
				}
				switch w[i] {
				case '>':
					i++
					depth++
					break tag
				case '/':
					if i+1 == len(w) {
						return unclosed()
					}
					if w[i+1] != '>' {
						return scanSyntax(start, "/ not followed by > in a start tag")
					}
					i += 2
					break tag
				}
				// Attribute ::= Name Eq AttValue
				n := scanName(w[i:], lim.MaxNameBytes)
				if n == 0 {
					return scanSyntax(start, "no attribute name in a start tag")
				}
				if n > lim.MaxNameBytes {
					return scanLimit(start, "a name longer than %d bytes", lim.MaxNameBytes)
				}
				if attrs++; attrs > lim.MaxAttributes {
					return scanLimit(start, "more than %d attributes in one start tag", lim.MaxAttributes)
				}
				if docAttrs++; docAttrs > lim.MaxDocumentAttributes {
					return scanLimit(start, "more than %d attributes in the document", lim.MaxDocumentAttributes)
				}
				// Eq ::= S? '=' S?
				i = skipSpace(w, i+n)
				if i == len(w) {
					return unclosed()
				}
				if w[i] != '=' {
					return scanSyntax(start, "attribute without =")
				}
				i = skipSpace(w, i+1)
				if i == len(w) {
					return unclosed()
				}
				// AttValue ::= '"' ([^<&"] | Reference)* '"' | "'" ([^<&'] | Reference)* "'"
				q := w[i]
				if q != '"' && q != '\'' {
					return scanSyntax(start, "attribute value not quoted")
				}
				k := bytes.IndexByte(w[i+1:], q)
				if k < 0 {
					return unclosed()
				}
				if bytes.IndexByte(w[i+1:i+1+k], '<') >= 0 {
					return scanSyntax(start, "< inside an attribute value")
				}
				i += k + 2
			}
		}
	}
}

func scanLimit(at int, format string, arg int) error {
	return fmt.Errorf("%w: %s (at byte %d)", ErrXMLLimit, fmt.Sprintf(format, arg), at)
}

func scanSyntax(at int, what string) error {
	return fmt.Errorf("xml: syntax error at byte %d: %s", at, what)
}

// scanName returns the length of the name at the start of b as
// encoding/xml delimits it, looking at no more than max+1 bytes.
func scanName(b []byte, max int) int {
	if len(b) > max+1 {
		b = b[:max+1]
	}
	for i, c := range b {
		if c < utf8.RuneSelf && !isNameByte(c) {
			return i
		}
	}
	return len(b)
}

// isNameByte is encoding/xml's: an ASCII byte that may be part of a name.
func isNameByte(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '_' || c == ':' || c == '.' || c == '-'
}

// skipSpace returns the index of the first byte at or after i in b that
// is not XML white space (XML 1.0 §2.3 S).
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
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
