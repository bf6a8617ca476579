package main

import (
	"bytes"
	"strings"
	"testing"
)

// Away from a terminal, progress is plain lines, never a carriage return:
// at most one every progressEvery, and one at the end (issue 16).
func TestProgressWithoutATerminal(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 1000, "firmware dev-1", true)
	if p.bar != nil {
		t.Fatal("a progress bar on a buffer")
	}
	for n := 100; n < 1000; n += 100 {
		p.Set(n)
	}
	p.Describe("firmware dev-1 slice 10/10")
	p.Set(1000)
	if got := out.String(); got != "firmware dev-1 slice 10/10: 1000/1000 bytes (100%)\n" || strings.Contains(got, "\r") {
		t.Errorf("progress lines %q", got)
	}
	out.Reset()
	d := newProgress(&out, 2, "devices", false)
	d.Add(1)
	d.Add(1)
	if got := out.String(); got != "devices: 2/2 (100%)\n" {
		t.Errorf("device progress %q", got)
	}
}
