package main

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
)

// myno rpc prints a bridge's replies indented, one element per line;
// --raw (or MYNO_RPC_RAW) prints them as received: one line each.
func TestRPCRepliesPrettyAndRaw(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b := startHostKeyBridge(t, addr, "rpc-pw")
	defer b.Close()
	hostKey := hostKeyOf(t, addr)
	// The bridge's own counters: they do not change between the calls,
	// unlike the session statistics of a whole <get>.
	const get = `<get><filter type="subtree"><bridge xmlns="urn:myno:bridge"><registry/></bridge></filter></get>`
	rpc := func(extra ...string) string {
		t.Helper()
		args := append([]string{"rpc", "--addr", addr, "--password", "rpc-pw", "--known-host", hostKey}, extra...)
		code, out, errOut := runMyno(t, args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, out, errOut)
		}
		return out
	}
	// Replies differ only in their message-id.
	messageID := regexp.MustCompile(`message-id="[^"]*"`)
	sameID := func(s string) string { return messageID.ReplaceAllString(s, `message-id="ID"`) }

	raw := rpc("--raw", get)
	if strings.Count(raw, "\n") != 1 || !strings.HasSuffix(raw, "</rpc-reply>\n") ||
		!strings.HasPrefix(raw, `<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="`) ||
		!strings.Contains(raw, `<data><bridge xmlns="urn:myno:bridge"><registry><devices>0</devices>`) {
		t.Fatalf("--raw: not the reply as received, on one line:\n%s", raw)
	}
	t.Setenv("MYNO_RPC_RAW", "true")
	if env := rpc(get); sameID(env) != sameID(raw) {
		t.Errorf("MYNO_RPC_RAW=true:\n%s\nwant\n%s", env, raw)
	}
	t.Setenv("MYNO_RPC_RAW", "")

	pretty := rpc(get)
	lines := strings.Split(strings.TrimSuffix(pretty, "\n"), "\n")
	want := []string{
		`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="ID">`,
		`  <data>`,
		`    <bridge xmlns="urn:myno:bridge">`,
		`      <registry>`,
		`        <devices>0</devices>`,
	}
	if len(lines) < len(want)+4 || sameID(strings.Join(lines[:len(want)], "\n")) != strings.Join(want, "\n") {
		t.Fatalf("not indented:\n%s", pretty)
	}
	if tail := strings.Join(lines[len(lines)-4:], "\n"); tail != "      </registry>\n    </bridge>\n  </data>\n</rpc-reply>" {
		t.Errorf("ends with\n%s", tail)
	}
	// One element (or an element with its text) per line, and nothing but
	// whitespace between the elements changed.
	leaf := regexp.MustCompile(`^ *(<[a-z-]+>[^<]*</[a-z-]+>|<[^<>]+>)$`)
	var joined strings.Builder
	for _, l := range lines {
		if !leaf.MatchString(l) {
			t.Errorf("not one element on the line: %q", l)
		}
		joined.WriteString(strings.TrimLeft(l, " "))
	}
	if sameID(joined.String()+"\n") != sameID(raw) {
		t.Errorf("the indented reply without its indentation is not the raw reply:\n%s\n%s", joined.String(), raw)
	}

	// Two operations, two replies, each indented; an rpc-error's reply too
	// (exit 1).
	code, out, errOut := runMyno(t, "rpc", "--addr", addr, "--password", "rpc-pw", "--known-host", hostKey, get, "<no-such-rpc/>")
	if code != 1 || !strings.Contains(errOut, "a reply holds an rpc-error") ||
		strings.Count(out, "<rpc-reply ") != 2 ||
		!strings.Contains(out, "\n  <rpc-error>\n    <error-type>protocol</error-type>\n") ||
		!strings.Contains(out, "    <error-message xml:lang=\"en\">no operation &lt;no-such-rpc&gt; in any module</error-message>\n") {
		t.Errorf("two operations, the second unknown: exit %d\n%s\n%s", code, out, errOut)
	}
}

// myno rpc --help tells about the indentation, --raw and completion.
func TestRPCHelp(t *testing.T) {
	code, out, _ := runMyno(t, "rpc", "--help")
	for _, want := range []string{"--raw", "MYNO_RPC_RAW", "printed indented", "exactly as received", "myno completion bash"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("myno rpc --help lacks %q (exit %d):\n%s", want, code, out)
		}
	}
}

// A bridge address that accepts but never speaks SSH: myno rpc gives up
// at --timeout, during the handshake, with an error (it used to wait for
// ever once the TCP connection was up).
func TestRPCSilentServerTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- c
		}
	}()
	done := make(chan struct{})
	var code int
	var errOut string
	go func() {
		defer close(done)
		code, _, errOut = runMyno(t, "rpc", "--addr", ln.Addr().String(), "--password", "x", "--insecure-host-key", "--timeout", "500ms", "<get/>")
	}()
	select {
	case <-done:
	case <-time.After(testenv.WaitTimeout):
		t.Fatal("myno rpc still waits on a silent server")
	}
	if c := <-accepted; c != nil {
		c.Close()
	}
	if code != 1 || !strings.Contains(errOut, "i/o timeout") {
		t.Errorf("exit %d, want 1 and an i/o timeout:\n%s", code, errOut)
	}
}
