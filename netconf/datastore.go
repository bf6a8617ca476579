package netconf

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The configuration datastores: running and candidate (RFC 6241 §5.1,
// §8.3), with :writable-running (§8.2), :confirmed-commit:1.1 (§8.4),
// :rollback-on-error (§8.5) and :validate:1.1 (§8.6). The application
// (Config.Configuration) stores running and makes the world follow it;
// the server holds the data, checks edits against the schemas
// (AddConfigRoot) and runs the protocol.

// Capabilities of the configuration datastores.
const (
	CapWritableRunning = "urn:ietf:params:netconf:capability:writable-running:1.0"
	CapCandidate       = "urn:ietf:params:netconf:capability:candidate:1.0"
	CapConfirmedCommit = "urn:ietf:params:netconf:capability:confirmed-commit:1.1"
	CapRollbackOnError = "urn:ietf:params:netconf:capability:rollback-on-error:1.0"
	CapValidate        = "urn:ietf:params:netconf:capability:validate:1.1"
)

// DefaultConfirmTimeout is a confirmed commit's timeout when the commit
// gives none (RFC 6241 §8.4.5.1: 600 seconds).
const DefaultConfirmTimeout = 600 * time.Second

// datastores is the server's running and candidate.
type datastores struct {
	app Configuration
	log func(msg string, args ...any)

	// change serializes changes of running and candidate, the world's
	// following them included; a reader never waits for it.
	change sync.Mutex
	// view guards the data and the schemas, for readers and swaps.
	view      sync.RWMutex
	running   []*Element
	candidate []*Element
	// candidateEdited: the candidate has changes not committed or
	// discarded (RFC 6241 §7.5: the candidate cannot be locked then).
	candidateEdited bool
	roots           map[xml.Name]*ConfigRoot
	confirm         *pendingConfirm // a confirmed commit waiting, or nil
	// confirmSession is the session of a confirmed commit without a
	// persist token (0 if none), read without change: a session's end
	// takes change only when it matters.
	confirmSession atomic.Uint32
}

// pendingConfirm is a confirmed commit not confirmed yet (RFC 6241 §8.4).
type pendingConfirm struct {
	session  uint32 // 0 once its session ended with a persist token
	persist  string // the persist token; "" ties it to its session
	before   []*Element
	deadline time.Time
	timer    *time.Timer
}

func newDatastores(app Configuration, logf func(string, ...any)) *datastores {
	d := &datastores{app: app, log: logf, roots: map[xml.Name]*ConfigRoot{}}
	d.running = cloneData(app.Running)
	if app.Rollback != nil {
		// A confirmed commit was pending when the server stopped: it
		// was never confirmed, so the configuration before it holds.
		d.running = cloneData(app.Rollback)
		if err := d.save(d.running, nil); err != nil {
			logf("the configuration before an unconfirmed commit is not stored again", "err", err)
		} else {
			logf("configuration rolled back to before a commit not confirmed when the server stopped")
		}
	}
	d.candidate = d.running
	return d
}

// snapshot is a datastore's data as it is now; it is never changed.
func (d *datastores) snapshot(name string) []*Element {
	d.view.RLock()
	defer d.view.RUnlock()
	if name == "candidate" {
		return d.candidate
	}
	return d.running
}

// visible is a datastore's data for clients: the roots whose module is
// announced. Data of a withdrawn module is kept (and can be deleted), and
// shown again when its module comes back.
func (d *datastores) visible(name string) []*Element {
	data := d.snapshot(name)
	d.view.RLock()
	defer d.view.RUnlock()
	out := make([]*Element, 0, len(data))
	for _, e := range data {
		if d.roots[e.Name] != nil {
			out = append(out, e)
		}
	}
	return out
}

// keepHidden adds to data the roots of target whose module is withdrawn
// and that data does not hold: a client restoring what get-config showed
// does not delete what it was not shown.
func (d *datastores) keepHidden(target string, data []*Element) []*Element {
	held := d.snapshot(target)
	d.view.RLock()
	defer d.view.RUnlock()
	out := data
	for _, e := range held {
		if d.roots[e.Name] == nil && !slices.ContainsFunc(data, func(x *Element) bool { return x.Name == e.Name }) {
			out = append(slices.Clip(out), e)
		}
	}
	return out
}

// operational is the configuration in use (Configuration.Operational).
func (d *datastores) operational() []*Element {
	data := d.visible("running")
	if d.app.Operational != nil {
		return d.app.Operational(data)
	}
	return data
}

func (d *datastores) editor() editor {
	d.view.RLock()
	defer d.view.RUnlock()
	roots := make(map[xml.Name]*ConfigRoot, len(d.roots))
	for k, v := range d.roots {
		roots[k] = v
	}
	return editor{roots: roots}
}

// Running is the running configuration (top-level nodes), as the
// application must keep the world: a snapshot, not to be changed.
func (s *Server) Running() []*Element {
	if s.ds == nil {
		return nil
	}
	return s.ds.snapshot("running")
}

// setRunning makes next running after the world followed it, and stores
// it. Called with change held.
func (d *datastores) setRunning(next []*Element) {
	d.view.Lock()
	following := !d.candidateEdited
	d.running = next
	if following {
		d.candidate = next
	}
	d.view.Unlock()
}

func (d *datastores) rollbackData() []*Element {
	if d.confirm == nil {
		return nil
	}
	return d.confirm.before
}

// commitRunning makes running next: stored first (so that a restart
// finds what was asked for and reconciles the world with it), then
// applied. With atomic, any failure undoes what took; otherwise what
// failed is put back unit by unit (Configuration.Apply). Called with
// change held.
func (d *datastores) commitRunning(ctx context.Context, next []*Element, atomic bool) error {
	old := d.snapshot("running")
	if sameData(old, next) {
		return nil
	}
	if !Undoing(ctx) { // going back to what was held is never refused
		if err := d.check(old, next); err != nil {
			return err
		}
	}
	if err := d.save(next, d.rollbackData()); err != nil {
		return err
	}
	kept, err := d.apply(ctx, old, next)
	if err == nil {
		d.setRunning(next)
		return nil
	}
	if atomic && !sameData(kept, old) {
		back, undoErr := d.apply(WithUndo(ctx), kept, old)
		if undoErr != nil {
			d.log("configuration rollback failed", "err", undoErr)
			kept = back
			err = &RPCError{Type: ErrTypeApplication, Tag: TagRollbackFailed,
				Message: fmt.Sprintf("%v; undoing what took failed too: %v", asRPCError(err).Message, asRPCError(undoErr).Message)}
		} else {
			kept = old
		}
	}
	if serr := d.save(kept, d.rollbackData()); serr != nil {
		d.log("configuration not stored after a failed change", "err", serr)
	}
	d.setRunning(kept)
	return err
}

// check runs the application's bounds on a change from old to next
// (Configuration.Check).
func (d *datastores) check(old, next []*Element) error {
	if d.app.Check == nil {
		return nil
	}
	return d.app.Check(old, next)
}

// undoKey marks a context whose Apply goes back to what was held.
type undoKey struct{}

// WithUndo marks ctx for an Apply that goes back to what was held: the
// undo of a change that failed all or nothing, or a confirmed commit's
// rollback.
func WithUndo(ctx context.Context) context.Context { return context.WithValue(ctx, undoKey{}, true) }

// Undoing reports whether an Apply goes back to what was held
// (WithUndo): an application that cannot undo part of the world keeps it
// in what Apply returns, and says so in its error.
func Undoing(ctx context.Context) bool { v, _ := ctx.Value(undoKey{}).(bool); return v }

// setCandidate makes data the candidate, within the application's bounds.
// Called with change held.
func (d *datastores) setCandidate(data []*Element) error {
	if err := d.check(d.snapshot("candidate"), data); err != nil {
		return err
	}
	d.view.Lock()
	d.candidate, d.candidateEdited = data, true
	d.view.Unlock()
	return nil
}

func (d *datastores) save(running, rollback []*Element) error {
	if d.app.Save == nil {
		return nil
	}
	if err := d.app.Save(running, rollback); err != nil {
		return &RPCError{Type: ErrTypeApplication, Tag: TagOperationFailed, Message: fmt.Sprintf("the configuration cannot be stored: %v", err)}
	}
	return nil
}

func (d *datastores) apply(ctx context.Context, old, next []*Element) ([]*Element, error) {
	if d.app.Apply == nil {
		return next, nil
	}
	return d.app.Apply(ctx, old, next)
}

// target reads <target> or <source> naming one datastore of allowed.
func datastoreIn(op *Element, which string, allowed ...string) (string, *Element, error) {
	e := op.Child(NSBase, which)
	if e == nil {
		return "", nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement, Message: fmt.Sprintf("<%s> is missing", which)}).WithInfo("bad-element", which)
	}
	if len(e.Children) != 1 {
		return "", nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("<%s> must name one datastore", which)}).WithInfo("bad-element", which)
	}
	c := e.Children[0]
	name := c.Name.Local
	if unqualifiedConfig(c) {
		c.Name.Space = NSBase
	}
	if c.Name.Space != NSBase {
		return "", nil, unknownIn(which, c)
	}
	for _, a := range allowed {
		if a == name {
			return name, c, nil
		}
	}
	if name == "url" {
		return "", nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationNotSupported, Message: "<url> needs :url, which this server does not have"}).WithInfo("bad-element", "url")
	}
	return "", nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue,
		Message: fmt.Sprintf("<%s> %s: want %s", which, name, strings.Join(allowed, " or "))}).WithInfo("bad-element", name)
}

