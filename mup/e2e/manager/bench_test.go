package manager_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/mup/e2e"
	"github.com/myno-bridge/myno/mup/e2e/manager"
)

// packetCounter counts the MQTT packets the broker reads and writes on
// the E2E topics: the paper's "interactions" (Table 3b) are packets on the
// wire. PUBLISHes are counted by the leaf of their topic (a cleared
// retained notify apart) and by QoS; every QoS 1 PUBLISH, to the broker or
// from it, is answered by exactly one PUBACK, which carries no topic: a
// PUBACK is counted when it answers a counted PUBLISH (the same client,
// the other direction, the same packet id), so other traffic (a device's
// presence announcements) is left out.
type packetCounter struct {
	mqtt.HookBase
	mu      sync.Mutex
	publish map[string]int // by leaf
	qos1    map[string]int // by leaf
	pubacks int
	awaited map[string]bool // "<client> in|out/<packet id>" of the PUBACKs counted PUBLISHes await
	// early holds PUBACKs read before the hook saw their PUBLISH sent
	// (OnPacketSent runs after the write: the client may answer first).
	early   map[string]bool
	prefix  string
	aliases map[string]string // "<client> in|out/<alias>" → topic
}

func (h *packetCounter) ID() string { return "packet-counter" }
func (h *packetCounter) Provides(b byte) bool {
	return b == mqtt.OnPacketRead || b == mqtt.OnPacketSent
}

// count takes a packet of one direction of one client's connection.
func (h *packetCounter) count(conn string, pk packets.Packet) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch pk.FixedHeader.Type {
	case packets.Puback:
		key := fmt.Sprintf("%s/%d", conn, pk.PacketID)
		if h.awaited[key] {
			delete(h.awaited, key)
			h.pubacks++
		} else {
			h.early[key] = true
		}
	case packets.Publish:
		// A topic alias (MQTT 5 §3.3.2.3.4) stands for the topic it was
		// set with on the same connection and direction.
		topic := pk.TopicName
		if a := pk.Properties.TopicAlias; a != 0 {
			key := fmt.Sprintf("%s/%d", conn, a)
			if topic != "" {
				h.aliases[key] = topic
			} else {
				topic = h.aliases[key]
			}
		}
		_, leaf, ok := e2e.ParseTopic(h.prefix, topic)
		if !ok {
			return
		}
		if leaf == e2e.LeafNotify && len(pk.Payload) == 0 {
			leaf = "notify (cleared)"
		}
		h.publish[leaf]++
		if pk.FixedHeader.Qos == 1 {
			h.qos1[leaf]++
			// Its PUBACK goes the other way on the same connection.
			client, dir, _ := strings.Cut(conn, " ")
			other := map[string]string{"in": "out", "out": "in"}[dir]
			key := fmt.Sprintf("%s %s/%d", client, other, pk.PacketID)
			if h.early[key] {
				delete(h.early, key)
				h.pubacks++
			} else {
				h.awaited[key] = true
			}
		}
	}
}

func (h *packetCounter) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.count(cl.ID+" in", pk)
	return pk, nil
}
func (h *packetCounter) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	h.count(cl.ID+" out", pk)
}

// settled reports whether every QoS 1 PUBLISH counted has its PUBACK.
func (h *packetCounter) settled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, v := range h.qos1 {
		n += v
	}
	return n > 0 && h.pubacks == n
}

// phase sums the PUBLISHes and their PUBACKs of some leaves.
func (h *packetCounter) phase(leaves ...string) (publish, puback int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range leaves {
		publish += h.publish[l]
		puback += h.qos1[l]
	}
	return publish, puback
}

func (h *packetCounter) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publish, h.qos1, h.pubacks, h.awaited, h.early = map[string]int{}, map[string]int{}, 0, map[string]bool{}, map[string]bool{}
}

// One device: the handshake and the renewal, each timed, with the
// application messages and bytes, and the MQTT packets the broker handled,
// per phase (compare the paper's Table 3b).
func BenchmarkHandshakeAndRenewal(b *testing.B) {
	for _, mode := range []e2e.Mode{e2e.Ephemeral, e2e.Static} {
		b.Run(string(mode), func(b *testing.B) {
			pr := newPair(b, embedded(b), "dev-bench", mode)
			m, uuid := pr.m, pr.uuid
			ctx := context.Background()
			var hs, rn manager.Phase
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ch, err := m.Open(ctx, uuid)
				if err != nil {
					b.Fatal(err)
				}
				r, err := ch.Renew(ctx)
				if err != nil {
					b.Fatal(err)
				}
				hs.Duration += ch.Handshake.Duration
				rn.Duration += r.Phase.Duration
				hs.Messages, hs.Bytes, rn.Messages, rn.Bytes = ch.Handshake.Messages, ch.Handshake.Bytes, r.Phase.Messages, r.Phase.Bytes
			}
			b.StopTimer()
			b.ReportMetric(float64(hs.Duration.Microseconds())/float64(b.N)/1000, "handshake-ms")
			b.ReportMetric(float64(rn.Duration.Microseconds())/float64(b.N)/1000, "renewal-ms")
			b.ReportMetric(float64(hs.Bytes), "handshake-B")
			b.ReportMetric(float64(rn.Bytes), "renewal-B")
			b.ReportMetric(float64(hs.Messages), "handshake-msgs")
			b.ReportMetric(float64(rn.Messages), "renewal-msgs")
		})
	}
}

// Renewal of 1,000 devices, each with its own MQTT connection to the
// embedded broker in this process, 32 at a time.
func BenchmarkRenew1000Devices(b *testing.B) {
	const n = 1000
	br := embedded(b)
	p := newPKI(b, "ca")
	mcert, mkey := p.issue(b, "mgr-fleet", e2e.RoleManager)
	m, _ := startManager(b, br, manager.Config{CA: p.ca, Cert: mcert, Key: mkey, CAKey: p.caKey})
	uuids := make([]string, n)
	for i := range uuids {
		uuids[i] = fmt.Sprintf("fleet-%04d", i)
		cert, key := p.issue(b, uuids[i], e2e.RoleDevice)
		startDevice(b, br, uuids[i], devices.E2EConfig{CA: p.ca, Cert: cert, Key: key})
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		results := m.RenewAll(context.Background(), manager.RenewAllConfig{Devices: uuids, Parallel: 32, Timeout: time.Minute})
		for _, r := range results {
			if r.Err != nil {
				b.Fatalf("%s: %v", r.Device, r.Err)
			}
		}
		b.ReportMetric(time.Since(start).Seconds(), "s/1000-devices")
	}
}
