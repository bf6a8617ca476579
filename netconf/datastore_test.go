package netconf_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/netconf"
)

const cfgNS = "urn:myno:test:cfg"

// cfgApp is an application with one configuration root: units keyed by
// name, each with a presence container "level" of a mandatory 0..100
// value. A unit named in failing does not take a change.
type cfgApp struct {
	mu      sync.Mutex
	applied map[string]string // unit → level as the world has it
	failing map[string]bool
	saves   int
	stored  []*netconf.Element
	rolling []*netconf.Element
}

func newCfgApp() *cfgApp {
	return &cfgApp{applied: map[string]string{}, failing: map[string]bool{}}
}

func cfgRoot() netconf.ConfigRoot {
	level := func(v string) (string, error) {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || n > 100 {
			return "", fmt.Errorf("%q is not 0..100", v)
		}
		return strconv.Itoa(n), nil
	}
	return netconf.ConfigRoot{Module: "myno-demo", Namespace: cfgNS, Prefix: "cfg",
		Node: &netconf.SchemaNode{Name: "settings", Kind: netconf.KindContainer, Children: []*netconf.SchemaNode{
			{Name: "unit", Kind: netconf.KindList, Keys: []string{"name"}, Children: []*netconf.SchemaNode{
				{Name: "name", Kind: netconf.KindLeaf},
				{Name: "level", Kind: netconf.KindContainer, Presence: true, Children: []*netconf.SchemaNode{
					{Name: "value", Kind: netconf.KindLeaf, Mandatory: true, Check: level},
					{Name: "note", Kind: netconf.KindLeaf},
				}},
			}},
		}}}
}

// units reads unit → level from configuration data.
func units(data []*netconf.Element) map[string]string {
	out := map[string]string{}
	for _, root := range data {
		for _, u := range root.Children {
			if l := u.Child(cfgNS, "level"); l != nil {
				out[u.Child(cfgNS, "name").Text] = l.Child(cfgNS, "value").Text
			}
		}
	}
	return out
}

func (a *cfgApp) configuration() *netconf.Configuration {
	return &netconf.Configuration{
		Running: a.stored, Rollback: a.rolling,
		Save: func(running, rollback []*netconf.Element) error {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.saves++
			a.stored, a.rolling = running, rollback
			return nil
		},
		Apply: func(ctx context.Context, old, next []*netconf.Element) ([]*netconf.Element, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			want := units(next)
			var failed []string
			for u, v := range want {
				if a.applied[u] == v {
					continue
				}
				if a.failing[u] {
					failed = append(failed, u)
					continue
				}
				a.applied[u] = v
			}
			if len(failed) == 0 {
				return next, nil
			}
			// The failed units as they were in old.
			kept := units(old)
			for u, v := range want {
				if !contains2(failed, u) {
					kept[u] = v
				}
			}
			return settings(kept), &netconf.RPCError{Type: netconf.ErrTypeApplication, Tag: netconf.TagOperationFailed,
				Message: "unit " + strings.Join(failed, ",") + " refused"}
		},
	}
}

func contains2(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func settings(levels map[string]string) []*netconf.Element {
	root := netconf.NewNode(cfgNS, "settings")
	for _, name := range []string{"a", "b", "c"} {
		if v, ok := levels[name]; ok {
			root.Children = append(root.Children, netconf.NewNode(cfgNS, "unit", netconf.NewLeaf(cfgNS, "name", name),
				netconf.NewNode(cfgNS, "level", netconf.NewLeaf(cfgNS, "value", v))))
		}
	}
	if len(root.Children) == 0 {
		return nil
	}
	return []*netconf.Element{root}
}

func (a *cfgApp) world() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[string]string{}
	for k, v := range a.applied {
		out[k] = v
	}
	return out
}

func startConfigServer(t *testing.T, app *cfgApp) *testServer {
	ts := startServer(t, func(c *netconf.Config) { c.Configuration = app.configuration() })
	ts.srv.AddConfigRoot(cfgRoot())
	return ts
}

// configSession starts a server for app and opens an admin session
// (base:1.1) on it.
func configSession(t *testing.T, app *cfgApp) (*testServer, *rawClient) {
	t.Helper()
	ts := startConfigServer(t, app)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	return ts, rc
}

