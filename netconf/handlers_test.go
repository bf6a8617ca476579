package netconf_test

import (
	"context"
	"testing"

	"github.com/myno-bridge/myno/netconf"
)

// A handler that panics answers its rpc with operation-failed; the
// session goes on.
func TestHandlerPanicIsAnRPCError(t *testing.T) {
	ts := startServer(t, nil)
	ts.srv.Handle("myno-demo", demoNS, "fail", netconf.HandlerFunc(func(context.Context, *netconf.Request) ([]*netconf.Element, error) {
		panic("handler bug")
	}))
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	contains(t, rc.rpc("1", `<fail xmlns="urn:myno:test:demo"/>`), "operation-failed", "internal error")
	contains(t, rc.rpc("2", `<echo xmlns="urn:myno:test:demo"><msg>alive</msg></echo>`), "alive")
}

// Modules and handlers added and removed while a session is open take
// effect for its next rpc.
func TestHandlersComeAndGoAtRuntime(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("admin", adminPass))
	rc.start11()
	contains(t, rc.rpc("1", `<echo xmlns="urn:myno:test:demo"><msg>a</msg></echo>`), "<msg")
	ts.srv.RemoveModule("myno-demo")
	contains(t, rc.rpc("2", `<echo xmlns="urn:myno:test:demo"><msg>a</msg></echo>`), "operation-not-supported")
	contains(t, rc.rpc("3", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>myno-demo</identifier></get-schema>`), "invalid-value")
	mod, _ := netconf.ParseModuleHeader(demoModule)
	ts.srv.AddModule(mod)
	ts.srv.Handle("myno-demo", demoNS, "echo", netconf.HandlerFunc(echoHandler))
	contains(t, rc.rpc("4", `<echo xmlns="urn:myno:test:demo"><msg>back</msg></echo>`), "back")
	ts.srv.RemoveHandler(demoNS, "echo")
	contains(t, rc.rpc("5", `<echo xmlns="urn:myno:test:demo"><msg>a</msg></echo>`), "operation-not-supported")
}
