package yang

import (
	"strconv"
	"strings"
)

// identifier turns any string into a YANG identifier (RFC 7950 §6.2):
// (ALPHA / "_") *(ALPHA / DIGIT / "_" / "-" / ".").
func identifier(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	id := b.String()
	if id == "" {
		return "_"
	}
	if c := id[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
		id = "_" + id
	}
	// RFC 6020 forbade identifiers starting with "xml"; YANG 1.1 tools
	// still warn, so avoid it.
	if len(id) >= 3 && strings.EqualFold(id[:3], "xml") {
		id = "_" + id
	}
	return id
}

// namespaceAlloc hands out unique identifiers within one YANG identifier
// namespace (a module's top level, one input, one container).
type namespaceAlloc map[string]bool

// take returns identifier(s), suffixed with _2, _3, ... if already taken.
func (a namespaceAlloc) take(s string) string {
	base := identifier(s)
	id := base
	for n := 2; a[id]; n++ {
		id = base + "_" + strconv.Itoa(n)
	}
	a[id] = true
	return id
}