func unitEdit(name, value string, attrs ...string) string {
	return fmt.Sprintf(`<settings xmlns="%s"><unit %s><name>%s</name><level><value>%s</value></level></unit></settings>`, cfgNS, strings.Join(attrs, " "), name, value)
}

func editConfig(target, body string, extra ...string) string {
	return `<edit-config><target><` + target + `/></target>` + strings.Join(extra, "") + `<config xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0">` + body + `</config></edit-config>`
}

const getRunning = `<get-config><source><running/></source></get-config>`
const getCandidate = `<get-config><source><candidate/></source></get-config>`

func TestConfigurationCapabilities(t *testing.T) {
	ts := startConfigServer(t, newCfgApp())
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	contains(t, rc.hello, netconf.CapWritableRunning, netconf.CapCandidate, netconf.CapConfirmedCommit, netconf.CapRollbackOnError,
		netconf.CapValidate, "with-defaults:1.0?basic-mode=explicit", "features=candidate,confirmed-commit,rollback-on-error,validate,writable-running,xpath")
	plain := startServer(t, nil)
	rc2 := dialRaw(t, plain, passwordConfig("admin", adminPass))
	if strings.Contains(rc2.hello, "writable-running") || strings.Contains(rc2.hello, "capability:candidate") {
		t.Errorf("a server without configuration announces it:\n%s", rc2.hello)
	}
	rc2.start11()
	contains(t, rc2.rpc("1", editConfig("running", unitEdit("a", "1"))), "operation-not-supported")
}

// Each edit-config operation of RFC 6241 §7.2 on running, and each refusal.
func TestEditConfigOperations(t *testing.T) {
	app := newCfgApp()
	_, rc := configSession(t, app)
	steps := []struct {
		rpc   string
		want  []string // in the reply
		world map[string]string
	}{
		{editConfig("running", unitEdit("a", "10")), []string{"<ok/>"}, map[string]string{"a": "10"}},
		{editConfig("running", unitEdit("a", "+020")), []string{"<ok/>"}, map[string]string{"a": "20"}},
		{editConfig("running", unitEdit("b", "5", `nc:operation="create"`)), []string{"<ok/>"}, map[string]string{"a": "20", "b": "5"}},
		{editConfig("running", unitEdit("b", "6", `nc:operation="create"`)), []string{"data-exists", "/cfg:settings/cfg:unit[cfg:name=&#39;b&#39;]"}, nil},
		{editConfig("running", unitEdit("a", "101")), []string{"invalid-value", "<rpc-error xmlns:cfg=\"" + cfgNS + "\">", "<error-path>/cfg:settings/cfg:unit[cfg:name=&#39;a&#39;]/cfg:level/cfg:value</error-path>", "is not 0..100"}, nil},
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit><name>a</name><colour>red</colour></unit></settings>`), []string{"unknown-element", "<bad-element>colour</bad-element>"}, nil},
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit><level><value>1</value></level></unit></settings>`), []string{"missing-element", "<bad-element>name</bad-element>"}, nil},
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit><name>c</name><level><note>x</note></level></unit></settings>`), []string{"missing-element", "value is mandatory", "<error-path>/cfg:settings/cfg:unit[cfg:name=&#39;c&#39;]/cfg:level</error-path>"}, nil},
		{editConfig("running", `<other xmlns="urn:nowhere"/>`), []string{"unknown-namespace"}, nil},
		{editConfig("running", unitEdit("a", "1", `nc:operation="frobnicate"`)), []string{"bad-attribute"}, nil},
		// An operation attribute outside NETCONF's namespace would be a
		// merge if it were ignored: it is refused.
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit operation="delete"><name>a</name></unit></settings>`), []string{"unknown-attribute", "must be in NETCONF"}, nil},
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit nc:operation="delete"><name>c</name></unit></settings>`), []string{"data-missing"}, nil},
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit nc:operation="remove"><name>c</name></unit></settings>`), []string{"<ok/>"}, nil},
		{editConfig("running", unitEdit("c", "3"), `<default-operation>none</default-operation>`), []string{"data-missing"}, nil},
		{editConfig("running", unitEdit("a", "30"), `<test-option>test-only</test-option>`), []string{"<ok/>"}, map[string]string{"a": "20", "b": "5"}},
		{editConfig("running", `<settings xmlns="`+cfgNS+`"><unit nc:operation="delete"><name>b</name></unit></settings>`), []string{"<ok/>"}, nil},
		{editConfig("running", unitEdit("c", "7"), `<default-operation>replace</default-operation>`), []string{"<ok/>"}, map[string]string{"a": "20", "b": "5", "c": "7"}},
		// ncclient (and so Ansible) sends the <config> it is given in no namespace.
		{`<edit-config><target><running/></target><config xmlns="">` + unitEdit("c", "8") + `</config></edit-config>`, []string{"<ok/>"}, map[string]string{"a": "20", "b": "5", "c": "8"}},
	}
	for i, s := range steps {
		reply := rc.rpc(strconv.Itoa(i), s.rpc)
		contains(t, reply, s.want...)
		if s.world != nil {
			if w := app.world(); fmt.Sprint(w) != fmt.Sprint(s.world) {
				t.Errorf("step %d: the world is %v, want %v", i, w, s.world)
			}
		}
	}
	// replace left only c; get-config shows it, and what is stored.
	got := rc.rpc("g", getRunning)
	contains(t, got, "<name>c</name>", "<value>8</value>")
	if strings.Contains(got, "<name>a</name>") {
		t.Errorf("replace kept a:\n%s", got)
	}
	if u := units(app.stored); fmt.Sprint(u) != "map[c:8]" {
		t.Errorf("stored %v", u)
	}
	contains(t, rc.rpc("h", `<get/>`), "<settings xmlns=\""+cfgNS+"\"><unit><name>c</name>", "<demo-state")
}

