package bridge_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

// mynoSim is an anonymous MQTT client like MYNO's simulator: a random
// client identifier, several devices over one connection, descriptions in
// one message on yang/config, answers read on yang/config/create/response.
type mynoSim struct {
	tr      client.Transport
	answers chan string // "<uuid> <answer>"; answers beyond its room are dropped
}

func dialSim(t *testing.T, url, clientID string) (*mynoSim, error) {
	t.Helper()
	s := &mynoSim{answers: make(chan string, 256)}
	tr, err := dialWith(t.Context(), url, clientID, client.Credentials{}, func(m client.Message) {
		if uuid, ok := strings.CutPrefix(m.Topic, wire.TopicCreate+"/response/"); ok {
			select { // every client hears every answer: never block the client
			case s.answers <- uuid + " " + string(m.Payload):
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { tr.Close(context.Background()) })
	s.tr = tr
	if err := tr.Subscribe(t.Context(), wire.BootstrapResponseTopic(wire.TopicCreate, "+")); err != nil {
		t.Fatalf("%s: subscribe to the bootstrap answers: %v", clientID, err)
	}
	return s, nil
}

// register sends uuid's description as MYNO's simulator does and returns
// the bridge's answer.
func (s *mynoSim) register(t *testing.T, uuid string, description []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, c := range wire.SplitDescription(uuid, description, -1) {
		if err := s.tr.Publish(ctx, client.Message{Topic: wire.TopicLegacy, Payload: c.Encode()}, 1); err != nil {
			t.Fatalf("bootstrap of %s: %v", uuid, err)
		}
	}
	for {
		select {
		case a := <-s.answers:
			if u, answer, _ := strings.Cut(a, " "); u == uuid {
				return answer
			}
		case <-ctx.Done():
			t.Fatalf("no bootstrap answer for %s", uuid)
		}
	}
}

// Anonymous devices (--mqtt-allow-anonymous, issue 13) are bound to the
// connection that registered them, trust on first use: one connection may
// hold several; another anonymous connection may neither take them over,
// nor read their commands, nor answer for them; the binding survives a
// restart; a provisioned device's uuid is not for anonymous clients.
func TestAnonymousDevicesAreBoundToTheirConnection(t *testing.T) {
	dir := t.TempDir()
	anonymous := func(c *bridge.Config) { c.MQTTAllowAnonymous = true; c.Enrolment = access.EnrolToken }
	b := startBridge(t, dir, anonymous)
	url := b.BrokerURL()
	led := desc(t, "led-color.jsonld")
	sim, err := dialSim(t, url, "sim-7f3a9c")
	if err != nil {
		t.Fatal(err)
	}
	for _, uuid := range []string{"SIM1-8A12", "SIM2-5A68"} {
		if a := sim.register(t, uuid, led); a != wire.AnswerOK {
			t.Fatalf("%s: %s", uuid, a)
		}
	}
	// The simulator's connection may use both devices' topics.
	ctx := t.Context()
	for _, uuid := range []string{"SIM1-8A12", "SIM2-5A68"} {
		if err := sim.tr.Subscribe(ctx, "actuator/led/"+uuid); err != nil {
			t.Errorf("the simulator may not read %s's commands: %v", uuid, err)
		}
	}
	// Another anonymous connection may do none of that.
	intruder, err := dialSim(t, url, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	if a := intruder.register(t, "SIM1-8A12", led); !strings.Contains(a, "bound to another MQTT connection") {
		t.Errorf("take-over of SIM1-8A12: %q", a)
	}
	if err := intruder.tr.Subscribe(ctx, "actuator/led/SIM1-8A12"); err == nil {
		t.Error("another anonymous connection reads SIM1-8A12's commands")
	}
	if err := intruder.tr.Publish(ctx, client.Message{Topic: wire.ResponseTopic("SIM1-8A12"), Payload: []byte("1;OK")}, 1); err == nil {
		t.Error("another anonymous connection answers for SIM1-8A12")
	}
	provision(t, b, "led-provisioned", access.RoleDevice, access.AddOptions{})
	testenv.WaitFor(t, "the credential file reloaded", func() bool {
		a := intruder.register(t, "led-provisioned", led)
		return strings.Contains(a, "provisioned")
	})
	// The bindings survive a restart: the intruder still cannot take
	// SIM2-5A68; the simulator, with its client identifier, bootstraps it
	// again.
	b.Close()
	b = startBridge(t, dir, anonymous)
	defer b.Close()
	url = b.BrokerURL()
	intruder, err = dialSim(t, url, "intruder")
	if err != nil {
		t.Fatal(err)
	}
	if a := intruder.register(t, "SIM2-5A68", led); !strings.Contains(a, "bound to another MQTT connection") {
		t.Errorf("take-over of SIM2-5A68 after a restart: %q", a)
	}
	sim, err = dialSim(t, url, "sim-7f3a9c")
	if err != nil {
		t.Fatal(err)
	}
	if a := sim.register(t, "SIM2-5A68", led); a != wire.AnswerOK {
		t.Errorf("the simulator again after a restart: %q", a)
	}
}

// Under --enrol open a device moves to another anonymous connection, but
// only while the one it is bound to is gone.
func TestAnonymousDeviceMovesOnlyUnderEnrolOpen(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MQTTAllowAnonymous = true; c.Enrolment = access.EnrolOpen })
	defer b.Close()
	url := b.BrokerURL()
	led := desc(t, "led-color.jsonld")
	first, err := dialSim(t, url, "sim-first")
	if err != nil {
		t.Fatal(err)
	}
	if a := first.register(t, "SIM3-1A45", led); a != wire.AnswerOK {
		t.Fatal(a)
	}
	second, err := dialSim(t, url, "sim-second")
	if err != nil {
		t.Fatal(err)
	}
	if a := second.register(t, "SIM3-1A45", led); !strings.Contains(a, "bound to another MQTT connection") {
		t.Fatalf("moved while its connection is up: %q", a)
	}
	first.tr.Close(context.Background())
	testenv.WaitFor(t, "the device to move once its connection is gone", func() bool {
		return second.register(t, "SIM3-1A45", led) == wire.AnswerOK
	})
	if err := second.tr.Subscribe(t.Context(), "actuator/led/SIM3-1A45"); err != nil {
		t.Errorf("the new connection may not read the device's commands: %v", err)
	}
}
