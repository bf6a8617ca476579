package bridge_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// Presence on the embedded broker (issue 13): online follows the
// device's connections, as the broker's connection events tell them, and
// every change is a device-event notification, as are registrations,
// updates and deletions. Before, a device stayed online for 5 minutes
// after it left, and there were no such notifications.
func TestDeviceEventsOnTheEmbeddedBroker(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	t.Cleanup(b.Close)
	url := b.BrokerURL()
	addr := strings.TrimPrefix(url, "mqtt://")
	events := subscribeEvents(t, b.NetconfAddr())
	get := openRaw(t, b.NetconfAddr())
	const uuid = "presence-led-1"

	d := device(t, url, "led-color.jsonld", uuid, client.MQTT5)
	if ev := events.next(t, uuid, "registered"); !ev.Online || ev.Module == "" || ev.LastSeen == "" {
		t.Errorf("registered: %+v", ev)
	}
	if !online(t, get, b, uuid) {
		t.Fatal("<get> says offline after the registration")
	}

	d.Close() // a clean DISCONNECT (after its offline announcement)
	if ev := events.next(t, uuid, "offline"); ev.Online || ev.Reason != "disconnected" {
		t.Errorf("offline: %+v", ev)
	}
	if online(t, get, b, uuid) {
		t.Error("<get> says online after the device disconnected")
	}

	// Connections of the device's own, by hand: no reconnects, no PINGREQ.
	c1 := rawConnect(t, addr, uuid, testCreds(uuid), 60)
	if ev := events.next(t, uuid, "online"); !ev.Online || ev.Reason != "connected" {
		t.Errorf("online: %+v", ev)
	}
	// A second connection with the same client identifier takes the
	// session over [MQTT-3.1.4-3]: the first one ends, the device stays
	// online. The next event is the second one's DISCONNECT.
	c2 := rawConnect(t, addr, uuid, testCreds(uuid), 60)
	readUntilClosed(t, c1)
	if !online(t, get, b, uuid) {
		t.Error("<get> says offline after a session take-over")
	}
	rawDisconnect(t, c2)
	if ev := events.next(t, uuid, "offline"); ev.Reason != "disconnected" {
		t.Errorf("after the take-over: %+v, want the second connection's disconnect", ev)
	}

	// A connection that falls silent is dropped after 1.5 times its
	// keep-alive (1 s here), and the device is offline.
	silent := rawConnect(t, addr, uuid, testCreds(uuid), 1)
	events.next(t, uuid, "online")
	if ev := events.next(t, uuid, "offline"); !strings.Contains(ev.Reason, "keep-alive expired") {
		t.Errorf("silent connection: %+v", ev)
	}
	readUntilClosed(t, silent)

	// A new description is an update; a firmware version change too (the
	// first report tells a version, and is no update).
	d2 := device(t, url, "led-color-same-shape.jsonld", uuid, client.MQTT5)
	events.next(t, uuid, "online") // it connected before it bootstrapped
	if ev := events.next(t, uuid, "updated"); ev.Reason != "new description" || !ev.Online {
		t.Errorf("updated: %+v", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	status := dialAsDevice(t, ctx, url, uuid, nil)
	defer status.Close(context.Background())
	for _, v := range []uint32{3, 3, 4} {
		if err := status.Publish(ctx, client.Message{Topic: wire.FirmwareStatusTopic(uuid), Payload: wire.EncodeFirmwareStatus(v)}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if ev := events.next(t, uuid, "updated"); ev.Reason != "firmware version 3 -> 4" || ev.Firmware != "4" {
		t.Errorf("firmware: %+v", ev)
	}

	if answer, err := d2.Delete(ctx); err != nil || answer != wire.AnswerOK {
		t.Fatalf("delete: %q %v", answer, err)
	}
	if ev := events.next(t, uuid, "deleted"); ev.Module == "" || ev.Online {
		t.Errorf("deleted: %+v", ev)
	}
}

// An anonymous client, as a MYNO 3.1.1 device may be, with a client
// identifier of its own that names no device, registers two devices over
// one connection: both are online while it is connected, and offline
// when it goes.
func TestAConnectionHoldsTheDevicesItRegistered(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MQTTAllowAnonymous = true })
	t.Cleanup(b.Close)
	events := subscribeEvents(t, b.NetconfAddr())
	get := openRaw(t, b.NetconfAddr())
	answers := make(chan client.Message, 8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mcu, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "mcu-gateway-7f3a", Protocol: client.MQTT311,
		Logger: testenv.Logger(), OnMessage: func(m client.Message) { answers <- m }})
	if err != nil {
		t.Fatal(err)
	}
	led := desc(t, "led-color.jsonld")
	for _, uuid := range []string{"anon-led-1", "anon-led-2"} {
		if err := mcu.Subscribe(ctx, wire.BootstrapResponseTopic(wire.TopicCreate, uuid)); err != nil {
			t.Fatal(err)
		}
		for _, c := range wire.SplitDescription(uuid, led, 0) {
			if err := mcu.Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: c.Encode()}, 1); err != nil {
				t.Fatal(err)
			}
		}
		select {
		case m := <-answers:
			if string(m.Payload) != wire.AnswerOK {
				t.Fatalf("%s: %s", uuid, m.Payload)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no bootstrap answer", uuid)
		}
		if ev := events.next(t, uuid, "registered"); !ev.Online {
			t.Errorf("%s registered offline: %+v", uuid, ev)
		}
		if !online(t, get, b, uuid) {
			t.Errorf("<get> says %s is offline", uuid)
		}
	}
	if err := mcu.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, uuid := range []string{"anon-led-1", "anon-led-2"} {
		if ev := events.next(t, uuid, "offline"); ev.Reason != "disconnected" {
			t.Errorf("%s: %+v", uuid, ev)
		}
		if online(t, get, b, uuid) {
			t.Errorf("<get> says %s is online after its connection ended", uuid)
		}
	}
}