// unqualifiedConfig reports whether c is a <config> in no namespace, as
// ncclient sends the one it is given without a namespace, and so Ansible's
// netconf_config: taken as the base namespace's.
func unqualifiedConfig(c *Element) bool { return c.Name.Space == "" && c.Name.Local == "config" }

// lockedByOther refuses a change of datastore ds locked by another
// session (RFC 6241 §7.5: in-use).
func (s *Server) lockedByOther(ds string, sess *session) error {
	s.mu.RLock()
	owner := s.lockOwner
	if ds == "candidate" {
		owner = s.candidateLockOwner
	}
	s.mu.RUnlock()
	if owner != 0 && owner != sess.info.ID {
		return (&RPCError{Type: ErrTypeProtocol, Tag: TagInUse,
			Message: fmt.Sprintf("%s is locked by session %d", ds, owner)}).WithInfo("session-id", strconv.FormatUint(uint64(owner), 10))
	}
	return nil
}

// configOperation refuses a configuration operation named name when the
// server has no configuration datastores, or when op has a child that is
// not one of params in the base namespace.
func (s *Server) configOperation(op *Element, name string, params ...string) error {
	if s.ds == nil {
		return s.noConfiguration(name)
	}
	for _, c := range op.Children {
		if c.Name.Space != NSBase || !slices.Contains(params, c.Name.Local) {
			return unknownIn(name, c)
		}
	}
	return nil
}

