package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/wire"
)

// Presence (issue 13): a device is online while it is connected to the
// broker, as far as the bridge can tell.
//
//   - On the embedded broker, the broker's connection events say it: a
//     device is online while a connection it is bound to is up. A
//     connection is bound to the device it authenticated as, to the
//     device its client identifier names (wire.DeviceClientID or the bare
//     uuid, for anonymous clients), and to every device whose bootstrap,
//     readings or firmware status it published (an anonymous or MYNO
//     3.1.1 client with a random identifier, which may register several
//     devices over one connection). The broker drops a connection silent
//     for 1.5 times its keep-alive [MQTT-3.1.2-22].
//   - On an external broker, which says nothing of connections, a device
//     is online while it was heard from within 1.5 times the devices'
//     keep-alive (Config.DeviceKeepAlive; the bridge cannot see a
//     device's own there, nor its PINGREQs), unless its presence topic
//     (wire.PresenceTopic) says offline: its Will, which the broker
//     publishes when the connection breaks, or its own word when it
//     stops. Our devices announce themselves there on each connection
//     and again every keep-alive; MYNO's devices have no Will and are
//     heard through their readings. A broker's Will alone would not do:
//     Mosquitto 2.0 looks for expired keep-alives every 5 s, on a clock
//     of whole seconds, so its Will of a stopped device comes up to 6 s
//     after 1.5 times the keep-alive.
//
// Every change of a registered device's presence, and its registration,
// update and deletion, is a device-event notification of myno-bridge.

// Device events, the enumeration of myno-bridge's device-event.
const (
	eventRegistered = "registered"
	eventUpdated    = "updated"
	eventDeleted    = "deleted"
	eventOnline     = "online"
	eventOffline    = "offline"
)

// maxPendingPresence bounds the presence announcements kept for devices
// not registered (yet): a device announces itself before it bootstraps,
// and a restarted bridge hears the retained announcements before its
// registry is restored. Beyond it, announcements of further devices are
// dropped (about 100 bytes each are kept), and those devices are told
// by their silence alone until they announce themselves again.
const maxPendingPresence = 1 << 16

// presence tracks which devices are connected. It knows neither NETCONF
// nor the registry: its operations return the transitions of registered
// devices, which the bridge notifies.
type presence struct {
	embedded bool
	// grace: on an external broker, a device that announces nothing is
	// offline after this long without a message (1.5 times
	// Config.DeviceKeepAlive).
	grace time.Duration

	mu sync.Mutex
	// Embedded broker: the live connections with the devices bound to
	// each, and each device's live connections.
	conns map[uint64][]string
	links map[string]map[uint64]bool
	// clients names each live connection's client identifier, and
	// clientConns has the live connections of each identifier (looked up
	// at every connection's start and end: a scan of clients made a
	// restart with 10,000 devices quadratic); handover holds, by client
	// identifier, the devices of a connection whose session a new
	// connection took over [MQTT-3.1.4-3] before the new one's start was
	// seen: they pass to it, and stay online meanwhile.
	clients     map[uint64]string
	clientConns map[string][]uint64
	handover    map[string]*handoverEntry
	// External broker: the latest announcement of each registered device
	// that announces its presence, and of devices not registered
	// (pending, at most maxPendingPresence). An offline one holds the
	// device offline until it announces itself online again.
	announced map[string]wire.Presence
	pending   map[string]wire.Presence
	// online is, for each registered device, its presence as last told;
	// onlineCount how many of them are online (a scrape of
	// myno_devices_online counts no map).
	online      map[string]bool
	onlineCount int
}

// transition is a registered device that went online or offline.
type transition struct {
	uuid   string
	online bool
	reason string
}

func newPresence(embedded bool, keepAlive time.Duration) *presence {
	return &presence{embedded: embedded, grace: keepAlive + keepAlive/2,
		conns: map[uint64][]string{}, links: map[string]map[uint64]bool{},
		clients: map[uint64]string{}, clientConns: map[string][]uint64{}, handover: map[string]*handoverEntry{},
		announced: map[string]wire.Presence{}, pending: map[string]wire.Presence{}, online: map[string]bool{}}
}

