package netconf

import "fmt"

// Access control: a subset of NACM (RFC 8341). Users belong to groups
// (User.Groups); rule lists map groups to rules on protocol operations
// ("exec" access, RFC 8341 §3.4.4), written by operation name, by module, or
// both. The first matching rule decides; with none, ExecDefault decides.
// close-session is always permitted (RFC 8341 §3.2.3 lets a session end).
// Data-node read rules are not implemented: any user permitted to run
// get may read all state.

// Action is what a rule does.
type Action string

// Rule actions.
const (
	Permit Action = "permit"
	Deny   Action = "deny"
)

// Rule matches protocol operations for some groups.
type Rule struct {
	Groups []string // "*" matches every group
	Module string   // module name of the operation; "" or "*" matches any
	RPC    string   // operation name; "" or "*" matches any
	Action Action
}

// AccessControl is the rule set. The zero value permits everything to
// everyone, like NACM's exec-default permit.
type AccessControl struct {
	Rules       []Rule
	ExecDefault Action // "" means permit
}

// Groups of DefaultAccess.
const (
	AdminGroup    = "admin"
	ReadOnlyGroup = "read-only"
)

// DefaultAccess is the rule set to start from: group admin may do
// everything, group read-only what ReadOnlyRules allow, and everyone else
// nothing but close-session (exec-default deny: a user without a group, or
// with a mistyped one, gets access-denied).
func DefaultAccess() *AccessControl {
	rules := []Rule{{Groups: []string{AdminGroup}, Module: "*", RPC: "*", Action: Permit}}
	return &AccessControl{Rules: append(rules, ReadOnlyRules()...), ExecDefault: Deny}
}

// ReadOnlyRules let group read-only get, get-config, get-data, get-schema, subscribe
// to notifications and end its session, and deny every other operation.
func ReadOnlyRules() []Rule {
	var rules []Rule
	for _, op := range []struct{ module, rpc string }{
		{"ietf-netconf", "get"}, {"ietf-netconf", "get-config"}, {"ietf-netconf-nmda", "get-data"},
		{"ietf-netconf-monitoring", "get-schema"}, {"notifications", "create-subscription"},
	} {
		rules = append(rules, Rule{Groups: []string{ReadOnlyGroup}, Module: op.module, RPC: op.rpc, Action: Permit})
	}
	return append(rules, Rule{Groups: []string{ReadOnlyGroup}, Module: "*", RPC: "*", Action: Deny})
}

// allowed decides whether a user in groups may run module:rpc.
func (ac *AccessControl) allowed(groups []string, module, rpc string) bool {
	if ac == nil {
		return true
	}
	if module == "ietf-netconf" && rpc == "close-session" {
		return true
	}
	for _, r := range ac.Rules {
		if !matchName(r.Module, module) || !matchName(r.RPC, rpc) || !matchGroup(r.Groups, groups) {
			continue
		}
		return r.Action != Deny
	}
	return ac.ExecDefault != Deny
}

func matchName(pattern, name string) bool { return pattern == "" || pattern == "*" || pattern == name }

func matchGroup(ruleGroups, userGroups []string) bool {
	for _, rg := range ruleGroups {
		if rg == "*" {
			return true
		}
		for _, ug := range userGroups {
			if rg == ug {
				return true
			}
		}
	}
	return false
}

// NSNACM is the namespace of ietf-netconf-acm (RFC 8341 §3.5).
const NSNACM = "urn:ietf:params:xml:ns:yang:ietf-netconf-acm"

// View is what the user of a session may know of the access control: the
// /nacm tree of RFC 8341 §3.5.2 cut down to the session's own groups
// (each naming only this user) and the rule lists that apply to them, in
// the order they are checked. A client shows only the operations the
// server would run (a console hides a button the server would refuse);
// the server still checks every request. Rules are exec rules on
// operations (access-operations exec), named by module and rpc.
func (ac *AccessControl) View(user string, groups []string) *Element {
	execDefault := "permit"
	if ac != nil && ac.ExecDefault == Deny {
		execDefault = "deny"
	}
	nacm := NewNode(NSNACM, "nacm",
		NewLeaf(NSNACM, "enable-nacm", fmt.Sprint(ac != nil)),
		NewLeaf(NSNACM, "exec-default", execDefault))
	gs := NewNode(NSNACM, "groups")
	for _, g := range groups {
		gs.Children = append(gs.Children, NewNode(NSNACM, "group", NewLeaf(NSNACM, "name", g), NewLeaf(NSNACM, "user-name", user)))
	}
	nacm.Children = append(nacm.Children, gs)
	if ac == nil {
		return nacm
	}
	list := NewNode(NSNACM, "rule-list", NewLeaf(NSNACM, "name", "rules-for-"+user))
	for _, g := range groups {
		list.Children = append(list.Children, NewLeaf(NSNACM, "group", g))
	}
	n := 0
	for _, r := range ac.Rules {
		if !matchGroup(r.Groups, groups) {
			continue
		}
		n++
		rule := NewNode(NSNACM, "rule", NewLeaf(NSNACM, "name", fmt.Sprintf("rule-%d", n)))
		if r.Module != "" {
			rule.Children = append(rule.Children, NewLeaf(NSNACM, "module-name", r.Module))
		}
		rpc := r.RPC
		if rpc == "" {
			rpc = "*"
		}
		action := "permit"
		if r.Action == Deny {
			action = "deny"
		}
		rule.Children = append(rule.Children, NewLeaf(NSNACM, "rpc-name", rpc), NewLeaf(NSNACM, "access-operations", "exec"), NewLeaf(NSNACM, "action", action))
		list.Children = append(list.Children, rule)
	}
	nacm.Children = append(nacm.Children, list)
	return nacm
}
