package access

import "testing"

func TestCovers(t *testing.T) {
	for _, tc := range []struct {
		pattern, filter string
		want            bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
		{"a/+", "a/b", true},
		{"a/+", "a/+", true},
		{"a/+", "a/#", false},
		{"a/+", "a/b/c", false},
		{"a/b", "a/+", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "a/+/c", true},
		{"a/#", "a/#", true},
		{"a/#", "b", false},
		{"#", "a/b", true},
		{"#", "#", true},
		{"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"+/b", "$SYS/b", false},
		{"yang/config/+/response/u1", "yang/config/create/response/u1", true},
		{"yang/config/+/response/u1", "yang/config/create/response/u2", false},
		{"yang/config/+/response/u1", "yang/config/+/response/+", false},
		{"myno/e2e/+/u1/notify", "myno/e2e/+/u1/notify", true},
		{"myno/e2e/+/u1/notify", "myno/e2e/m/u1/notify", true},
		{"myno/e2e/+/u1/notify", "myno/e2e/m/u2/notify", false},
		{"a//b", "a//b", true},
		{"a/+/b", "a//b", true},
		{"", "", true},
		{"a", "", false},
	} {
		if got := Covers(tc.pattern, tc.filter); got != tc.want {
			t.Errorf("Covers(%q, %q) = %v, want %v", tc.pattern, tc.filter, got, tc.want)
		}
	}
}

func FuzzCovers(f *testing.F) {
	f.Add("a/+/#", "a/b/c")
	f.Fuzz(func(t *testing.T, pattern, filter string) {
		if Covers(pattern, filter) && !Covers(pattern, pattern) {
			t.Fatalf("%q covers %q but not itself", pattern, filter)
		}
		if !Covers(filter, filter) && filter != "" && filter[0] != '$' {
			t.Fatalf("%q does not cover itself", filter)
		}
	})
}
