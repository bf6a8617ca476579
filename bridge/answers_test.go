package bridge_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/ontology"
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

// Answers outside the result enumeration (issue 13): MYNO's firmware
// answers OK, MANIFEST-SUCCESS and 123456,1 although its description lists
// 10_OK … 28_IMAGE-INVALID. OK is the state 10_OK; any other answer comes
// back as it is (retval is a union of the states and a string), never as
// operation-failed; data outputs follow it. Each reply validates against
// the module with yanglint.
func TestAnswersOutsideTheStates(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	deviceWith(t, b.BrokerURL(), "mup-device.jsonld", "myno-fw-1", devices.Config{Handlers: map[string]devices.CommandHandler{
		"REPORT-INTERVAL":  answering("OK"),
		"REBOOT":           answering("MANIFEST-SUCCESS"),
		"GET-DEVICE-TOKEN": answering("123456,1", "myno-fw-1", "0a0b0c0d0e0f1011", "7"),
		"ON":               answering("12_ERROR"),
	}})
	ns := namespace(t, "mup-device.jsonld")
	s := session(t, b.NetconfAddr())
	mod := moduleSource(t, s, ns)
	lint := testenv.Tool(t, "yanglint")
	for _, c := range []struct{ rpc, args, retval string }{
		{"setReportInterval", "<input_1_Seconds>60</input_1_Seconds>", "10_OK"},
		{"rebootDevice", "", "MANIFEST-SUCCESS"},
		{"getDeviceToken", "", "123456,1"},
		{"relayOn", "", "12_ERROR"},
	} {
		op := `<` + c.rpc + ` xmlns="` + ns + `"><uuidInput>myno-fw-1</uuidInput>` + c.args + `</` + c.rpc + `>`
		reply, re := exec1(t, s, op)
		if re != nil {
			t.Fatalf("%s: rpc-error %+v", c.rpc, re)
		}
		mustContain(t, reply, `<retval xmlns="`+ns+`">`+c.retval+"</retval>")
		if c.rpc == "getDeviceToken" {
			mustContain(t, reply, ">0a0b0c0d0e0f1011</output_2_Nonce>", ">7</output_3_Version>")
		}
		validateReply(t, lint, mod, op, reply)
	}
}

// answering is a command handler that answers value and outputs.
func answering(value string, outputs ...string) devices.CommandHandler {
	return func(context.Context, *devices.Device, *ontology.Function, []string) (string, []string) {
		return value, outputs
	}
}

// moduleSource fetches the source of the module of namespace ns.
func moduleSource(t *testing.T, s *gonetconf.Session, ns string) string {
	t.Helper()
	reply, re := exec1(t, s, `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>`+
		strings.TrimPrefix(ns, "urn:myno:yang:")+`</identifier></get-schema>`)
	if re != nil {
		t.Fatal(re)
	}
	return schemaText(t, reply)
}

// validateReply checks an rpc-reply against the module with yanglint
// (nc-reply, the request given with -R).
func validateReply(t *testing.T, lint, module, op, reply string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"module.yang": module, "rpc.xml": `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1">` + op + `</rpc>`, "reply.xml": reply}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(lint, "-t", "nc-reply", "-R", filepath.Join(dir, "rpc.xml"), filepath.Join(dir, "module.yang"), filepath.Join(dir, "reply.xml")).CombinedOutput(); err != nil {
		t.Errorf("yanglint: %v\n%s\n%s", err, out, reply)
	}
}