// onlineLocked is whether uuid is connected, as far as the bridge can
// tell; lastSeen is when it was last heard from.
func (p *presence) onlineLocked(uuid string, lastSeen, now time.Time) bool {
	if p.embedded {
		return len(p.links[uuid]) > 0 || p.handingOverLocked(uuid)
	}
	if a, ok := p.announced[uuid]; ok && !a.Online {
		return false
	}
	return now.Sub(lastSeen) < p.grace
}

// isOnline is onlineLocked for <get>.
func (p *presence) isOnline(uuid string, lastSeen, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.onlineLocked(uuid, lastSeen, now)
}

// changedLocked records uuid's presence now and returns the transition
// when it differs from the one last told; nothing for a device that is
// not registered.
func (p *presence) changedLocked(uuid string, online bool, reason string) []transition {
	was, registered := p.online[uuid]
	if !registered || was == online {
		return nil
	}
	p.setOnlineLocked(uuid, online)
	return []transition{{uuid: uuid, online: online, reason: reason}}
}

// setOnlineLocked records a registered device's presence as told.
func (p *presence) setOnlineLocked(uuid string, online bool) {
	if p.online[uuid] != online {
		if online {
			p.onlineCount++
		} else {
			p.onlineCount--
		}
	}
	p.online[uuid] = online
}

// told is how many registered devices were last told online.
func (p *presence) told() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.onlineCount
}

// bindLocked binds device uuid to the live connection conn.
func (p *presence) bindLocked(uuid string, conn uint64) []transition {
	bound, live := p.conns[conn]
	if !live || p.links[uuid][conn] {
		return nil
	}
	p.conns[conn] = append(bound, uuid)
	if p.links[uuid] == nil {
		p.links[uuid] = map[uint64]bool{}
	}
	p.links[uuid][conn] = true
	return p.changedLocked(uuid, true, "connected")
}

// connected is a connection that started on the embedded broker: it is
// bound to the device it authenticated as or, for an anonymous client,
// the device its client identifier names.
func (p *presence) connected(ev broker.ConnectionEvent) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns[ev.Conn] = nil
	var out []transition
	// An older connection of this client identifier is taken over
	// [MQTT-3.1.4-3], whenever its end event comes: its devices pass to
	// this one now, so that this one's end is theirs.
	var newer []uint64
	for _, conn := range p.clientConns[ev.ClientID] {
		if conn > ev.Conn {
			newer = append(newer, conn)
			continue
		}
		for _, uuid := range p.conns[conn] {
			delete(p.links[uuid], conn)
			out = append(out, p.bindLocked(uuid, ev.Conn)...)
		}
		delete(p.conns, conn)
		delete(p.clients, conn)
	}
	p.clients[ev.Conn] = ev.ClientID
	p.clientConns[ev.ClientID] = append(newer, ev.Conn)
	if h := p.handover[ev.ClientID]; h != nil && ev.Conn > h.from {
		delete(p.handover, ev.ClientID)
		for _, uuid := range h.uuids {
			out = append(out, p.bindLocked(uuid, ev.Conn)...)
		}
	}
	if uuid, ok := deviceOfConnection(ev.Identity, ev.ClientID); ok {
		out = append(out, p.bindLocked(uuid, ev.Conn)...)
	}
	return out
}

// handingOverLocked reports whether uuid waits for the connection that
// took its session over.
func (p *presence) handingOverLocked(uuid string) bool {
	for _, h := range p.handover {
		if slices.Contains(h.uuids, uuid) {
			return true
		}
	}
	return false
}

// handoverEntry is the devices of connection from, whose session was
// taken over at since by a connection whose start is not seen yet.
type handoverEntry struct {
	from  uint64
	since time.Time
	uuids []string
}

// handoverGrace bounds the wait for the connection that took a session
// over: its start comes right after the take-over, unless it ended at
// once too (the broker's events of two connections can come in either
// order), and then its devices are offline.
const handoverGrace = 2 * time.Second

// expireHandovers is the transitions of the devices whose session was
// taken over by a connection never seen to start (expirePresence).
func (p *presence) expireHandovers(now time.Time) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []transition
	for client, h := range p.handover {
		if now.Sub(h.since) < handoverGrace {
			continue
		}
		delete(p.handover, client)
		for _, uuid := range h.uuids {
			if len(p.links[uuid]) == 0 {
				out = append(out, p.changedLocked(uuid, false, "session taken over by a connection that ended")...)
			}
		}
	}
	slices.SortFunc(out, func(a, b transition) int { return strings.Compare(a.uuid, b.uuid) })
	return out
}

