package yang

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"

	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// RFC 6241 Appendix A error-tags used for invalid rpc input.
const (
	TagInvalidValue     = "invalid-value"
	TagMissingElement   = "missing-element"
	TagUnknownElement   = "unknown-element"
	TagUnknownNamespace = "unknown-namespace"
	TagBadElement       = "bad-element"
	TagMalformedMessage = "malformed-message"
	TagOperationNotSupp = "operation-not-supported"
)

// RFC 7950 §15.6: a mandatory choice without a case is data-missing,
// with this error-app-tag and an error-info element of that name in the
// YANG namespace.
const (
	TagDataMissing      = "data-missing"
	AppTagMissingChoice = "missing-choice"
	NamespaceYANG       = "urn:ietf:params:xml:ns:yang:1"
)

// InputError says why an rpc's input was refused. Tag is the RFC 6241
// error-tag the NETCONF server answers with, AppTag its error-app-tag,
// Path the schema path of the offending node ("/rpc-name/leaf") and
// Element its local name, for the error-info element InfoName
// (bad-element when empty).
type InputError struct {
	Tag      string
	AppTag   string
	Path     string
	Element  string
	InfoName string
	Message  string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s at %s: %s", e.Tag, e.Path, e.Message)
}

// Call is a validated rpc invocation, ready for MQTT.
type Call struct {
	RPC  *RPC
	UUID string // the value of the device selector
	// Args are the operation's arguments in input order, without the device
	// selector, as sent on MQTT: enumeration values as the description
	// spells them (placeholders bound to UUID), numbers canonical, a
	// sub-structure as its members' values joined by ",".
	Args []string
	// Values holds each input leaf's canonical value by schema path below
	// the rpc ("colorInput", "rgbInput/red").
	Values map[string]string
}

// MaxInputBytes bounds the rpc element ParseInput accepts.
const MaxInputBytes = 1 << 20

