package netconf

import (
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// subscription is a session's RFC 5277 subscription to a stream.
type subscription struct {
	stream string // StreamNETCONF or a Config.Streams name
	filter dataFilter
	stop   *time.Timer // ends a subscription with a stopTime to come
}

// wants reports whether the subscription takes event, on stream.
func (sub *subscription) wants(stream string, event *Element) bool {
	if sub.stream != StreamNETCONF && sub.stream != stream {
		return false
	}
	return !sub.filter.present || sub.filter.selects(event)
}

// opCreateSubscription subscribes the session (RFC 5277 §2.1.1) to a
// stream, with a subtree filter; with startTime, the kept notifications
// from then (up to stopTime) come first, then <replayComplete/>; with
// stopTime, <notificationComplete/> ends the subscription then.
// p is the request's place among the session's replies: the
// subscription's notifications are held until its reply is out.
func (s *Server) opCreateSubscription(ctx context.Context, sess *session, op *Element, p *pending) ([]*Element, error) {
	// RFC 5277 §2.1.1: stream, filter, startTime, stopTime. ncclient
	// sends <filter> in the base namespace (filterInlineType's), which is
	// taken as well; anything else is refused, not ignored.
	var filterNS string
	for _, c := range op.Children {
		switch {
		case c.Name.Local == "filter" && (c.Name.Space == NSNotification || c.Name.Space == NSBase) && filterNS == "":
			filterNS = c.Name.Space
		case c.Name.Space == NSNotification && (c.Name.Local == "stream" || c.Name.Local == "startTime" || c.Name.Local == "stopTime") &&
			countChildren(op, c.Name) == 1:
		default:
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagUnknownElement,
				Message: fmt.Sprintf("unexpected <%s> (namespace %q) in <create-subscription>", c.Name.Local, c.Name.Space)}).WithInfo("bad-element", c.Name.Local)
		}
	}
	sub := &subscription{stream: StreamNETCONF}
	if st := op.Child(NSNotification, "stream"); st != nil {
		sub.stream = strings.TrimSpace(st.Text)
		if !s.knownStream(sub.stream) {
			return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
				Message: fmt.Sprintf("no stream %q (see /netconf/streams)", sub.stream)}).WithInfo("bad-element", "stream")
		}
	}
	start, hasStart, err := timeOf(op, "startTime")
	if err != nil {
		return nil, err
	}
	stop, hasStop, err := timeOf(op, "stopTime")
	if err != nil {
		return nil, err
	}
	now := time.Now()
	switch {
	case hasStop && !hasStart: // RFC 5277 §2.1.1, negative response
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagMissingElement, Message: "stopTime needs startTime"}).WithInfo("bad-element", "startTime")
	case hasStart && !s.replay.enabled():
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationNotSupported,
			Message: "replay is off on this server (replaySupport false)"}).WithInfo("bad-element", "startTime")
	case hasStart && start.After(now):
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagBadElement, Message: "startTime is in the future"}).WithInfo("bad-element", "startTime")
	case hasStop && stop.Before(start):
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagBadElement, Message: "stopTime is before startTime"}).WithInfo("bad-element", "stopTime")
	}
	if sub.filter, err = filterOf(op, cmp.Or(filterNS, NSNotification)); err != nil {
		return nil, err
	}

	// Under notifyMu, no notification is logged or sent meanwhile: the
	// replay is queued before any live one, and none is in both.
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	switch {
	case sess.ended:
		return nil, NewRPCError(ErrTypeProtocol, TagOperationFailed, "the session is ending")
	case sess.holder != nil:
		return nil, NewRPCError(ErrTypeProtocol, TagOperationFailed, "another create-subscription of this session is being answered")
	case !sess.subscribed.CompareAndSwap(nil, sub):
		return nil, NewRPCError(ErrTypeProtocol, TagOperationFailed, "this session already has a subscription")
	}
	var batch [][]byte
	if hasStart {
		for _, e := range s.replay.between(start, stop) {
			if sub.wants(e.stream, e.event) {
				batch = append(batch, e.msg)
			}
		}
		batch = append(batch, renderNotification(now, NewNode(NSNotifications, "replayComplete")))
	}
	switch {
	case hasStop && !stop.After(now):
		batch = append(batch, renderNotification(now, NewNode(NSNotifications, "notificationComplete")))
		sess.subscribed.Store(nil) // over: the session may subscribe again
	case hasStop:
		sub.stop = time.AfterFunc(stop.Sub(now), func() { s.endSubscription(sess, sub) })
	}
	// Held until the reply is out (session.writeLoop, release): RFC 5277
	// §2.1.1's <ok/> comes first, then the replay, then live ones.
	if p == nil {
		if len(batch) > 0 {
			s.send(sess, batch) // no reply to wait for
		}
	} else {
		sess.holder, sess.held = p, batch
	}
	s.log.Info("netconf subscription", append(sess.log(), "stream", sub.stream, "replayed", max(len(batch)-1, 0))...)
	return nil, nil
}