// deviceOfConnection is the device a connection is, from its identity
// or, when anonymous, its client identifier.
func deviceOfConnection(id access.Identity, clientID string) (string, bool) {
	switch {
	case id.Role == access.RoleDevice:
		return id.Name, true
	case !id.Anonymous():
		return "", false // a role: the bridge, an Update Server, an E2E manager
	}
	uuid, ok := strings.CutPrefix(clientID, wire.DeviceClientID(""))
	if !ok {
		uuid = clientID
	}
	return uuid, wire.ValidUUID(uuid)
}

// disconnected is a connection that ended on the embedded broker: its
// devices are offline unless another live connection holds them.
func (p *presence) disconnected(ev broker.ConnectionEvent) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []transition
	takenOver := errors.Is(ev.Err, broker.ErrSessionTakenOver)
	for _, uuid := range p.conns[ev.Conn] {
		delete(p.links[uuid], ev.Conn)
		if len(p.links[uuid]) > 0 {
			continue
		}
		delete(p.links, uuid)
		if !takenOver {
			out = append(out, p.changedLocked(uuid, false, disconnectReason(ev))...)
			continue
		}
		// The session passes to a new connection of the same client
		// identifier: to it if its start was seen, else once it is.
		if next := p.liveConnLocked(ev.ClientID, ev.Conn); next != 0 {
			out = append(out, p.bindLocked(uuid, next)...)
			continue
		}
		h := p.handover[ev.ClientID]
		if h == nil {
			h = &handoverEntry{from: ev.Conn, since: time.Now()}
			p.handover[ev.ClientID] = h
		}
		h.uuids = append(h.uuids, uuid)
	}
	delete(p.conns, ev.Conn)
	p.forgetClientConnLocked(ev.Conn)
	return out
}

// forgetClientConnLocked removes the live connection conn from clients
// and clientConns.
func (p *presence) forgetClientConnLocked(conn uint64) {
	client, ok := p.clients[conn]
	if !ok {
		return
	}
	delete(p.clients, conn)
	rest := slices.DeleteFunc(p.clientConns[client], func(c uint64) bool { return c == conn })
	if len(rest) == 0 {
		delete(p.clientConns, client)
		return
	}
	p.clientConns[client] = rest
}

// liveConnLocked returns a live connection of client newer than after
// (connections are numbered in order), or 0.
func (p *presence) liveConnLocked(client string, after uint64) uint64 {
	for _, conn := range p.clientConns[client] {
		if conn > after {
			return conn
		}
	}
	return 0
}

// disconnectReason says why a connection ended.
func disconnectReason(ev broker.ConnectionEvent) string {
	switch {
	case ev.Err == nil:
		return "disconnected"
	case errors.Is(ev.Err, os.ErrDeadlineExceeded):
		return fmt.Sprintf("keep-alive expired: nothing received for 1.5 times its keep-alive of %s", ev.KeepAlive)
	case errors.Is(ev.Err, broker.ErrSessionTakenOver):
		return "session taken over by another connection"
	}
	return "connection lost: " + ev.Err.Error()
}

// heard is a message from device uuid at at, published over conn (0:
// an external broker, which does not say): on the embedded broker it
// binds the device to that connection while it is up; elsewhere, the
// device is online again unless its presence says offline.
func (p *presence) heard(uuid string, conn uint64, at time.Time) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.embedded {
		if conn == 0 {
			return nil
		}
		return p.bindLocked(uuid, conn)
	}
	return p.changedLocked(uuid, p.onlineLocked(uuid, at, at), "heard from")
}

// announce is a presence announcement on an external broker, heard at
// at. An offline of another session than the one online (a late Will of
// an earlier connection) is ignored.
func (p *presence) announce(uuid string, a wire.Presence, at time.Time) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, registered := p.online[uuid]; !registered {
		// Kept for when it registers, offline too: a restarted bridge
		// hears the retained announcements before its registry is back.
		cur, ok := p.pending[uuid]
		switch {
		case ok && cur.Online && !a.Online && cur.Session != a.Session:
		case ok || len(p.pending) < maxPendingPresence:
			p.pending[uuid] = a
		}
		return nil
	}
	if cur, ok := p.announced[uuid]; ok && cur.Online && !a.Online && cur.Session != a.Session {
		return nil
	}
	p.announced[uuid] = a
	reason := "announced online"
	if !a.Online {
		reason = "announced offline: it stopped, or the broker published its Will"
	}
	return p.changedLocked(uuid, p.onlineLocked(uuid, at, at), reason)
}