// ParseInput checks an rpc element (the child of <rpc>, e.g.
// <funcLed_1On xmlns="urn:myno:yang:..."><uuidInput>u1</uuidInput></funcLed_1On>)
// against the module and returns the call. Errors are *InputError. Input
// nodes may come in any order; each must appear exactly once.
func (m *Module) ParseInput(rpcElement []byte) (*Call, error) {
	if len(rpcElement) > MaxInputBytes {
		return nil, &InputError{Tag: TagMalformedMessage, Path: "/", Message: fmt.Sprintf("rpc input of %d bytes exceeds %d", len(rpcElement), MaxInputBytes)}
	}
	d := xml.NewDecoder(bytes.NewReader(rpcElement))
	start, err := nextStart(d)
	if err != nil {
		return nil, &InputError{Tag: TagMalformedMessage, Path: "/", Message: err.Error()}
	}
	r := m.RPC(start.Name.Local)
	if r == nil {
		return nil, &InputError{Tag: TagOperationNotSupp, Path: "/" + start.Name.Local, Element: start.Name.Local,
			Message: fmt.Sprintf("module %s has no rpc %q", m.Name, start.Name.Local)}
	}
	if start.Name.Space != m.Namespace {
		return nil, &InputError{Tag: TagUnknownNamespace, Path: "/" + r.Name, Element: r.Name,
			Message: fmt.Sprintf("rpc %s must be in namespace %s, not %q", r.Name, m.Namespace, start.Name.Space)}
	}
	call := &Call{RPC: r, Values: map[string]string{}}
	values, err := m.readChildren(d, "/"+r.Name, func(name string) (*InputNode, bool) {
		for _, n := range r.Inputs {
			if n.Name == name {
				return n, true
			}
		}
		return nil, false
	})
	if err != nil {
		return nil, err
	}
	if err := trailing(d); err != nil {
		return nil, &InputError{Tag: TagMalformedMessage, Path: "/" + r.Name, Message: err.Error()}
	}
	if r.OneInputPerCall {
		if err := oneInput(r, values); err != nil {
			return nil, err
		}
	}
	var sent []*InputNode // the non-selector inputs on the wire, as call.Args
	for _, n := range r.Inputs {
		path := "/" + r.Name + "/" + n.Name
		v, ok := values[n.Name]
		if !ok && r.OneInputPerCall && !n.Selector() {
			continue // another case of the choice
		}
		if !ok {
			return nil, &InputError{Tag: TagMissingElement, Path: path, Element: n.Name, Message: fmt.Sprintf("mandatory input %q is missing", n.Name)}
		}
		if !n.Selector() {
			sent = append(sent, n)
		}
		if n.Input.Kind == ontology.InputStructure {
			if v.children == nil {
				return nil, &InputError{Tag: TagInvalidValue, Path: path, Element: n.Name, Message: fmt.Sprintf("%q is a container of %d leaves, not a value", n.Name, len(n.Fields))}
			}
			parts := make([]string, len(n.Fields))
			for i, fl := range n.Fields {
				fp := path + "/" + fl.Name
				raw, ok := v.children[fl.Name]
				if !ok {
					return nil, &InputError{Tag: TagMissingElement, Path: fp, Element: fl.Name, Message: fmt.Sprintf("mandatory leaf %q is missing", fl.Name)}
				}
				canon, err := fl.Type.check(raw, fp, fl.Name)
				if err != nil {
					return nil, err
				}
				parts[i] = canon
				call.Values[n.Name+"/"+fl.Name] = canon
			}
			for name := range v.children {
				if !hasField(n.Fields, name) {
					return nil, &InputError{Tag: TagUnknownElement, Path: path + "/" + name, Element: name, Message: fmt.Sprintf("%q has no member %q", n.Name, name)}
				}
			}
			call.Args = append(call.Args, strings.Join(parts, ","))
			continue
		}
		if v.children != nil {
			return nil, &InputError{Tag: TagBadElement, Path: path, Element: n.Name, Message: fmt.Sprintf("%q is a leaf and has no child elements", n.Name)}
		}
		canon, err := n.Type.check(v.text, path, n.Name)
		if err != nil {
			return nil, err
		}
		call.Values[n.Name] = canon
		if n.Selector() {
			call.UUID = canon
			continue
		}
		call.Args = append(call.Args, canon)
	}
	// Enumeration values on the wire are the description's, bound to the device.
	for i, n := range sent {
		if n.Type.builtin == "enumeration" {
			for _, e := range n.Type.enum {
				if e.Name == call.Args[i] {
					call.Args[i] = wire.Expand(e.Wire, call.UUID)
				}
			}
		}
	}
	return call, nil
}

// oneInput checks the mandatory choice of an rpc that takes one input per
// call (RPC.OneInputPerCall): none is data-missing with error-app-tag
// missing-choice (RFC 7950 §15.6), two are a bad-element (a choice has
// one case in data, §7.9).
func oneInput(r *RPC, values map[string]element) error {
	var given []string
	for _, n := range nonSelector(r.Inputs) {
		if _, ok := values[n.Name]; ok {
			given = append(given, n.Name)
		}
	}
	switch {
	case len(given) == 0:
		return &InputError{Tag: TagDataMissing, AppTag: AppTagMissingChoice, Path: "/" + r.Name, InfoName: AppTagMissingChoice, Element: OneInputChoice,
			Message: fmt.Sprintf("rpc %s takes one input per call (choice %s), and none is given", r.Name, OneInputChoice)}
	case len(given) > 1:
		return &InputError{Tag: TagBadElement, Path: "/" + r.Name + "/" + given[1], Element: given[1],
			Message: fmt.Sprintf("rpc %s takes one input per call (choice %s): %s and %s are given", r.Name, OneInputChoice, given[0], given[1])}
	}
	return nil
}

func nonSelector(ns []*InputNode) []*InputNode {
	out := make([]*InputNode, 0, len(ns))
	for _, n := range ns {
		if !n.Selector() {
			out = append(out, n)
		}
	}
	return out
}

