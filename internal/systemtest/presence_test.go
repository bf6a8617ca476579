package systemtest_test

import (
	"context"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mup/updateserver"
	"github.com/myno-bridge/myno/netconf"
)

// Presence (issue 13): online follows the device's MQTT connection. A
// real device process (myno device) is stopped with SIGSTOP, which keeps
// its TCP connection open and silent (kill -9 would close it at once on
// loopback and test nothing): within 1.5 times its keep-alive the bridge
// shows it offline, in <get> and with a device-event notification; with
// SIGCONT it comes back online, with a notification. On the embedded
// broker (its connection events), and on Mosquitto for a device with a
// Will (its presence announcement) and for one without (MYNO's devices:
// its silence, against the bridge's --device-keepalive).
func TestStoppedDeviceGoesOffline(t *testing.T) {
	myno := buildMyno(t)
	desc := filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "led-color.jsonld")
	for _, broker := range []string{"embedded", "mosquitto"} {
		t.Run(broker, func(t *testing.T) {
			url := ""
			if broker == "mosquitto" {
				url = testenv.StartMosquitto(t).URL()
			}
			b, err := bridge.Start(context.Background(), bridge.Config{NetconfListen: "127.0.0.1:0", MQTTListen: "127.0.0.1:0",
				DataDir: t.TempDir(), AdminPassword: "pw", Logger: testenv.Logger(), Out: io.Discard, MQTTURL: url,
				Enrolment: access.EnrolOpen, DeviceKeepAlive: presenceKeepAlive})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			if url == "" {
				url = b.BrokerURL()
			}
			events := subscribeDeviceEvents(t, b.NetconfAddr())
			nc := dialBridge(t, b)
			calls := updateserver.NewClient(dialBridge(t, b))
			for _, kind := range []struct {
				name string
				args []string
			}{
				// Our devices: a Will and presence announcements. Readings
				// are off: only the connection says the device is there.
				{"with-will", []string{"--telemetry-interval", "0"}},
				// Like MYNO's: no Will; readings more often than the
				// keep-alive, as a device that the bridge can tell from
				// its silence must send.
				{"without-will", []string{"--no-presence", "--telemetry-interval", "200ms"}},
			} {
				t.Run(kind.name, func(t *testing.T) {
					uuid := "presence-" + broker + "-" + kind.name
					creds := deviceCreds(uuid)
					args := append([]string{"device", "--description", desc, "--uuid", uuid, "--mqtt-url", url,
						"--mqtt-keepalive", presenceKeepAlive.String(), "--log-level", "warn"}, kind.args...)
					if broker == "embedded" {
						args = append(args, "--mqtt-username", creds.Username)
					}
					dev := startProcess(t, myno, args, "MYNO_MQTT_PASSWORD="+creds.Password)
					ev := events.next(t, uuid, "registered")
					if !ev.Online {
						t.Fatalf("registered offline: %+v", ev)
					}
					if !deviceOnline(t, b, nc, uuid) {
						t.Fatal("<get> says offline after the registration")
					}
					// Stopped in the middle of its start (between the
					// bootstrap answer and its command subscriptions), the
					// device would not survive SIGCONT: wait until it
					// answers an rpc.
					entry, err := calls.Device(uuid)
					if err != nil {
						t.Fatal(err)
					}
					// The device subscribes to its commands once it has the
					// bootstrap answer: an rpc sent before that is lost, so
					// ask until one is answered.
					for deadline := time.Now().Add(30 * time.Second); ; {
						_, err := calls.Call(entry.Namespace, "ledOn", updateserver.Leaf{Name: "uuidInput", Value: uuid})
						if err == nil {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("ledOn: %v", err)
						}
					}

					stopped := time.Now()
					if err := dev.Process.Signal(syscall.SIGSTOP); err != nil {
						t.Fatal(err)
					}
					ev = events.next(t, uuid, "offline")
					// The bound is the requirement itself, 1.5 times the
					// keep-alive, measured from the stop to the
					// notification's eventTime (the bridge's clock), plus
					// presenceMargin for what lies between (see there).
					if took := ev.EventTime.Sub(stopped); took > presenceKeepAlive*3/2+presenceMargin {
						t.Errorf("offline %v after the stop, more than 1.5 x %v + %v; reason %q", took, presenceKeepAlive, presenceMargin, ev.Reason)
					} else {
						t.Logf("offline %v after the stop (%s)", took.Round(time.Millisecond), ev.Reason)
					}
					if ev.Online {
						t.Errorf("offline event with online true: %+v", ev)
					}
					if deviceOnline(t, b, nc, uuid) {
						t.Error("<get> says online after the offline event")
					}

					if err := dev.Process.Signal(syscall.SIGCONT); err != nil {
						t.Fatal(err)
					}
					ev = events.next(t, uuid, "online")
					if !ev.Online {
						t.Errorf("online event with online false: %+v", ev)
					}
					testenv.WaitFor(t, "<get> to say online again", func() bool { return deviceOnline(t, b, nc, uuid) })
				})
			}
		})
	}
}

