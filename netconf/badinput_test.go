package netconf_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/netconf"
)

// badCase is one malformed input. After it the session is closed or still
// usable, as expected; the server and other sessions carry on.
type badCase struct {
	name   string
	hello  string // clientHello11, clientHello10 or "" (none sent)
	send   string // raw bytes, framing included
	want   []string
	closed bool // the server must end the session
	absent []string
}

func badCases() []badCase {
	rpc := func(body string) string {
		return chunked(`<rpc message-id="101" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + body + `</rpc>`)
	}
	deep := strings.Repeat("<a>", 1000) + strings.Repeat("</a>", 1000)
	many := "<get>" + strings.Repeat("<x/>", 200) + "</get>"
	return []badCase{
		// Broken framing: malformed-message (or too-big), then the session ends.
		{name: "chunk size overflow", hello: clientHello11, send: "\n#99999999999\nabc", want: []string{"malformed-message"}, closed: true},
		{name: "chunk size above 2^32-1", hello: clientHello11, send: "\n#4294967296\nabc", want: []string{"malformed-message"}, closed: true},
		{name: "chunk header without leading LF", hello: clientHello11, send: "#5\nhello\n##\n", want: []string{"malformed-message"}, closed: true},
		{name: "chunk size zero", hello: clientHello11, send: "\n#0\n\n##\n", want: []string{"malformed-message"}, closed: true},
		{name: "chunk size with leading zero", hello: clientHello11, send: "\n#05\nhello\n##\n", want: []string{"malformed-message"}, closed: true},
		{name: "chunk size not a number", hello: clientHello11, send: "\n#1a\nx\n##\n", want: []string{"malformed-message"}, closed: true},
		{name: "end of chunks without a chunk", hello: clientHello11, send: "\n##\n", want: []string{"malformed-message"}, closed: true},
		{name: "chunked message over the size limit", hello: clientHello11, send: "\n#70000\n" + strings.Repeat("x", 100), want: []string{"too-big"}, closed: true},
		{name: "EOM message over the size limit", hello: clientHello10, send: "<rpc>" + strings.Repeat("x", 70000), want: []string{"too-big"}, closed: true},
		{name: "hello over the size limit", send: "<hello>" + strings.Repeat("x", 70000), closed: true},
		// Dangerous XML: malformed-message, the session stays.
		{name: "entity expansion", hello: clientHello11, send: chunked(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>&lol2;</get></rpc>`), want: []string{"malformed-message", "DTD"}},
		{name: "external entity", hello: clientHello11, send: chunked(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>&x;</msg></echo></rpc>`), want: []string{"malformed-message"}, absent: []string{"root:"}},
		{name: "undefined entity", hello: clientHello11, send: rpc(`<echo xmlns="urn:myno:test:demo"><msg>&nope;</msg></echo>`), want: []string{"malformed-message"}},
		{name: "deep nesting", hello: clientHello11, send: rpc(deep), want: []string{"malformed-message", "nesting"}},
		{name: "too many elements", hello: clientHello11, send: rpc(many), want: []string{"malformed-message", "elements"}},
		{name: "non-UTF-8 bytes", hello: clientHello11, send: rpc("<echo xmlns=\"urn:myno:test:demo\"><msg>\xff\xfe</msg></echo>"), want: []string{"malformed-message", "UTF-8"}},
		{name: "declared non-UTF-8 encoding", hello: clientHello11, send: chunked(`<?xml version="1.0" encoding="ISO-8859-1"?><rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`), want: []string{"malformed-message"}},
		{name: "not XML", hello: clientHello11, send: chunked("hello world"), want: []string{"malformed-message"}},
		// Names and attributes encoding/xml lets through (issue 12): the
		// reply would not be well-formed if echoed.
		{name: "duplicated message-id", hello: clientHello11, send: chunked(`<rpc message-id="1" message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`), want: []string{"malformed-message", "given twice"}, absent: []string{`message-id="2"`}},
		{name: "one attribute through two prefixes", hello: clientHello11, send: chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:p="urn:x" xmlns:q="urn:x" p:a="1" q:a="2"><get/></rpc>`), want: []string{"malformed-message", "given twice"}},
		{name: "element name that is not an XML name", hello: clientHello11, send: rpc(`<get xmlns:b="urn:b"><filter type="subtree"><b:0/></filter></get>`), want: []string{"malformed-message", "not an XML name"}},
		{name: "attribute name that is not an XML name", hello: clientHello11, send: chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:b="urn:b" b:0="x"><get/></rpc>`), want: []string{"malformed-message", "not an XML name"}},
		{name: "unclosed element", hello: clientHello11, send: chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get>`), want: []string{"malformed-message"}},
		// Protocol errors: an rpc-error with the right tag, the session stays.
		{name: "missing message-id", hello: clientHello11, send: chunked(`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`), want: []string{"missing-attribute", "<bad-attribute>message-id</bad-attribute>"}},
		{name: "rpc in a wrong namespace", hello: clientHello11, send: chunked(`<rpc message-id="5" xmlns="urn:example:wrong"><get/></rpc>`), want: []string{"unknown-namespace", `message-id="5"`}},
		{name: "rpc without namespace", hello: clientHello11, send: chunked(`<rpc message-id="6"><get/></rpc>`), want: []string{"unknown-namespace"}},
		{name: "operation in a wrong namespace", hello: clientHello11, send: rpc(`<get xmlns="urn:example:wrong"/>`), want: []string{"operation-not-supported"}},
		{name: "unknown operation", hello: clientHello11, send: rpc(`<frobnicate/>`), want: []string{"operation-not-supported", "<bad-element>frobnicate</bad-element>"}},
		{name: "two operations in one rpc", hello: clientHello11, send: rpc(`<get/><get/>`), want: []string{"bad-element"}},
		{name: "rpc without operation", hello: clientHello11, send: rpc(``), want: []string{"missing-element"}},
		{name: "second hello", hello: clientHello11, send: chunked(`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>`), want: []string{"malformed-message", "hello"}},
		{name: "not an rpc", hello: clientHello11, send: chunked(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>`), want: []string{"malformed-message"}},
		{name: "xpath filter that does not parse", hello: clientHello11, send: rpc(`<get><filter type="xpath" select="/d:demo-state[["/></get>`), want: []string{"invalid-value", "<bad-attribute>select</bad-attribute>"}},
		{name: "xpath filter that is no node-set", hello: clientHello11, send: rpc(`<get><filter type="xpath" select="count(/*)"/></get>`), want: []string{"invalid-value", "not a node-set"}},
		{name: "xpath filter without select", hello: clientHello11, send: rpc(`<get><filter type="xpath"/></get>`), want: []string{"missing-attribute", "<bad-attribute>select</bad-attribute>"}},
		{name: "unknown filter type", hello: clientHello11, send: rpc(`<get><filter type="regex"/></get>`), want: []string{"bad-attribute"}},
		{name: "kill-session without id", hello: clientHello11, send: rpc(`<kill-session/>`), want: []string{"missing-element"}},
		{name: "lock of a datastore that does not exist", hello: clientHello11, send: rpc(`<lock><target><startup/></target></lock>`), want: []string{"invalid-value"}},
		{name: "get-schema without identifier", hello: clientHello11, send: rpc(`<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"/>`), want: []string{"missing-element"}},
		{name: "subscription to an unknown stream", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>SNMP</stream></create-subscription>`), want: []string{"invalid-value"}},
		{name: "subscription with an unknown child", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><streem>NETCONF</streem></create-subscription>`), want: []string{"unknown-element", "<bad-element>streem</bad-element>"}},
		{name: "subscription with two streams", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>NETCONF</stream><stream>NETCONF</stream></create-subscription>`), want: []string{"unknown-element", "<bad-element>stream</bad-element>"}},
		{name: "replay from the future", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><startTime>2999-01-01T00:00:00Z</startTime></create-subscription>`), want: []string{"bad-element", "startTime is in the future"}},
		{name: "stopTime without startTime", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stopTime>2026-01-01T00:00:00Z</stopTime></create-subscription>`), want: []string{"missing-element", "<bad-element>startTime</bad-element>"}},
		{name: "subscription with an xpath filter that is no node-set", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter type="xpath" select="count(/*) &gt; 1"/></create-subscription>`), want: []string{"invalid-value", "not a node-set"}},
		{name: "replay to before its start", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><startTime>2026-01-02T00:00:00Z</startTime><stopTime>2026-01-01T00:00:00Z</stopTime></create-subscription>`), want: []string{"bad-element", "stopTime is before startTime"}},
		{name: "replay from no time", hello: clientHello11, send: rpc(`<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><startTime>yesterday</startTime></create-subscription>`), want: []string{"invalid-value", "<bad-element>startTime</bad-element>"}},
		// Hello errors: the session ends.
		{name: "rpc before the hello", send: `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>]]>]]>`, want: []string{"expected &lt;hello&gt;"}, closed: true},
		{name: "hello without a common base", send: `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:2.0</capability></capabilities></hello>]]>]]>`, closed: true},
		{name: "client hello with a session-id", send: `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities><session-id>4</session-id></hello>]]>]]>`, closed: true},
		{name: "hello that is not XML", send: "hi there]]>]]>", closed: true},
	}
}

func TestBadInput(t *testing.T) {
	ts := startServer(t, func(c *netconf.Config) {
		c.MaxMessageSize = 64 << 10
		c.XMLLimits = netconf.Limits{MaxDepth: 64, MaxElements: 100}
	})
	// A bystander session opened first must be unaffected by all of it.
	bystander := dialRaw(t, ts, passwordConfig("admin", adminPass))
	bystander.start11()
	contains(t, bystander.rpc("1", `<echo xmlns="urn:myno:test:demo"><msg>before</msg></echo>`), "before")
	leaks := goroutineBaseline(t)

	cases := badCases()
	if len(cases) < 25 {
		t.Fatalf("only %d bad-input cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
			if tc.hello != "" {
				rc.write(tc.hello)
				if tc.hello == clientHello11 {
					rc.fr.SetFraming(netconf.FramingChunked)
				}
			}
			rc.write(tc.send)
			if len(tc.want) > 0 {
				reply := rc.read()
				contains(t, reply, append([]string{"<rpc-error>"}, tc.want...)...)
				for _, a := range tc.absent {
					if strings.Contains(reply, a) {
						t.Errorf("reply leaks %q:\n%s", a, reply)
					}
				}
			}
			if tc.closed {
				if !rc.closed() {
					t.Fatal("the server kept the session open")
				}
				return
			}
			// The session is still usable.
			contains(t, rc.rpc("2", `<echo xmlns="urn:myno:test:demo"><msg>after</msg></echo>`), "after")
			rc.client.Close()
		})
	}
	contains(t, bystander.rpc("2", `<echo xmlns="urn:myno:test:demo"><msg>still fine</msg></echo>`), "still fine")
	fresh := dialRaw(t, ts, passwordConfig("admin", adminPass))
	fresh.start11()
	contains(t, fresh.rpc("1", `<get><filter type="subtree"><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><statistics/></netconf-state></filter></get>`), "<in-bad-rpcs>", "<in-bad-hellos>")
	fresh.client.Close()
	testenv.WaitFor(t, "bad sessions to end", func() bool { return len(ts.srv.Sessions()) == 1 })
	leaks()
}

func TestAuthenticationAndSessionLimits(t *testing.T) {
	ts := startServer(t, func(c *netconf.Config) { c.MaxSessions = 2; c.MaxAuthTries = 2 })
	// Three wrong passwords on one connection: the server disconnects.
	tries := 0
	cfg := &ssh.ClientConfig{User: "admin", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second,
		Auth: []ssh.AuthMethod{ssh.RetryableAuthMethod(ssh.PasswordCallback(func() (string, error) {
			tries++
			return fmt.Sprintf("wrong-%d", tries), nil
		}), 10)}}
	if _, err := ssh.Dial("tcp", ts.addr, cfg); err == nil {
		t.Fatal("wrong passwords accepted")
	}
	if tries > 2 {
		t.Errorf("%d password attempts allowed on one connection, limit 2", tries)
	}
	a := dialRaw(t, ts, passwordConfig("admin", adminPass))
	b := dialRaw(t, ts, passwordConfig("admin", adminPass))
	_ = b
	c, err := ssh.Dial("tcp", ts.addr, passwordConfig("admin", adminPass))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s3, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.RequestSubsystem("netconf"); err == nil {
		t.Fatal("a third session was accepted with MaxSessions 2")
	}
	a.client.Close()
	testenv.WaitFor(t, "a session to end", func() bool { return len(ts.srv.Sessions()) == 1 })
	d := dialRaw(t, ts, passwordConfig("admin", adminPass))
	contains(t, d.hello, "<session-id>")
}

// A framing error queued behind an rpc that blocks still ends the session.
func TestFramingErrorBehindABlockedRPC(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	rc.write(chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><wait xmlns="urn:myno:test:demo"/></rpc>`))
	rc.write("\n#0\n")
	if !rc.closed() {
		t.Fatal("session not closed")
	}
	testenv.WaitFor(t, "the session to end", func() bool { return len(ts.srv.Sessions()) == 0 })
}

func TestHugeAttributesAndCommentsAreBounded(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	rc.write(chunked(`<rpc message-id="1" a="` + strings.Repeat("x", 5000) + `" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`))
	contains(t, rc.read(), "bad-attribute")
	// Text split by comments used to be appended quadratically.
	start := time.Now()
	rc.write(chunked(`<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>` +
		strings.Repeat(strings.Repeat("a", 100)+"<!---->", 20000) + `</msg></echo></rpc>`))
	if reply := rc.read(); !strings.HasPrefix(reply, "<rpc-reply") || !strings.Contains(reply[:200], `message-id="2"`) {
		t.Errorf("reply %.200s", reply)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