func (s *Server) noConfiguration(op string) error {
	return NewRPCError(ErrTypeProtocol, TagOperationNotSupported, "%s is not supported: the server has no configuration datastore to change", op)
}

// opGetConfig returns a configuration datastore (RFC 6241 §7.1).
func (s *Server) opGetConfig(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	for _, c := range op.Children {
		if !(c.Name.Space == NSBase && (c.Name.Local == "source" || c.Name.Local == "filter")) && !isWithDefaults(c, NSWithDefaults) {
			return nil, unknownIn("get-config", c)
		}
	}
	ds, _, err := datastoreIn(op, "source", s.configDatastores()...)
	if err != nil {
		return nil, err
	}
	if err := checkWithDefaults(op, NSWithDefaults); err != nil {
		return nil, err
	}
	filter, err := filterOf(op, NSBase)
	if err != nil {
		return nil, err
	}
	var data []*Element
	if s.ds != nil && !filter.empty() {
		if data, err = filter.apply(s.ds.visible(ds)); err != nil {
			return nil, err
		}
	}
	return []*Element{NewNode(NSBase, "data", data...)}, nil
}

// configDatastores are the datastores get-config and lock take.
func (s *Server) configDatastores() []string {
	if s.ds == nil {
		return []string{"running"}
	}
	return []string{"running", "candidate"}
}