// Presence on an external broker (Mosquitto), which says nothing of
// connections: a device's Will takes it offline when its connection
// breaks, and its announcement brings it back; a late Will of another
// session does not take it offline; a restarted bridge reads the
// retained announcements. (Silence, against --device-keepalive, is
// internal/systemtest's TestStoppedDeviceGoesOffline.)
func TestPresenceOnAnExternalBroker(t *testing.T) {
	m := testenv.StartMosquitto(t)
	dir := t.TempDir()
	cfg := func(c *bridge.Config) {
		c.MQTTURL = m.URL()
		c.DeviceKeepAlive = time.Hour // silence takes nobody offline here
	}
	b := startBridge(t, dir, cfg)
	var closeOnce sync.Once
	t.Cleanup(func() { closeOnce.Do(b.Close) })
	events := subscribeEvents(t, b.NetconfAddr())
	get := openRaw(t, b.NetconfAddr())
	proxy := newCutProxy(t, m.Addr())

	withWill := device(t, "mqtt://"+proxy.addr(), "led-color.jsonld", "will-led-1", client.MQTT311)
	if ev := events.next(t, "will-led-1", "registered"); !ev.Online {
		t.Errorf("registered: %+v", ev)
	}
	plain, err := devices.New(devices.Config{Description: desc(t, "relay-sensors.jsonld"), UUID: "plain-relay-1", BrokerURL: m.URL(),
		Logger: testenv.Logger(), NoPresence: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := plain.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plain.Close)
	if err := plain.Bootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	events.next(t, "plain-relay-1", "registered")

	// The connection breaks: Mosquitto publishes the Will at once. The
	// device connects again and says so.
	proxy.cut()
	if ev := events.next(t, "will-led-1", "offline"); !strings.Contains(ev.Reason, "Will") {
		t.Errorf("offline: %+v", ev)
	}
	events.next(t, "will-led-1", "online")

	// A Will of another session, late, is not this connection's end.
	hand, err := client.Dial(ctx, client.Config{URL: m.URL(), ClientID: "by-hand", Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer hand.Close(context.Background())
	for _, a := range []struct {
		uuid string
		p    wire.Presence
	}{{"will-led-1", wire.Presence{Session: "an-earlier-one"}}, {"plain-relay-1", wire.Presence{Session: "x"}}} {
		if err := hand.Publish(ctx, client.Message{Topic: wire.PresenceTopic(a.uuid), Payload: a.p.Encode()}, 1); err != nil {
			t.Fatal(err)
		}
	}
	// In order after the late Will: an offline of a device that had
	// announced nothing counts.
	events.next(t, "plain-relay-1", "offline")
	if !online(t, get, b, "will-led-1") {
		t.Error("a late Will of another session took the device offline")
	}

	// Stopped: offline, retained; a restarted bridge knows it at once
	// (the device registered a moment ago: by its registration alone it
	// would be online for an hour).
	withWill.Close()
	events.next(t, "will-led-1", "offline")
	closeOnce.Do(b.Close)
	b = startBridge(t, dir, cfg)
	t.Cleanup(b.Close)
	get = openRaw(t, b.NetconfAddr())
	testenv.WaitFor(t, "the restarted bridge to read the retained presence", func() bool { return !online(t, get, b, "will-led-1") })
}

// deviceEvent is myno-bridge's device-event notification.
type deviceEvent struct {
	UUID     string `xml:"device-event>uuid"`
	Event    string `xml:"device-event>event"`
	Module   string `xml:"device-event>module"`
	Online   bool   `xml:"device-event>online"`
	LastSeen string `xml:"device-event>last-seen"`
	Firmware string `xml:"device-event>firmware-version"`
	Reason   string `xml:"device-event>reason"`
}

// eventStream is a NETCONF session subscribed to device-event.
type eventStream struct{ ch chan deviceEvent }

func subscribeEvents(t *testing.T, addr string) *eventStream {
	t.Helper()
	r := openRaw(t, addr)
	r.send(t, "1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter type="subtree"><device-event xmlns="urn:myno:bridge"/></filter></create-subscription>`)
	r.next(t, `message-id="1"`)
	s := &eventStream{ch: make(chan deviceEvent, 64)}
	go func() {
		for {
			m, err := r.fr.ReadMessage()
			if err != nil {
				return // the session closed with the test
			}
			var ev deviceEvent
			if xml.Unmarshal(m, &ev) == nil && ev.Event != "" {
				select {
				case s.ch <- ev:
				default: // nobody reads any more
				}
			}
		}
	}()
	return s
}

// next is the next event of device uuid, which must be of kind want.
func (s *eventStream) next(t *testing.T, uuid, want string) deviceEvent {
	t.Helper()
	deadline := time.After(testenv.WaitTimeout)
	for {
		select {
		case ev := <-s.ch:
			if ev.UUID != uuid {
				continue
			}
			if ev.Event != want {
				t.Fatalf("%s: event %s (%s), want %s", uuid, ev.Event, ev.Reason, want)
			}
			return ev
		case <-deadline:
			t.Fatalf("%s: no %s event", uuid, want)
		}
	}
}

// online asks <get> on session r whether device uuid is online.
func online(t *testing.T, r *rawSession, b *bridge.Bridge, uuid string) bool {
	t.Helper()
	module, ok := b.ModuleOf(uuid)
	if !ok {
		t.Fatalf("%s is not registered", uuid)
	}
	r.send(t, "get", `<get><filter type="subtree"><devices xmlns="urn:myno:yang:`+module+`"><device><uuid>`+uuid+`</uuid><online/></device></devices></filter></get>`)
	reply := r.next(t, `message-id="get"`)
	switch {
	case strings.Contains(reply, "<online>true</online>"):
		return true
	case strings.Contains(reply, "<online>false</online>"):
		return false
	}
	t.Fatalf("no online leaf for %s:\n%s", uuid, reply)
	return false
}

// rawConnect opens an MQTT 3.1.1 connection by hand, with a clean
// session and this keep-alive in seconds, and reads its CONNACK: a
// client that sends nothing it is not told to, not even PINGREQ.
func rawConnect(t *testing.T, addr, clientID string, creds client.Credentials, keepAlive uint16) net.Conn {
	t.Helper()
	str := func(b *bytes.Buffer, s string) {
		_ = binary.Write(b, binary.BigEndian, uint16(len(s)))
		b.WriteString(s)
	}
	var body bytes.Buffer
	str(&body, "MQTT")
	body.WriteByte(4)    // 3.1.1
	body.WriteByte(0xC2) // user name, password, clean session
	_ = binary.Write(&body, binary.BigEndian, keepAlive)
	str(&body, clientID)
	str(&body, creds.Username)
	str(&body, creds.Password)
	pk := []byte{0x10}
	for n := body.Len(); ; {
		digit := byte(n % 128)
		if n /= 128; n > 0 {
			digit |= 0x80
		}
		pk = append(pk, digit)
		if n == 0 {
			break
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(append(pk, body.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK % x %v", ack, err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c
}

// rawDisconnect sends DISCONNECT and closes c.
func rawDisconnect(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := c.Write([]byte{0xE0, 0}); err != nil {
		t.Fatal(err)
	}
	readUntilClosed(t, c)
}

// readUntilClosed returns once the broker has closed c.
func readUntilClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(testenv.WaitTimeout))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("the broker did not close the connection: %v", err)
	}
	c.Close()
}

// cutProxy forwards TCP connections to a broker; cut breaks those open
// (the broker sees the connection end without DISCONNECT, and publishes
// the Will), and the next ones go through again.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); p.cut(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
