package netconf_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/netconf"
)

func TestHelloAdvertisesCapabilities(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	contains(t, rc.hello,
		"<capability>urn:ietf:params:netconf:base:1.0</capability>",
		"<capability>urn:ietf:params:netconf:base:1.1</capability>",
		"urn:ietf:params:netconf:capability:notification:1.0",
		"urn:ietf:params:netconf:capability:interleave:1.0",
		"urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&amp;content-id=",
		"urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring?module=ietf-netconf-monitoring&amp;revision=2010-10-04",
		"urn:myno:test:demo?module=myno-demo&amp;revision=2026-11-21",
		"<session-id>")
}

func TestGoNetconfClientBase10(t *testing.T) {
	ts := startServer(t, nil)
	s, err := gonetconf.DialSSH(ts.addr, passwordConfig("admin", adminPass))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.SessionID == 0 {
		t.Errorf("no session-id from the hello")
	}
	reply, err := s.Exec(gonetconf.RawMethod(`<get><filter type="subtree"><demo-state xmlns="urn:myno:test:demo"/></filter></get>`))
	if err != nil {
		t.Fatal(err)
	}
	contains(t, reply.Data, "<greeting>hello &lt;world&gt; &amp; co</greeting>", "<name>b</name>")
	if strings.Contains(reply.Data, "netconf-state") {
		t.Errorf("filter did not apply: %s", reply.Data)
	}
	reply, err = s.Exec(gonetconf.RawMethod(`<echo xmlns="urn:myno:test:demo"><msg>ping</msg></echo>`))
	if err != nil {
		t.Fatal(err)
	}
	contains(t, reply.Data, `<msg xmlns="urn:myno:test:demo">ping</msg>`)
	_, err = s.Exec(gonetconf.RawMethod(`<fail xmlns="urn:myno:test:demo"/>`))
	var re *gonetconf.RPCError
	if !errorsAs(err, &re) || re.Tag != "operation-failed" || re.Message != "the device did not answer" {
		t.Errorf("fail rpc: %v", err)
	}
	if !strings.Contains(re.Info, "<error-app-tag>device-timeout</error-app-tag>") || !strings.Contains(re.Info, "<error-path>/demo:fail</error-path>") ||
		!strings.Contains(re.Info, `<uuid xmlns="urn:myno:test:demo">dev-1</uuid>`) {
		t.Errorf("rpc-error lacks app-tag, path or info: %s", re.Info)
	}
}

