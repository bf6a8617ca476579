package console

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	goyang "github.com/openconfig/goyang/pkg/yang"

	"github.com/myno-bridge/myno/mup/updateserver"
)

// Module is what the console shows of a bridge module: its rpcs as forms,
// read with goyang from the text get-schema returns (RFC 6022 §3.1).
type Module struct {
	Name      string
	Revision  string // from the bridge's yang-library (RFC 8525)
	Namespace string
	RPCs      []RPCForm
}

// Updatable tells whether the module's devices take firmware updates,
// and in which protocol.
func (m *Module) Updatable() (updateserver.Protocol, bool) {
	names := make([]string, len(m.RPCs))
	for i, r := range m.RPCs {
		names[i] = r.Name
	}
	return updateserver.Updatable(names)
}

// RPCForm is one rpc's input form (RFC 7950 §7.14.2).
type RPCForm struct {
	Name        string
	Description string
	Fields      []Field
	// OneOf: the fields besides the selector are the cases of a mandatory
	// choice; exactly one is sent (MUP v1's manifest rpc).
	OneOf string
	// Outputs are the rpc's output leaves besides retval.
	Outputs []string
}

// FieldKind is how a leaf is entered.
type FieldKind string

// Field kinds, from the leaf's YANG built-in type (RFC 7950 §9).
const (
	FieldEnum    FieldKind = "enum"    // a select of the enumeration's names (§9.6)
	FieldInteger FieldKind = "integer" // a number input with the range's bounds (§9.2)
	FieldDecimal FieldKind = "decimal" // a number input with the fraction digits' step (§9.3)
	FieldBoolean FieldKind = "boolean" // a select of true and false (§9.5)
	FieldBinary  FieldKind = "binary"  // a file upload, sent base64 (§9.8)
	FieldString  FieldKind = "string"  // a text input with the patterns (§9.4)
	FieldGroup   FieldKind = "group"   // a container of leaves (§7.5)
)

// Field is one input of a form.
type Field struct {
	Name        string
	Description string
	Kind        FieldKind
	Mandatory   bool
	Selector    bool     // the device selector (uuidInput): filled in, not asked
	Enum        []string // FieldEnum
	Min, Max    string   // FieldInteger, FieldDecimal: the range's bounds
	Step        string   // FieldDecimal: 10^-fraction-digits
	Pattern     string   // FieldString: an ECMAScript form of the YANG patterns, "" when none converts
	MinLength   int
	MaxLength   int     // 0: none
	Fields      []Field // FieldGroup
}

