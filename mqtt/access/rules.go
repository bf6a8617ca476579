package access

import "strings"

// Rules are the topic filters an identity may publish to and subscribe
// to. A publish is allowed when a Publish filter matches its topic; a
// subscription (or a delivery) when a Subscribe filter covers its filter.
type Rules struct {
	Publish   []string
	Subscribe []string
}

// Allows reports whether the rules allow a publish to topic (write) or a
// subscription to the filter topic (!write).
func (r Rules) Allows(topic string, write bool) bool {
	filters := r.Subscribe
	if write {
		filters = r.Publish
	}
	for _, f := range filters {
		if Covers(f, topic) {
			return true
		}
	}
	return false
}

// Covers reports whether every topic that filter matches is also matched
// by pattern (MQTT 5 §4.7: '/' separates levels, '+' matches one level,
// '#' the rest, including the parent level). A topic name is a filter
// without wildcards. A filter whose first level starts with '$' is
// covered only by a pattern that names that level [MQTT-4.7.2-1].
func Covers(pattern, filter string) bool {
	if strings.HasPrefix(filter, "$") && !strings.HasPrefix(pattern, "$") {
		return false
	}
	for {
		p, prest, pmore := strings.Cut(pattern, "/")
		f, frest, fmore := strings.Cut(filter, "/")
		switch {
		case p == "#":
			return true
		case f == "#":
			return false // the filter reaches deeper than any pattern level but '#'
		case p == "+":
			// matches any one level, a '+' in the filter included
		case p != f || f == "+":
			return false
		}
		if !pmore || !fmore {
			// A pattern "a/#" also matches "a" [MQTT-4.7.1-2].
			return pmore == fmore || (pmore && prest == "#")
		}
		pattern, filter = prest, frest
	}
}
