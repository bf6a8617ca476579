package yang

import (
	"strings"
)

// writer emits YANG text with two-space indentation.
type writer struct {
	b     strings.Builder
	depth int
}

func (w *writer) line(parts ...string) {
	for i := 0; i < w.depth; i++ {
		w.b.WriteString("  ")
	}
	for _, p := range parts {
		w.b.WriteString(p)
	}
	w.b.WriteByte('\n')
}

// open writes "keyword arg {" and indents.
func (w *writer) open(keyword, arg string) {
	if arg == "" {
		w.line(keyword, " {")
	} else {
		w.line(keyword, " ", arg, " {")
	}
	w.depth++
}

func (w *writer) close() {
	w.depth--
	w.line("}")
}

// stmt writes "keyword arg;".
func (w *writer) stmt(keyword, arg string) { w.line(keyword, " ", arg, ";") }

// text writes a statement whose argument is free text (description,
// units, enum names) as a quoted string.
func (w *writer) text(keyword, s string) { w.stmt(keyword, quote(s)) }

func (w *writer) blank() { w.b.WriteByte('\n') }

// quote renders s as a YANG 1.1 double-quoted string (RFC 7950 §6.1.3):
// only \n, \t, \" and \\ are escapes, and characters outside yang-char
// (§14) are replaced by U+FFFD.
func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if !yangChar(r) {
				r = '\uFFFD'
			}
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// yangChar reports whether r may appear in YANG text (RFC 7950 §14,
// yang-char), apart from tab and newline which quote escapes.
func yangChar(r rune) bool {
	switch {
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return false
	case r >= 0xd800 && r <= 0xdfff:
		return false
	case r >= 0xfdd0 && r <= 0xfdef, r&0xfffe == 0xfffe:
		return false
	}
	return true
}
