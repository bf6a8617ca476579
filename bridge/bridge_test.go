package bridge_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/netconf"
	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

const adminPassword = "bridge-test-pw"

func startBridge(t testing.TB, dir string, mutate func(*bridge.Config)) *bridge.Bridge {
	t.Helper()
	// Devices enrol with their own token on first connection (testCreds);
	// the access tests provision theirs.
	cfg := bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0", DataDir: dir, AdminPassword: adminPassword,
		RPCTimeout: 2 * time.Second, Logger: testenv.Logger(), Out: io.Discard, Enrolment: access.EnrolOpen}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := bridge.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func desc(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// device connects and bootstraps a virtual device through the bridge.
func device(t testing.TB, url, file, uuid string, proto client.Protocol) *devices.Device {
	t.Helper()
	return deviceWith(t, url, file, uuid, devices.Config{Protocol: proto})
}

// deviceWith is device configured by cfg; the description, uuid, broker,
// logger and credentials (testCreds) are set here.
func deviceWith(t testing.TB, url, file, uuid string, cfg devices.Config) *devices.Device {
	t.Helper()
	cfg.Description, cfg.UUID, cfg.BrokerURL, cfg.Logger, cfg.Credentials = desc(t, file), uuid, url, testenv.Logger(), testCreds(uuid)
	d, err := devices.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.Bootstrap(ctx); err != nil {
		// A broker that stops acknowledging: show where it waits.
		t.Fatalf("%s: %v\n%s", file, err, testenv.ProjectStacks("mochi-mqtt/server"))
	}
	return d
}

// testCreds are the broker credentials of the test device uuid: its uuid
// and a token of its own, which --enrol open binds to it on first use.
func testCreds(uuid string) client.Credentials {
	return client.Credentials{Username: uuid, Password: "test-token-of-" + uuid + "-0123456789abcdef"}
}

// dialAsDevice connects a raw MQTT 5 client as the test device uuid (its
// credentials, its uuid as client ID), for tests that play a device by
// hand: the broker lets it use that device's topics only.
func dialAsDevice(t testing.TB, ctx context.Context, url, uuid string, onMessage func(client.Message)) client.Transport {
	t.Helper()
	tr, err := client.Dial(ctx, client.Config{URL: url, ClientID: uuid, Credentials: testCreds(uuid), Protocol: client.MQTT5,
		Logger: testenv.Logger(), OnMessage: onMessage})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func session(t testing.TB, addr string) *gonetconf.Session {
	t.Helper()
	s, err := gonetconf.DialSSH(addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password(adminPassword)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func namespace(t testing.TB, file string) string {
	t.Helper()
	dev, err := ontology.Parse(desc(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return "urn:myno:yang:" + yang.ModuleName(dev)
}

func exec1(t testing.TB, s *gonetconf.Session, op string) (string, *gonetconf.RPCError) {
	t.Helper()
	reply, err := s.Exec(gonetconf.RawMethod(op))
	var re *gonetconf.RPCError
	if errors.As(err, &re) {
		return reply.RawReply, re
	}
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
	return reply.RawReply, nil
}

// errorPath reads the error-path of the rpc-error in reply, and the
// namespace prefixes declared on <rpc-error> and its ancestors.
func errorPath(t testing.TB, reply string) (string, map[string]string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(reply))
	scope := map[string]string{}
	var path strings.Builder
	inPath := false
	for {
		tok, err := d.RawToken() // raw: the prefixes as written
		if err == io.EOF {
			return path.String(), scope
		}
		if err != nil {
			t.Fatalf("reply: %v\n%s", err, reply)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "rpc-reply" || tok.Name.Local == "rpc-error" {
				for _, a := range tok.Attr {
					if a.Name.Space == "xmlns" {
						scope[a.Name.Local] = a.Value
					}
				}
			}
			inPath = tok.Name.Local == "error-path"
		case xml.CharData:
			if inPath {
				path.Write(tok)
			}
		case xml.EndElement:
			inPath = false
		}
	}
}

func mustContain(t testing.TB, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("missing %q in:\n%s", w, s)
		}
	}
}

// rpcs runs the device rpcs of the acceptance list through a NETCONF
// session: LED colour enumeration, RGB sub-structure, relay.
func rpcs(t *testing.T, s *gonetconf.Session, led, rgb, relay string) {
	t.Helper()
	ledNS, rgbNS, relayNS := namespace(t, "led-color.jsonld"), namespace(t, "rgb-lamp.jsonld"), namespace(t, "relay-sensors.jsonld")
	reply, re := exec1(t, s, `<setColor xmlns="`+ledNS+`"><uuidInput>`+led+`</uuidInput><input_1_Color>green</input_1_Color></setColor>`)
	if re != nil {
		t.Fatalf("setColor: %v", re)
	}
	mustContain(t, reply, `<retval xmlns="`+ledNS+`">`)
	reply, re = exec1(t, s, `<setColor xmlns="`+ledNS+`"><uuidInput>`+led+`</uuidInput><input_1_Color>green</input_1_Color></setColor>`)
	if re != nil {
		t.Fatalf("setColor again: %v", re)
	}
	mustContain(t, reply, ">NOOP</retval>")
	reply, re = exec1(t, s, `<setRgb xmlns="`+rgbNS+`"><uuidInput>`+rgb+`</uuidInput><input_1_Rgb><var_1_Red>255</var_1_Red><var_2_Green>0</var_2_Green><var_3_Blue>128</var_3_Blue></input_1_Rgb></setRgb>`)
	if re != nil {
		t.Fatalf("setRgb: %v", re)
	}
	mustContain(t, reply, ">OK</retval>") // this description has no NOOP state
	reply, re = exec1(t, s, `<relayOn xmlns="`+relayNS+`"><uuidInput>`+relay+`</uuidInput></relayOn>`)
	if re != nil {
		t.Fatalf("relayOn: %v", re)
	}
	if !strings.Contains(reply, ">OK</retval>") && !strings.Contains(reply, ">NOOP</retval>") {
		t.Errorf("relayOn: %s", reply)
	}
}

func TestRPCsThroughTheBridge(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	url := b.BrokerURL()
	led := device(t, url, "led-color.jsonld", "led-5", client.MQTT5)
	device(t, url, "rgb-lamp.jsonld", "rgb-311", client.MQTT311)
	device(t, url, "relay-sensors.jsonld", "relay-5", client.MQTT5)
	s := session(t, b.NetconfAddr())
	rpcs(t, s, "led-5", "rgb-311", "relay-5")

	ledNS := namespace(t, "led-color.jsonld")
	t.Run("invalid enumeration value never reaches MQTT", func(t *testing.T) {
		before := led.Commands.Load()
		raw, re := exec1(t, s, `<setColor xmlns="`+ledNS+`"><uuidInput>led-5</uuidInput><input_1_Color>purple</input_1_Color></setColor>`)
		if re == nil || re.Tag != "invalid-value" {
			t.Fatalf("rpc-error %+v", re)
		}
		// error-path is an XPath whose prefixes are declared on
		// <rpc-error> (RFC 6241 §4.3), each bound to the module.
		path, scope := errorPath(t, raw)
		steps := strings.Split(strings.TrimPrefix(path, "/"), "/")
		if len(steps) != 2 || !strings.HasSuffix(steps[0], ":setColor") || !strings.HasSuffix(steps[1], ":input_1_Color") {
			t.Fatalf("error-path %q", path)
		}
		for _, step := range steps {
			prefix, _, _ := strings.Cut(step, ":")
			if scope[prefix] != ledNS {
				t.Errorf("error-path %q: prefix %q is bound to %q in <rpc-error>, want %s", path, prefix, scope[prefix], ledNS)
			}
		}
		if led.Commands.Load() != before {
			t.Errorf("the device got the invalid command")
		}
	})
	t.Run("unknown uuid", func(t *testing.T) {
		_, re := exec1(t, s, `<ledOn xmlns="`+ledNS+`"><uuidInput>no-such-device</uuidInput></ledOn>`)
		if re == nil || re.Tag != "invalid-value" || !strings.Contains(re.Message, "no-such-device") {
			t.Fatalf("rpc-error %+v", re)
		}
	})
	t.Run("device of another shape", func(t *testing.T) {
		_, re := exec1(t, s, `<ledOn xmlns="`+ledNS+`"><uuidInput>relay-5</uuidInput></ledOn>`)
		if re == nil || re.Tag != "invalid-value" {
			t.Fatalf("rpc-error %+v", re)
		}
	})
	t.Run("a device that never answers", func(t *testing.T) {
		silent := device(t, url, "led-color.jsonld", "led-silent", client.MQTT5)
		silent.Close()
		start := time.Now()
		reply, re := exec1(t, s, `<ledOn xmlns="`+ledNS+`"><uuidInput>led-silent</uuidInput></ledOn>`)
		if re == nil || re.Tag != "operation-failed" || !strings.Contains(reply, "<error-app-tag>device-timeout</error-app-tag>") {
			t.Fatalf("rpc-error %+v\n%s", re, reply)
		}
		if time.Since(start) < time.Second {
			t.Errorf("timed out after %v, before the 2s rpc timeout", time.Since(start))
		}
		// The session is still usable.
		rpcs(t, s, "led-5", "rgb-311", "relay-5")
	})
	t.Run("state data", func(t *testing.T) {
		reply, re := exec1(t, s, `<get><filter type="subtree"><devices xmlns="`+ledNS+`"/></filter></get>`)
		if re != nil {
			t.Fatal(re)
		}
		mustContain(t, reply, "<uuid>led-5</uuid>", "<category>LED-COLOR-1</category>", "<module>myno-led-color-1-", "<registered-at>", "<online>true</online>")
	})
	t.Run("get-schema passes yanglint", func(t *testing.T) {
		lint := testenv.Tool(t, "yanglint")
		names := []string{"myno-bridge"} // the bridge's own module
		for _, file := range []string{"led-color.jsonld", "rgb-lamp.jsonld", "relay-sensors.jsonld"} {
			names = append(names, strings.TrimPrefix(namespace(t, file), "urn:myno:yang:"))
		}
		for _, name := range names {
			reply, re := exec1(t, s, `<get-schema xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"><identifier>`+name+`</identifier></get-schema>`)
			if re != nil {
				t.Fatal(re)
			}
			text := schemaText(t, reply)
			path := filepath.Join(t.TempDir(), name+".yang")
			os.WriteFile(path, []byte(text), 0o644)
			if out, err := exec.Command(lint, path).CombinedOutput(); err != nil {
				t.Errorf("yanglint %s: %v\n%s", name, err, out)
			}
		}
	})
}

// schemaText extracts get-schema's <data> text.
func schemaText(t testing.TB, reply string) string {
	t.Helper()
	var r struct {
		Data string `xml:"data"`
	}
	if err := xml.Unmarshal([]byte(reply), &r); err != nil || !strings.Contains(r.Data, "module ") {
		t.Fatalf("get-schema reply: %v\n%.300s", err, reply)
	}
	return r.Data
}

func TestBrokenDescriptionIsRefused(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	for i, name := range []string{"dangling-reference.jsonld", "no-device.jsonld", "not-json.jsonld"} {
		data, _ := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "broken", name))
		// A device that sends the broken bytes as its description. Each has
		// its own uuid (so its own MQTT client id): reconnecting the same
		// client id within milliseconds of a close can lose the first
		// answer on the embedded broker (the device's retry recovers; this
		// test allows one attempt).
		uuid := fmt.Sprintf("broken-%d", i)
		d2, err := devices.NewRaw(devices.Config{Description: data, UUID: uuid, BrokerURL: b.BrokerURL(), Logger: testenv.Logger(), BootstrapTimeout: 5 * time.Second,
			Credentials: testCreds(uuid)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := d2.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		err = d2.Bootstrap(ctx)
		cancel()
		d2.Close()
		if !errors.Is(err, devices.ErrRefused) {
			t.Errorf("%s: %v, want ERROR;<reason>", name, err)
		}
	}
	// The bridge is still up and serves new devices.
	device(t, b.BrokerURL(), "led-color.jsonld", "after-broken", client.MQTT5)
	if len(b.Devices()) != 1 {
		t.Errorf("devices %v", b.Devices())
	}
}

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

// Answers nobody waits for are dropped and counted.
// Bootstrap limits: size, chunk count, assembly time, END without chunks.
