package netconf_test

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// attackBudget bounds the bytes the process may allocate while one attack
// message travels over SSH, is framed, refused and answered. Carrying
// 15.7 MB over SSH and framing it costs about 3 times its size whatever
// the content (the "carried only" row below); the parse must add little.
const attackBudget = 64 << 20

// attackMessages are the rpcs of issue 12 (about 15.7 MB each, under the
// 16 MiB message limit), and the answer each must get.
func attackMessages() []struct {
	name string
	msg  []byte
	want []string
} {
	const rpc = `<rpc message-id="66" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"`
	const size = 15_700_000
	build := func(head, unit func(i int) string, tail string) []byte {
		var b bytes.Buffer
		b.Grow(size + 1024)
		b.WriteString(head(0))
		for i := 0; b.Len() < size-len(tail); i++ {
			b.WriteString(unit(i))
		}
		b.WriteString(tail)
		return b.Bytes()
	}
	s := func(v string) func(int) string { return func(int) string { return v } }
	var attrs, oneName, deep, spread []byte
	// 1.4 million empty attributes on <rpc>.
	attrs = build(s(rpc), func(i int) string { return " a" + strconv.Itoa(i) + `=""` }, "><get/></rpc>")
	// One attribute whose name is the whole message.
	oneName = []byte(rpc + " " + strings.Repeat("a", size) + `=""><get/></rpc>`)
	// Nesting over 2 million deep.
	n := (size - len(rpc) - 20) / 7
	deep = []byte(rpc + "><get>" + strings.Repeat("<a>", n) + strings.Repeat("</a>", n) + "</get></rpc>")
	// 64 attributes on each of 35,000 elements of a filter: no start tag
	// is big, the document is.
	var el strings.Builder
	el.WriteString("<x")
	for i := range 64 {
		fmt.Fprintf(&el, " a%d=\"\"", i)
	}
	el.WriteString("/>")
	spread = build(s(rpc+`><get><filter type="subtree">`), s(el.String()), "</filter></get></rpc>")
	elements := (len(spread) - len(rpc) - 50) / el.Len()
	return []struct {
		name string
		msg  []byte
		want []string
	}{
		{"1.4M attributes on one element", attrs, []string{"malformed-message", "more than 256 attributes in one start tag"}},
		{"one 15.7 MB attribute name", oneName, []string{"malformed-message", "name longer than 1024 bytes"}},
		{fmt.Sprintf("nesting %d deep", n), deep, []string{"malformed-message", "nesting deeper than 64"}},
		{fmt.Sprintf("64 attributes on each of %d elements", elements), spread, []string{"malformed-message", "more than 100000 attributes in the document"}},
	}
}

