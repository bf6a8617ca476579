package bridge_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/wire"
)

// value is the sum of a family's samples whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
	sum := 0.0
	for _, m := range f.Metric {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.Label {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// The "done when": after a scripted flow, /metrics has the exact
// counts it produced: 3 registrations and 1 refused bootstrap, 5 rpcs of
// which 1 timed out and 1 was refused for its input, 1 refused NETCONF
// login, 1 forged answer dropped, the devices online, the session open,
// MQTT traffic both ways; /healthz and /readyz answer.
func TestMetricsCountAScriptedFlow(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.HTTPListen = "127.0.0.1:0"; c.RPCTimeout = 500 * time.Millisecond })
	defer b.Close()
	hold := make(chan struct{})
	defer close(hold)
	device(t, b.BrokerURL(), "led-color.jsonld", "led-1", client.MQTT5)
	deviceWith(t, b.BrokerURL(), "led-color.jsonld", "led-2", devices.Config{Handlers: map[string]devices.CommandHandler{
		"ON": func(context.Context, *devices.Device, *ontology.Function, []string) (string, []string) {
			<-hold
			return "OK", nil
		}}})
	device(t, b.BrokerURL(), "relay-sensors.jsonld", "relay-1", client.MQTT311)

	// A bootstrap refused: a description that is not JSON.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answers := make(chan string, 1)
	bad := dialAsDevice(t, ctx, b.BrokerURL(), "bad-1", func(m client.Message) { answers <- string(m.Payload) })
	defer bad.Close(ctx)
	if err := bad.Subscribe(ctx, wire.BootstrapResponseTopic(wire.TopicCreate, "bad-1")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []wire.Chunk{{UUID: "bad-1", Data: []byte("{not json")}, {UUID: "bad-1", End: true}} {
		if err := bad.Publish(ctx, client.Message{Topic: wire.DeviceBootstrapTopic(wire.TopicCreate, "bad-1"), Payload: c.Encode()}, 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case a := <-answers:
		if !strings.HasPrefix(a, wire.AnswerError) {
			t.Fatalf("broken description answered %q", a)
		}
	case <-ctx.Done():
		t.Fatal("no answer to the broken description")
	}

	// Five rpcs: three answered, one refused for its input, one timed out.
	s := session(t, b.NetconfAddr())
	ns := func(uuid string) string { mod, _ := b.ModuleOf(uuid); return "urn:myno:yang:" + mod }
	call := func(uuid, op string) {
		exec1(t, s, fmt.Sprintf(`<%s xmlns="%s"><uuidInput>%s</uuidInput>%s`, strings.SplitN(op, ">", 2)[0], ns(uuid), uuid, strings.SplitN(op, ">", 2)[1]))
	}
	call("led-1", "ledOn></ledOn>")
	call("led-1", "ledOff></ledOff>")
	call("led-1", "setColor><input_1_Color>red</input_1_Color></setColor>")
	call("led-1", "setColor><input_1_Color>purple</input_1_Color></setColor>")
	call("led-2", "ledOn></ledOn>")

	// A refused NETCONF login.
	if _, err := ssh.Dial("tcp", b.NetconfAddr(), &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("wrong")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}); err == nil {
		t.Fatal("a wrong password logged in")
	}
	// A forged answer: no rpc waits for it.
	forger := dialAsDevice(t, ctx, b.BrokerURL(), "led-1", nil)
	defer forger.Close(ctx)
	if err := forger.Publish(ctx, client.Message{Topic: wire.ResponseTopic("led-1"), Payload: []byte("999999;OK")}, 1); err != nil {
		t.Fatal(err)
	}

	var m map[string]*dto.MetricFamily
	testenv.WaitFor(t, "the forged answer counted", func() bool {
		m = testenv.ScrapeMetrics(t, b.HTTPAddr())
		return value(m, "myno_answers_dropped_total", nil) >= 1
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"myno_devices_registered", nil, 3},
		{"myno_devices_online", nil, 3},
		{"myno_modules", nil, 2},
		{"myno_bootstraps_total", map[string]string{"result": "registered"}, 3},
		{"myno_bootstraps_total", map[string]string{"result": "refused"}, 1},
		{"myno_rpcs_total", nil, 5},
		{"myno_rpcs_total", map[string]string{"result": "ok"}, 3},
		{"myno_rpcs_total", map[string]string{"result": "timeout"}, 1},
		{"myno_rpcs_total", map[string]string{"result": "invalid-value"}, 1},
		{"myno_rpcs_total", map[string]string{"rpc": "setColor"}, 2},
		{"myno_rpc_duration_seconds", nil, 5},
		{"myno_netconf_auth_failures_total", nil, 1},
		{"myno_netconf_sessions", nil, 1},
		{"myno_answers_dropped_total", nil, 1},
		{"myno_mqtt_dropped_messages_total", nil, 0}, // every client read what it was sent
	} {
		if got := value(m, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The bridge published exactly the 4 commands that reached MQTT (the
	// purple one was refused before) and the 4 bootstrap answers (3 OK, 1
	// ERROR); it received at least the 4 devices' descriptions and the 4
	// answers (3 devices', 1 forged).
	if out := value(m, "myno_mqtt_messages_total", map[string]string{"direction": "out"}); out != 8 {
		t.Errorf("mqtt messages out %v, want 8", out)
	}
	if in := value(m, "myno_mqtt_messages_total", map[string]string{"direction": "in"}); in < 8 {
		t.Errorf("mqtt messages in %v, want at least 8", in)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + b.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d %s", path, resp.StatusCode, body)
		}
	}
}
