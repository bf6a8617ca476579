package netconf_test

import (
	"context"
	"strings"
	"testing"

	"github.com/myno-bridge/myno/netconf"
)

// whoAnswers is a handler that names its module and echoes the operation
// as it arrived, namespaces resolved.
func whoAnswers(module string) netconf.Handler {
	return netconf.HandlerFunc(func(_ context.Context, req *netconf.Request) ([]*netconf.Element, error) {
		return []*netconf.Element{netconf.NewLeaf(req.Operation.Name.Space, "served-by", module),
			netconf.NewLeaf(req.Operation.Name.Space, "as", req.Operation.String())}, nil
	})
}

// An rpc may arrive without a namespace, its leaves too (MYNO's clients
// send them so, issue 13): an unambiguous name is served by its module,
// with the operation and its leaves in that module's namespace; a name in
// several modules goes to the module ChooseModule picks, and is refused
// naming the candidates when it picks none; an unknown name is
// operation-not-supported. A qualified rpc is served as always.
func TestUnqualifiedRPCs(t *testing.T) {
	const nsA, nsB = "urn:myno:test:led-a", "urn:myno:test:led-b"
	var seen []string
	ts := startServer(t, func(c *netconf.Config) {
		c.ChooseModule = func(op *netconf.Element, candidates []string) (string, error) {
			seen = append(seen, strings.Join(candidates, " "))
			if sel := op.Child("", "uuidInput"); sel != nil { // any namespace
				switch sel.Text {
				case "dev-b":
					return nsB, nil
				case "dev-gone":
					return "urn:myno:test:not-a-candidate", nil
				}
			}
			return "", nil
		}
	})
	ts.srv.Handle("led-a", nsA, "funcLed_1On", whoAnswers("led-a"))
	ts.srv.Handle("led-b", nsB, "funcLed_1On", whoAnswers("led-b"))
	ts.srv.Handle("led-a", nsA, "onlyInA", whoAnswers("led-a"))
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()

	reply := rc.rpc("1", `<onlyInA><uuidInput>dev-a</uuidInput><level>3</level></onlyInA>`)
	contains(t, reply, "led-a", `&lt;level&gt;3&lt;/level&gt;`, `xmlns=&#34;`+nsA)
	if strings.Contains(reply, "rpc-error") {
		t.Fatalf("unambiguous unqualified rpc: %s", reply)
	}
	contains(t, rc.rpc("2", `<funcLed_1On><uuidInput>dev-b</uuidInput></funcLed_1On>`), "<served-by", "led-b")
	reply = rc.rpc("3", `<funcLed_1On><uuidInput>dev-unknown</uuidInput></funcLed_1On>`)
	contains(t, reply, "bad-element", "led-a, led-b", "funcLed_1On")
	contains(t, rc.rpc("4", `<funcLed_1On><uuidInput>dev-gone</uuidInput></funcLed_1On>`), "operation-not-supported")
	contains(t, rc.rpc("5", `<nothere><uuidInput>dev-a</uuidInput></nothere>`), "operation-not-supported", "nothere")
	contains(t, rc.rpc("6", `<funcLed_1On xmlns="`+nsA+`"><uuidInput>dev-b</uuidInput></funcLed_1On>`), "led-a")
	if want := "urn:myno:test:led-a urn:myno:test:led-b"; len(seen) < 3 || seen[1] != want {
		t.Errorf("ChooseModule saw %q, want the two candidates %q", seen, want)
	}
	contains(t, rc.rpc("7", `<echo><msg>still here</msg></echo>`), "still here")
	// As ncclient sends MYNO's rpcs: <nc:rpc>, the operation in no
	// namespace at all.
	rc.write(chunked(`<nc:rpc message-id="8" xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0"><funcLed_1On><uuidInput>dev-b</uuidInput></funcLed_1On></nc:rpc>`))
	contains(t, rc.read(), "<served-by", "led-b")
}

// Access control applies to the module an unqualified rpc resolves to.
func TestUnqualifiedRPCAccessControl(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("viewer", viewerPass))
	rc.start11()
	contains(t, rc.rpc("1", `<echo><msg>x</msg></echo>`), "access-denied")
}