// opEditConfig changes running or the candidate (RFC 6241 §7.2).
func (s *Server) opEditConfig(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if s.ds == nil {
		return nil, s.noConfiguration("edit-config")
	}
	defaultOp, testOnly, atomic := opMerge, false, false
	var config *Element
	for _, c := range op.Children {
		if unqualifiedConfig(c) {
			c.Name.Space = NSBase
		}
		if c.Name.Space != NSBase || countChildren(op, c.Name) > 1 {
			return nil, unknownIn("edit-config", c)
		}
		v := strings.TrimSpace(c.Text)
		switch c.Name.Local {
		case "target":
		case "default-operation":
			switch editOperation(v) {
			case opMerge, opReplace, opNone:
				defaultOp = editOperation(v)
			default:
				return nil, badValue("default-operation", v, "merge, replace or none")
			}
		case "test-option": // :validate:1.1
			switch v {
			case "test-then-set", "set":
			case "test-only":
				testOnly = true
			default:
				return nil, badValue("test-option", v, "test-then-set, set or test-only")
			}
		case "error-option":
			switch v {
			case "stop-on-error", "continue-on-error":
			case "rollback-on-error": // :rollback-on-error
				atomic = true
			default:
				return nil, badValue("error-option", v, "stop-on-error, continue-on-error or rollback-on-error")
			}
		case "config":
			config = c
		case "url":
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationNotSupported, Message: "<url> needs :url, which this server does not have"}).WithInfo("bad-element", "url")
		default:
			return nil, unknownIn("edit-config", c)
		}
	}
	target, _, err := datastoreIn(op, "target", "running", "candidate")
	if err != nil {
		return nil, err
	}
	if config == nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement, Message: "<config> is missing"}).WithInfo("bad-element", "config")
	}
	d := s.ds
	d.change.Lock()
	defer d.change.Unlock()
	// Checked with change held: a lock is granted under it too (§7.5).
	if err := s.lockedByOther(target, sess); err != nil {
		return nil, err
	}
	ed := d.editor()
	next, err := ed.edit(d.snapshot(target), config.Children, defaultOp)
	if err != nil {
		return nil, err
	}
	if testOnly { // §8.6.4: the whole result is validated, nothing set
		if err := ed.validate(next); err != nil {
			return nil, err
		}
		return nil, d.check(d.snapshot(target), next)
	}
	if target == "candidate" {
		// The candidate may be incomplete until it is validated or
		// committed (RFC 6241 §8.3.1).
		return nil, d.setCandidate(next)
	}
	if err := ed.validate(next); err != nil {
		return nil, err
	}
	return nil, d.commitRunning(s.life, next, atomic)
}

func badValue(element, v, want string) error {
	return (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("%s %q: want %s", element, v, want)}).WithInfo("bad-element", element)
}

// configSource reads the <source> of copy-config or validate: a
// datastore, or inline <config> checked against the schemas.
func (s *Server) configSource(op *Element) (string, []*Element, error) {
	ds, e, err := datastoreIn(op, "source", "running", "candidate", "config")
	if err != nil {
		return "", nil, err
	}
	if ds != "config" {
		return ds, s.ds.snapshot(ds), nil
	}
	// Built from nothing: merge is the union of what is given, a
	// container given twice included.
	data, err := s.ds.editor().edit(nil, e.Children, opMerge)
	return ds, data, err
}

// opCopyConfig replaces a datastore with another or with inline
// configuration (RFC 6241 §7.3).
func (s *Server) opCopyConfig(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if s.ds == nil {
		return nil, s.noConfiguration("copy-config")
	}
	for _, c := range op.Children {
		if !(c.Name.Space == NSBase && (c.Name.Local == "source" || c.Name.Local == "target")) && !isWithDefaults(c, NSWithDefaults) {
			return nil, unknownIn("copy-config", c)
		}
	}
	if err := checkWithDefaults(op, NSWithDefaults); err != nil {
		return nil, err
	}
	target, _, err := datastoreIn(op, "target", "running", "candidate")
	if err != nil {
		return nil, err
	}
	d := s.ds
	d.change.Lock()
	defer d.change.Unlock()
	if err := s.lockedByOther(target, sess); err != nil {
		return nil, err
	}
	source, data, err := s.configSource(op)
	if err != nil {
		return nil, err
	}
	if source == target {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: fmt.Sprintf("source and target are both %s", target)}).WithInfo("bad-element", "target")
	}
	data = d.keepHidden(target, data)
	if target == "candidate" {
		return nil, d.setCandidate(data)
	}
	if err := d.editor().validate(data); err != nil {
		return nil, err
	}
	return nil, d.commitRunning(s.life, data, true)
}

