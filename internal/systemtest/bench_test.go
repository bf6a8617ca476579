package systemtest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// The MUP paper's reference workload: an 87,800-byte image in slices of
// 220, 600 and 880 bytes (Table 7).
var benchSliceSizes = []int{220, 600, 880}

// publishBytes is the size of an MQTT 5 PUBLISH at QoS 0 (MQTT 5
// §3.3.1-§3.3.3): fixed header, topic, property length, properties,
// payload. With alias > 0 it carries a Topic Alias property (3 bytes) and,
// once the alias is set, a zero-length topic.
func publishBytes(topic string, alias bool, first bool, payload int) int {
	props := 0
	if alias {
		props = 3
		if !first {
			topic = ""
		}
	}
	rem := 2 + len(topic) + 1 + props + payload
	varint := 1
	for n := rem; n >= 128; n >>= 7 {
		varint++
	}
	return 1 + varint + rem
}

// BenchmarkUpdate is a whole MUP update of the reference image through the
// bridge and the embedded broker: token, extended manifest, slices, image
// check, new version. transfer-ms is the slice phase alone.
func BenchmarkUpdate(b *testing.B) {
	for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
		for _, size := range benchSliceSizes {
			b.Run(fmt.Sprintf("%s/slice=%d", flow, size), func(b *testing.B) {
				w, run := setup(b, "")
				w.sliceSize = size
				var transfer time.Duration
				var slices int
				version := uint32(4)
				for b.Loop() {
					b.StopTimer()
					w.signVersion(b, version)
					version++
					b.StartTimer()
					res, err := run(flow)
					if err != nil {
						b.Fatal(err)
					}
					transfer += res.Phases["transfer"]
					slices = res.Slices
				}
				topic := "yang/update/image/mup-1"
				down, up := 0, 0
				// The embedded broker aliases the topic towards the device
				// (the device accepts aliases); the device's acks carry theirs.
				for i, s := range mup.SplitImage(w.image, size) {
					down += publishBytes(topic, true, i == 0, len(s.Encode()))
					up += publishBytes(topic+"/ack", false, false, 4) // the device acks every in-order slice
				}
				b.ReportMetric(float64(transfer.Microseconds())/1000/float64(b.N), "transfer-ms")
				b.ReportMetric(float64(down)/float64(len(w.image)), "mqtt-B/image-B")
				b.ReportMetric(float64(up), "ack-B")
				b.ReportMetric(float64(slices), "slices")
			})
		}
	}
	// The same through Mosquitto (set_tcp_nodelay true), at 600 B.
	for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
		b.Run(fmt.Sprintf("mosquitto/%s/slice=600", flow), func(b *testing.B) {
			m := testenv.StartMosquitto(b)
			w, run := setup(b, m.URL())
			var transfer time.Duration
			version := uint32(4)
			for b.Loop() {
				b.StopTimer()
				w.signed, _ = mup.SignVendorManifest(mup.NewVendorManifest(w.image, "myno-app", version, 0, 0), w.vendorKey)
				version++
				b.StartTimer()
				res, err := run(flow)
				if err != nil {
					b.Fatal(err)
				}
				transfer += res.Phases["transfer"]
			}
			b.ReportMetric(float64(transfer.Microseconds())/1000/float64(b.N), "transfer-ms")
		})
	}
}

