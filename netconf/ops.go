package netconf

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/antchfx/xpath"
)

// builtinOp is a protocol operation the server implements itself.
type builtinOp func(ctx context.Context, sess *session, op *Element) ([]*Element, error)

func (s *Server) builtin(name xml.Name) (string, builtinOp) {
	switch name.Space {
	case NSBase: // RFC 6241 §7
		switch name.Local {
		case "get":
			return "ietf-netconf", s.opGet
		case "get-config":
			return "ietf-netconf", s.opGetConfig
		case "lock":
			return "ietf-netconf", s.opLock
		case "unlock":
			return "ietf-netconf", s.opUnlock
		case "close-session":
			return "ietf-netconf", func(context.Context, *session, *Element) ([]*Element, error) { return nil, nil }
		case "kill-session":
			return "ietf-netconf", s.opKillSession
		case "edit-config":
			return "ietf-netconf", s.opEditConfig
		case "copy-config":
			return "ietf-netconf", s.opCopyConfig
		case "delete-config":
			return "ietf-netconf", s.opDeleteConfig
		case "validate":
			return "ietf-netconf", s.opValidate
		case "commit":
			return "ietf-netconf", s.opCommit
		case "discard-changes":
			return "ietf-netconf", s.opDiscardChanges
		case "cancel-commit":
			return "ietf-netconf", s.opCancelCommit
		}
	case NSNMDA:
		if name.Local == "get-data" { // RFC 8526 §3.1.1
			return "ietf-netconf-nmda", s.opGetData
		}
	case NSMonitoring:
		if name.Local == "get-schema" { // RFC 6022 §3.1
			return "ietf-netconf-monitoring", s.opGetSchema
		}
	case NSNotification:
		if name.Local == "create-subscription" { // RFC 5277 §2.1.1
			return "notifications", func(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
				return s.opCreateSubscription(ctx, sess, op, nil) // invoke passes the request's place
			}
		}
	}
	return "", nil
}

// invoke checks access and runs an rpc.
func (s *Server) invoke(sess *session, req *rpcRequest) ([]*Element, error) {
	op := req.operation
	module, fn := s.builtin(op.Name)
	var h Handler
	if fn == nil && (op.Name.Space == "" || op.Name.Space == NSBase) {
		if err := s.resolveUnqualified(op); err != nil {
			return nil, err
		}
	}
	if fn == nil {
		s.mu.RLock()
		e, ok := s.handlers[op.Name]
		s.mu.RUnlock()
		if !ok {
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationNotSupported,
				Message: fmt.Sprintf("no operation <%s> in namespace %q", op.Name.Local, op.Name.Space)}).
				WithInfo("bad-element", op.Name.Local)
		}
		module, h = e.module, e.handler
	}
	if !s.cfg.Access.allowed(sess.info.Groups, module, op.Name.Local) {
		s.log.Info("netconf access denied", append(sess.log(), "module", module, "rpc", op.Name.Local)...)
		return nil, &RPCError{Type: ErrTypeProtocol, Tag: TagAccessDenied,
			Message: fmt.Sprintf("user %s may not run %s:%s", sess.info.User, module, op.Name.Local)}
	}
	if fn != nil {
		if req.pending != nil && req.pending.subscribe {
			// The subscription's notifications are held for this
			// request's reply (notify.go).
			return s.opCreateSubscription(sess.hctx, sess, op, req.pending)
		}
		return fn(sess.hctx, sess, op)
	}
	return h.ServeRPC(sess.hctx, &Request{Session: sess.info, MessageID: messageID(req), Operation: op})
}

func messageID(req *rpcRequest) string { return req.messageID }

// dataFilter is the filter of a <get>, <get-config> or subscription
// (RFC 6241 §6, §8.9): none, a subtree, or an XPath expression.
type dataFilter struct {
	present bool
	subtree []*Element  // type subtree (or none given)
	xpath   *xpath.Expr // type xpath
}

// empty reports whether the filter selects nothing whatever the data: a
// subtree filter with no content (§6.4.2).
func (f dataFilter) empty() bool { return f.present && f.xpath == nil && len(f.subtree) == 0 }

// query is what the filter lets state sources build: a subtree filter is
// pushed down; an XPath one needs everything.
func (f dataFilter) query() *StateQuery {
	if f.present && f.xpath == nil {
		return FilterQuery(f.subtree)
	}
	return AllState()
}

// apply filters data.
func (f dataFilter) apply(data []*Element) ([]*Element, error) {
	switch {
	case !f.present:
		return data, nil
	case f.xpath != nil:
		return FilterXPath(data, f.xpath)
	}
	return FilterSubtree(data, f.subtree), nil
}

// selects reports whether the filter selects anything of event.
func (f dataFilter) selects(event *Element) bool {
	out, err := f.apply([]*Element{event})
	return err == nil && len(out) > 0
}

