package broker

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sessionGate lets one connection at a time establish a session for a
// client identifier, and ends the previous session of that identifier
// before the next one begins [MQTT-3.1.4-3].
//
// mochi-mqtt v2.7.9 keeps a client's session under its identifier alone,
// and establishes each connection on its own goroutine. Two connections
// of one identifier that overlap corrupt each other:
//
//   - a closed connection whose session ends with it (MQTT 5 Session
//     Expiry 0, or a 3.1.1 clean session) is cleaned up by identifier:
//     mochi unsubscribes and deletes "the client named X". When the new
//     connection was added in between, it is the new one that vanishes
//     from the client list and loses its subscriptions, although it stays
//     connected and its SUBACKs said granted: nothing published to it
//     arrives again (a device rebooting; a fleet reconnecting at once);
//   - mochi's take-over of a live session sets the old client's
//     "taken over" mark only after it has stopped it, so the old
//     connection's cleanup can run first and take the new one's place
//     the same way;
//   - a CONNECT whose client gave up waiting and closed the socket (a
//     connection held in the backlog while the bridge restores its
//     registry, Config.HoldConnections) is still read and can take over
//     the live connection the same client opened since.
//
// The gate is a hook (OnConnect, after the access check, and
// OnSessionEstablished) that works with the listener, which reports when
// each connection's goroutine has returned (mochi's cleanup is done by
// then). A CONNECT waits for its identifier's turn; then, if the previous
// session of that identifier ends with its connection, the gate ends it
// (a DISCONNECT with 0x8E Session taken over when it is still connected)
// and waits until mochi has cleaned it up, so the new connection starts
// from a clean slate instead of racing that cleanup; a session that
// outlives its connection is left to mochi's take-over, which keeps it
// [MQTT-3.1.2-5]. A CONNECT whose peer has already closed the socket is
// dropped before it touches any session. The turn passes on once the
// session is established, or the connection has ended.
type sessionGate struct {
	mqtt.HookBase
	srv *mqtt.Server
	// timeout bounds each wait (for the turn, for the old session's end).
	// A CONNECT that does not get its turn in time is refused with 0x89
	// Server busy; one whose old session does not end in time goes on.
	timeout time.Duration

	mu    sync.Mutex
	conns map[net.Conn]*gateConn // connections whose goroutine has not returned
	turns map[string]*gateConn   // client identifier -> the connection establishing
}

// gateConn is one connection the gate knows of.
type gateConn struct {
	conn     net.Conn
	ended    chan struct{} // closed when the connection's goroutine returned
	clientID string        // once its CONNECT was read
	turnDone chan struct{} // closed when it gives up its turn (nil: no turn)
}

// defaultGateTimeout is sessionGate.timeout's default: a cleanup is a few
// map operations, a turn one establishment (an access check included).
const defaultGateTimeout = 5 * time.Second

// msgAwaitSessionEnd is logged (at debug level) when a CONNECT waits for
// the previous session of its client identifier to end.
const msgAwaitSessionEnd = "connect waits for the previous session to end"

// errPeerGone is the end of a connection whose client closed it before
// its CONNECT was answered.
var errPeerGone = errors.New("client closed the connection before its CONNECT was answered")

func newSessionGate(srv *mqtt.Server) *sessionGate {
	return &sessionGate{srv: srv, timeout: defaultGateTimeout, conns: map[net.Conn]*gateConn{}, turns: map[string]*gateConn{}}
}

func (g *sessionGate) ID() string { return "session-gate" }

func (g *sessionGate) Provides(b byte) bool {
	return b == mqtt.OnConnect || b == mqtt.OnSessionEstablished
}

// opened is called by the listener before it hands conn to the broker.
func (g *sessionGate) opened(conn net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns[conn] = &gateConn{conn: conn, ended: make(chan struct{})}
}

// closed is called by the listener once the broker is done with conn:
// mochi has cleaned its session up (or kept it) by then.
func (g *sessionGate) closed(conn net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.conns[conn]
	if c == nil {
		return
	}
	delete(g.conns, conn)
	g.releaseLocked(c)
	close(c.ended)
}

