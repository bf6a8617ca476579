package netconf_test

import (
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/netconf"
)

// smallGet is the "trivial <get>": a filtered get of a small subtree.
const smallGet = `<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get><filter type="subtree"><demo-state xmlns="urn:myno:test:demo"><greeting/></demo-state></filter></get></rpc>`

type benchClient struct {
	client *ssh.Client
	in     io.Writer
	fr     *netconf.FrameReader
	fw     *netconf.FrameWriter
}

// dialBench opens a base:1.1 session with public-key authentication.
func dialBench(b testing.TB, ts *testServer) *benchClient {
	key, err := os.ReadFile(ts.keyFile)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		b.Fatal(err)
	}
	c, err := ssh.Dial("tcp", ts.addr, keyConfig("keyuser", signer))
	if err != nil {
		b.Fatal(err)
	}
	sess, err := c.NewSession()
	if err != nil {
		b.Fatal(err)
	}
	in, _ := sess.StdinPipe()
	out, _ := sess.StdoutPipe()
	if err := sess.RequestSubsystem("netconf"); err != nil {
		b.Fatal(err)
	}
	bc := &benchClient{client: c, in: in, fr: netconf.NewFrameReader(out, 0), fw: netconf.NewFrameWriter(in)}
	if _, err := bc.fr.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(in, clientHello11); err != nil {
		b.Fatal(err)
	}
	bc.fr.SetFraming(netconf.FramingChunked)
	bc.fw.SetFraming(netconf.FramingChunked)
	return bc
}

func (bc *benchClient) roundTrip(msg []byte) error {
	if err := bc.fw.WriteMessage(msg); err != nil {
		return err
	}
	_, err := bc.fr.ReadMessage()
	return err
}

func percentile(d []time.Duration, p float64) time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[int(float64(len(d)-1)*p)]
}

// BenchmarkRoundTrip is one client on one session, one rpc at a time:
// latency of a trivial <get> over loopback SSH, with p50 and p99.
func BenchmarkRoundTrip(b *testing.B) {
	ts := startServer(b, nil)
	bc := dialBench(b, ts)
	defer bc.client.Close()
	msg := []byte(smallGet)
	for i := 0; i < 100; i++ { // warm up
		if err := bc.roundTrip(msg); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, 1<<16)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := bc.roundTrip(msg); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.ReportMetric(float64(percentile(lat, 0.50).Microseconds()), "p50-µs")
	b.ReportMetric(float64(percentile(lat, 0.99).Microseconds()), "p99-µs")
}

// BenchmarkThroughput runs the trivial <get> on N sessions at once, each
// one rpc at a time, and reports rpcs per second across all of them.
func BenchmarkThroughput(b *testing.B) {
	for _, n := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			ts := startServer(b, func(c *netconf.Config) { c.MaxSessions = 128 })
			clients := make([]*benchClient, n)
			for i := range clients {
				clients[i] = dialBench(b, ts)
				defer clients[i].client.Close()
			}
			msg := []byte(smallGet)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + n - 1) / n
			errs := make(chan error, n)
			for _, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < per; i++ {
						if err := c.roundTrip(msg); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per*n)/elapsed.Seconds(), "rpcs/s")
		})
	}
}

// BenchmarkSessionSetup measures connect, SSH handshake, authentication
// and the hello exchange, up to the first usable reply.
func BenchmarkSessionSetup(b *testing.B) {
	b.Run("publickey", func(b *testing.B) {
		ts := startServer(b, nil)
		for b.Loop() {
			bc := dialBench(b, ts)
			if err := bc.roundTrip([]byte(smallGet)); err != nil {
				b.Fatal(err)
			}
			bc.client.Close()
		}
	})
	b.Run("password-bcrypt10", func(b *testing.B) {
		hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
		ts := startServer(b, func(c *netconf.Config) {
			c.Users = netconf.NewUsers(&netconf.User{Name: "op", PasswordHash: string(hash)})
		})
		for b.Loop() {
			rc := dialRaw(b, ts, passwordConfig("op", "pw"))
			rc.client.Close()
		}
	})
}

// BenchmarkNotify is the cost of one notification (a telemetry reading's
// size) to the server: rendered and kept for replay, and sent to the
// subscribers that select it. With no subscriber it is what every
// reading costs a bridge nobody listens to (issue 20's replay log).
func BenchmarkNotify(b *testing.B) {
	event := netconf.NewNode(demoNS, "temperature", netconf.NewLeaf(demoNS, "uuid", "relay-42"),
		netconf.NewLeaf(demoNS, "value", "21.5"), netconf.NewLeaf(demoNS, "timestamp", "2026-12-02T19:00:00.123456789Z"))
	for _, subscribers := range []int{0, 1, 8} {
		b.Run(fmt.Sprintf("subscribers=%d", subscribers), func(b *testing.B) {
			ts := startServer(b, nil)
			for range subscribers {
				bc := dialBench(b, ts)
				if err := bc.roundTrip([]byte(`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><create-subscription xmlns="urn:ietf:params:xml:ns:netconf:notification:1.0"/></rpc>`)); err != nil {
					b.Fatal(err)
				}
				go func() { // the subscriber reads all it gets, until the server closes
					for {
						if _, err := bc.fr.ReadMessage(); err != nil {
							return
						}
					}
				}()
			}
			b.ReportAllocs()
			for b.Loop() {
				ts.srv.Notify(event)
			}
		})
	}
}