// opDeleteConfig deletes a datastore (RFC 6241 §7.4), which ietf-netconf
// allows for startup and url only; this server has neither: running is
// persisted and is what a restart starts from (§8.7), and running itself
// cannot be deleted. Every target is refused, each saying why.
func (s *Server) opDeleteConfig(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if err := s.configOperation(op, "delete-config", "target"); err != nil {
		return nil, err
	}
	target, _, err := datastoreIn(op, "target", "startup", "candidate", "running")
	if err != nil {
		return nil, err
	}
	why := map[string]string{
		"running":   "running cannot be deleted (RFC 6241 §7.4); to empty it, copy-config an empty <config/> to it",
		"candidate": "delete-config takes startup or url (ietf-netconf); to reset the candidate, use discard-changes",
		"startup":   "this server has no startup datastore: running is stored and is what a restart starts from (RFC 6241 §8.7)",
	}[target]
	return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: why}).WithInfo("bad-element", target)
}

// opValidate checks a configuration (RFC 6241 §8.6).
func (s *Server) opValidate(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if err := s.configOperation(op, "validate", "source"); err != nil {
		return nil, err
	}
	_, data, err := s.configSource(op)
	if err != nil {
		return nil, err
	}
	return nil, s.ds.editor().validate(data)
}

// opDiscardChanges makes the candidate running again (RFC 6241 §8.3.4.2).
func (s *Server) opDiscardChanges(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if err := s.configOperation(op, "discard-changes"); err != nil {
		return nil, err
	}
	d := s.ds
	d.change.Lock()
	defer d.change.Unlock()
	if err := s.lockedByOther("candidate", sess); err != nil {
		return nil, err
	}
	d.discardLocked()
	return nil, nil
}

func (d *datastores) discardLocked() {
	d.view.Lock()
	d.candidate, d.candidateEdited = d.running, false
	d.view.Unlock()
}

