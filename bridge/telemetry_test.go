package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
)

func TestReadingsAsStateAndNotifications(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	d, err := devices.New(devices.Config{Description: desc(t, "relay-sensors.jsonld"), UUID: "relay-t", BrokerURL: b.BrokerURL(),
		TelemetryInterval: 50 * time.Millisecond, Logger: testenv.Logger(), Credentials: testCreds("relay-t")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	ns := namespace(t, "relay-sensors.jsonld")
	r := openRaw(t, b.NetconfAddr())
	r.send(t, "1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`)
	r.next(t, `message-id="1"`)
	n := r.next(t, "<temperature")
	for _, want := range []string{`<temperature xmlns="` + ns + `"><uuid>relay-t</uuid><value>`, "<timestamp>", "<eventTime>"} {
		if !strings.Contains(n, want) {
			t.Errorf("notification lacks %q:\n%s", want, n)
		}
	}
	r.send(t, "2", `<get><filter type="subtree"><devices xmlns="`+ns+`"><device><uuid>relay-t</uuid><sensors/></device></devices></filter></get>`)
	reply := r.next(t, `message-id="2"`)
	for _, want := range []string{"<sensors><humidity><value>", "<temperature><value>", "<timestamp>"} {
		if !strings.Contains(reply, want) {
			t.Errorf("state lacks %q:\n%s", want, reply)
		}
	}
}

// After a restart on an external broker the restored devices' readings
// come in again: restoreRegistry subscribes to their telemetry topics
// (all at the end, many in flight, no longer one round trip per topic
// in turn).
func TestReadingsAfterRestartOnMosquitto(t *testing.T) {
	m := testenv.StartMosquitto(t)
	dir := t.TempDir()
	external := func(c *bridge.Config) { c.MQTTURL = m.URL() }
	b := startBridge(t, dir, external)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, uuid := range []string{"relay-r1", "relay-r2", "relay-r3"} {
		d, err := devices.New(devices.Config{Description: desc(t, "relay-sensors.jsonld"), UUID: uuid, BrokerURL: m.URL(),
			TelemetryInterval: 50 * time.Millisecond, Logger: testenv.Logger(), Credentials: testCreds(uuid)})
		if err != nil {
			t.Fatal(err)
		}
		go d.Run(ctx)
	}
	testenv.WaitFor(t, "three devices registered", func() bool { return len(b.Devices()) == 3 })
	b.Close()

	b2 := startBridge(t, dir, external)
	defer b2.Close()
	r := openRaw(t, b2.NetconfAddr())
	r.send(t, "1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/>`)
	r.next(t, `message-id="1"`)
	for _, uuid := range []string{"relay-r1", "relay-r2", "relay-r3"} {
		r.next(t, "<uuid>"+uuid+"</uuid><value>")
	}
}

// The bridge's notification streams (RFC 5277 §3.2): /netconf/streams
// lists NETCONF, device-events and telemetry; a subscription to telemetry
// gets readings and no device events; one to device-events replayed from
// before a device registered gets its registration, then
// <replayComplete/>, and no readings.
func TestNotificationStreams(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	start := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	d, err := devices.New(devices.Config{Description: desc(t, "relay-sensors.jsonld"), UUID: "relay-s", BrokerURL: b.BrokerURL(),
		TelemetryInterval: 50 * time.Millisecond, Logger: testenv.Logger(), Credentials: testCreds("relay-s")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Run(ctx)
	testenv.WaitFor(t, "relay-s registered", func() bool { return len(b.Devices()) == 1 })

	r := openRaw(t, b.NetconfAddr())
	r.send(t, "1", `<get><filter type="subtree"><netconf xmlns="urn:ietf:params:xml:ns:netmod:notification"/></filter></get>`)
	streams := r.next(t, `message-id="1"`)
	for _, want := range []string{"<name>NETCONF</name>", "<name>device-events</name>", "<name>telemetry</name>", "<replaySupport>true</replaySupport>"} {
		if !strings.Contains(streams, want) {
			t.Errorf("streams lack %q:\n%s", want, streams)
		}
	}

	tele := openRaw(t, b.NetconfAddr())
	tele.send(t, "1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>telemetry</stream></create-subscription>`)
	tele.next(t, `message-id="1"`)
	for range 4 {
		if n := tele.next(t, "<notification"); strings.Contains(n, "device-event") || !strings.Contains(n, "<uuid>relay-s</uuid><value>") {
			t.Errorf("on telemetry: %s", n)
		}
	}

	ev := openRaw(t, b.NetconfAddr())
	ev.send(t, "1", `<create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><stream>device-events</stream><startTime>`+start+`</startTime></create-subscription>`)
	if reply := ev.next(t, ""); !strings.Contains(reply, `message-id="1"`) || !strings.Contains(reply, "<ok/>") {
		t.Fatalf("first message after create-subscription: %s", reply)
	}
	if n := ev.next(t, ""); !strings.Contains(n, "<device-event") || !strings.Contains(n, "relay-s") {
		t.Errorf("replayed: %s", n)
	}
	for n := ev.next(t, ""); !strings.Contains(n, "<replayComplete"); n = ev.next(t, "") {
		if !strings.Contains(n, "<device-event") {
			t.Errorf("on device-events: %s", n)
		}
	}
}