func hasField(fs []*FieldLeaf, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// element is a child of the rpc: a leaf's text or a container's leaves.
type element struct {
	text     string
	children map[string]string
}

// readChildren reads the children of the current element up to its end.
func (m *Module) readChildren(d *xml.Decoder, path string, known func(string) (*InputNode, bool)) (map[string]element, error) {
	out := map[string]element{}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, &InputError{Tag: TagMalformedMessage, Path: path, Message: xmlErr(err)}
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return out, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, &InputError{Tag: TagBadElement, Path: path, Message: "unexpected text in rpc input"}
			}
		case xml.Comment, xml.ProcInst, xml.Directive:
			return nil, &InputError{Tag: TagMalformedMessage, Path: path, Message: "comments, processing instructions and directives are not allowed in rpc input"}
		case xml.StartElement:
			name := t.Name.Local
			cpath := path + "/" + name
			if _, ok := known(name); !ok {
				return nil, &InputError{Tag: TagUnknownElement, Path: cpath, Element: name, Message: fmt.Sprintf("unknown input %q", name)}
			}
			if t.Name.Space != m.Namespace {
				return nil, &InputError{Tag: TagUnknownNamespace, Path: cpath, Element: name, Message: fmt.Sprintf("input %q must be in namespace %s, not %q", name, m.Namespace, t.Name.Space)}
			}
			if _, dup := out[name]; dup {
				return nil, &InputError{Tag: TagBadElement, Path: cpath, Element: name, Message: fmt.Sprintf("input %q appears more than once", name)}
			}
			el, err := m.readElement(d, cpath, true)
			if err != nil {
				return nil, err
			}
			out[name] = el
		}
	}
}

// readElement reads a leaf's text or, when allowChildren, a container's
// leaves one level down. Anything deeper is refused at its first start tag,
// so hostile nesting costs nothing. Comments and processing instructions
// are not allowed inside values (libyang refuses them too).
func (m *Module) readElement(d *xml.Decoder, path string, allowChildren bool) (element, error) {
	var text strings.Builder
	var children map[string]string
	for {
		tok, err := d.Token()
		if err != nil {
			return element{}, &InputError{Tag: TagMalformedMessage, Path: path, Message: xmlErr(err)}
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if children != nil {
				if strings.TrimSpace(text.String()) != "" {
					return element{}, &InputError{Tag: TagBadElement, Path: path, Message: "mixed text and elements"}
				}
				return element{children: children}, nil
			}
			return element{text: text.String()}, nil
		case xml.CharData:
			text.Write(t)
		case xml.Comment, xml.ProcInst, xml.Directive:
			return element{}, &InputError{Tag: TagInvalidValue, Path: path, Message: "comments, processing instructions and directives are not allowed in rpc input"}
		case xml.StartElement:
			name := t.Name.Local
			if !allowChildren {
				return element{}, &InputError{Tag: TagBadElement, Path: path, Element: name, Message: fmt.Sprintf("unexpected element %q inside a leaf", name)}
			}
			cpath := path + "/" + name
			if t.Name.Space != m.Namespace {
				return element{}, &InputError{Tag: TagUnknownNamespace, Path: cpath, Element: name, Message: fmt.Sprintf("%q must be in namespace %s", name, m.Namespace)}
			}
			if children == nil {
				children = map[string]string{}
			}
			if _, dup := children[name]; dup {
				return element{}, &InputError{Tag: TagBadElement, Path: cpath, Element: name, Message: fmt.Sprintf("%q appears more than once", name)}
			}
			leaf, err := m.readElement(d, cpath, false)
			if err != nil {
				return element{}, err
			}
			children[name] = leaf.text
		}
	}
}

// trailing accepts only whitespace after the rpc element.
func trailing(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return errors.New(xmlErr(err))
		}
		if cd, ok := tok.(xml.CharData); ok && len(bytes.TrimSpace(cd)) == 0 {
			continue
		}
		return errors.New("content after the rpc element")
	}
}

func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return xml.StartElement{}, errors.New("no rpc element")
			}
			return xml.StartElement{}, errors.New(xmlErr(err))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, errors.New("text before the rpc element")
			}
		}
	}
}

func xmlErr(err error) string {
	if errors.Is(err, io.EOF) {
		return "unexpected end of XML"
	}
	return "malformed XML: " + err.Error()
}