// opCommit makes the candidate running (RFC 6241 §8.3.4.1), confirmed
// or not (§8.4.5.1).
func (s *Server) opCommit(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if s.ds == nil {
		return nil, s.noConfiguration("commit")
	}
	confirmed, timeout, persist, persistID, hasPersistID := false, DefaultConfirmTimeout, "", "", false
	for _, c := range op.Children {
		if c.Name.Space != NSBase || countChildren(op, c.Name) > 1 {
			return nil, unknownIn("commit", c)
		}
		v := strings.TrimSpace(c.Text)
		switch c.Name.Local {
		case "confirmed":
			confirmed = true
		case "confirm-timeout":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 0 {
				return nil, badValue("confirm-timeout", v, "seconds, 1 to 4294967295")
			}
			timeout = time.Duration(n) * time.Second
		case "persist":
			persist = c.Text
		case "persist-id":
			persistID, hasPersistID = c.Text, true
		default:
			return nil, unknownIn("commit", c)
		}
	}
	if !confirmed && (op.Child(NSBase, "confirm-timeout") != nil || op.Child(NSBase, "persist") != nil) {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement,
			Message: "confirm-timeout and persist go with <confirmed/>"}).WithInfo("bad-element", "confirmed")
	}
	d := s.ds
	d.change.Lock()
	defer d.change.Unlock()
	for _, ds := range []string{"running", "candidate"} {
		if err := s.lockedByOther(ds, sess); err != nil {
			return nil, err
		}
	}
	if pc := d.confirm; pc != nil {
		// §8.4.5.1: a commit during a confirmed commit confirms or
		// extends it; with a persist token, only one that gives it.
		if pc.persist != "" {
			if !hasPersistID || persistID != pc.persist {
				return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue,
					Message: "a confirmed commit with a persist token is pending: give its persist-id"}).WithInfo("bad-element", "persist-id")
			}
		} else if pc.session != sess.info.ID {
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInUse,
				Message: fmt.Sprintf("session %d has a confirmed commit pending: only it may confirm it", pc.session)}).
				WithInfo("session-id", strconv.FormatUint(uint64(pc.session), 10))
		}
	} else if hasPersistID {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: "no confirmed commit is pending"}).WithInfo("bad-element", "persist-id")
	}
	ed := d.editor()
	next := d.snapshot("candidate")
	if err := ed.validate(next); err != nil {
		return nil, err
	}
	before := d.snapshot("running")
	if confirmed && d.confirm == nil {
		// Stored before running changes: a restart before the
		// confirmation goes back to it.
		d.confirm = &pendingConfirm{before: before}
	}
	if err := d.commitRunning(s.life, next, true); err != nil {
		if d.confirm != nil && d.confirm.timer == nil {
			// A first confirmed commit that failed: nothing to go back to.
			d.confirm = nil
			if serr := d.save(d.snapshot("running"), nil); serr != nil {
				s.log.Error("configuration not stored after a failed confirmed commit", "err", serr)
			}
		}
		return nil, err
	}
	d.view.Lock()
	d.candidate, d.candidateEdited = d.running, false
	d.view.Unlock()
	if !confirmed {
		if pc := d.confirm; pc != nil {
			pc.timer.Stop()
			d.confirm = nil
			d.confirmSession.Store(0)
			if err := d.save(d.snapshot("running"), nil); err != nil {
				return nil, err
			}
			s.log.Info("confirmed commit confirmed", sess.log()...)
		}
		return nil, nil
	}
	pc := d.confirm
	// A follow-up confirmed commit may give a new persist token; without
	// one, the pending token stays (§8.4.5.1).
	pc.session, pc.deadline = sess.info.ID, time.Now().Add(timeout)
	if persist != "" {
		pc.persist = persist
	}
	if pc.persist == "" {
		d.confirmSession.Store(sess.info.ID)
		// The session may have ended while this commit waited for
		// change: endSession then saw no confirmed commit of it, so it
		// is undone here (§8.4.1).
		s.mu.RLock()
		alive := s.sessions[sess.info.ID] == sess
		s.mu.RUnlock()
		if !alive {
			return nil, s.revertLocked(pc, "its session ended")
		}
	} else {
		d.confirmSession.Store(0)
	}
	if pc.timer != nil {
		pc.timer.Stop()
	}
	pc.timer = time.AfterFunc(timeout, func() { s.confirmTimedOut(pc) })
	s.log.Info("confirmed commit", append(sess.log(), "timeout", timeout, "persist", pc.persist != "")...)
	return nil, nil
}

// opCancelCommit ends a confirmed commit now, restoring the configuration
// before it (RFC 6241 §8.4.4.1).
func (s *Server) opCancelCommit(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	if err := s.configOperation(op, "cancel-commit", "persist-id"); err != nil {
		return nil, err
	}
	persistID, hasPersistID := "", false
	if c := op.Child(NSBase, "persist-id"); c != nil {
		persistID, hasPersistID = c.Text, true
	}
	d := s.ds
	d.change.Lock()
	defer d.change.Unlock()
	pc := d.confirm
	switch {
	case pc == nil:
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue, Message: "no confirmed commit is pending"})
	case pc.persist != "" && (!hasPersistID || persistID != pc.persist):
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue,
			Message: "the pending confirmed commit has a persist token: give its persist-id"}).WithInfo("bad-element", "persist-id")
	case pc.persist == "" && pc.session != sess.info.ID:
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagInUse,
			Message: fmt.Sprintf("session %d issued the confirmed commit: only it may cancel it", pc.session)})
	}
	return nil, s.revertLocked(pc, "cancelled")
}