// A unit that refuses leaves running as it was for that unit; the others
// keep their change, unless rollback-on-error asks for all or nothing.
func TestEditConfigFailuresPerUnit(t *testing.T) {
	app := newCfgApp()
	ts, rc := configSession(t, app)
	contains(t, rc.rpc("1", editConfig("running", unitEdit("a", "1")+unitEdit("b", "1"))), "<ok/>")
	app.mu.Lock()
	app.failing["b"] = true
	app.mu.Unlock()
	contains(t, rc.rpc("2", editConfig("running", unitEdit("a", "2")+unitEdit("b", "2"))), "operation-failed", "unit b refused")
	if u := units(ts.srv.Running()); fmt.Sprint(u) != "map[a:2 b:1]" {
		t.Errorf("running after a partial failure: %v", u)
	}
	contains(t, rc.rpc("3", editConfig("running", unitEdit("a", "3")+unitEdit("b", "3"), `<error-option>rollback-on-error</error-option>`)), "operation-failed")
	if u, w := units(ts.srv.Running()), app.world(); fmt.Sprint(u) != "map[a:2 b:1]" || w["a"] != "2" {
		t.Errorf("rollback-on-error: running %v, world %v", u, w)
	}
	if u := units(app.stored); fmt.Sprint(u) != "map[a:2 b:1]" {
		t.Errorf("stored %v", u)
	}
}