// releaseLocked passes c's turn on, if it has one.
func (g *sessionGate) releaseLocked(c *gateConn) {
	if c.turnDone == nil {
		return
	}
	if g.turns[c.clientID] == c {
		delete(g.turns, c.clientID)
	}
	close(c.turnDone)
	c.turnDone = nil
}

// OnSessionEstablished passes the turn on: the session is in the client
// list, which the next CONNECT of the identifier looks at.
func (g *sessionGate) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.conns[cl.Net.Conn]; c != nil {
		g.releaseLocked(c)
	}
}

// OnConnect takes the identifier's turn, drops a CONNECT nobody waits
// for any more, and ends the previous session of the identifier when it
// ends with its connection.
func (g *sessionGate) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	if cl.Net.Inline || cl.Net.Conn == nil {
		return nil
	}
	deadline := time.Now().Add(g.timeout)
	if err := g.takeTurn(cl, deadline); err != nil {
		// MQTT 5 §3.2.2.2 0x89 Server busy; 3.1.1: 0x03 Server unavailable.
		_ = g.srv.SendConnack(cl, packets.ErrServerBusy, false, nil)
		return err
	}
	if peerClosed(cl.Net.Conn) {
		return errPeerGone
	}
	g.endOldSession(cl, deadline)
	return nil
}

// takeTurn waits until no other connection establishes a session for
// cl's identifier, and takes the turn.
func (g *sessionGate) takeTurn(cl *mqtt.Client, deadline time.Time) error {
	for {
		g.mu.Lock()
		c := g.conns[cl.Net.Conn]
		if c == nil { // not from our listeners (a test's): no turn
			g.mu.Unlock()
			return nil
		}
		other := g.turns[cl.ID]
		if other == nil {
			c.clientID, c.turnDone = cl.ID, make(chan struct{})
			g.turns[cl.ID] = c
			g.mu.Unlock()
			return nil
		}
		wait := other.turnDone
		g.mu.Unlock()
		if !waitUntil(wait, deadline) {
			return fmt.Errorf("client %q: another connection of this client identifier is still being established after %s", cl.ID, g.timeout)
		}
	}
}

// endOldSession ends the session cl's identifier has, when it ends with
// its connection, and waits until mochi has cleaned it up.
func (g *sessionGate) endOldSession(cl *mqtt.Client, deadline time.Time) {
	old, ok := g.srv.Clients.Get(cl.ID)
	if !ok || old == cl || old.Net.Inline || old.IsTakenOver() || !sessionEndsWith(old) {
		return // none, or one that outlives its connection: mochi's take-over keeps it
	}
	if !old.Closed() {
		_ = g.srv.DisconnectClient(old, packets.ErrSessionTakenOver) // [MQTT-3.1.4-3]
	}
	g.mu.Lock()
	var ended chan struct{}
	if c := g.conns[old.Net.Conn]; c != nil {
		ended = c.ended
	}
	g.mu.Unlock()
	if ended != nil {
		g.Log.Debug(msgAwaitSessionEnd, "client", cl.ID)
		if !waitUntil(ended, deadline) {
			g.Log.Warn("previous session still ending; connecting anyway", "client", cl.ID)
			return
		}
	}
	// A connection that failed after joining the client list (its
	// CONNACK could not be written) is never cleaned up by mochi. No
	// other connection of the identifier can be added meanwhile: cl has
	// the turn.
	if cur, ok := g.srv.Clients.Get(cl.ID); ok && cur == old {
		g.srv.UnsubscribeClient(old)
		g.srv.Clients.Delete(old.ID)
	}
}

// waitUntil waits for ch to close until deadline; false: the deadline came.
func waitUntil(ch <-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// sessionEndsWith reports whether cl's session ends when its connection
// does (MQTT 5 §3.1.2.11.2, 3.1.1 §3.1.2.4).
func sessionEndsWith(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}
