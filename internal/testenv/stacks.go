package testenv

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// stacksLimit bounds what StacksOnFailure logs: CI shows a part of a
// failing test's output, and the goroutines that matter come first.
const stacksLimit = 48 << 10

// StacksOnFailure logs, when t has failed, the stacks of this process's
// goroutines that run the project's code (those whose stack mentions one
// of packages, e.g. "myno/bridge."), identical stacks once with their
// count. A test whose bridge runs in process then shows where an rpc
// that was never answered waited, on a machine where it cannot be rerun.
func StacksOnFailure(t testing.TB, packages ...string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Log(ProjectStacks(packages...))
	})
}

// Stacks returns the stacks of this process's goroutines that mention one
// of subs, each whole (its "goroutine N [state]:" header first).
func Stacks(subs ...string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if _, body, ok := strings.Cut(g, "\n"); ok && mentionsAny(body, subs) {
			out = append(out, g)
		}
	}
	return out
}

// ProjectStacks returns the goroutine stacks that mention one of
// packages, grouped by identical stack (goroutine ids and wait times
// left out), most frequent first, within stacksLimit bytes.
func ProjectStacks(packages ...string) string {
	counts := map[string]int{}
	for _, g := range Stacks(packages...) {
		header, body, _ := strings.Cut(g, "\n")
		// "goroutine 42 [chan receive, 3 minutes]:" → "[chan receive]"
		state := header
		if i := strings.IndexByte(header, '['); i >= 0 {
			state = header[i:]
			if j := strings.IndexByte(state, ','); j >= 0 {
				state = state[:j] + "]"
			}
		}
		counts[state+"\n"+withoutArguments(strings.TrimSpace(body))]++
	}
	stacks := make([]string, 0, len(counts))
	for s := range counts {
		stacks = append(stacks, s)
	}
	sort.Slice(stacks, func(i, j int) bool {
		if counts[stacks[i]] != counts[stacks[j]] {
			return counts[stacks[i]] > counts[stacks[j]]
		}
		return stacks[i] < stacks[j]
	})
	var out strings.Builder
	fmt.Fprintf(&out, "goroutines running %s, when the test failed:\n", strings.Join(packages, ", "))
	for i, s := range stacks {
		entry := fmt.Sprintf("%d× %s\n\n", counts[s], s)
		if out.Len()+len(entry) > stacksLimit {
			fmt.Fprintf(&out, "… %d more stacks left out\n", len(stacks)-i)
			break
		}
		out.WriteString(entry)
	}
	return out.String()
}

// withoutArguments drops the argument words of each call line ("f(0xc0…,
// 0x1)" → "f(…)"), which differ between goroutines parked at one place.
func withoutArguments(stack string) string {
	lines := strings.Split(stack, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "\t") || strings.HasPrefix(l, "created by ") {
			continue
		}
		if j := strings.LastIndexByte(l, '('); j > 0 && strings.HasSuffix(l, ")") {
			lines[i] = l[:j] + "(…)"
		}
	}
	return strings.Join(lines, "\n")
}

func mentionsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
