package layout

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/internal/testenv"
)

const module = "github.com/myno-bridge/myno/"

// The parts below the bridge do not import it, tests included: devices,
// brokers, codecs and the Update Server are tested without linking the
// whole bridge, and the bridge composes them, not the other way round.
// wire imports nothing of the project, and mqtt/... only each other.
func TestImportRules(t *testing.T) {
	goTool := testenv.Tool(t, "go")
	for _, tc := range []struct {
		pattern string
		allowed func(dep string) bool
	}{
		{"./mup/...", func(d string) bool { return d != "bridge" }},
		{"./devices", func(d string) bool { return d != "bridge" }},
		{"./netconf", func(d string) bool { return d != "bridge" }},
		{"./ontology", func(d string) bool { return d != "bridge" }},
		{"./yang", func(d string) bool { return d != "bridge" }},
		{"./mqtt/...", func(d string) bool {
			return strings.HasPrefix(d, "mqtt/") || strings.HasPrefix(d, "internal/") || d == "wire"
		}},
		{"./wire", func(d string) bool { return d == "wire" }},
	} {
		cmd := exec.Command(goTool, "list", "-deps", "-test", "-f", "{{.ImportPath}}", tc.pattern)
		cmd.Dir = testenv.RepoRoot(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", tc.pattern, err, out)
		}
		self := strings.TrimSuffix(strings.TrimPrefix(tc.pattern, "./"), "/...")
		checked := 0
		for _, line := range strings.Split(string(out), "\n") {
			// "pkg [pkg.test]" and "pkg.test" name test variants of pkg.
			dep, _, _ := strings.Cut(line, " ")
			dep = strings.TrimSuffix(dep, ".test")
			dep, ok := strings.CutPrefix(dep, module)
			dep = strings.TrimSuffix(dep, "_test")
			if !ok || dep == self || strings.HasPrefix(dep, self+"/") {
				continue
			}
			checked++
			if !tc.allowed(dep) {
				t.Errorf("%s depends on %s", tc.pattern, dep)
			}
		}
		if checked == 0 && tc.pattern != "./wire" {
			t.Errorf("%s: no dependency of the project seen; is the pattern right?", tc.pattern)
		}
	}
}
