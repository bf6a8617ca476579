package netconf

import (
	"strings"
	"testing"
)

// antchfx/xpath selects nothing for "p:*": compileXPath rewrites it.
func TestPrefixWildcards(t *testing.T) {
	ns := map[string]string{"d": "urn:d", "q-1": "urn:q'1"}
	for _, tc := range []struct{ in, want string }{
		{"/d:*", "/*[namespace-uri()='urn:d']"},
		{"/d:*/d:item", "/*[namespace-uri()='urn:d']/d:item"},
		{"child::d:*[1]", "child::*[namespace-uri()='urn:d'][1]"},
		{"//q-1:*", `//*[namespace-uri()="urn:q'1"]`},
		{"/x:*", "/x:*"},                         // undeclared: the compiler refuses it
		{"//d:a[. = 'd:*']", "//d:a[. = 'd:*']"}, // a literal is left alone
		{"child::*", "child::*"},
		{"/d:a * 2", "/d:a * 2"},
	} {
		if got := prefixWildcards(tc.in, ns); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
	data := []*Element{NewNode("urn:d", "state", NewLeaf("urn:d", "x", "1")), NewNode("urn:e", "other")}
	expr, err := compileXPath("/d:*", ns)
	if err != nil {
		t.Fatal(err)
	}
	out, err := FilterXPath(data, expr)
	if err != nil || len(out) != 1 || out[0].Name.Local != "state" {
		t.Errorf("/d:* selected %v (%v), want the one node of urn:d", out, err)
	}
}

// FuzzPrefixWildcards: any expression; one without ":*" comes back as it
// is, and the rewrite never panics.
func FuzzPrefixWildcards(f *testing.F) {
	for _, s := range []string{"/d:*", "child::d:*[1]", "'d:*'", `"`, "d:", ":*", "d:*:*"} {
		f.Add(s)
	}
	ns := map[string]string{"d": "urn:d"}
	f.Fuzz(func(t *testing.T, expr string) {
		out := prefixWildcards(expr, ns)
		if !strings.Contains(expr, ":*") && out != expr {
			t.Fatalf("%q rewritten to %q", expr, out)
		}
	})
}