// Replies go out in request order even when a later rpc finishes first
// (RFC 6241 §4.1): "wait" only returns after "signal" has run.
func TestPipelinedRepliesKeepOrder(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	var batch strings.Builder
	batch.WriteString(chunked(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><wait xmlns="urn:myno:test:demo"/></rpc>`))
	for i := 2; i <= 20; i++ {
		batch.WriteString(chunked(fmt.Sprintf(`<rpc message-id="%d" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:myno:test:demo"><msg>%d</msg></echo></rpc>`, i, i)))
	}
	batch.WriteString(chunked(`<rpc message-id="21" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><signal xmlns="urn:myno:test:demo"/></rpc>`))
	rc.write(batch.String())
	for i := 1; i <= 21; i++ {
		reply := rc.read()
		if !strings.Contains(reply, fmt.Sprintf(`message-id="%d"`, i)) {
			t.Fatalf("reply %d out of order: %s", i, reply)
		}
	}
}

func TestMessageIDIsOpaqueAndAttributesReturn(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	rc.write(chunked(`<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:ex="urn:example" message-id="a &lt;b&gt; &quot;c&quot;" ex:user-id="fred"><nc:get><nc:filter type="subtree"><demo-state xmlns="urn:myno:test:demo"><greeting/></demo-state></nc:filter></nc:get></nc:rpc>`))
	reply := rc.read()
	contains(t, reply, `message-id="a &lt;b&gt; &#34;c&#34;"`, `:user-id="fred"`, "<greeting>")
}

func TestGetSchema(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	reply := rc.rpc("1", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>myno-demo</identifier></get-schema>`)
	contains(t, reply, "module myno-demo {", "rpc echo")
	reply = rc.rpc("2", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>ietf-yang-library</identifier><version>2019-01-04</version><format>yang</format></get-schema>`)
	contains(t, reply, "module ietf-yang-library")
	reply = rc.rpc("3", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>no-such-module</identifier></get-schema>`)
	contains(t, reply, "<error-tag>invalid-value</error-tag>")
	reply = rc.rpc("4", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>myno-demo</identifier><format>yin</format></get-schema>`)
	contains(t, reply, "<error-tag>invalid-value</error-tag>")
}

func TestMonitoringAndYangLibrary(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	reply := rc.rpc("1", `<get><filter type="subtree"><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"/></filter></get>`)
	contains(t, reply, "<identifier>myno-demo</identifier>", "<location>NETCONF</location>",
		"<transport>netconf-ssh</transport>", "<username>admin</username>", "<in-sessions>", "<netconf-start-time>")
	reply = rc.rpc("2", `<get><filter type="subtree"><yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/></filter></get>`)
	contains(t, reply, "<name>myno-demo</name>", "<namespace>urn:myno:test:demo</namespace>", "<content-id>",
		"<import-only-module><name>ietf-yang-types</name>", `xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">ds:running</name>`)
}

func TestPublicKeyAuthAndRefusedPassword(t *testing.T) {
	ts := startServer(t, nil)
	key, err := os.ReadFile(ts.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := sshParsePrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, ts, keyConfig("keyuser", signer))
	contains(t, rc.hello, "<session-id>")
	if _, err := sshDial(ts.addr, passwordConfig("admin", "wrong")); err == nil {
		t.Errorf("a wrong password was accepted")
	}
	if _, err := sshDial(ts.addr, passwordConfig("nobody", "x")); err == nil {
		t.Errorf("an unknown user was accepted")
	}
	if _, err := sshDial(ts.addr, keyConfig("admin", signer)); err == nil {
		t.Errorf("keyuser's key was accepted for admin")
	}
}

func TestHostKeyPersistedWithMode0600(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "host_key")
	k1, err := netconf.LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("host key mode %v, %v", info.Mode().Perm(), err)
	}
	k2, err := netconf.LoadOrCreateHostKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(k1.PublicKey().Marshal()) != string(k2.PublicKey().Marshal()) {
		t.Errorf("the host key changed across restarts")
	}
	if k1.PublicKey().Type() != "ssh-ed25519" {
		t.Errorf("host key type %s", k1.PublicKey().Type())
	}
	os.Chmod(path, 0o644)
	if _, err := netconf.LoadOrCreateHostKey(path); err == nil {
		t.Errorf("a world-readable host key was accepted")
	}
}

func TestLockKillAndClose(t *testing.T) {
	ts := startServer(t, nil)
	a := dialRaw(t, ts, passwordConfig("admin", adminPass))
	a.start11()
	b := dialRaw(t, ts, passwordConfig("admin", adminPass))
	b.start11()
	contains(t, a.rpc("1", `<lock><target><running/></target></lock>`), "<ok/>")
	reply := b.rpc("1", `<lock><target><running/></target></lock>`)
	contains(t, reply, "<error-tag>lock-denied</error-tag>", "<session-id>")
	contains(t, b.rpc("2", `<unlock><target><running/></target></unlock>`), "<error-tag>operation-failed</error-tag>")
	contains(t, b.rpc("3", `<get-config><source><running/></source></get-config>`), "<data")
	contains(t, b.rpc("4", `<get-config><source><candidate/></source></get-config>`), "<error-tag>invalid-value</error-tag>")
	contains(t, b.rpc("5", `<edit-config><target><running/></target><config/></edit-config>`), "<error-tag>operation-not-supported</error-tag>")
	aID := sessionID(t, a.hello)
	contains(t, b.rpc("6", fmt.Sprintf(`<kill-session><session-id>%d</session-id></kill-session>`, aID)), "<ok/>")
	if !a.closed() {
		t.Fatal("killed session still open")
	}
	// The lock died with its session.
	contains(t, b.rpc("7", `<lock><target><running/></target></lock>`), "<ok/>")
	contains(t, b.rpc("8", `<kill-session><session-id>999</session-id></kill-session>`), "<error-tag>invalid-value</error-tag>")
	contains(t, b.rpc("9", `<close-session/>`), "<ok/>")
	if !b.closed() {
		t.Fatal("session open after close-session")
	}
	testenv.WaitFor(t, "sessions to end", func() bool { return len(ts.srv.Sessions()) == 0 })
}