// filterOf reads an optional <filter> (RFC 6241 §6.1) in namespace ns:
// type subtree (the default) or xpath, whose select expression's
// prefixes are those declared on the filter or around it.
func filterOf(op *Element, ns string) (dataFilter, error) {
	f := op.Child(ns, "filter")
	if f == nil {
		return dataFilter{}, nil
	}
	attr := func(name string) string {
		v, ok := f.Attr("", name)
		if !ok {
			v, _ = f.Attr(NSBase, name)
		}
		return v
	}
	switch typ := attr("type"); typ {
	case "", "subtree":
		return dataFilter{present: true, subtree: f.Children}, nil
	case "xpath":
		expr, err := compileXPath(attr("select"), inScope(op, f))
		if err != nil {
			return dataFilter{}, err
		}
		return dataFilter{present: true, xpath: expr}, nil
	default:
		return dataFilter{}, (&RPCError{Type: ErrTypeProtocol, Tag: TagBadAttribute, Message: fmt.Sprintf("unknown filter type %q", typ)}).
			WithInfo("bad-attribute", "type").WithInfo("bad-element", "filter")
	}
}

// opGet returns state data (RFC 6241 §7.7).
func (s *Server) opGet(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	for _, c := range op.Children {
		if !(c.Name.Space == NSBase && c.Name.Local == "filter") && !isWithDefaults(c, NSWithDefaults) {
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagUnknownElement, Message: fmt.Sprintf("unexpected <%s> in <get>", c.Name.Local)}).
				WithInfo("bad-element", c.Name.Local)
		}
	}
	if err := checkWithDefaults(op, NSWithDefaults); err != nil {
		return nil, err
	}
	filter, err := filterOf(op, NSBase)
	if err != nil {
		return nil, err
	}
	// §7.7: running's configuration and the state data.
	data, err := s.stateData(ctx, sess, filter, configRunning, true, true)
	if err != nil {
		return nil, err
	}
	return []*Element{NewNode(NSBase, "data", data...)}, nil
}

// configView is which configuration stateData includes: running's
// (<get>, RFC 6241 §7.7) or the one in use (NMDA's operational).
type configView int

const (
	configRunning configView = iota
	configUsed
)

// stateData is the data that filter selects of running's configuration
// (withConfig) and of the state (withState): the server's own, and each
// source's that the filter may select from.
func (s *Server) stateData(ctx context.Context, sess *session, filter dataFilter, config configView, withConfig, withState bool) ([]*Element, error) {
	if filter.empty() {
		// §6.4.2: an empty filter selects nothing; no source is asked.
		return nil, nil
	}
	q := filter.query()
	var data []*Element
	if withConfig && s.ds != nil {
		roots := s.ds.visible("running")
		if config == configUsed {
			roots = s.ds.operational()
		}
		for _, e := range roots {
			if q.Wants(e.Name) {
				data = append(data, e)
			}
		}
	}
	if !withState {
		return filter.apply(data)
	}
	data = append(data, s.monitoringState(q)...)
	// The session's own view of the access control (RFC 8341 §3.5.2).
	if q.Wants(nacmRoot) {
		data = append(data, s.cfg.Access.View(sess.info.User, sess.info.Groups))
	}
	s.mu.RLock()
	sources := make([]StateSource, 0, len(s.state))
	names := make([]string, 0, len(s.state))
	for name := range s.state {
		names = append(names, name)
	}
	sortStrings(names)
	for _, n := range names {
		if src := s.state[n]; src.wanted(q) {
			sources = append(sources, src)
		}
	}
	s.mu.RUnlock()
	for _, src := range sources {
		nodes, err := src.Get(ctx, q)
		if err != nil {
			return nil, err
		}
		data = append(data, nodes...)
	}
	return filter.apply(data)
}

// opLock locks running or the candidate (RFC 6241 §7.5).
func (s *Server) opLock(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	ds, _, err := datastoreIn(op, "target", s.configDatastores()...)
	if err != nil {
		return nil, err
	}
	if d := s.ds; d != nil {
		// Under change: no change of the datastore is half done when
		// the lock is granted, and none starts unseen.
		d.change.Lock()
		defer d.change.Unlock()
		if pc := d.confirm; ds == "running" && pc != nil && (pc.persist != "" || pc.session != sess.info.ID) {
			// §7.5: not while another session's confirmed commit waits.
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagLockDenied,
				Message: "a confirmed commit of another session is waiting for its confirmation"}).WithInfo("session-id", strconv.FormatUint(uint64(pc.session), 10))
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.info.ID] != sess {
		// Ended while this rpc waited: a lock now would outlive it.
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationFailed, Message: "the session has ended"})
	}
	owner, at := &s.lockOwner, &s.lockTime
	if ds == "candidate" {
		owner, at = &s.candidateLockOwner, &s.candidateLockTime
	}
	if *owner != 0 {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagLockDenied,
			Message: fmt.Sprintf("%s is locked by session %d", ds, *owner)}).WithInfo("session-id", strconv.FormatUint(uint64(*owner), 10))
	}
	if ds == "candidate" && s.ds.candidateChanged() {
		// §7.5: not while it holds changes not committed or discarded.
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagLockDenied,
			Message: "the candidate holds changes not committed nor discarded"}).WithInfo("session-id", "0")
	}
	*owner, *at = sess.info.ID, time.Now().UTC()
	return nil, nil
}

