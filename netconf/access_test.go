package netconf_test

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/myno-bridge/myno/netconf"
)

// A read-only user reads state and schemas; rpcs that act (echo, lock)
// are access-denied.
func TestAccessControl(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("viewer", viewerPass))
	rc.start11()
	contains(t, rc.rpc("1", `<get><filter type="subtree"><demo-state xmlns="urn:myno:test:demo"/></filter></get>`), "<greeting>")
	contains(t, rc.rpc("2", `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>myno-demo</identifier></get-schema>`), "module myno-demo")
	contains(t, rc.rpc("3", `<echo xmlns="urn:myno:test:demo"><msg>x</msg></echo>`), "<error-tag>access-denied</error-tag>")
	contains(t, rc.rpc("4", `<lock><target><running/></target></lock>`), "<error-tag>access-denied</error-tag>")
	contains(t, rc.rpc("5", `<close-session/>`), "<ok/>")
}

// A user whose groups grant nothing (a typo in the group name) may do
// nothing but close the session: the default is deny.
func TestDefaultAccessDeniesUsersWithoutAGroup(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	ts := startServer(t, func(c *netconf.Config) {
		c.Users = netconf.NewUsers(&netconf.User{Name: "typo", PasswordHash: string(hash), Groups: []string{"readonly"}})
	})
	rc := dialRaw(t, ts, passwordConfig("typo", "pw"))
	rc.start11()
	contains(t, rc.rpc("1", `<get/>`), "access-denied")
	contains(t, rc.rpc("2", `<echo xmlns="urn:myno:test:demo"/>`), "access-denied")
	contains(t, rc.rpc("3", `<kill-session><session-id>99</session-id></kill-session>`), "access-denied")
	contains(t, rc.rpc("4", `<close-session/>`), "<ok/>")
}

// Each user reads the access control that applies to them (RFC 8341
// §3.5.2's /nacm, cut to their own groups): a read-only user sees its
// group, its rules ending in a deny of everything else, and no admin
// rule; an admin sees the permit of everything.
func TestUsersReadTheirOwnAccessRules(t *testing.T) {
	ts := startServer(t, nil)
	rc := dialRaw(t, ts, passwordConfig("viewer", viewerPass))
	rc.start11()
	reply := rc.rpc("1", `<get><filter type="subtree"><nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"/></filter></get>`)
	contains(t, reply, "<exec-default>deny</exec-default>", "<name>read-only</name>", "<user-name>viewer</user-name>",
		"<rpc-name>get-schema</rpc-name>", "<action>deny</action>")
	if strings.Contains(reply, "<name>admin</name>") || strings.Contains(reply, "<user-name>admin</user-name>") {
		t.Errorf("a read-only user sees the admin group:\n%s", reply)
	}
	if strings.Count(reply, "<action>permit</action>") != 5 {
		t.Errorf("read-only: want its 5 permits (get, get-config, get-data, get-schema, create-subscription):\n%s", reply)
	}
	admin := dialRaw(t, ts, passwordConfig("admin", adminPass))
	admin.start11()
	reply = admin.rpc("1", `<get><filter type="subtree"><nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"/></filter></get>`)
	contains(t, reply, "<name>admin</name>", "<module-name>*</module-name><rpc-name>*</rpc-name><access-operations>exec</access-operations><action>permit</action>")
	if strings.Contains(reply, "<name>read-only</name>") {
		t.Errorf("an admin sees the read-only group's rules:\n%s", reply)
	}
}