// BenchmarkRawPublish is the ceiling: the same slices published through
// the same broker to a subscriber, with no application acks.
func BenchmarkRawPublish(b *testing.B) {
	for _, size := range benchSliceSizes {
		b.Run(fmt.Sprintf("slice=%d", size), func(b *testing.B) {
			w, _ := setup(b, "")
			slices := mup.SplitImage(w.image, size)
			got := make(chan struct{}, len(slices))
			ctx := context.Background()
			sub, err := client.Dial(ctx, client.Config{URL: w.url, ClientID: "bench-sub", Protocol: client.MQTT5, Logger: testenv.Logger(),
				Credentials: creds(b, w.b, "bench-sub", access.RoleBridge),
				OnMessage:   func(client.Message) { got <- struct{}{} }})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Close(ctx)
			if err := sub.Subscribe(ctx, "bench/raw"); err != nil {
				b.Fatal(err)
			}
			pub, err := client.Dial(ctx, client.Config{URL: w.url, ClientID: "bench-pub", Protocol: client.MQTT5, Logger: testenv.Logger(),
				Credentials: creds(b, w.b, "bench-pub", access.RoleBridge)})
			if err != nil {
				b.Fatal(err)
			}
			defer pub.Close(ctx)
			payloads := make([][]byte, len(slices))
			for i, s := range slices {
				payloads[i] = s.Encode()
			}
			for b.Loop() {
				for _, p := range payloads {
					if err := pub.Publish(ctx, client.Message{Topic: "bench/raw", Payload: p}, 1); err != nil {
						b.Fatal(err)
					}
				}
				for range payloads {
					select {
					case <-got:
					case <-time.After(10 * time.Second):
						b.Fatal("the subscriber lost slices")
					}
				}
			}
			b.ReportMetric(float64(len(slices)), "slices")
		})
	}
}

// BenchmarkBrokerRoundTrip is one request and its answer through the
// embedded broker between two MQTT 5 clients: the floor under each
// stop-and-wait slice.
func BenchmarkBrokerRoundTrip(b *testing.B) {
	w, _ := setup(b, "")
	ctx := context.Background()
	var echo client.Transport
	echo, err := client.Dial(ctx, client.Config{URL: w.url, ClientID: "bench-echo", Protocol: client.MQTT5, Logger: testenv.Logger(),
		Credentials: creds(b, w.b, "bench-echo", access.RoleBridge),
		OnMessage: func(m client.Message) {
			_ = echo.Publish(ctx, client.Message{Topic: "bench/pong", Payload: m.Payload}, 0)
		}})
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Close(ctx)
	if err := echo.Subscribe(ctx, "bench/ping"); err != nil {
		b.Fatal(err)
	}
	pong := make(chan struct{}, 1)
	cl, err := client.Dial(ctx, client.Config{URL: w.url, ClientID: "bench-client", Protocol: client.MQTT5, Logger: testenv.Logger(),
		Credentials: creds(b, w.b, "bench-client", access.RoleBridge),
		OnMessage:   func(client.Message) { pong <- struct{}{} }})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close(ctx)
	if err := cl.Subscribe(ctx, "bench/pong"); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := cl.Publish(ctx, client.Message{Topic: "bench/ping", Payload: []byte("ping")}, 0); err != nil {
			b.Fatal(err)
		}
		select {
		case <-pong:
		case <-time.After(5 * time.Second):
			b.Fatal("no pong")
		}
	}
}

// BenchmarkFleetUpdate updates 100 devices concurrently with the reference
// image through one bridge and the embedded broker: a campaign with 32
// workers (the bridge's SSH MaxStartups: 32 handshakes at once; more would
// wait in its queue, not fail), windowed, 600 B slices.
func BenchmarkFleetUpdate(b *testing.B) {
	const fleet = 100
	w, _ := setup(b, "")
	uuids := []string{"mup-1"}
	for i := 2; i <= fleet; i++ {
		u := fmt.Sprintf("mup-%d", i)
		addDevice(b, w, u, 3)
		uuids = append(uuids, u)
	}
	version := uint32(4)
	for b.Loop() {
		b.StopTimer()
		w.signed, _ = mup.SignVendorManifest(mup.NewVendorManifest(w.image, "myno-app", version, 0, 0), w.vendorKey)
		version++
		cfg := campaignConfig(w, uuids)
		cfg.Parallel = 32
		b.StartTimer()
		for _, r := range updateserver.Campaign(context.Background(), cfg) {
			if r.Err != nil {
				b.Fatalf("%s: %v", r.UUID, r.Err)
			}
		}
	}
	b.ReportMetric(fleet, "devices")
}