// endSubscription ends sub at its stopTime with <notificationComplete/>.
func (s *Server) endSubscription(sess *session, sub *subscription) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if sess.subscribed.CompareAndSwap(sub, nil) {
		s.send(sess, [][]byte{renderNotification(time.Now(), NewNode(NSNotifications, "notificationComplete"))})
	}
}

// release ends holding for sess once the reply of p, the holding
// create-subscription, is out, and returns what was held, for the writer
// to send before anything queued later. The reply of another request
// (one that failed) releases nothing.
func (s *Server) release(sess *session, p *pending) [][]byte {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if sess.holder != p {
		return nil
	}
	held := sess.held
	sess.held, sess.holder = nil, nil
	sess.outNotifications.Add(uint64(len(held)))
	s.stats.outNotifies.Add(uint64(len(held)))
	return held
}

// timeOf reads a dateTime child of create-subscription (RFC 5277 §2.1.1).
func timeOf(op *Element, name string) (time.Time, bool, error) {
	e := op.Child(NSNotification, name)
	if e == nil {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(e.Text))
	if err != nil {
		return time.Time{}, true, (&RPCError{Type: ErrTypeProtocol, Tag: TagInvalidValue,
			Message: fmt.Sprintf("%s %q is not a date and time (RFC 3339)", name, strings.TrimSpace(e.Text))}).WithInfo("bad-element", name)
	}
	return t, true, nil
}

// maxHeld bounds the notifications held for a session until its
// create-subscription's reply is out: a replay and what comes meanwhile.
const maxHeld = DefaultReplayEvents + 1024

// send queues messages for a session, in order; a session that does not
// read loses them, which is counted and logged. Called with notifyMu held.
func (s *Server) send(sess *session, msgs [][]byte) {
	if sess.holder != nil {
		if len(sess.held)+len(msgs) > max(maxHeld, s.replay.maxEvents+1024) {
			s.log.Warn("netconf notifications dropped: too many held for a new subscription", append(sess.log(), "notifications", len(msgs))...)
			return
		}
		sess.held = append(sess.held, msgs...)
		return
	}
	select {
	case sess.notify <- msgs:
		sess.outNotifications.Add(uint64(len(msgs)))
		s.stats.outNotifies.Add(uint64(len(msgs)))
	default:
		s.log.Warn("netconf notifications dropped: session not reading", append(sess.log(), "notifications", len(msgs))...)
	}
}

// countChildren is how many children of e are named name.
func countChildren(e *Element, name xml.Name) int {
	n := 0
	for _, c := range e.Children {
		if c.Name == name {
			n++
		}
	}
	return n
}

// Notify sends an event notification on the NETCONF stream to every
// subscribed session whose filter selects it (RFC 5277 §4). event is the
// notification content, in its module's namespace. A session that cannot
// keep up loses the notification, which is counted and logged; Notify
// never blocks on a session.
func (s *Server) Notify(event *Element) { s.notifyAt(time.Now(), StreamNETCONF, event) }

// NotifyStream is Notify for a stream of Config.Streams: the notification
// goes to its subscribers and to those of NETCONF, which has them all.
func (s *Server) NotifyStream(stream string, event *Element) { s.notifyAt(time.Now(), stream, event) }

func (s *Server) notifyAt(at time.Time, stream string, event *Element) {
	msg := renderNotification(at, event)
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.replay.add(loggedEvent{at: at, stream: stream, event: event, msg: msg})
	s.mu.RLock()
	targets := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if sess.subscribed.Load() != nil {
			targets = append(targets, sess)
		}
	}
	s.mu.RUnlock()
	for _, sess := range targets {
		if sub := sess.subscribed.Load(); sub != nil && sub.wants(stream, event) {
			s.send(sess, [][]byte{msg})
		}
	}
}

// capabilityChange emits netconf-capability-change (RFC 6470 §2.3).
func (s *Server) capabilityChange(added, removed []string) {
	ev := NewNode(NSNCNotif, "netconf-capability-change",
		NewNode(NSNCNotif, "changed-by", NewLeaf(NSNCNotif, "server", "")))
	for _, c := range added {
		ev.Children = append(ev.Children, NewLeaf(NSNCNotif, "added-capability", c))
	}
	for _, c := range removed {
		ev.Children = append(ev.Children, NewLeaf(NSNCNotif, "deleted-capability", c))
	}
	s.Notify(ev)
}
