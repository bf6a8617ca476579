// Package testenv finds the peer tools and shared files that tests use
// (yanglint, mosquitto, ncclient, the reference samples) and decides what a
// missing one means: a skip on a developer's machine, a failure in CI
// (CI=true), where .ci/run installs them all.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// InCI reports whether the tests run in CI, where no test may skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// Tool returns the path of a peer tool, or skips (fails in CI) the test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, "peer tool %s is not installed (apt-get install it, see .ci/run): %v", name, err)
	}
	return path
}

// RepoRoot returns the repository's top directory.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testenv: cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// SharedSamples returns the reference descriptions (*.owl) from the first
// of: $MYNO_SHARED_SAMPLES, ../shared/samples beside the repository, and,
// for a clone of a local checkout, ../shared/samples beside its origin. It
// skips (fails in CI, which always has them) when none holds any.
func SharedSamples(t testing.TB) []string {
	t.Helper()
	dirs := []string{os.Getenv("MYNO_SHARED_SAMPLES"), filepath.Join(RepoRoot(t), "..", "shared", "samples")}
	if out, err := exec.Command("git", "-C", RepoRoot(t), "remote", "get-url", "origin").Output(); err == nil {
		if origin := strings.TrimSpace(string(out)); filepath.IsAbs(origin) {
			dirs = append(dirs, filepath.Join(origin, "..", "shared", "samples"))
		}
	}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "*.owl")); len(files) > 0 {
			return files
		}
	}
	missing(t, "reference samples *.owl not found in %q (set MYNO_SHARED_SAMPLES)", dirs)
	return nil
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// DebianPython returns /usr/bin/python3 once it can import module (Debian's
// Python packages live there, not in the python3 on PATH), or skips (fails
// in CI).
func DebianPython(t testing.TB, module string) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import "+module).CombinedOutput(); err != nil {
		missing(t, "%s cannot import %s (apt-get install python3-%s): %v %s", python, module, module, err, out)
	}
	return python
}

// WaitTimeout is how long WaitFor waits.
const WaitTimeout = 30 * time.Second

// WaitFor polls cond every 10 ms until it holds, and fails the test if it
// does not within WaitTimeout: tests wait on conditions with deadlines,
// never on sleeps alone. explain, if given, adds what the failure message
// should show (a log, a count).
func WaitFor(t testing.TB, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := "timed out waiting for " + what
			for _, e := range explain {
				msg += "\n" + e()
			}
			t.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
