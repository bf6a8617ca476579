package e2e

import (
	"testing"
	"time"
)

// BenchmarkHandshake is the cryptographic cost of one E2E handshake, both
// sides (notify, answer, complete) without MQTT; bytes is what the two
// messages weigh on the wire.
func BenchmarkHandshake(b *testing.B) {
	ca, caKey, _ := NewCA("ca", time.Hour)
	mc, mk, _ := Issue(ca, caKey, "manager-1", RoleManager, time.Now().Add(-time.Minute), time.Hour)
	dc, dk, _ := Issue(ca, caKey, "device-1", RoleDevice, time.Now().Add(-time.Minute), time.Hour)
	for _, mode := range []Mode{Static, Ephemeral} {
		b.Run(string(mode), func(b *testing.B) {
			now := time.Now()
			size := 0
			for b.Loop() {
				st, err := NewNotify(mode, mc, mk, "device-1")
				if err != nil {
					b.Fatal(err)
				}
				r, _, _, err := Answer(st.Notify, "", ca, dc, dk, "device-1", now)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := st.Complete(r, ca, now); err != nil {
					b.Fatal(err)
				}
				nb, _ := st.Notify.Encode()
				rb, _ := r.Encode()
				size = len(nb) + len(rb)
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}