// The confidential update against the plain one, on the embedded broker,
// 600-byte slices, the paper's 87.8 kB image, with both flow controls: the
// whole update (token to new version) and its phases. The encrypted one
// adds the E2E handshake and key handover (overlapping the token and
// manifest rpcs; the wait left is phase "key") and seals every slice.
func BenchmarkEncryptedUpdate(b *testing.B) {
	for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
		for _, encrypt := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/%s", flow, map[bool]string{false: "plain", true: "encrypted"}[encrypt]), func(b *testing.B) {
				ew := setupEncrypted(b, false, nil)
				ew.flow = flow
				version := uint32(4)
				phases := map[string]time.Duration{}
				for b.Loop() {
					b.StopTimer()
					ew.signVersion(b, version)
					version++
					b.StartTimer()
					res, err := ew.run(encrypt)
					if err != nil {
						b.Fatal(err)
					}
					for k, v := range res.Phases {
						phases[k] += v
					}
				}
				for _, k := range []string{"key", "transfer"} {
					b.ReportMetric(float64(phases[k].Microseconds())/1000/float64(b.N), k+"-ms")
				}
			})
		}
	}
}

// signVersion has the vendor sign a manifest of the world's image at
// version (from any version): each benchmark iteration is a new update.
func (w *world) signVersion(tb testing.TB, version uint32) {
	tb.Helper()
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(w.image, "myno-app", version, 0, 0), w.vendorKey)
	if err != nil {
		tb.Fatal(err)
	}
	w.signed = signed
}

// BenchmarkProtocols updates the same 87,800-byte image at 600-byte slices
// through one bridge and the embedded broker, in each protocol, in the
// same run: MUP v1 (MYNO's: ten manifest rpcs, text slices, a token before
// and after) against this project's MUP (one manifest rpc, binary slices,
// the image check, the version report). Each iteration is a new version.
func BenchmarkProtocols(b *testing.B) {
	for _, flow := range []updateserver.FlowControl{updateserver.StopAndWait, updateserver.Windowed} {
		w, run := setup(b, "")
		vendorV1 := v1TestKey(b, "key-manufacturer.priv.hex")
		startV1Device(b, "mup-v1-device.jsonld", w.url, "myno-v1-1", devices.MUPv1Config{Version: 3, SlotSize: 256 << 10,
			VendorKey: &vendorV1.PublicKey, ServerKey: &w.serverKey.PublicKey})
		// The devices' versions, across the runs of -count.
		next := map[updateserver.Protocol]uint32{updateserver.ProtocolV1: 4, updateserver.ProtocolCOSE: 4}
		for _, protocol := range []updateserver.Protocol{updateserver.ProtocolV1, updateserver.ProtocolCOSE} {
			b.Run(fmt.Sprintf("protocol=%s/%s", protocol, flow), func(b *testing.B) {
				var transfer, manifest time.Duration
				for b.Loop() {
					b.StopTimer()
					version := next[protocol]
					next[protocol]++
					v1Manifest := v1Vendor(b, vendorV1, w.image, version, version-1)
					w.signVersion(b, version)
					b.StartTimer()
					var res *updateserver.Result
					var err error
					if protocol == updateserver.ProtocolCOSE {
						res, err = run(flow)
					} else {
						ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
						res, err = updateserver.Update(ctx, updateserver.UpdateConfig{UUID: "myno-v1-1", V1Manifest: v1Manifest, Image: w.image, ServerKey: w.serverKey,
							NETCONF: w.s, MQTTURL: w.url, MQTTCredentials: w.updater, Flow: flow, Modules: w.modules})
						cancel()
					}
					if err != nil {
						b.Fatal(err)
					}
					transfer += res.Phases["transfer"]
					manifest += res.Phases["manifest"]
				}
				b.ReportMetric(float64(transfer.Microseconds())/1000/float64(b.N), "transfer-ms")
				b.ReportMetric(float64(manifest.Microseconds())/1000/float64(b.N), "manifest-ms")
			})
		}
	}
}