// registered starts or goes on tracking a registered device, bound to
// the connection that registered it (0: none, or unknown), and returns
// its transition if its presence changed.
func (p *presence) registered(uuid string, conn uint64, lastSeen, now time.Time) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.pending[uuid]; ok {
		p.announced[uuid] = a
		delete(p.pending, uuid)
	}
	var out []transition
	if p.embedded && conn != 0 {
		out = p.bindLocked(uuid, conn)
	}
	online := p.onlineLocked(uuid, lastSeen, now)
	if _, ok := p.online[uuid]; !ok {
		p.setOnlineLocked(uuid, online) // a new device: its registered event says it
		return nil
	}
	return append(out, p.changedLocked(uuid, online, "registered again")...)
}

// deleted stops tracking a device; its connections stay bound while
// they last (it may register again over them), and its announcement goes
// back to pending.
func (p *presence) deleted(uuid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.online[uuid] {
		p.onlineCount--
	}
	delete(p.online, uuid)
	if a, ok := p.announced[uuid]; ok {
		delete(p.announced, uuid)
		if len(p.pending) < maxPendingPresence {
			p.pending[uuid] = a
		}
	}
}

// expire is the transitions of the devices that fell silent, on an
// external broker; lastSeen holds every registered device's.
func (p *presence) expire(lastSeen map[string]time.Time, now time.Time) []transition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []transition
	for uuid, was := range p.online {
		if !was {
			continue
		}
		if seen, ok := lastSeen[uuid]; ok && !p.onlineLocked(uuid, seen, now) {
			out = append(out, p.changedLocked(uuid, false,
				fmt.Sprintf("silent for 1.5 times the devices' keep-alive (%s without a message)", p.grace))...)
		}
	}
	slices.SortFunc(out, func(a, b transition) int { return strings.Compare(a.uuid, b.uuid) })
	return out
}

// The bridge's side: events in, notifications out. notifyMu orders the
// notifications of the transitions as the tracker saw them: a device
// that leaves and comes back at once is told offline, then online.

// onConnection is the embedded broker's connection event
// (broker.Config.OnConnection).
func (b *Bridge) onConnection(ev broker.ConnectionEvent) {
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	if ev.Up {
		b.notifyPresence(b.presence.connected(ev))
	} else {
		b.notifyPresence(b.presence.disconnected(ev))
	}
}

// heard records that device uuid was heard from in message m.
func (b *Bridge) heard(uuid string, m client.Message) {
	now := time.Now().UTC()
	b.registry.touch(uuid, now)
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	b.notifyPresence(b.presence.heard(uuid, m.SenderConn, now))
}

// onPresence takes a device's presence announcement on an external
// broker (the embedded broker's connection events say more, and sooner);
// online is hearing from it.
func (b *Bridge) onPresence(m client.Message) {
	uuid, ok := wire.PresenceUUID(m.Topic)
	if !ok || len(m.Payload) == 0 { // a retained announcement cleared
		return
	}
	if !b.trusted(m, uuid) {
		b.untrusted(m, uuid, "presence")
		return
	}
	a, err := wire.DecodePresence(m.Payload)
	if err != nil {
		b.log.Warn("bad presence announcement", "uuid", uuid, "err", err)
		return
	}
	now := time.Now().UTC()
	if a.Online {
		b.registry.touch(uuid, now)
	}
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	b.notifyPresence(b.presence.announce(uuid, a, now))
}