// confirmTimedOut reverts a confirmed commit whose timeout passed.
func (s *Server) confirmTimedOut(pc *pendingConfirm) {
	d := s.ds
	d.change.Lock()
	defer d.change.Unlock()
	if d.confirm != pc || time.Now().Before(pc.deadline) || s.life.Err() != nil {
		// Confirmed, cancelled or extended meanwhile; or the server is
		// stopping, and the next start goes back from what is stored.
		return
	}
	if err := s.revertLocked(pc, "not confirmed in time"); err != nil {
		s.log.Error("confirmed commit rollback failed", "err", err)
	}
}

// confirmSessionEnded reverts a confirmed commit without a persist token
// whose session ended (RFC 6241 §8.4.1). Called with change held.
func (s *Server) confirmSessionEndedLocked(id uint32) {
	d := s.ds
	pc := d.confirm
	if pc == nil || pc.persist != "" || pc.session != id || s.life.Err() != nil {
		// At a shutdown every session ends: the confirmed commit stays
		// unconfirmed in what is stored, and the next start goes back.
		return
	}
	if err := s.revertLocked(pc, "its session ended"); err != nil {
		s.log.Error("confirmed commit rollback failed", "err", err)
	}
}

// revertLocked restores the configuration before a confirmed commit. The
// configuration to go back to stays stored until the world took it.
// Called with change held.
func (s *Server) revertLocked(pc *pendingConfirm, why string) error {
	d := s.ds
	if pc.timer != nil {
		pc.timer.Stop()
	}
	s.log.Info("confirmed commit rolled back", "reason", why, "session", pc.session)
	err := d.commitRunning(WithUndo(s.life), pc.before, false)
	if err != nil && s.life.Err() != nil {
		return err // stopping: the next start goes back from what is stored
	}
	// Done, or some devices refused to go back: running says what they
	// hold (commitRunning), and the confirmed commit is over either way.
	d.confirm = nil
	d.confirmSession.Store(0)
	if serr := d.save(d.snapshot("running"), nil); err == nil {
		err = serr
	}
	return err
}

// stopConfirmTimer stops a pending confirmed commit's timer at shutdown:
// what is stored keeps the configuration to go back to.
func (d *datastores) stopConfirmTimer() {
	if d == nil || !d.change.TryLock() {
		return
	}
	defer d.change.Unlock()
	if pc := d.confirm; pc != nil && pc.timer != nil {
		pc.timer.Stop()
	}
}

// isWithDefaults reports whether c is the with-defaults parameter in ns
// (RFC 6243 §4.5).
func isWithDefaults(c *Element, ns string) bool {
	return c.Name.Local == "with-defaults" && c.Name.Space == ns
}

// NSWithDefaults is ietf-netconf-with-defaults' namespace.
const NSWithDefaults = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"

// CapWithDefaults advertises with-defaults (RFC 6243 §4.3). The server
// reports every node it holds and never adds one that was not set:
// basic-mode explicit. The schemas it serves give configuration no
// default values, so report-all is the same data.
const CapWithDefaults = "urn:ietf:params:netconf:capability:with-defaults:1.0?basic-mode=explicit&also-supported=report-all"

// checkWithDefaults refuses a with-defaults mode the server does not have
// (RFC 6243 §4.5: invalid-value).
func checkWithDefaults(op *Element, ns string) error {
	var found *Element
	for _, c := range op.Children {
		if isWithDefaults(c, ns) {
			if found != nil {
				return (&RPCError{Type: ErrTypeProtocol, Tag: TagBadElement, Message: "with-defaults is given twice"}).WithInfo("bad-element", "with-defaults")
			}
			found = c
		}
	}
	if found == nil {
		return nil
	}
	switch v := strings.TrimSpace(found.Text); v {
	case "explicit", "report-all":
		return nil
	default:
		return (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
			Message: fmt.Sprintf("with-defaults %q is not supported: explicit (the basic mode) and report-all are", v)}).WithInfo("bad-element", "with-defaults")
	}
}

// candidateChanged reports whether the candidate holds changes not
// committed or discarded.
func (d *datastores) candidateChanged() bool {
	d.view.RLock()
	defer d.view.RUnlock()
	return d.candidateEdited
}