func TestCandidateCommitAndDiscard(t *testing.T) {
	app := newCfgApp()
	ts, rc := configSession(t, app)
	contains(t, rc.rpc("1", editConfig("candidate", unitEdit("a", "4"))), "<ok/>")
	if len(app.world()) != 0 || len(ts.srv.Running()) != 0 {
		t.Fatal("a candidate edit reached running")
	}
	contains(t, rc.rpc("2", getCandidate), "<value>4</value>")
	contains(t, rc.rpc("3", `<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores"><datastore>ds:candidate</datastore></get-data>`), "<value>4</value>")
	// An incomplete candidate is accepted, but neither validated nor committed.
	contains(t, rc.rpc("4", editConfig("candidate", `<settings xmlns="`+cfgNS+`"><unit><name>b</name><level><note>n</note></level></unit></settings>`)), "<ok/>")
	contains(t, rc.rpc("5", `<validate><source><candidate/></source></validate>`), "missing-element")
	contains(t, rc.rpc("6", `<commit/>`), "missing-element")
	contains(t, rc.rpc("7", editConfig("candidate", `<settings xmlns="`+cfgNS+`"><unit nc:operation="delete"><name>b</name></unit></settings>`)), "<ok/>")
	contains(t, rc.rpc("8", `<validate><source><candidate/></source></validate>`), "<ok/>")
	contains(t, rc.rpc("9", `<commit/>`), "<ok/>")
	if w := app.world(); w["a"] != "4" {
		t.Errorf("commit did not apply: %v", w)
	}
	contains(t, rc.rpc("10", editConfig("candidate", unitEdit("a", "9"))), "<ok/>")
	contains(t, rc.rpc("11", `<discard-changes/>`), "<ok/>")
	contains(t, rc.rpc("12", getCandidate), "<value>4</value>")
	// A commit that a unit refuses changes nothing (§8.3.4.1).
	app.mu.Lock()
	app.failing["b"] = true
	app.mu.Unlock()
	contains(t, rc.rpc("13", editConfig("candidate", unitEdit("a", "5")+unitEdit("b", "5"))), "<ok/>")
	contains(t, rc.rpc("14", `<commit/>`), "operation-failed", "unit b refused")
	if u, w := units(ts.srv.Running()), app.world(); fmt.Sprint(u) != "map[a:4]" || w["a"] != "4" {
		t.Errorf("a refused commit: running %v, world %v", u, w)
	}
	// copy-config and delete-config.
	contains(t, rc.rpc("15", `<copy-config><target><candidate/></target><source><running/></source></copy-config>`), "<ok/>")
	contains(t, rc.rpc("16", getCandidate), "<value>4</value>")
	contains(t, rc.rpc("17", `<copy-config><target><running/></target><source><config>`+unitEdit("c", "8")+`</config></source></copy-config>`), "<ok/>")
	if u := units(ts.srv.Running()); fmt.Sprint(u) != "map[c:8]" {
		t.Errorf("copy-config to running: %v", u)
	}
	// delete-config takes startup or url (ietf-netconf), which this
	// server does not have; each refusal says what to do instead.
	contains(t, rc.rpc("18", `<delete-config><target><running/></target></delete-config>`), "invalid-value", "cannot be deleted")
	contains(t, rc.rpc("19", `<delete-config><target><candidate/></target></delete-config>`), "invalid-value", "discard-changes")
	contains(t, rc.rpc("20", `<delete-config><target><startup/></target></delete-config>`), "invalid-value", "no startup datastore")
	contains(t, rc.rpc("21", `<copy-config><target><running/></target><source><url>file:///etc/passwd</url></source></copy-config>`), "operation-not-supported")
}

// A read-only user reads the configuration and changes nothing (NACM).
func TestReadOnlyUserCannotConfigure(t *testing.T) {
	app := newCfgApp()
	ts := startConfigServer(t, app)
	rc := dialRaw(t, ts, passwordConfig("viewer", viewerPass))
	rc.start11()
	contains(t, rc.rpc("1", getRunning), "<data")
	for i, op := range []string{editConfig("running", unitEdit("a", "1")), editConfig("candidate", unitEdit("a", "1")), `<commit/>`,
		`<lock><target><running/></target></lock>`, `<copy-config><target><running/></target><source><candidate/></source></copy-config>`,
		`<discard-changes/>`, `<cancel-commit/>`} {
		contains(t, rc.rpc(strconv.Itoa(i+2), op), "access-denied")
	}
	if len(app.world()) != 0 || len(ts.srv.Running()) != 0 {
		t.Error("a read-only user changed the configuration")
	}
}