// expirePresence tells, on an external broker, when devices that
// announce nothing fall silent for longer than the grace, checking a
// tenth of it (at most every second); on the embedded broker, when a
// session take-over's new connection never showed up (handoverGrace).
func (b *Bridge) expirePresence(ctx context.Context) {
	period := min(max(b.presence.grace/10, 50*time.Millisecond), time.Second)
	if b.broker != nil {
		period = handoverGrace / 4
	}
	every(ctx, period, func(now time.Time) {
		var seen map[string]time.Time
		if b.broker == nil {
			seen = b.registry.lastSeenAll()
		}
		// notifyMu before the tracker: transitions are told in the
		// order the tracker made them.
		b.notifyMu.Lock()
		if b.broker != nil {
			b.notifyPresence(b.presence.expireHandovers(now))
		} else {
			b.notifyPresence(b.presence.expire(seen, now))
		}
		b.notifyMu.Unlock()
	})
}

// registeredEvent tracks a device that registered (from message m's
// connection, when known) and tells: registered, or updated when its
// description changed, and its presence when that changed.
func (b *Bridge) registeredEvent(uuid string, conn uint64, ch change, desc []byte, notify bool) {
	now := time.Now().UTC()
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	trs := b.presence.registered(uuid, conn, b.registry.lastSeenOf(uuid), now)
	// A device registered again may have restarted and lost its
	// configuration (configuration.go).
	b.config.deviceBack(uuid)
	if !notify {
		return
	}
	b.notifyPresence(trs)
	switch {
	case ch.previous == nil:
		b.deviceEvent(uuid, eventRegistered, "", "")
	case string(ch.previous.description) != string(desc):
		b.deviceEvent(uuid, eventUpdated, "", "new description")
	}
}

// deletedEvent stops tracking a deleted device and tells.
func (b *Bridge) deletedEvent(uuid, module string) {
	b.config.deviceGone(uuid)
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	b.presence.deleted(uuid)
	b.deviceEvent(uuid, eventDeleted, module, "")
}

// firmwareEvent tells a firmware version change.
func (b *Bridge) firmwareEvent(uuid, previous, version string) {
	b.notifyMu.Lock()
	defer b.notifyMu.Unlock()
	b.deviceEvent(uuid, eventUpdated, "", "firmware version "+previous+" -> "+version)
}

// notifyPresence sends the transitions, in order; the caller holds
// notifyMu.
func (b *Bridge) notifyPresence(trs []transition) {
	for _, tr := range trs {
		event := eventOffline
		if tr.online {
			event = eventOnline
			b.config.deviceBack(tr.uuid)
		}
		b.log.Info("device "+event, "uuid", tr.uuid, "reason", tr.reason)
		b.deviceEvent(tr.uuid, event, "", tr.reason)
	}
}

// deviceEvent sends myno-bridge's device-event notification (RFC 5277):
// the device, what happened, and its state now. module names a deleted
// device's module; the registry says the others'.
func (b *Bridge) deviceEvent(uuid, event, module, reason string) {
	if b.ctx.Err() != nil {
		return // closing: the broker's last disconnections are no news
	}
	leaf := func(name, v string) *netconf.Element { return netconf.NewLeaf(bridgeNamespace, name, v) }
	n := netconf.NewNode(bridgeNamespace, "device-event", leaf("uuid", uuid), leaf("event", event))
	online := false
	if info, ok := b.registry.presenceInfo(uuid); ok {
		module = info.module
		online = b.presence.isOnline(uuid, info.lastSeen, time.Now())
		n.Children = append(n.Children, leaf("module", module), leaf("online", strconv.FormatBool(online)),
			leaf("last-seen", info.lastSeen.Format(time.RFC3339Nano)))
		if info.firmware != "" {
			n.Children = append(n.Children, leaf("firmware-version", info.firmware))
		}
	} else {
		if module != "" {
			n.Children = append(n.Children, leaf("module", module))
		}
		n.Children = append(n.Children, leaf("online", "false"))
	}
	if reason != "" {
		n.Children = append(n.Children, leaf("reason", reason))
	}
	b.nc.NotifyStream(streamDeviceEvents, n)
}

// senderConnKey carries, in a registration's context, the connection
// whose bootstrap message it is.
type senderConnKey struct{}

// withSenderConn is ctx with the connection conn (client.Message.SenderConn).
func withSenderConn(ctx context.Context, conn uint64) context.Context {
	if conn == 0 {
		return ctx
	}
	return context.WithValue(ctx, senderConnKey{}, conn)
}

// senderConnOf is the connection withSenderConn put in ctx, or 0.
func senderConnOf(ctx context.Context) uint64 {
	conn, _ := ctx.Value(senderConnKey{}).(uint64)
	return conn
}
