package bridge

import (
	"fmt"
	"testing"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/wire"
)

// The embedded broker's connection events of one client identifier may
// come in any order around a session take-over [MQTT-3.1.4-3]; the
// device is online exactly while a connection holding it is up.
func TestPresenceAcrossTakeOvers(t *testing.T) {
	const uuid = "d1"
	id := access.Identity{Role: access.RoleDevice, Name: uuid}
	up := func(conn uint64) broker.ConnectionEvent {
		return broker.ConnectionEvent{Conn: conn, ClientID: wire.DeviceClientID(uuid), Identity: id, Up: true}
	}
	down := func(conn uint64, err error) broker.ConnectionEvent {
		return broker.ConnectionEvent{Conn: conn, ClientID: wire.DeviceClientID(uuid), Identity: id, Err: err}
	}
	tests := []struct {
		name   string
		events []broker.ConnectionEvent
		online bool
	}{
		{"connected", []broker.ConnectionEvent{up(1)}, true},
		{"disconnected", []broker.ConnectionEvent{up(1), down(1, nil)}, false},
		{"taken over, old end first", []broker.ConnectionEvent{up(1), down(1, broker.ErrSessionTakenOver), up(2)}, true},
		{"taken over, new start first", []broker.ConnectionEvent{up(1), up(2), down(1, broker.ErrSessionTakenOver)}, true},
		{"taken over, then the new one ends", []broker.ConnectionEvent{up(1), up(2), down(1, broker.ErrSessionTakenOver), down(2, nil)}, false},
		{"an old end comes after the new start", []broker.ConnectionEvent{up(1), up(2), down(1, nil)}, true},
		{"three in a row", []broker.ConnectionEvent{up(1), up(2), up(3), down(2, broker.ErrSessionTakenOver), down(1, broker.ErrSessionTakenOver)}, true},
		{"three in a row, the last ends", []broker.ConnectionEvent{up(1), up(2), up(3), down(3, nil), down(2, broker.ErrSessionTakenOver)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPresence(true, 0)
			p.online[uuid] = false // registered
			for _, ev := range tc.events {
				if ev.Up {
					p.connected(ev)
				} else {
					p.disconnected(ev)
				}
			}
			p.mu.Lock()
			defer p.mu.Unlock()
			if got := p.onlineLocked(uuid, time.Time{}, time.Time{}); got != tc.online {
				t.Errorf("online %v, want %v", got, tc.online)
			}
			if want := map[bool]int{true: 1}[tc.online]; p.onlineCount != want {
				t.Errorf("myno_devices_online would say %d, want %d", p.onlineCount, want)
			}
			if len(p.handover) == 0 && !tc.online && len(p.clientConns) != 0 {
				t.Errorf("connections of a device with none live: %v", p.clientConns)
			}
		})
	}
}

// BenchmarkPresenceConnect is a device's reconnect (a new connection
// taking its session over, then the old one's end) with n other devices
// connected: its cost must not grow with n (it scanned every live
// connection, which made a restart of 10,000 devices quadratic).
func BenchmarkPresenceConnect(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			p := newPresence(true, 0)
			var conn uint64
			for i := range n {
				uuid := fmt.Sprintf("dev-%d", i)
				p.online[uuid] = false
				conn++
				p.connected(broker.ConnectionEvent{Conn: conn, ClientID: wire.DeviceClientID(uuid), Identity: access.Identity{Role: access.RoleDevice, Name: uuid}, Up: true})
			}
			id := access.Identity{Role: access.RoleDevice, Name: "dev-0"}
			client := wire.DeviceClientID("dev-0")
			old := uint64(1)
			b.ResetTimer()
			for range b.N {
				conn++
				p.connected(broker.ConnectionEvent{Conn: conn, ClientID: client, Identity: id, Up: true})
				p.disconnected(broker.ConnectionEvent{Conn: old, ClientID: client, Identity: id, Err: broker.ErrSessionTakenOver})
				old = conn
			}
		})
	}
}