func TestLocksOnConfiguration(t *testing.T) {
	app := newCfgApp()
	ts := startConfigServer(t, app)
	a := dialRaw(t, ts, passwordConfig("admin", adminPass))
	a.start11()
	b := dialRaw(t, ts, passwordConfig("admin", adminPass))
	b.start11()
	contains(t, a.rpc("1", `<lock><target><running/></target></lock>`), "<ok/>")
	contains(t, b.rpc("1", editConfig("running", unitEdit("a", "1"))), "in-use", "running is locked by session")
	contains(t, a.rpc("2", editConfig("running", unitEdit("a", "1"))), "<ok/>")
	contains(t, a.rpc("3", `<lock><target><candidate/></target></lock>`), "<ok/>")
	contains(t, b.rpc("2", editConfig("candidate", unitEdit("a", "2"))), "in-use")
	contains(t, b.rpc("3", `<commit/>`), "in-use")
	contains(t, b.rpc("4", `<discard-changes/>`), "in-use")
	contains(t, a.rpc("4", editConfig("candidate", unitEdit("a", "3"))), "<ok/>")
	contains(t, a.rpc("5", `<unlock><target><candidate/></target></unlock>`), "<ok/>")
	// §7.5: a changed candidate cannot be locked.
	contains(t, b.rpc("5", `<lock><target><candidate/></target></lock>`), "lock-denied", "not committed")
	contains(t, b.rpc("6", `<discard-changes/>`), "<ok/>")
	contains(t, b.rpc("7", `<lock><target><candidate/></target></lock>`), "<ok/>")
	contains(t, b.rpc("8", editConfig("candidate", unitEdit("b", "4"))), "<ok/>")
	// The lock's session ends: the lock goes, and its candidate changes.
	b.client.Close()
	testenv.WaitFor(t, "session b's candidate lock released", func() bool {
		return strings.Contains(a.rpc("w", `<lock><target><candidate/></target></lock>`), "<ok/>")
	})
	if got := a.rpc("9", getCandidate); strings.Contains(got, "<name>b</name>") {
		t.Errorf("the candidate kept the changes of a session that ended with its lock:\n%s", got)
	}
	contains(t, a.rpc("10", `<get><filter><netconf-state xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><datastores/></netconf-state></filter></get>`),
		"<name>running</name><locks><global-lock>", "<name>candidate</name><locks>")
}

func TestConfirmedCommit(t *testing.T) {
	app := newCfgApp()
	ts, rc := configSession(t, app)
	contains(t, rc.rpc("1", editConfig("running", unitEdit("a", "1"))), "<ok/>")

	// Not confirmed in time: running and the world go back.
	contains(t, rc.rpc("2", editConfig("candidate", unitEdit("a", "2"))), "<ok/>")
	contains(t, rc.rpc("3", `<commit><confirmed/><confirm-timeout>1</confirm-timeout></commit>`), "<ok/>")
	if w := app.world(); w["a"] != "2" {
		t.Fatalf("confirmed commit not applied: %v", w)
	}
	if units(app.rolling)["a"] != "1" {
		t.Errorf("the configuration to go back to is not stored: %v", units(app.rolling))
	}
	testenv.WaitFor(t, "the unconfirmed commit rolled back", func() bool { return app.world()["a"] == "1" && units(ts.srv.Running())["a"] == "1" })
	if app.rolling != nil {
		t.Error("a rollback configuration is still stored after the rollback")
	}

	// Confirmed in time: it stays.
	contains(t, rc.rpc("4", editConfig("candidate", unitEdit("a", "3"))), "<ok/>")
	contains(t, rc.rpc("5", `<commit><confirmed/><confirm-timeout>60</confirm-timeout></commit>`), "<ok/>")
	other := dialRaw(t, ts, passwordConfig("admin", adminPass))
	other.start11()
	contains(t, other.rpc("1", `<commit/>`), "in-use", "confirmed commit pending")
	contains(t, rc.rpc("6", `<commit/>`), "<ok/>")
	if units(ts.srv.Running())["a"] != "3" || app.rolling != nil {
		t.Errorf("confirmed: running %v, rollback stored %v", units(ts.srv.Running()), units(app.rolling))
	}

	// While it waits, another session cannot lock running (§7.5).
	contains(t, rc.rpc("5a", editConfig("candidate", unitEdit("a", "7"))), "<ok/>")
	contains(t, rc.rpc("5b", `<commit><confirmed/></commit>`), "<ok/>")
	contains(t, other.rpc("1a", `<lock><target><running/></target></lock>`), "lock-denied", "confirmed commit")
	contains(t, rc.rpc("5c", editConfig("candidate", unitEdit("a", "3"))), "<ok/>")
	contains(t, rc.rpc("5d", `<commit/>`), "<ok/>")

	// cancel-commit goes back at once.
	contains(t, rc.rpc("7", editConfig("candidate", unitEdit("a", "4"))), "<ok/>")
	contains(t, rc.rpc("8", `<commit><confirmed/></commit>`), "<ok/>")
	contains(t, rc.rpc("9", `<cancel-commit/>`), "<ok/>")
	if app.world()["a"] != "3" {
		t.Errorf("cancel-commit: %v", app.world())
	}
	contains(t, rc.rpc("10", `<cancel-commit/>`), "invalid-value", "no confirmed commit")

	// Without persist, the commit's session ending rolls it back; with
	// persist, another session confirms it with the persist-id.
	contains(t, other.rpc("2", editConfig("candidate", unitEdit("a", "5"))), "<ok/>")
	contains(t, other.rpc("3", `<commit><confirmed/></commit>`), "<ok/>")
	other.client.Close()
	testenv.WaitFor(t, "the commit of a session that ended rolled back", func() bool { return app.world()["a"] == "3" })
	contains(t, rc.rpc("11", editConfig("candidate", unitEdit("a", "6"))), "<ok/>")
	contains(t, rc.rpc("12", `<commit><confirmed/><persist>tok-1</persist></commit>`), "<ok/>")
	rc.client.Close()
	third := dialRaw(t, ts, passwordConfig("admin", adminPass))
	third.start11()
	contains(t, third.rpc("1", `<commit/>`), "invalid-value", "persist-id")
	contains(t, third.rpc("2", `<commit><persist-id>wrong</persist-id></commit>`), "invalid-value")
	contains(t, third.rpc("3", `<commit><persist-id>tok-1</persist-id></commit>`), "<ok/>")
	if app.world()["a"] != "6" || units(ts.srv.Running())["a"] != "6" {
		t.Errorf("persisted confirmed commit: world %v", app.world())
	}
}