var (
	reMQTTString  = regexp.MustCompile(`^[^;\r\n]*$`)
	reMQTTField   = regexp.MustCompile(`^[^;,\r\n]*$`)
	reHexBinary   = regexp.MustCompile(`^(?:[0-9a-fA-F]{2})*$`)
	reDateAndTime = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+\-][0-9]{2}:[0-9]{2})$`)
	reInteger     = regexp.MustCompile(`^[+-]?[0-9]+$`)
	reDecimal     = regexp.MustCompile(`^[+-]?[0-9]+(?:\.[0-9]+)?$`)
)

// check validates one leaf value and returns its canonical form. Values are
// taken exactly as written, as libyang does (" red " is not "red"), except
// that numbers may have surrounding whitespace.
func (lt *leafType) check(raw, path, elem string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", &InputError{Tag: TagInvalidValue, Path: path, Element: elem, Message: fmt.Sprintf(format, args...)}
	}
	v := raw
	switch lt.name {
	case typedefDeviceUUID:
		if !wire.ValidUUID(v) {
			return bad("%s is not a device UUID (1..128 letters, digits, '.', '_', ':', '-')", shorten(v))
		}
		return v, nil
	case typedefMQTTField:
		if !reMQTTField.MatchString(raw) {
			return bad("sub-structure members may not contain ',', ';', CR or LF")
		}
		return raw, nil
	case typedefMQTTString:
		if !reMQTTString.MatchString(raw) {
			return bad("string arguments may not contain ';', CR or LF")
		}
		return raw, nil
	case typedefHexBinary:
		if !reHexBinary.MatchString(v) {
			return bad("%s is not hexadecimal binary (two hex digits per octet)", shorten(v))
		}
		return v, nil
	case typedefDateAndTime:
		if !reDateAndTime.MatchString(v) {
			return bad("%q is not an RFC 3339 date-and-time", v)
		}
		return v, nil
	case "string":
		return raw, nil
	}
	switch lt.builtin {
	case "enumeration":
		for _, e := range lt.enum {
			if e.Name == v {
				return v, nil
			}
		}
		names := make([]string, len(lt.enum))
		for i, e := range lt.enum {
			names[i] = e.Name
		}
		return bad("%q is not one of %s", v, strings.Join(names, ", "))
	case "boolean":
		if v != "true" && v != "false" {
			return bad("%q is not a boolean (true or false)", v)
		}
		return v, nil
	case "binary":
		// RFC 4648 §3.3: no characters outside the alphabet, so no line
		// breaks (which Go's decoder would skip).
		if strings.ContainsAny(v, "\r\n \t") {
			return bad("base64 binary may not contain whitespace or line breaks")
		}
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return bad("not base64 binary (RFC 4648 §4): %v", err)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	case "decimal64":
		v = strings.TrimSpace(v)
		if !reDecimal.MatchString(v) {
			return bad("%q is not a decimal number", v)
		}
		if i := strings.IndexByte(v, '.'); i >= 0 && len(v)-i-1 > lt.fracDigs {
			return bad("%q has more than %d fraction digits", v, lt.fracDigs)
		}
		n, _ := new(big.Rat).SetString(strings.TrimPrefix(v, "+"))
		if err := lt.inRange(n); err != "" {
			return bad("%s %s", v, err)
		}
		return canonicalDecimal(n), nil
	}
	if lt.min != nil || lt.max != nil { // integer types
		v = strings.TrimSpace(v)
		if !reInteger.MatchString(v) {
			return bad("%q is not an integer", v)
		}
		n, _ := new(big.Rat).SetString(strings.TrimPrefix(v, "+"))
		if err := lt.inRange(n); err != "" {
			return bad("%s %s", v, err)
		}
		return n.Num().String(), nil
	}
	return raw, nil
}

func (lt *leafType) inRange(n *big.Rat) string {
	if (lt.min != nil && n.Cmp(lt.min) < 0) || (lt.max != nil && n.Cmp(lt.max) > 0) {
		lo, hi := "min", "max"
		if lt.min != nil {
			lo = canonicalDecimal(lt.min)
		}
		if lt.max != nil {
			hi = canonicalDecimal(lt.max)
		}
		return fmt.Sprintf("is out of range %s..%s", lo, hi)
	}
	return ""
}

func canonicalDecimal(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	s := strings.TrimRight(r.FloatString(18), "0")
	return strings.TrimSuffix(s, ".")
}

func shorten(s string) string {
	if len(s) > 32 {
		return fmt.Sprintf("%q…", s[:32])
	}
	return fmt.Sprintf("%q", s)
}