// opUnlock releases a lock held by this session (RFC 6241 §7.6).
func (s *Server) opUnlock(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	ds, _, err := datastoreIn(op, "target", s.configDatastores()...)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	owner := &s.lockOwner
	if ds == "candidate" {
		owner = &s.candidateLockOwner
	}
	if *owner != sess.info.ID {
		held := strconv.FormatUint(uint64(*owner), 10)
		s.mu.Unlock()
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationFailed,
			Message: fmt.Sprintf("this session does not hold the lock on %s", ds)}).WithInfo("session-id", held)
	}
	*owner = 0
	s.mu.Unlock()
	return nil, nil
}

// opKillSession ends another session (RFC 6241 §7.9).
func (s *Server) opKillSession(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	idEl := op.Child(NSBase, "session-id")
	if idEl == nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement, Message: "<session-id> is missing"}).WithInfo("bad-element", "session-id")
	}
	id, err := strconv.ParseUint(strings.TrimSpace(idEl.Text), 10, 32)
	if err != nil || id == 0 {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("bad session-id %q", idEl.Text)}).WithInfo("bad-element", "session-id")
	}
	if uint32(id) == sess.info.ID {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: "a session cannot kill itself; use close-session"}).WithInfo("bad-element", "session-id")
	}
	s.mu.RLock()
	target := s.sessions[uint32(id)]
	s.mu.RUnlock()
	if target == nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("no session %d", id)}).WithInfo("bad-element", "session-id")
	}
	s.log.Info("netconf session killed", append(sess.log(), "killed", id)...)
	target.cancel()
	return nil, nil
}

// resolveUnqualified gives an rpc that arrived without a namespace the
// namespace of the module that serves it, and its leaves without one
// too: MYNO's clients send device rpcs and their inputs unqualified
// (issue 13). Inside <rpc xmlns="…base:1.0"> such an element inherits the
// base namespace (Namespaces in XML 1.0 §6.2), where no device rpc is;
// inside <nc:rpc> it has none. Both count as unqualified. Real fleets repeat rpc names across modules (funcLed_1On in
// every LED module), so Config.ChooseModule picks first (the bridge: the
// module of the device the selector leaf names); otherwise the name must
// be unambiguous, and an ambiguous one is refused naming the candidates.
// A qualified rpc never comes here: RFC 6241 §4.1 wants the namespace.
func (s *Server) resolveUnqualified(op *Element) error {
	s.mu.RLock()
	var candidates, modules []string
	for name, e := range s.handlers {
		if name.Local == op.Name.Local {
			candidates = append(candidates, name.Space)
			modules = append(modules, e.module)
		}
	}
	s.mu.RUnlock()
	sort.Strings(candidates)
	sort.Strings(modules)
	notFound := (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationNotSupported,
		Message: fmt.Sprintf("no operation <%s> in any module", op.Name.Local)}).WithInfo("bad-element", op.Name.Local)
	if len(candidates) == 0 {
		return notFound
	}
	ns := ""
	if s.cfg.ChooseModule != nil {
		chosen, err := s.cfg.ChooseModule(op, candidates)
		if err != nil {
			return err
		}
		ns = chosen
	}
	switch {
	case ns != "":
		if !slices.Contains(candidates, ns) {
			return notFound
		}
	case len(candidates) == 1:
		ns = candidates[0]
	default:
		return (&RPCError{Type: ErrTypeProtocol, Tag: TagBadElement,
			Message: fmt.Sprintf("<%s> has no namespace, and modules %s all have it: give its namespace, or a selector leaf naming a registered device",
				op.Name.Local, strings.Join(modules, ", "))}).WithInfo("bad-element", op.Name.Local)
	}
	qualify(op, ns)
	return nil
}

// qualify puts e and its descendants without a namespace (or in the base
// namespace they inherited) in ns.
func qualify(e *Element, ns string) {
	if e.Name.Space == "" || e.Name.Space == NSBase {
		e.Name.Space = ns
	}
	for _, c := range e.Children {
		qualify(c, ns)
	}
}
