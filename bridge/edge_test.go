package bridge_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/wire"
)

// rawSession is a base:1.1 NETCONF session for what go-netconf cannot do
// (notifications).
type rawSession struct {
	in io.Writer
	fr *netconf.FrameReader
	fw *netconf.FrameWriter
}

func openRaw(t *testing.T, addr string) *rawSession {
	t.Helper()
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, _ := c.NewSession()
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.RequestSubsystem("netconf"); err != nil {
		t.Fatal(err)
	}
	r := &rawSession{in: in, fr: netconf.NewFrameReader(out, 0), fw: netconf.NewFrameWriter(in)}
	if _, err := r.fr.ReadMessage(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>]]>]]>`)
	r.fr.SetFraming(netconf.FramingChunked)
	r.fw.SetFraming(netconf.FramingChunked)
	return r
}

func (r *rawSession) send(t *testing.T, id, op string) {
	t.Helper()
	if err := r.fw.WriteMessage([]byte(`<rpc message-id="` + id + `" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0">` + op + `</rpc>`)); err != nil {
		t.Fatal(err)
	}
}

// next reads messages until one contains want.
func (r *rawSession) next(t *testing.T, want string) string {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		for {
			m, err := r.fr.ReadMessage()
			if err != nil {
				done <- "ERR " + err.Error()
				return
			}
			if strings.Contains(string(m), want) {
				done <- string(m)
				return
			}
		}
	}()
	select {
	case m := <-done:
		return m
	case <-time.After(15 * time.Second):
		t.Fatalf("no message with %q", want)
	}
	return ""
}

func TestReadingsAsStateAndNotifications(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	d, err := devices.New(devices.Config{Description: desc(t, "relay-sensors.jsonld"), UUID: "relay-t", BrokerURL: b.BrokerURL(),
		TelemetryInterval: 50 * time.Millisecond, Logger: testenv.Logger()})
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

// Answers nobody waits for are dropped and counted.
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
	deadline := time.Now().Add(10 * time.Second)
	for b.LateAnswers() < before+3 {
		if time.Now().After(deadline) {
			t.Fatalf("late answers counted: %d", b.LateAnswers()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Bootstrap limits: size, chunk count, assembly time, END without chunks.
func TestBootstrapLimits(t *testing.T) {
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) {
		c.MaxDescriptionBytes = 4000
		c.MaxChunks = 20
		c.AssemblyTimeout = 400 * time.Millisecond
	})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answers := make(chan client.Message, 16)
	tr, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "limits", Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) { answers <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	if err := tr.Subscribe(ctx, "yang/config/create/response/+"); err != nil {
		t.Fatal(err)
	}
	send := func(uuid, chunk string) {
		if err := tr.Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: wire.Chunk{UUID: uuid, Data: []byte(chunk)}.Encode()}, 1); err != nil {
			t.Fatal(err)
		}
	}
	end := func(uuid string) {
		tr.Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: wire.Chunk{UUID: uuid, End: true}.Encode()}, 1)
	}
	seen := map[string]string{} // answers by uuid, in whatever order they come
	expect := func(uuid, want string) {
		t.Helper()
		for {
			if got, ok := seen[uuid]; ok {
				if !strings.HasPrefix(got, want) {
					t.Errorf("%s: answer %q, want %q", uuid, got, want)
				}
				return
			}
			select {
			case m := <-answers:
				seen[m.Topic[strings.LastIndexByte(m.Topic, '/')+1:]] = string(m.Payload)
			case <-ctx.Done():
				t.Fatalf("%s: no answer", uuid)
			}
		}
	}
	send("too-big", strings.Repeat("x", 4001))
	expect("too-big", "ERROR;description larger than 4000 bytes")
	for i := 0; i < 21; i++ {
		send("too-many", "x")
	}
	expect("too-many", "ERROR;more than 20 chunks")
	end("lone-end")
	expect("lone-end", "ERROR;END without a description")
	send("slow", `{"@context": {}`)
	// The rest never comes: once the chunk is in, the assembly must expire
	// (after 400 ms).
	waitPending := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for b.PendingDescriptions() != n {
			if time.Now().After(deadline) {
				t.Fatalf("pending descriptions %d, want %d", b.PendingDescriptions(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitPending(1)
	waitPending(0)
	end("slow")
	expect("slow", "ERROR;END without a description")
	send("not-json", "{{{")
	end("not-json")
	expect("not-json", "ERROR;not JSON")
	// Interleaved devices each get their own description.
	d1, d2 := desc(t, "led-color.jsonld"), desc(t, "rgb-lamp.jsonld")
	b2 := startBridge(t, t.TempDir(), nil)
	defer b2.Close()
	tr2, err := client.Dial(ctx, client.Config{URL: b2.BrokerURL(), ClientID: "interleave", Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) { answers <- m }})
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close(ctx)
	tr2.Subscribe(ctx, "yang/config/create/response/+")
	c1, c2 := wire.SplitDescription("il-1", d1, 500), wire.SplitDescription("il-2", d2, 500)
	for i := 0; i < max(len(c1), len(c2)); i++ {
		for _, cs := range [][]wire.Chunk{c1, c2} {
			if i < len(cs) {
				tr2.Publish(ctx, client.Message{Topic: wire.TopicCreate, Payload: cs[i].Encode()}, 1)
			}
		}
	}
	expect("il-1", "OK")
	expect("il-2", "OK")
	if m1, _ := b2.ModuleOf("il-1"); !strings.HasPrefix(m1, "myno-led-color-1-") {
		t.Errorf("il-1 module %q", m1)
	}
}
