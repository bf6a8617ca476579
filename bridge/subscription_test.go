package bridge_test

import (
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// On the embedded broker a command goes out only to a device that
// listens: one connected but not subscribed to its command topic (it has
// just reconnected; after a restart of 10,000 devices the subscriptions
// came back seconds after the connections) gets an rpc-error that says
// so, instead of a command published to nobody and a bare timeout; once
// it subscribes, its rpcs work.
func TestCommandWaitsForTheDevicesSubscription(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.RPCTimeout = time.Second })
	defer b.Close()
	device(t, b.BrokerURL(), "led-color.jsonld", "led-s", client.MQTT5)
	srv := bridge.EmbeddedBroker(b).Server()
	cl, ok := srv.Clients.Get(wire.DeviceClientID("led-s"))
	if !ok {
		t.Fatal("the device's client is not on the broker")
	}
	// The device's subscriptions, taken away at the broker.
	subs := cl.State.Subscriptions.GetAll()
	if len(subs) == 0 {
		t.Fatal("the device has no subscriptions")
	}
	for filter := range subs {
		srv.Topics.Unsubscribe(filter, cl.ID)
		cl.State.Subscriptions.Delete(filter)
	}
	s := session(t, b.NetconfAddr())
	ledOff := `<ledOff xmlns="` + namespace(t, "led-color.jsonld") + `"><uuidInput>led-s</uuidInput></ledOff>`
	_, re := exec1(t, s, ledOff)
	if re == nil || !strings.Contains(re.Message, "is not subscribed to its command topic") {
		t.Fatalf("rpc to a device that does not listen: %+v", re)
	}
	for filter, sub := range subs {
		srv.Topics.Subscribe(cl.ID, sub)
		cl.State.Subscriptions.Add(filter, sub)
	}
	if reply, re := exec1(t, s, ledOff); re != nil || !strings.Contains(reply, "retval") {
		t.Fatalf("rpc once subscribed again: %v %s", re, reply)
	}
}