// A restart before the confirming commit goes back to the configuration
// before it (RFC 6241 §8.4.1): the application stored it.
func TestConfiguredServerRestarts(t *testing.T) {
	app := newCfgApp()
	_, rc := configSession(t, app)
	contains(t, rc.rpc("1", editConfig("running", unitEdit("a", "1"))), "<ok/>")
	contains(t, rc.rpc("2", editConfig("candidate", unitEdit("a", "2"))), "<ok/>")
	contains(t, rc.rpc("3", `<commit><confirmed/><persist>p</persist></commit>`), "<ok/>")
	app.mu.Lock()
	stored, rolling := app.stored, app.rolling
	app.mu.Unlock()
	if units(stored)["a"] != "2" || units(rolling)["a"] != "1" {
		t.Fatalf("stored %v, rollback %v", units(stored), units(rolling))
	}
	again := newCfgApp()
	again.stored, again.rolling = stored, rolling
	ts2 := startConfigServer(t, again)
	rc2 := dialRaw(t, ts2, passwordConfig("admin", adminPass))
	rc2.start11()
	contains(t, rc2.rpc("1", getRunning), "<value>1</value>")
	if u := units(ts2.srv.Running()); u["a"] != "1" {
		t.Errorf("after a restart before the confirmation, running is %v, want a:1", u)
	}
	if u := units(again.stored); u["a"] != "1" || again.rolling != nil {
		t.Errorf("stored after the restart: %v, rollback %v", u, units(again.rolling))
	}
}

// A server that stops with a confirmed commit waiting leaves it
// unconfirmed in what is stored: the session ends with the shutdown, but
// the rollback is the next start's (§8.4.1), not done with devices going
// away.
func TestShutdownKeepsAConfirmedCommitUnconfirmed(t *testing.T) {
	app := newCfgApp()
	ts, rc := configSession(t, app)
	contains(t, rc.rpc("1", editConfig("running", unitEdit("a", "1"))), "<ok/>")
	contains(t, rc.rpc("2", editConfig("candidate", unitEdit("a", "2"))), "<ok/>")
	contains(t, rc.rpc("3", `<commit><confirmed/></commit>`), "<ok/>")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	if units(app.stored)["a"] != "2" || units(app.rolling)["a"] != "1" || app.applied["a"] != "2" {
		t.Errorf("after the shutdown: stored %v, rollback %v, world %v", units(app.stored), units(app.rolling), app.applied)
	}
}

