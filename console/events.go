package console

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/myno-bridge/myno/netconf"
)

// event is what a page receives on /events (server-sent events, one JSON
// object per message).
type event struct {
	Kind string `json:"kind"` // "device" (device-event), "reading", "job"
	UUID string `json:"uuid,omitempty"`
	// device: the event (online, offline, registered…) and the state.
	Event  string `json:"event,omitempty"`
	Online *bool  `json:"online,omitempty"`
	// reading: the sensor, its value and time.
	Sensor    string `json:"sensor,omitempty"`
	Value     string `json:"value,omitempty"`
	Timestamp string `json:"timestamp,omitempty"`
	// job: one device's progress in an update job.
	Job *jobEvent `json:"job,omitempty"`
}

// events streams the user's notifications from every bridge (RFC 5277
// create-subscription, on NETCONF sessions of the user's own, so NACM
// applies) and the update jobs' progress, as server-sent events, until
// the page goes away. The request's goroutine owns the subscriptions.
func (c *Console) events(w http.ResponseWriter, r *http.Request, s *session) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	// The stream ends with the page, the session (logout, expiry) or the
	// console.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()
	defer context.AfterFunc(c.ctx, cancel)()
	out := make(chan event, 256)
	var subs sync.WaitGroup
	defer subs.Wait()
	defer cancel()
	ready := make(chan struct{}, len(s.bridges))
	for _, b := range s.bridges {
		subs.Go(func() {
			err := subscribe(ctx, s, b.addr, out, ready)
			if ctx.Err() != nil {
				return
			}
			// A subscription that ended (the bridge restarted, the session
			// broke) ends the stream: the page reconnects and subscribes
			// again, instead of looking live and hearing nothing.
			c.cfg.Logger.Warn("console: notifications ended", "bridge", b.addr, "user", s.user, "err", err)
			cancel()
		})
	}
	jobEvents, unsubscribe := c.jobs.subscribe()
	defer unsubscribe()
	// The stream opens once every bridge accepted the subscription (or
	// failed, or 10 s passed); then what may have changed since the page
	// was rendered is sent as it is now: each device's state, and the
	// job the page shows. Nothing falls between the page and the stream.
	deadline := time.After(10 * time.Second)
	for range s.bridges {
		select {
		case <-ready:
		case <-deadline:
		case <-ctx.Done():
			return
		}
	}
	var first []event
	devs, _ := s.devices()
	for _, d := range devs {
		online := d.Online
		first = append(first, event{Kind: "device", UUID: d.UUID, Event: "state", Online: &online})
	}
	if id, err := strconv.Atoi(r.URL.Query().Get("job")); err == nil {
		if j := c.jobs.get(id); j != nil && j.User == s.user {
			for _, je := range j.snapshot() {
				first = append(first, event{Kind: "job", UUID: je.UUID, Job: &je})
			}
		}
	}
	fmt.Fprint(w, ": stream open\n\n")
	for _, ev := range first {
		b, _ := json.Marshal(ev)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	flusher.Flush()
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		var ev event
		select {
		case <-ctx.Done():
			return
		case ev = <-out:
		case je, ok := <-jobEvents:
			if !ok {
				return // fell behind: the page reconnects and catches up
			}
			if j := c.jobs.get(je.Job); j == nil || j.User != s.user {
				continue // another user's update
			}
			ev = event{Kind: "job", UUID: je.UUID, Job: &je}
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
			flusher.Flush()
			continue
		}
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		flusher.Flush()
	}
}

// createSubscription is RFC 5277 §2.1.1's operation, every stream event.
type createSubscription struct {
	XMLName xml.Name `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 rpc"`
	ID      string   `xml:"message-id,attr"`
	Op      struct {
		XMLName xml.Name `xml:"urn:ietf:params:xml:ns:netconf:notification:1.0 create-subscription"`
	}
}

// hello is the client's hello (RFC 6241 §8.1): base 1.1 only, so the
// session uses chunked framing (RFC 6242 §4.2).
type hello struct {
	XMLName      xml.Name `xml:"urn:ietf:params:xml:ns:netconf:base:1.0 hello"`
	Capabilities []string `xml:"capabilities>capability"`
}

// notificationXML is a notification (RFC 5277 §4): its time and its one
// event element, read generically (device-event, or a sensor reading).
type notificationXML struct {
	EventTime string `xml:"eventTime"`
	Events    []struct {
		XMLName xml.Name
		Leaves  []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:",any"`
}

// subscribe opens a NETCONF session to addr, subscribes to its
// notifications and sends them to out as events until ctx ends. It sends
// on ready once the subscription is accepted, or when it fails.
func subscribe(ctx context.Context, s *session, addr string, out chan<- event, ready chan<- struct{}) error {
	signalled := false
	signal := func() {
		if !signalled {
			signalled = true
			ready <- struct{}{}
		}
	}
	defer signal()
	conn, err := s.dialSSH(ctx, addr)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	sess, err := conn.NewSession()
	if err != nil {
		return err
	}
	in, err := sess.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := sess.StdoutPipe()
	if err != nil {
		return err
	}
	if err := sess.RequestSubsystem("netconf"); err != nil {
		return err
	}
	fr, fw := netconf.NewFrameReader(stdout, 0), netconf.NewFrameWriter(in)
	if _, err := fr.ReadMessage(); err != nil { // the server's hello
		return err
	}
	h, _ := xml.Marshal(hello{Capabilities: []string{"urn:ietf:params:netconf:base:1.1"}})
	if err := fw.WriteMessage(h); err != nil {
		return err
	}
	fr.SetFraming(netconf.FramingChunked)
	fw.SetFraming(netconf.FramingChunked)
	sub, _ := xml.Marshal(createSubscription{ID: "1"})
	if err := fw.WriteMessage(sub); err != nil {
		return err
	}
	for {
		msg, err := fr.ReadMessage()
		if ctx.Err() != nil {
			return nil
		}
		if err == io.EOF {
			return errors.New("the bridge ended the session")
		}
		if err != nil {
			return err
		}
		var n notificationXML
		if xml.Unmarshal(msg, &n) != nil || n.EventTime == "" {
			signal() // the rpc-reply to create-subscription
			continue
		}
		for _, e := range n.Events {
			ev := event{Kind: "reading", Sensor: e.XMLName.Local, Timestamp: n.EventTime}
			if e.XMLName.Local == "device-event" {
				ev = event{Kind: "device"}
			}
			for _, l := range e.Leaves {
				switch l.XMLName.Local {
				case "uuid":
					ev.UUID = l.Value
				case "event":
					ev.Event = l.Value
				case "online":
					on := l.Value == "true"
					ev.Online = &on
				case "value":
					ev.Value = l.Value
				case "timestamp":
					ev.Timestamp = l.Value
				}
			}
			if ev.UUID == "" {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}