func TestNotifications(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	contains(t, rc.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`), "<ok/>")
	contains(t, rc.rpc("2", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`), "<rpc-error>")
	ts.srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", "7")))
	n := rc.read()
	contains(t, n, `<notification xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><eventTime>`, `<tick xmlns="urn:myno:test:demo"><n>7</n></tick>`)
	// Interleave: rpcs still work on a subscribed session.
	contains(t, rc.rpc("3", `<echo xmlns="urn:myno:test:demo"><msg>still here</msg></echo>`), "still here")
	// RFC 6470: a new module announces itself.
	mod, _ := netconf.ParseModuleHeader(strings.ReplaceAll(strings.ReplaceAll(demoModule, "myno-demo", "myno-extra"), "urn:myno:test:demo", "urn:myno:test:extra"))
	ts.srv.AddModule(mod)
	contains(t, rc.read(), "<netconf-capability-change", "<added-capability>urn:myno:test:extra?module=myno-extra&amp;revision=2026-11-21</added-capability>")
	ts.srv.RemoveModule("myno-extra")
	contains(t, rc.read(), "<deleted-capability>urn:myno:test:extra?module=myno-extra")
	// New sessions see the current capabilities.
	other := dialRaw(t, ts, passwordConfig("admin", adminPass))
	if strings.Contains(other.hello, "myno-extra") {
		t.Errorf("removed module still advertised")
	}
	// A filtered subscription only gets what it selects.
	f := dialRaw(t, ts, passwordConfig("admin", adminPass))
	f.start11()
	contains(t, f.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter type="subtree"><tick xmlns="urn:myno:test:demo"><n>2</n></tick></filter></create-subscription>`), "<ok/>")
	ts.srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", "1")))
	ts.srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", "2")))
	contains(t, f.read(), "<n>2</n>")
}

// Streams and replay (RFC 5277 §3.1, §2.1.1): /netconf/streams lists
// NETCONF and the configured streams; a subscription to a named stream
// gets only its notifications; one with startTime gets the kept ones
// from then, filtered, then <replayComplete/>, then live ones; one whose
// stopTime has passed ends with <notificationComplete/>; the log keeps
// at most ReplayEvents, and says since when it dropped some.
func TestStreamsAndReplay(t *testing.T) {
	ts := startServer(t, func(c *netconf.Config) {
		c.Streams = []netconf.Stream{{Name: "device-events", Description: "registrations"}, {Name: "telemetry", Description: "readings"}}
		c.ReplayEvents = 3
	})
	tick := func(n string) *netconf.Element {
		return netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", n))
	}
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	streams := rc.rpc("1", `<get><filter type="subtree"><netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"/></filter></get>`)
	contains(t, streams, `<netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"><streams><stream><name>NETCONF</name>`,
		"<name>device-events</name><description>registrations</description><replaySupport>true</replaySupport><replayLogCreationTime>",
		"<name>telemetry</name>")

	before := time.Now()
	ts.srv.NotifyStream("telemetry", tick("1"))
	ts.srv.NotifyStream("device-events", tick("2"))
	ts.srv.NotifyStream("telemetry", tick("3"))

	// Live, on a named stream: telemetry only.
	live := dialRaw(t, ts, passwordConfig("admin", adminPass))
	live.start11()
	contains(t, live.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>telemetry</stream></create-subscription>`), "<ok/>")

	// Replay of telemetry from before the three, filtered to n=3, then live.
	replay := dialRaw(t, ts, passwordConfig("admin", adminPass))
	replay.start11()
	start := before.Add(-time.Millisecond).UTC().Format(time.RFC3339Nano)
	contains(t, replay.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>telemetry</stream>`+
		`<filter type="subtree"><tick xmlns="urn:myno:test:demo"/></filter><startTime>`+start+`</startTime></create-subscription>`), "<ok/>")
	contains(t, replay.read(), "<n>1</n>")
	contains(t, replay.read(), "<n>3</n>")
	contains(t, replay.read(), `<replayComplete xmlns="urn:ietf:params:xml:ns:netmod:notification"/>`)
	ts.srv.NotifyStream("device-events", tick("4"))
	ts.srv.NotifyStream("telemetry", tick("5"))
	contains(t, replay.read(), "<n>5</n>")
	contains(t, live.read(), "<n>5</n>") // not 4: device-events

	// A replay that ended before now: the kept events (ReplayEvents 3:
	// 3, 4, 5), then replayComplete and notificationComplete; the
	// session may subscribe again.
	done := dialRaw(t, ts, passwordConfig("admin", adminPass))
	done.start11()
	stop := time.Now().UTC().Format(time.RFC3339Nano)
	contains(t, done.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><startTime>`+start+`</startTime><stopTime>`+stop+`</stopTime></create-subscription>`), "<ok/>")
	for _, want := range []string{"<n>3</n>", "<n>4</n>", "<n>5</n>", "<replayComplete", "<notificationComplete"} {
		contains(t, done.read(), want)
	}
	contains(t, done.rpc("2", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`), "<ok/>")
	contains(t, rc.rpc("2", `<get><filter type="subtree"><netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"/></filter></get>`), "<replayLogAgedTime>")

	// A stopTime to come ends the subscription then.
	later := dialRaw(t, ts, passwordConfig("admin", adminPass))
	later.start11()
	contains(t, later.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><startTime>`+
		time.Now().UTC().Format(time.RFC3339Nano)+`</startTime><stopTime>`+time.Now().Add(300*time.Millisecond).UTC().Format(time.RFC3339Nano)+
		`</stopTime></create-subscription>`), "<ok/>")
	contains(t, later.read(), "<replayComplete")
	contains(t, later.read(), "<notificationComplete")
}

// XPath filters (RFC 6241 §8.9): prefixes declared on the filter or on
// <rpc> bind to the data's namespaces whatever the data's own prefixes;
// the selected nodes come back whole, with their ancestors and nothing
// else. A subscription takes one too.
func TestXPathFilters(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	reply := rc.rpc("1", `<get><filter type="xpath" xmlns:d="urn:myno:test:demo" select="/d:demo-state/d:item[d:name='b']/d:value"/></get>`)
	contains(t, reply, `<data><demo-state xmlns="urn:myno:test:demo"><item><value>2</value></item></demo-state></data>`)
	// The prefix declared on <rpc>, in scope in the filter.
	rc.write(chunked(`<rpc message-id="2" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" xmlns:q="urn:myno:test:demo"><get><filter type="xpath" select="//q:greeting | /q:demo-state/q:item[q:value &gt; 1]"/></get></rpc>`))
	reply = rc.read()
	contains(t, reply, `<demo-state xmlns="urn:myno:test:demo"><greeting>hello &lt;world&gt; &amp; co</greeting><item><name>b</name><value>2</value></item></demo-state>`)
	if strings.Contains(reply, "netconf-state") || strings.Contains(reply, "<name>a</name>") {
		t.Errorf("the xpath filter let more through: %s", reply)
	}
	// A prefix the data does not use, bound to another namespace: nothing.
	contains(t, rc.rpc("3", `<get><filter type="xpath" xmlns:d="urn:other" select="/d:demo-state"/></get>`), "<data/>")

	sub := dialRaw(t, ts, passwordConfig("admin", adminPass))
	sub.start11()
	contains(t, sub.rpc("1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter type="xpath" xmlns:d="urn:myno:test:demo" select="/d:tick[d:n = 2]"/></create-subscription>`), "<ok/>")
	ts.srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", "1")))
	ts.srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", "2")))
	contains(t, sub.read(), "<n>2</n>")
}

// get-data (RFC 8526): operational is the state <get> returns, filtered
// by subtree or XPath; running holds no configuration yet; config-filter
// true selects nothing of the state; max-depth prunes; datastores the
// server does not have, features it does not have and a missing
// datastore are refused. The YANG library implements ietf-netconf-nmda,
// whose schema get-schema returns.
func TestGetData(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("viewer", viewerPass)) // read-only may
	rc.start11()
	getData := func(id, body string) string {
		return rc.rpc(id, `<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores">`+body+`</get-data>`)
	}
	contains(t, getData("1", `<datastore>ds:operational</datastore><subtree-filter><demo-state xmlns="urn:myno:test:demo"><greeting/></demo-state></subtree-filter>`),
		`<data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"><demo-state xmlns="urn:myno:test:demo"><greeting>hello &lt;world&gt; &amp; co</greeting></demo-state></data>`)
	contains(t, getData("2", `<datastore>ds:operational</datastore><xpath-filter xmlns:d="urn:myno:test:demo">/d:demo-state/d:item[d:name='a']</xpath-filter>`),
		`<demo-state xmlns="urn:myno:test:demo"><item><name>a</name><value>1</value></item></demo-state></data>`)
	for id, body := range map[string]string{
		"3": `<datastore>ds:running</datastore>`,
		"4": `<datastore>ds:operational</datastore><config-filter>true</config-filter>`,
	} {
		contains(t, getData(id, body), `<data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"/>`)
	}
	reply := getData("5", `<datastore>ds:operational</datastore><max-depth>1</max-depth><subtree-filter><demo-state xmlns="urn:myno:test:demo"/></subtree-filter>`)
	contains(t, reply, `<demo-state xmlns="urn:myno:test:demo"/>`)
	for id, c := range map[string]struct{ body, want string }{
		"6":  {`<datastore>ds:candidate</datastore>`, "this server has no candidate datastore"},
		"7":  {``, "&lt;datastore&gt; is missing"},
		"8":  {`<datastore>ds:operational</datastore><with-origin/>`, "<bad-element>with-origin</bad-element>"},
		"9":  {`<datastore>x:operational</datastore>`, `prefix &#34;x&#34; is bound to &#34;&#34;`},
		"10": {`<datastore>ds:operational</datastore><max-depth>0</max-depth>`, "max-depth"},
	} {
		contains(t, getData(id, c.body), "<rpc-error>", c.want)
	}
	lib := rc.rpc("11", `<get><filter type="subtree"><yang-library xmlns="urn:ietf:params:xml:ns:yang:ietf-yang-library"/></filter></get>`)
	contains(t, lib, "<module><name>ietf-netconf-nmda</name><revision>2019-01-07</revision>",
		"<name>ietf-netconf</name><revision>2011-06-01</revision><namespace>urn:ietf:params:xml:ns:netconf:base:1.0</namespace><feature>xpath</feature>")
	contains(t, rc.rpc("12", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>ietf-netconf-nmda</identifier></get-schema>`), "module ietf-netconf-nmda {")
}

// Pipelined create-subscriptions: each reply comes before the
// notifications of its subscription, whichever handler runs first; a
// failed one releases nothing of another's, nor holds the session; a
// second one while the first is being answered is refused. Run many
// times: the handlers race.
func TestPipelinedSubscriptionsKeepTheirOrder(t *testing.T) {
	ts := startServer(t, nil)
	for n := range 5 {
		ts.srv.Notify(netconf.NewNode(demoNS, "tick", netconf.NewLeaf(demoNS, "n", fmt.Sprint(n))))
	}
	start := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	past := time.Now().UTC().Format(time.RFC3339Nano)
	sub := func(id, body string) string {
		return chunked(`<rpc message-id="` + id + `" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0">` + body + `</create-subscription></rpc>`)
	}
	for round := range 30 {
		rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
		rc.start11()
		var first, second string
		if round%2 == 0 { // a failing one, then a replay
			first, second = sub("1", `<stream>bogus</stream>`), sub("2", `<startTime>`+start+`</startTime>`)
		} else { // a replay that ends at once, then another subscription
			first, second = sub("1", `<startTime>`+start+`</startTime><stopTime>`+past+`</stopTime>`), sub("2", ``)
		}
		rc.write(first + second)
		// The replies, then, if the replaying subscription was taken,
		// its replay up to replayComplete.
		var order []string
		replies, replaying := 0, false
		for replies < 2 || (replaying && !slices.Contains(order, "replayComplete")) {
			m := rc.read()
			switch {
			case strings.Contains(m, `message-id="1"`):
				order, replies = append(order, "R1"), replies+1
				replaying = replaying || (round%2 == 1 && strings.Contains(m, "<ok/>"))
			case strings.Contains(m, `message-id="2"`):
				order, replies = append(order, "R2"), replies+1
				replaying = replaying || (round%2 == 0 && strings.Contains(m, "<ok/>"))
			case strings.Contains(m, "replayComplete"):
				order = append(order, "replayComplete")
			default:
				order = append(order, "N")
			}
		}
		got := strings.Join(order, " ")
		if !replaying && round%2 == 0 {
			// A failed one does not hold the session: #2 is taken.
			t.Fatalf("round %d: the replaying subscription was refused: %s", round, got)
		}
		if !replaying {
			continue // #2 was answered first and #1 refused while it was: both orders are sound
		}
		if round%2 == 0 && !strings.HasPrefix(got, "R1 R2 N") {
			t.Fatalf("round %d: %s (want both replies, then #2's replay)", round, got)
		}
		if round%2 == 1 && !strings.HasPrefix(got, "R1 N") && !strings.HasPrefix(got, "R1 R2 N") {
			t.Fatalf("round %d: %s (want #1's reply before its replay)", round, got)
		}
	}
}