// ParseModule reads a module's YANG text with goyang and returns its rpc
// forms. selector names the device selector leaf of every rpc
// ("uuidInput").
func ParseModule(name, source, selector string) (*Module, error) {
	ms := goyang.NewModules()
	if err := ms.Parse(source, name+".yang"); err != nil {
		return nil, fmt.Errorf("module %s: %w", name, err)
	}
	if errs := ms.Process(); len(errs) > 0 {
		return nil, fmt.Errorf("module %s: %w", name, errors.Join(errs...))
	}
	mod, ok := ms.Modules[name]
	if !ok {
		return nil, fmt.Errorf("module %s: not in its own text", name)
	}
	e := goyang.ToEntry(mod)
	out := &Module{Name: name, Namespace: mod.Namespace.Name}
	for _, child := range e.Dir {
		if child.RPC == nil {
			continue
		}
		f := RPCForm{Name: child.Name, Description: child.Description}
		if in := child.RPC.Input; in != nil {
			f.Fields, f.OneOf = inputFields(in, selector)
		}
		if o := child.RPC.Output; o != nil {
			for _, leaf := range sortedChildren(o) {
				if leaf.Name != "retval" {
					f.Outputs = append(f.Outputs, leaf.Name)
				}
			}
		}
		out.RPCs = append(out.RPCs, f)
	}
	slices.SortFunc(out.RPCs, func(a, b RPCForm) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// inputFields turns an rpc's input into fields, a choice's cases in line
// (the form then sends exactly one of them).
func inputFields(in *goyang.Entry, selector string) (fields []Field, oneOf string) {
	for _, c := range sortedChildren(in) {
		switch {
		case c.IsChoice():
			oneOf = c.Name
			for _, cs := range sortedChildren(c) {
				if !cs.IsCase() { // a shorthand case: the node itself (RFC 7950 §7.9.2)
					fields = append(fields, field(cs, selector))
					continue
				}
				for _, leaf := range sortedChildren(cs) {
					fields = append(fields, field(leaf, selector))
				}
			}
		default:
			fields = append(fields, field(c, selector))
		}
	}
	// The selector first, then the inputs in their natural order.
	slices.SortStableFunc(fields, func(a, b Field) int {
		if a.Selector != b.Selector {
			if a.Selector {
				return -1
			}
			return 1
		}
		return naturalCompare(a.Name, b.Name)
	})
	return fields, oneOf
}

// sortedChildren is e's children (goyang keeps them in a map) in natural
// order of their names, the order the bridge gives inputs.
func sortedChildren(e *goyang.Entry) []*goyang.Entry {
	out := make([]*goyang.Entry, 0, len(e.Dir))
	for _, c := range e.Dir {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b *goyang.Entry) int { return naturalCompare(a.Name, b.Name) })
	return out
}

func field(e *goyang.Entry, selector string) Field {
	f := Field{Name: e.Name, Description: e.Description, Mandatory: e.Mandatory == goyang.TSTrue, Selector: e.Name == selector}
	if e.IsDir() {
		f.Kind = FieldGroup
		for _, c := range sortedChildren(e) {
			f.Fields = append(f.Fields, field(c, selector))
		}
		return f
	}
	t := e.Type
	if t == nil {
		f.Kind = FieldString
		return f
	}
	switch t.Kind {
	case goyang.Yenum:
		f.Kind, f.Enum = FieldEnum, t.Enum.Names()
	case goyang.Yint8, goyang.Yint16, goyang.Yint32, goyang.Yint64, goyang.Yuint8, goyang.Yuint16, goyang.Yuint32, goyang.Yuint64:
		f.Kind = FieldInteger
		if len(t.Range) > 0 {
			f.Min, f.Max = t.Range[0].Min.String(), t.Range[len(t.Range)-1].Max.String()
		}
	case goyang.Ydecimal64:
		f.Kind = FieldDecimal
		if len(t.Range) > 0 {
			f.Min, f.Max = t.Range[0].Min.String(), t.Range[len(t.Range)-1].Max.String()
		}
		f.Step = "0." + strings.Repeat("0", max(t.FractionDigits-1, 0)) + "1"
	case goyang.Ybool:
		f.Kind, f.Enum = FieldBoolean, []string{"true", "false"}
	case goyang.Ybinary:
		f.Kind = FieldBinary
	default:
		f.Kind = FieldString
		if len(t.Length) > 0 {
			if n, err := strconv.Atoi(t.Length[0].Min.String()); err == nil {
				f.MinLength = n
			}
			if n, err := strconv.Atoi(t.Length[len(t.Length)-1].Max.String()); err == nil {
				f.MaxLength = n
			}
		}
		f.Pattern = htmlPattern(t.Pattern)
	}
	return f
}

// htmlPattern is the YANG patterns (XSD regular expressions, anchored,
// RFC 7950 §9.4.5) as one HTML pattern attribute (ECMAScript, anchored
// by the browser), when each is a simple character class or literal that
// means the same in both: a browser check that could disagree with the
// bridge's is no check. "" when there is none or one does not convert.
func htmlPattern(patterns []string) string {
	if len(patterns) != 1 {
		return ""
	}
	p := patterns[0]
	for _, r := range p {
		// XSD's \i, \c, \p{…} and character class subtraction have no
		// ECMAScript twin; leave such patterns to the bridge.
		if r > unicode.MaxASCII {
			return ""
		}
	}
	// XSD's \i, \c, \p{…} and class subtraction have no ECMAScript
	// twin; \d, \w, \s mean other characters; ^ and $ are anchors in
	// ECMAScript and plain characters in XSD, and . differs on line
	// separators. (goyang drops modifier invert-match: a module of this
	// project never uses it.)
	for _, esc := range []string{`\i`, `\c`, `\p`, `\P`, `\d`, `\D`, `\w`, `\W`, `\s`, `\S`, "-["} {
		if strings.Contains(p, esc) {
			return ""
		}
	}
	inClass := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\':
			i++ // an escaped character
		case c == '[':
			inClass = true
		case c == ']':
			inClass = false
		case !inClass && (c == '^' || c == '$' || c == '.'):
			return ""
		}
	}
	return p
}

// naturalCompare orders names with their digit runs as numbers
// (input_2 < input_10), as the bridge orders inputs.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, _ := strconv.ParseUint(a[:da], 10, 64)
			nb, _ := strconv.ParseUint(b[:db], 10, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
