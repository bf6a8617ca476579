package bridge_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/wire"
)

func TestLateAndUnknownAnswers(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A device that answers what nobody asked it (only a device may
	// publish on its response topic).
	tr := dialAsDevice(t, ctx, b.BrokerURL(), "ghost", nil)
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
// answers, so it times out). The forger is another device: the broker
// lets it neither read the victim's commands nor answer on the victim's
// response topic, so the command reaches it through a reader of every
// topic (a client with the bridge's role here; on an external broker
// without an ACL, anyone).
func TestAnswerFromAnotherDevicesTopicIsRefused(t *testing.T) {
	dir := t.TempDir()
	store, err := access.OpenStore(filepath.Join(dir, bridge.CredentialsFile))
	if err != nil {
		t.Fatal(err)
	}
	token, err := store.Add("watcher", access.RoleBridge, access.AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, dir, func(c *bridge.Config) { c.RPCTimeout = 2 * time.Second })
	defer b.Close()
	url := b.BrokerURL()
	silent := device(t, url, "led-color.jsonld", "led-victim", client.MQTT5)
	silent.Close() // registered, and answers nothing from now on
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	attacker := dialAsDevice(t, ctx, url, "led-attacker", nil)
	defer attacker.Close(context.Background())
	if err := attacker.Subscribe(ctx, "actuator/#"); err == nil {
		t.Fatal("the broker let device led-attacker subscribe to every device's commands")
	}
	commands := make(chan client.Message, 1)
	watcher, err := client.Dial(ctx, client.Config{URL: url, ClientID: "watcher", Credentials: client.Credentials{Username: "watcher", Password: token},
		Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) {
			select {
			case commands <- m:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.Background())
	if err := watcher.Subscribe(ctx, "actuator/#"); err != nil {
		t.Fatal(err)
	}
	// The attacker answers with the command's CorrelationData, first on
	// the victim's response topic, then on its own.
	published := make(chan [2]error, 1)
	go func() {
		select {
		case m := <-commands:
			req, err := wire.DecodeRequest(m.Payload)
			if err != nil {
				published <- [2]error{err, err}
				return
			}
			answer := func(uuid string) client.Message {
				return client.Message{Topic: wire.ResponseTopic(uuid), CorrelationData: m.CorrelationData,
					Payload: wire.Response{ReqID: req.ReqID, Value: "OK"}.Encode()}
			}
			onVictims := attacker.Publish(ctx, answer("led-victim"), 1)
			onOwn := attacker.Publish(ctx, answer("led-attacker"), 1)
			published <- [2]error{onVictims, onOwn}
		case <-ctx.Done():
		}
	}()
	s := session(t, b.NetconfAddr())
	_, re := exec1(t, s, `<ledOn xmlns="`+namespace(t, "led-color.jsonld")+`"><uuidInput>led-victim</uuidInput></ledOn>`)
	if re == nil || re.Tag != "operation-failed" || !strings.Contains(re.Message, "did not answer") {
		t.Fatalf("the forged answer was taken: rpc-error %+v", re)
	}
	select {
	case errs := <-published:
		if errs[0] == nil {
			t.Error("the broker let device led-attacker publish on led-victim's response topic")
		}
		if errs[1] != nil {
			t.Fatalf("the forged answer on the attacker's own response topic: %v", errs[1])
		}
	case <-ctx.Done():
		t.Fatal("the command never reached the watcher")
	}
	testenv.WaitFor(t, "the forged answer counted", func() bool { return b.MismatchedAnswers() == 1 },
		func() string { return fmt.Sprintf("mismatched: %d", b.MismatchedAnswers()) })
}