// Issue 12: one rpc of 1.4 million empty attributes, from a user no
// operation is permitted to, cost 340 MB and 4 s before the attribute
// check ran. Each attack message now costs the process about what carrying
// it costs; it is answered malformed-message, the attacking session stays
// usable, and a session from another address works during and after.
func TestAttackMessagesAreRefusedWithinMemory(t *testing.T) {
	ts := startServer(t, nil) // the default limits
	bystander := dialRaw(t, ts, passwordConfig("admin", adminPass))
	bystander.start11()
	contains(t, bystander.rpc("1", `<echo xmlns="urn:myno:test:demo"><msg>before</msg></echo>`), "before")
	attacker := func(t *testing.T) *rawClient {
		rc := dialRawFrom(t, ts, "127.0.0.2", passwordConfig("viewer", viewerPass))
		rc.start11()
		return rc
	}

	// The cost of carrying such a message: the same size, refused by the
	// scan at its first byte past the root's end.
	carried := append([]byte(`<rpc message-id="65" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc><`), bytes.Repeat([]byte{' '}, 15_700_000)...)
	base, peak, reply := sendMeasured(t, attacker(t), chunkedBytes(carried), nil)
	contains(t, reply, "malformed-message")
	t.Logf("carried only: %.1f MB allocated, heap peak +%.1f MB", mb(base), mb(peak))

	for i, a := range attackMessages() {
		t.Run(a.name, func(t *testing.T) {
			rc := attacker(t)
			during := func() {
				contains(t, bystander.rpc(strconv.Itoa(10+i), `<echo xmlns="urn:myno:test:demo"><msg>during</msg></echo>`), "during")
			}
			got, peak, reply := sendMeasured(t, rc, chunkedBytes(a.msg), during)
			t.Logf("%d bytes: %.1f MB allocated, heap peak +%.1f MB", len(a.msg), mb(got), mb(peak))
			contains(t, reply, append([]string{"<rpc-error>"}, a.want...)...)
			if got > attackBudget {
				t.Errorf("%.1f MB allocated, budget %.1f MB (carrying it: %.1f MB)", mb(got), mb(attackBudget), mb(base))
			}
			contains(t, rc.rpc("2", `<get><filter type="subtree"><demo-state xmlns="urn:myno:test:demo"><greeting/></demo-state></filter></get>`), "<greeting>")
		})
	}
	contains(t, bystander.rpc("2", `<echo xmlns="urn:myno:test:demo"><msg>after</msg></echo>`), "after")
	fresh := dialRaw(t, ts, passwordConfig("admin", adminPass))
	fresh.start11()
	contains(t, fresh.rpc("1", `<echo xmlns="urn:myno:test:demo"><msg>fresh</msg></echo>`), "fresh")
}

// sendMeasured writes one framed message on rc and waits for its reply,
// running during (if any) on another session meanwhile. It returns the
// bytes the process allocated from the write to the reply
// (/gc/heap/allocs:bytes, after a GC) and the highest live-heap growth
// seen by a sampler.
func sendMeasured(t *testing.T, rc *rawClient, framed []byte, during func()) (allocated, peak uint64, reply string) {
	t.Helper()
	samples := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	read := func() (uint64, uint64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64()
	}
	runtime.GC()
	alloc0, heap0 := read()
	stop, sampled := make(chan struct{}), make(chan uint64)
	go func() {
		top := heap0
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sampled <- top - heap0
				return
			case <-tick.C:
				_, h := read()
				top = max(top, h)
			}
		}
	}()
	wrote := make(chan error, 1)
	go func() { _, err := rc.in.Write(framed); wrote <- err }()
	if during != nil {
		during()
	}
	type res struct {
		msg []byte
		err error
	}
	replies := make(chan res, 1)
	go func() { m, err := rc.fr.ReadMessage(); replies <- res{m, err} }()
	const within = 2 * time.Minute // a deadline, not a timing assertion: on a busy machine this takes a few seconds
	select {
	case r := <-replies:
		if r.err != nil {
			t.Fatalf("read: %v", r.err)
		}
		reply = string(r.msg)
	case <-time.After(within):
		a, _ := read()
		t.Fatalf("no reply within %v; %.1f MB allocated so far", within, mb(a-alloc0))
	}
	if err := <-wrote; err != nil {
		t.Fatalf("write: %v", err)
	}
	alloc1, _ := read()
	close(stop)
	return alloc1 - alloc0, <-sampled, reply
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

func chunkedBytes(msg []byte) []byte {
	b := fmt.Appendf(nil, "\n#%d\n", len(msg))
	b = append(b, msg...)
	return append(b, "\n##\n"...)
}

// dialRawFrom is dialRaw from the local address local (127.0.0.2, ...).
func dialRawFrom(t testing.TB, ts *testServer, local string, cfg *ssh.ClientConfig) *rawClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: cfg.Timeout}
	conn, err := d.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatalf("dial from %s: %v", local, err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, ts.addr, cfg)
	if err != nil {
		conn.Close()
		t.Fatalf("ssh from %s: %v", local, err)
	}
	return netconfSession(t, ssh.NewClient(cc, chans, reqs))
}