// presenceKeepAlive is the devices' keep-alive in these tests (and the
// bridge's --device-keepalive on Mosquitto): short, so that the test is.
const presenceKeepAlive = 2 * time.Second

// presenceMargin is what may lie between 1.5 times the keep-alive and
// the notification besides the requirement: the bridge checks devices
// that fell silent every tenth of the grace (0.3 s here), and the machine
// that runs the test is shared and may be slow to schedule a goroutine.
// Measured: 3.0 to 3.3 s for the 3 s bound. (Mosquitto's own Will would
// not keep it: Mosquitto 2.0 looks for expired keep-alives every 5 s; the
// devices' presence heartbeat does, bridge/README.md.)
const presenceMargin = 1500 * time.Millisecond

// buildMyno builds cmd/myno for the test: its devices are processes of
// their own, so that a signal can stop them.
func buildMyno(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "myno")
	cmd := exec.Command(testenv.Tool(t, "go"), "build", "-o", bin, "./cmd/myno")
	cmd.Dir = testenv.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/myno: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs the command, with env added, until the test ends;
// its output goes to the test log when the test fails.
func startProcess(t *testing.T, bin string, args []string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT) // a stopped process cannot die of SIGKILL until continued on some kernels
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("%s %s:\n%s", filepath.Base(bin), strings.Join(args, " "), out.String())
			mu.Unlock()
		}
	})
	return cmd
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// deviceEvent is myno-bridge's device-event notification.
type deviceEvent struct {
	EventTime time.Time `xml:"eventTime"`
	UUID      string    `xml:"device-event>uuid"`
	Event     string    `xml:"device-event>event"`
	Online    bool      `xml:"device-event>online"`
	Reason    string    `xml:"device-event>reason"`
}

// deviceEvents is a NETCONF session subscribed to device-event
// notifications.
type deviceEvents struct {
	ch chan deviceEvent
}

// subscribeDeviceEvents opens a NETCONF session to addr and subscribes
// it to myno-bridge's device-event notifications.
func subscribeDeviceEvents(t *testing.T, addr string) *deviceEvents {
	t.Helper()
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "admin", Auth: []ssh.AuthMethod{ssh.Password("pw")},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.RequestSubsystem("netconf"); err != nil {
		t.Fatal(err)
	}
	fr, fw := netconf.NewFrameReader(out, 0), netconf.NewFrameWriter(in)
	if _, err := fr.ReadMessage(); err != nil { // the server's hello
		t.Fatal(err)
	}
	_, _ = io.WriteString(in, `<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities><capability>urn:ietf:params:netconf:base:1.1</capability></capabilities></hello>]]>]]>`)
	fr.SetFraming(netconf.FramingChunked)
	fw.SetFraming(netconf.FramingChunked)
	if err := fw.WriteMessage([]byte(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"><filter type="subtree"><device-event xmlns="urn:myno:bridge"/></filter></create-subscription></rpc>`)); err != nil {
		t.Fatal(err)
	}
	if m, err := fr.ReadMessage(); err != nil || !strings.Contains(string(m), "<ok/>") {
		t.Fatalf("create-subscription: %s %v", m, err)
	}
	e := &deviceEvents{ch: make(chan deviceEvent, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := fr.ReadMessage()
			if err != nil {
				return
			}
			var ev deviceEvent
			if err := xml.Unmarshal(m, &ev); err != nil {
				continue
			}
			select {
			case e.ch <- ev:
			default:
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return e
}

// next returns the next event of device uuid, which must be of the kind
// want (events of other devices are skipped).
func (e *deviceEvents) next(t *testing.T, uuid, want string) deviceEvent {
	t.Helper()
	deadline := time.After(testenv.WaitTimeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.UUID != uuid {
				continue
			}
			if ev.Event != want {
				t.Fatalf("device %s: event %q (%s), want %q", uuid, ev.Event, ev.Reason, want)
			}
			return ev
		case <-deadline:
			t.Fatalf("device %s: no %s event within %v", uuid, want, testenv.WaitTimeout)
		}
	}
}

// deviceOnline asks the bridge, with a NETCONF <get> on session s,
// whether uuid is online.
func deviceOnline(t *testing.T, b *bridge.Bridge, s *gonetconf.Session, uuid string) bool {
	t.Helper()
	module, ok := b.ModuleOf(uuid)
	if !ok {
		t.Fatalf("%s is not registered", uuid)
	}
	reply, err := s.Exec(gonetconf.RawMethod(`<get><filter type="subtree"><devices xmlns="urn:myno:yang:` + module +
		`"><device><uuid>` + uuid + `</uuid><online/></device></devices></filter></get>`))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Contains(reply.Data, "<online>true</online>"):
		return true
	case strings.Contains(reply.Data, "<online>false</online>"):
		return false
	}
	t.Fatalf("no online leaf for %s in %s", uuid, reply.Data)
	return false
}
