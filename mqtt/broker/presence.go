package broker

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/mqtt/access"
)

// ConnectionEvent is a client connection that has started or ended on
// the embedded broker (Config.OnConnection).
type ConnectionEvent struct {
	// Conn numbers the connection: unique within the broker's run, never
	// 0. A client identifier outlives its connections (a reconnect, a
	// session take-over); Conn does not, so the end of an old connection
	// is never taken for the end of the new one.
	Conn     uint64
	ClientID string
	Identity access.Identity // who the client authenticated as
	// Up: the session is established (CONNACK sent); false: the
	// connection has ended (DISCONNECT, a closed socket, the keep-alive
	// expired, a take-over, the broker closing).
	Up bool
	// KeepAlive is the client's keep-alive (0: none); the broker closes a
	// connection that sends nothing for 1.5 times as long [MQTT-3.1.2-22].
	KeepAlive time.Duration
	// Err is why a connection ended: nil for a DISCONNECT, an error
	// wrapping os.ErrDeadlineExceeded for an expired keep-alive.
	Err error
}

// presenceHook reports connections as they start and end, and numbers
// them for the inline client's messages (client.Message.SenderConn).
type presenceHook struct {
	mqtt.HookBase
	access *accessHook
	on     func(ConnectionEvent) // nil: only numbering
	next   atomic.Uint64
	// conns numbers the established connections. A connection's start
	// and end run on its own goroutine, in that order; those of
	// different connections may interleave (a take-over's new connection
	// can start before the old one has ended), which Conn tells apart.
	conns sync.Map // *mqtt.Client -> uint64
}

func (h *presenceHook) ID() string { return "myno-presence" }

func (h *presenceHook) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect
}

// OnSessionEstablished runs once the CONNACK is sent, before the broker
// reads the client's first packet: its messages come after the event.
func (h *presenceHook) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	if cl.Net.Inline {
		return
	}
	n := h.next.Add(1)
	h.conns.Store(cl, n)
	if h.on != nil {
		h.on(ConnectionEvent{Conn: n, ClientID: cl.ID, Identity: h.access.identity(cl), Up: true,
			KeepAlive: time.Duration(cl.State.Keepalive) * time.Second})
	}
}

// OnDisconnect runs when an established connection has ended (and for
// sessions restored from the store, which never were: ignored).
func (h *presenceHook) OnDisconnect(cl *mqtt.Client, err error, _ bool) {
	v, ok := h.conns.LoadAndDelete(cl)
	if !ok {
		return
	}
	if h.on != nil {
		// Why the broker stopped the client says more than the read
		// error: a take-over, a DISCONNECT, the expired deadline.
		if cause := cl.StopCause(); cause != nil {
			err = cause
		}
		if errors.Is(err, packets.CodeDisconnect) {
			err = nil
		}
		h.on(ConnectionEvent{Conn: v.(uint64), ClientID: cl.ID, Identity: h.access.identity(cl),
			KeepAlive: time.Duration(cl.State.Keepalive) * time.Second, Err: err})
	}
}

// conn is the number of cl's connection, 0 when it is not established.
func (h *presenceHook) conn(cl *mqtt.Client) uint64 {
	v, ok := h.conns.Load(cl)
	if !ok {
		return 0
	}
	return v.(uint64)
}

// Connection returns the number of the connection that holds the client
// identifier now; ok is false when no established connection does.
func (b *Broker) Connection(clientID string) (conn uint64, ok bool) {
	cl, ok := b.srv.Clients.Get(clientID)
	if !ok {
		return 0, false
	}
	n := b.presence.conn(cl)
	return n, n != 0
}

// ErrSessionTakenOver is the Err of a connection that a new one with the
// same client identifier replaced [MQTT-3.1.4-3].
var ErrSessionTakenOver error = packets.ErrSessionTakenOver