// Configuration.Check bounds the candidate and running before anything is
// stored; Configuration.Operational is the configuration in use.
func TestConfigurationBoundsAndOperational(t *testing.T) {
	app := newCfgApp()
	cfg := app.configuration()
	cfg.Check = func(old, data []*netconf.Element) error {
		if len(units(data)) > 2 {
			return netconf.NewRPCError(netconf.ErrTypeApplication, netconf.TagResourceDenied, "at most 2 units")
		}
		return nil
	}
	cfg.Operational = func(running []*netconf.Element) []*netconf.Element {
		return settings(map[string]string{"a": "in-use"})
	}
	ts := startServer(t, func(c *netconf.Config) { c.Configuration = cfg })
	ts.srv.AddConfigRoot(cfgRoot())
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	contains(t, rc.rpc("1", editConfig("running", unitEdit("a", "1")+unitEdit("b", "1"))), "<ok/>")
	saves := app.saves
	contains(t, rc.rpc("2", editConfig("running", unitEdit("c", "1"))), "resource-denied", "at most 2 units")
	contains(t, rc.rpc("3", editConfig("candidate", unitEdit("c", "1"))), "resource-denied")
	contains(t, rc.rpc("4", `<copy-config><target><candidate/></target><source><config>`+unitEdit("a", "1")+unitEdit("b", "1")+unitEdit("c", "1")+`</config></source></copy-config>`), "resource-denied")
	if app.saves != saves || len(units(ts.srv.Running())) != 2 {
		t.Errorf("a refused change was stored (%d saves, was %d) or held: %v", app.saves, saves, units(ts.srv.Running()))
	}
	contains(t, rc.rpc("5", `<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores"><datastore>ds:operational</datastore><config-filter>true</config-filter></get-data>`), "<value>in-use</value>")

	// The module withdrawn: its data is kept but not shown, and can be deleted.
	ts.srv.RemoveModule("myno-demo")
	if got := rc.rpc("6", getRunning); strings.Contains(got, "<settings") {
		t.Errorf("data of a withdrawn module shown:\n%s", got)
	}
	if len(ts.srv.Running()) != 1 {
		t.Fatalf("data of a withdrawn module dropped: %v", ts.srv.Running())
	}
	// Restoring what get-config showed does not delete what it did not show.
	contains(t, rc.rpc("6a", `<copy-config><target><running/></target><source><config/></source></copy-config>`), "<ok/>")
	if len(ts.srv.Running()) != 1 {
		t.Fatalf("copy-config deleted the data of a withdrawn module: %v", ts.srv.Running())
	}
	contains(t, rc.rpc("7", editConfig("running", `<settings xmlns="`+cfgNS+`" nc:operation="delete"/>`)), "<ok/>")
	if len(ts.srv.Running()) != 0 {
		t.Errorf("data of a withdrawn module not deleted: %v", ts.srv.Running())
	}
}

func TestWithDefaults(t *testing.T) {
	ts := startConfigServer(t, newCfgApp())
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	wd := func(mode string) string {
		return `<with-defaults xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults">` + mode + `</with-defaults>`
	}
	contains(t, rc.rpc("1", `<get-config><source><running/></source>`+wd("report-all")+`</get-config>`), "<data")
	contains(t, rc.rpc("2", `<get>`+wd("explicit")+`</get>`), "<data")
	contains(t, rc.rpc("3", `<get>`+wd("trim")+`</get>`), "invalid-value", "not supported")
	contains(t, rc.rpc("4", `<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores"><datastore>ds:running</datastore><with-defaults>report-all</with-defaults></get-data>`), "<data")
	contains(t, rc.rpc("5", `<get-data xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-nmda" xmlns:ds="urn:ietf:params:xml:ns:yang:ietf-datastores"><datastore>ds:running</datastore><with-defaults>report-all-tagged</with-defaults></get-data>`), "invalid-value")
}
