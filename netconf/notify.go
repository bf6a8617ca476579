package netconf

import (
	"bytes"
	"cmp"
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"time"
)

// subscription is a session's RFC 5277 subscription to the NETCONF stream.
type subscription struct {
	filter    []*Element // nil: everything
	hasFilter bool
	// No stopTime: it needs startTime (RFC 5277 §2.1.1), and replay is
	// not supported.
}

// opCreateSubscription subscribes the session (RFC 5277 §2.1.1). Only the
// default NETCONF stream exists and replay is not supported.
func (s *Server) opCreateSubscription(ctx context.Context, sess *session, op *Element) ([]*Element, error) {
	// RFC 5277 §2.1.1: stream, filter, startTime, stopTime. ncclient
	// sends <filter> in the base namespace (filterInlineType's), which is
	// taken as well; anything else is refused, not ignored.
	var filterNS string
	for _, c := range op.Children {
		switch {
		case c.Name.Local == "filter" && (c.Name.Space == NSNotification || c.Name.Space == NSBase) && filterNS == "":
			filterNS = c.Name.Space
		case c.Name.Space == NSNotification && (c.Name.Local == "stream" || c.Name.Local == "startTime" || c.Name.Local == "stopTime") &&
			len(op.Children) > 0 && countChildren(op, c.Name) == 1:
		default:
			return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagUnknownElement,
				Message: fmt.Sprintf("unexpected <%s> (namespace %q) in <create-subscription>", c.Name.Local, c.Name.Space)}).WithInfo("bad-element", c.Name.Local)
		}
	}
	if st := op.Child(NSNotification, "stream"); st != nil && strings.TrimSpace(st.Text) != "NETCONF" {
		return nil, (&RPCError{Type: ErrTypeApplication, Tag: TagInvalidValue,
			Message: fmt.Sprintf("no stream %q; only NETCONF", strings.TrimSpace(st.Text))}).WithInfo("bad-element", "stream")
	}
	if op.Child(NSNotification, "startTime") != nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagOperationNotSupported,
			Message: "replay is not supported (no :replay capability)"}).WithInfo("bad-element", "startTime")
	}
	if op.Child(NSNotification, "stopTime") != nil {
		return nil, (&RPCError{Type: ErrTypeProtocol, Tag: TagBadElement,
			Message: "stopTime needs startTime"}).WithInfo("bad-element", "stopTime")
	}
	sub := &subscription{}
	filter, present, err := filterOf(op, cmp.Or(filterNS, NSNotification))
	if err != nil {
		return nil, err
	}
	sub.filter, sub.hasFilter = filter, present
	if !sess.subscribed.CompareAndSwap(nil, sub) {
		return nil, NewRPCError(ErrTypeProtocol, TagOperationFailed, "this session already has a subscription")
	}
	s.log.Info("netconf subscription", sess.log()...)
	return nil, nil
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

// Notify sends an event notification to every subscribed session whose
// filter selects it (RFC 5277 §4). event is the notification content, in
// its module's namespace. A session that cannot keep up loses the
// notification, which is counted and logged; Notify never blocks.
func (s *Server) Notify(event *Element) {
	s.notifyAt(time.Now(), event)
}

func (s *Server) notifyAt(at time.Time, event *Element) {
	s.mu.RLock()
	targets := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if sess.subscribed.Load() != nil {
			targets = append(targets, sess)
		}
	}
	s.mu.RUnlock()
	if len(targets) == 0 {
		return
	}
	var b bytes.Buffer
	b.WriteString(`<notification xmlns="` + NSNotification + `"><eventTime>`)
	b.WriteString(at.UTC().Format(time.RFC3339Nano))
	b.WriteString(`</eventTime>`)
	event.AppendXML(&b, NSNotification)
	b.WriteString(`</notification>`)
	msg := b.Bytes()
	for _, sess := range targets {
		sub := sess.subscribed.Load()
		if sub.hasFilter && len(FilterSubtree([]*Element{event}, sub.filter)) == 0 {
			continue
		}
		select {
		case sess.notify <- msg:
			sess.outNotifications.Add(1)
			s.stats.outNotifies.Add(1)
		default:
			s.log.Warn("netconf notification dropped: session not reading", append(sess.log(), "event", event.Name.Local)...)
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
