package bridge_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

func TestLateAndUnknownAnswers(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "stray", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	before := b.LateAnswers()
	for i, payload := range []string{"zz9;OK", "garbage", "zz10;NOOP;x"} {
		m := client.Message{Topic: "response/ghost", Payload: []byte(payload)}
		if i == 2 {
			m.CorrelationData = []byte("unknown-correlation")
		}
		if err := tr.Publish(ctx, m, 1); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "3 late answers counted", func() bool { return b.LateAnswers() >= before+3 },
		func() string { return fmt.Sprintf("counted: %d", b.LateAnswers()-before) })
}

// An MQTT 5 answer that carries an rpc's CorrelationData, copied from the
// command by anyone who could read it, but arrives on another device's
// response topic, is not the device's answer: it is dropped and counted,
// and the rpc still waits for the real device (here, one that never
// answers, so it times out).
func TestAnswerFromAnotherDevicesTopicIsRefused(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.RPCTimeout = 2 * time.Second })
	defer b.Close()
	url := b.BrokerURL()
	silent := device(t, url, "led-color.jsonld", "led-victim", client.MQTT5)
	silent.Close() // registered, and answers nothing from now on
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	forged := make(chan client.Message, 1)
	var attacker client.Transport
	attacker, err := client.Dial(ctx, client.Config{URL: url, ClientID: "attacker", Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) {
			req, err := wire.DecodeRequest(m.Payload)
			if err != nil {
				return
			}
			answer := client.Message{Topic: wire.ResponseTopic("led-attacker"), CorrelationData: m.CorrelationData,
				Payload: wire.Response{ReqID: req.ReqID, Value: "OK"}.Encode()}
			select {
			case forged <- answer:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close(context.Background())
	if err := attacker.Subscribe(ctx, "actuator/#"); err != nil {
		t.Fatal(err)
	}
	go func() {
		select {
		case m := <-forged:
			_ = attacker.Publish(ctx, m, 1)
		case <-ctx.Done():
		}
	}()
	s := session(t, b.NetconfAddr())
	_, re := exec1(t, s, `<ledOn xmlns="`+namespace(t, "led-color.jsonld")+`"><uuidInput>led-victim</uuidInput></ledOn>`)
	if re == nil || re.Tag != "operation-failed" || !strings.Contains(re.Message, "did not answer") {
		t.Fatalf("the forged answer was taken: rpc-error %+v", re)
	}
	testenv.WaitFor(t, "the forged answer counted", func() bool { return b.MismatchedAnswers() == 1 })
}
