package netconf

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"time"
)

// Notification streams and replay (RFC 5277 §3.2, §2.1.1).

// StreamNETCONF is the default stream: every notification of the server
// (RFC 5277 §3.2.3), whichever other stream it is also on.
const StreamNETCONF = "NETCONF"

// Stream is a named notification stream besides NETCONF (Config.Streams):
// a subset of its notifications (NotifyStream).
type Stream struct {
	Name, Description string
}

// Replay defaults (Config.ReplayEvents, ReplayBytes).
const (
	DefaultReplayEvents = 4096
	DefaultReplayBytes  = 8 << 20
)

// loggedEvent is a notification kept for replay.
type loggedEvent struct {
	at     time.Time
	stream string
	event  *Element // for the subscription's filter
	msg    []byte   // the rendered <notification>
}

// replayLog keeps the newest notifications, at most maxEvents of them and
// maxBytes of rendered XML (RFC 5277 §3.2.2: the replay buffer is the
// server's choice, and says what it holds in replayLogCreationTime and
// replayLogAgedTime). Guarded by Server.notifyMu.
type replayLog struct {
	maxEvents, maxBytes int
	events              []loggedEvent // oldest first, from start
	start               int
	bytes               int
	created, aged       time.Time // aged: when the last event was dropped; zero if none
}

func (l *replayLog) enabled() bool { return l.maxEvents > 0 }

func (l *replayLog) add(e loggedEvent) {
	if !l.enabled() {
		return
	}
	l.events = append(l.events, e)
	l.bytes += len(e.msg)
	for len(l.events)-l.start > l.maxEvents || (l.bytes > l.maxBytes && len(l.events)-l.start > 1) {
		l.bytes -= len(l.events[l.start].msg)
		l.aged = l.events[l.start].at
		l.events[l.start] = loggedEvent{}
		l.start++
	}
	if l.start > len(l.events)/2 { // compact: the slice's backing array stays bounded
		l.events = append(l.events[:0:0], l.events[l.start:]...)
		l.start = 0
	}
}

// between are the kept events from start up to stop (zero: no end), in
// order.
func (l *replayLog) between(start, stop time.Time) []loggedEvent {
	var out []loggedEvent
	for _, e := range l.events[l.start:] {
		if e.at.Before(start) || (!stop.IsZero() && e.at.After(stop)) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// renderNotification is <notification> with eventTime and the event
// (RFC 5277 §4).
func renderNotification(at time.Time, event *Element) []byte {
	var b bytes.Buffer
	b.WriteString(`<notification xmlns="` + NSNotification + `"><eventTime>`)
	b.WriteString(at.UTC().Format(time.RFC3339Nano))
	b.WriteString(`</eventTime>`)
	event.AppendXML(&b, NSNotification)
	b.WriteString(`</notification>`)
	return b.Bytes()
}

// streamsRoot is RFC 5277 §3.1's list of streams, in <get>.
var streamsRoot = xml.Name{Space: NSNotifications, Local: "netconf"}

// streamsState is /netconf/streams (RFC 5277 §3.1, §5): each stream,
// whether it replays, since when, and since when events were dropped.
func (s *Server) streamsState() *Element {
	s.notifyMu.Lock()
	created, aged, replay := s.replay.created, s.replay.aged, s.replay.enabled()
	s.notifyMu.Unlock()
	streams := NewNode(NSNotifications, "streams")
	for _, st := range s.streamList() {
		e := NewNode(NSNotifications, "stream",
			NewLeaf(NSNotifications, "name", st.Name),
			NewLeaf(NSNotifications, "description", st.Description),
			NewLeaf(NSNotifications, "replaySupport", strconv.FormatBool(replay)))
		if replay {
			e.Children = append(e.Children, NewLeaf(NSNotifications, "replayLogCreationTime", created.UTC().Format(time.RFC3339)))
			if !aged.IsZero() {
				e.Children = append(e.Children, NewLeaf(NSNotifications, "replayLogAgedTime", aged.UTC().Format(time.RFC3339Nano)))
			}
		}
		streams.Children = append(streams.Children, e)
	}
	return NewNode(NSNotifications, "netconf", streams)
}

// streamList is NETCONF, then Config.Streams.
func (s *Server) streamList() []Stream {
	return append([]Stream{{Name: StreamNETCONF, Description: "every notification of the server"}}, s.cfg.Streams...)
}

// knownStream reports whether name is a stream of the server.
func (s *Server) knownStream(name string) bool {
	for _, st := range s.streamList() {
		if st.Name == name {
			return true
		}
	}
	return false
}
