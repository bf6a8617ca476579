package devices_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/internal/devicetest"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/wire"
)

// v1Watch collects, per topic, what a test client receives.
type v1Watch struct {
	t      *testing.T
	tr     client.Transport
	mu     sync.Mutex
	queues map[string][][]byte
	notify chan struct{}
}

func newV1Watch(t *testing.T, url string, topics ...string) *v1Watch {
	t.Helper()
	w := &v1Watch{t: t, queues: map[string][][]byte{}, notify: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: url, ClientID: "v1-watch-" + uuidFor(t, 0), Protocol: client.MQTT5, OnMessage: w.onMessage, Logger: testenv.Logger(), AtMostOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	w.tr = tr
	t.Cleanup(func() { tr.Close(context.Background()) })
	for _, topic := range topics {
		if err := tr.Subscribe(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func (w *v1Watch) onMessage(m client.Message) {
	w.mu.Lock()
	w.queues[m.Topic] = append(w.queues[m.Topic], append([]byte(nil), m.Payload...))
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// expect takes messages on topic, oldest first, until one is want; it
// fails after a deadline.
func (w *v1Watch) expect(topic, want string) {
	w.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		q := w.queues[topic]
		for len(q) > 0 {
			got := string(q[0])
			q = q[1:]
			if got == want {
				w.queues[topic] = q
				w.mu.Unlock()
				return
			}
		}
		w.queues[topic] = q
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-deadline.C:
			w.t.Fatalf("no %q on %s", want, topic)
		}
	}
}

// none fails if anything arrives on topic within d (a bounded wait for
// something that must not come).
func (w *v1Watch) none(topic string, d time.Duration) {
	w.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		q := w.queues[topic]
		w.mu.Unlock()
		if len(q) > 0 {
			w.t.Fatalf("unexpected %q on %s", q[0], topic)
		}
		select {
		case <-w.notify:
		case <-deadline.C:
			return
		}
	}
}

// until takes the messages on topic, as numbers, up to and with want; it
// fails after a deadline.
func (w *v1Watch) until(topic, want string) []int {
	w.t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	var out []int
	for {
		w.mu.Lock()
		q := w.queues[topic]
		for len(q) > 0 {
			got := string(q[0])
			q = q[1:]
			n, err := strconv.Atoi(got)
			if err != nil {
				w.mu.Unlock()
				w.t.Fatalf("%q on %s", got, topic)
			}
			out = append(out, n)
			if got == want {
				w.queues[topic] = q
				w.mu.Unlock()
				return out
			}
		}
		w.queues[topic] = q
		w.mu.Unlock()
		select {
		case <-w.notify:
		case <-deadline.C:
			w.t.Fatalf("no %q on %s after %v", want, topic, out)
		}
	}
}

// v1Rig is a MUP v1 device registered with a stand-in bridge, and the
// test's side of MUP v1: MYNO's bridge (commands) and Update Server
// (slices, acks).
type v1Rig struct {
	t      *testing.T
	s      *standIn
	w      *v1Watch
	d      *devices.Device
	uuid   string
	desc   []byte
	req    int
	mfr    *ecdsa.PrivateKey
	server *ecdsa.PrivateKey
	image  []byte
}

func v1Key(t *testing.T, name string) *ecdsa.PrivateKey {
	t.Helper()
	b := mustRead(t, filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata", name))
	k, err := v1.DecodePrivateKey(bytes.TrimSpace(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// v1SameTopic gives all three MUP v1 operations the topic yang/update, as
// MYNO's committed firmware listens (MUP-V1.md §7 D1).
func v1SameTopic(desc []byte) []byte {
	for _, op := range []string{"yang/update/token", "yang/update/manifest"} {
		desc = bytes.ReplaceAll(desc, []byte(`"m:mqttTopic": "`+op+`"`), []byte(`"m:mqttTopic": "yang/update"`))
	}
	return desc
}

func newV1Rig(t *testing.T, desc []byte, mod func(*devices.MUPv1Config)) *v1Rig {
	t.Helper()
	b := embeddedBroker(t)
	r := &v1Rig{t: t, uuid: uuidFor(t, 1), desc: desc, mfr: v1Key(t, "key-manufacturer.priv.hex"), server: v1Key(t, "key-updateserver.priv.hex")}
	r.image = mustRead(t, filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata", "test-image-2000.bin"))
	r.s = newStandIn(t, b.url, acceptAll)
	r.w = newV1Watch(t, b.url, wire.FirmwareStatusTopic(r.uuid), r.ackTopic(), "yang/update/progress/"+r.uuid)
	cfg := devices.MUPv1Config{Version: 1, SlotSize: 4096, VendorKey: &r.mfr.PublicKey, ServerKey: &r.server.PublicKey}
	if mod != nil {
		mod(&cfg)
	}
	d := devicetest.Boot(t, devices.Config{Description: desc, UUID: r.uuid, BrokerURL: b.url, Logger: testenv.Logger()},
		func(d *devices.Device) error { return d.EnableMUPv1(cfg) })
	r.d = d
	r.w.expect(wire.FirmwareStatusTopic(r.uuid), "VERSION;"+strconv.FormatUint(uint64(cfg.Version), 10))
	if got, want := d.MUPv1SliceTopic(), r.sliceTopic(); got != want {
		t.Fatalf("slice topic %q, want %q", got, want)
	}
	return r
}

func (r *v1Rig) sliceTopic() string { return "yang/update/image/" + r.uuid }
func (r *v1Rig) ackTopic() string   { return r.sliceTopic() + "/response" }

// cmd sends one MUP v1 command as MYNO's bridge does (`R;METHOD[;value]`
// on the operation's topic + "/<uuid>") and returns the answer's fields
// after R.
func (r *v1Rig) cmd(rpc, method string, args ...string) (string, []string) {
	r.t.Helper()
	topic := wire.CommandTopic(templateTopic(r.t, r.desc, rpc), r.uuid)
	r.req++
	id := strconv.Itoa(r.req)
	m := r.s.call(topic, string(wire.Request{ReqID: id, Method: method, Args: args}.Encode()), false, r.uuid)
	resp, err := wire.DecodeResponse(m.Payload)
	if err != nil {
		r.t.Fatalf("answer %q: %v", m.Payload, err)
	}
	if resp.ReqID != id {
		r.t.Fatalf("answer %q to request %s", m.Payload, id)
	}
	return resp.Value, resp.Outputs
}

func (r *v1Rig) token() v1.Token {
	r.t.Helper()
	val, outs := r.cmd(v1.RPCGetDeviceToken, v1.MethodGetDeviceToken)
	if !slices.Equal(outs, []string{v1.TokenTrailer}) {
		r.t.Fatalf("token trailer %q, want OK", outs)
	}
	tok, err := v1.DecodeToken([]byte(val))
	if err != nil {
		r.t.Fatal(err)
	}
	return tok
}

// manifest is a manifest of image signed by the vector keys for nonce.
func (r *v1Rig) manifest(image []byte, version, oldVersion, nonce uint32) v1.Manifest {
	r.t.Helper()
	m, err := v1.NewManifest(image, "APP", 0, version, oldVersion)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := m.SignInner(r.mfr); err != nil {
		r.t.Fatal(err)
	}
	m.Nonce = nonce
	if err := m.SignOuter(r.server); err != nil {
		r.t.Fatal(err)
	}
	return m
}

// sendManifest sends the ten fields; every answer but the last must be
// OK; it returns the last.
func (r *v1Rig) sendManifest(m v1.Manifest) string {
	r.t.Helper()
	fields, err := m.Fields()
	if err != nil {
		r.t.Fatal(err)
	}
	var last string
	for i, f := range fields {
		b, err := f.Encode()
		if err != nil {
			r.t.Fatal(err)
		}
		last, _ = r.cmd(v1.RPCPubUpdateManifest, v1.MethodPubUpdateManifest, string(b))
		if i < len(fields)-1 && last != string(v1.AnswerOK) {
			r.t.Fatalf("field %d answered %q, want OK", i, last)
		}
	}
	return last
}

// slice publishes one slice as MYNO's Update Server does.
func (r *v1Rig) slice(s v1.Slice) {
	r.t.Helper()
	b, err := s.Encode()
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.w.tr.Publish(ctx, client.Message{Topic: r.sliceTopic(), Payload: b}, 0); err != nil {
		r.t.Fatal(err)
	}
}

func (r *v1Rig) ack(n uint32) {
	r.t.Helper()
	b, err := v1.Ack{Index: n}.Encode()
	if err != nil {
		r.t.Fatal(err)
	}
	r.w.expect(r.ackTopic(), string(b))
}

// sendImage sends every slice of image, each after the last's ack.
func (r *v1Rig) sendImage(image []byte) {
	r.t.Helper()
	ss, err := v1.SplitImage(image)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, s := range ss {
		r.slice(s)
		r.ack(s.Index)
	}
}

func (r *v1Rig) fin() string {
	r.t.Helper()
	val, _ := r.cmd(v1.RPCPubUpdateImage, v1.MethodPubUpdateImage, v1.Fin)
	return val
}

// noSlicesTaken checks that the device does not take slice 0: no ack
// comes after a round trip to the device and a bounded wait.
func (r *v1Rig) noSlicesTaken() {
	r.t.Helper()
	r.slice(v1.Slice{Index: 0, Data: r.image[:v1.SliceSize]})
	r.token() // a round trip behind the slice
	r.w.none(r.ackTopic(), 300*time.Millisecond)
}

func TestV1Update(t *testing.T) {
	for _, layout := range []struct {
		name string
		desc func([]byte) []byte
	}{
		{"own-topics", func(b []byte) []byte { return b }},
		{"yang-update-only", v1SameTopic},
	} {
		t.Run(layout.name, func(t *testing.T) {
			r := newV1Rig(t, layout.desc(readDescription(t, "mup-v1-device.jsonld")), nil)
			tok := r.token()
			if tok.Version != 1 || tok.Nonce == 0 {
				t.Fatalf("token %+v", tok)
			}
			if got := r.sendManifest(r.manifest(r.image, 2, 1, tok.Nonce)); got != string(v1.AnswerManifestSuccess) {
				t.Fatalf("START-UPDATE answered %q", got)
			}
			ss, err := v1.SplitImage(r.image)
			if err != nil {
				t.Fatal(err)
			}
			if len(ss) != 4 || len(ss[0].Data) != 600 {
				t.Fatalf("%d slices", len(ss))
			}
			r.slice(ss[0])
			r.ack(0)
			r.slice(ss[0]) // a duplicate (MUP-V1.md §2.3 quirk (a)): re-acked
			r.ack(0)
			r.slice(ss[2]) // out of order: the last good one is re-acked
			r.ack(0)
			for _, s := range ss[1:] {
				r.slice(s)
				r.ack(s.Index)
			}
			if got := r.fin(); got != string(v1.AnswerFirmwareSuccess) {
				t.Fatalf("FIN answered %q", got)
			}
			r.w.expect(wire.FirmwareStatusTopic(r.uuid), "VERSION;2")
			if v := r.d.MUPv1Version(); v != 2 {
				t.Fatalf("version %d after the update", v)
			}
			if !bytes.Equal(r.d.MUPv1Image(), r.image) {
				t.Fatal("the installed image differs from the one sent")
			}
			tok2 := r.token()
			if tok2.Version != 2 {
				t.Fatalf("token after the update %+v", tok2)
			}
			// No slices after FIN.
			r.noSlicesTaken()
		})
	}
}

func TestV1Refusals(t *testing.T) {
	desc := readDescription(t, "mup-v1-device.jsonld")

	t.Run("tampered-image", func(t *testing.T) {
		r := newV1Rig(t, desc, nil)
		tok := r.token()
		if got := r.sendManifest(r.manifest(r.image, 2, 1, tok.Nonce)); got != string(v1.AnswerManifestSuccess) {
			t.Fatalf("START-UPDATE answered %q", got)
		}
		bad := bytes.Clone(r.image)
		bad[1000] ^= 0x01
		r.sendImage(bad)
		if got := r.fin(); got != string(v1.AnswerError) {
			t.Fatalf("FIN answered %q, want ERROR", got)
		}
		if v := r.d.MUPv1Version(); v != 1 || r.d.MUPv1Image() != nil {
			t.Fatalf("version %d after a tampered image", v)
		}
		if tok := r.token(); tok.Version != 1 {
			t.Fatalf("token %+v", tok)
		}
	})

	t.Run("too-many-bytes", func(t *testing.T) {
		r := newV1Rig(t, desc, nil)
		tok := r.token()
		short := r.image[:1500]
		if got := r.sendManifest(r.manifest(short, 2, 1, tok.Nonce)); got != string(v1.AnswerManifestSuccess) {
			t.Fatalf("START-UPDATE answered %q", got)
		}
		ss, _ := v1.SplitImage(r.image) // 1999 bytes for a manifest of 1500
		for _, s := range ss[:2] {
			r.slice(s)
			r.ack(s.Index)
		}
		r.slice(ss[2]) // beyond the size: refused, the last good one re-acked
		r.ack(1)
		if got := r.fin(); got != string(v1.AnswerError) {
			t.Fatalf("FIN answered %q, want ERROR", got)
		}
	})

	for _, tc := range []struct {
		name   string
		forge  func(r *v1Rig, m *v1.Manifest)
		compat bool
	}{
		{"forged-inner", func(r *v1Rig, m *v1.Manifest) {
			if err := m.SignInner(r.server); err != nil { // the wrong key
				t.Fatal(err)
			}
			if err := m.SignOuter(r.server); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"forged-outer", func(r *v1Rig, m *v1.Manifest) {
			if err := m.SignOuter(r.mfr); err != nil { // the wrong key
				t.Fatal(err)
			}
		}, false},
		{"tampered-field", func(r *v1Rig, m *v1.Manifest) { m.LinkOffset = 4096 }, false},
		{"compat-forged-outer", func(r *v1Rig, m *v1.Manifest) {
			if err := m.SignOuter(r.mfr); err != nil {
				t.Fatal(err)
			}
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newV1Rig(t, desc, func(c *devices.MUPv1Config) { c.FirmwareCompat = tc.compat })
			tok := r.token()
			m := r.manifest(r.image, 2, 1, tok.Nonce)
			tc.forge(r, &m)
			want := v1.AnswerError
			if tc.compat {
				want = v1.AnswerOK // as MYNO's firmware (MUP-V1.md §5)
			}
			if got := r.sendManifest(m); got != string(want) {
				t.Fatalf("START-UPDATE answered %q, want %q", got, want)
			}
			r.noSlicesTaken()
			if got := r.fin(); got != string(v1.AnswerError) {
				t.Fatalf("FIN answered %q, want ERROR", got)
			}
		})
	}

	t.Run("replayed-nonce", func(t *testing.T) {
		r := newV1Rig(t, desc, nil)
		old := r.token()
		m := r.manifest(r.image, 2, 1, old.Nonce)
		if got := r.sendManifest(m); got != string(v1.AnswerManifestSuccess) {
			t.Fatalf("START-UPDATE answered %q", got)
		}
		// The same manifest again: its token is used.
		if got := r.sendManifest(m); got != string(v1.AnswerError) {
			t.Fatalf("replay without a token answered %q, want ERROR", got)
		}
		// And after a new token, the old nonce.
		if tok := r.token(); tok.Nonce == old.Nonce {
			t.Fatalf("the same nonce twice: %d", tok.Nonce)
		}
		if got := r.sendManifest(m); got != string(v1.AnswerError) {
			t.Fatalf("replay with the old nonce answered %q, want ERROR", got)
		}
		// The transfer the first manifest opened is still there.
		r.sendImage(r.image)
		if got := r.fin(); got != string(v1.AnswerFirmwareSuccess) {
			t.Fatalf("FIN answered %q", got)
		}
	})

	t.Run("downgrade", func(t *testing.T) {
		r := newV1Rig(t, desc, func(c *devices.MUPv1Config) { c.Version = 5 })
		for _, v := range []uint32{5, 4} {
			tok := r.token()
			if got := r.sendManifest(r.manifest(r.image, v, 5, tok.Nonce)); got != string(v1.AnswerError) {
				t.Fatalf("version %d over 5 answered %q, want ERROR", v, got)
			}
		}
		r.noSlicesTaken()
	})

	t.Run("too-big-for-the-slot", func(t *testing.T) {
		r := newV1Rig(t, desc, func(c *devices.MUPv1Config) { c.SlotSize = 1024 })
		tok := r.token()
		if got := r.sendManifest(r.manifest(r.image, 2, 1, tok.Nonce)); got != string(v1.AnswerError) {
			t.Fatalf("START-UPDATE answered %q, want ERROR", got)
		}
	})

	t.Run("malformed-field", func(t *testing.T) {
		r := newV1Rig(t, desc, nil)
		if got, _ := r.cmd(v1.RPCPubUpdateManifest, v1.MethodPubUpdateManifest, "2,NOTAHASH"); got != string(v1.AnswerError) {
			t.Fatalf("answered %q, want ERROR", got)
		}
		if got, _ := r.cmd(v1.RPCPubUpdateImage, v1.MethodPubUpdateImage, "NOPE"); got != string(v1.AnswerError) {
			t.Fatalf("answered %q, want ERROR", got)
		}
	})
}

// v1WithProgress adds MYNO's updateProgress event to a description, on
// yang/update/progress/%s.
func v1WithProgress(t *testing.T, desc []byte) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(desc, &doc); err != nil {
		t.Fatal(err)
	}
	graph := doc["@graph"].([]any)
	for _, n := range graph {
		node := n.(map[string]any)
		if node["@id"] == "m:mupV1Device" {
			node["onem2m:hasService"] = append(node["onem2m:hasService"].([]any), map[string]any{"@id": "m:servUpdateProgress"})
			node["onem2m:hasFunctionality"] = append(node["onem2m:hasFunctionality"].([]any), map[string]any{"@id": "m:updateProgress"})
		}
	}
	graph = append(graph,
		map[string]any{"@id": "m:servUpdateProgress", "@type": []any{"owl:NamedIndividual", "onem2m:Service"},
			"onem2m:exposesFunctionality": map[string]any{"@id": "m:updateProgress"},
			"onem2m:hasOutputDataPoint":   map[string]any{"@id": "m:outDpUpdateProgress"}},
		map[string]any{"@id": "m:updateProgress", "@type": []any{"owl:NamedIndividual", "onem2m:EventFunctionality"},
			"onem2m:hasThingProperty": map[string]any{"@id": "m:descUpdateProgress"}},
		map[string]any{"@id": "m:descUpdateProgress", "@type": []any{"owl:NamedIndividual", "m:YangDescription"},
			"onem2m:hasValue": "Share of the firmware image received so far"},
		map[string]any{"@id": "m:outDpUpdateProgress", "@type": []any{"owl:NamedIndividual", "onem2m:OutputDataPoint"},
			"onem2m:hasDataType": map[string]any{"@id": "xsd:int"}, "m:mqttTopic": "yang/update/progress/%s"},
	)
	doc["@graph"] = graph
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestV1Progress(t *testing.T) {
	r := newV1Rig(t, v1WithProgress(t, readDescription(t, "mup-v1-device.jsonld")), nil)
	progress := "yang/update/progress/" + r.uuid
	tok := r.token()
	if got := r.sendManifest(r.manifest(r.image, 2, 1, tok.Nonce)); got != string(v1.AnswerManifestSuccess) {
		t.Fatalf("START-UPDATE answered %q", got)
	}
	// 100 slices of 20 bytes (the last 19): 1 % each.
	for i := 0; i*20 < len(r.image); i++ {
		r.slice(v1.Slice{Index: uint32(i), Data: r.image[i*20 : min(len(r.image), (i+1)*20)]})
		r.ack(uint32(i))
	}
	vals := r.w.until(progress, "100")
	if got := r.fin(); got != string(v1.AnswerFirmwareSuccess) {
		t.Fatalf("FIN answered %q", got)
	}
	// The start, then at least 5 points on each time, and 100.
	if len(vals) < 2 || len(vals) > 22 || vals[0] != 0 || vals[len(vals)-1] != 100 {
		t.Fatalf("progress %v", vals)
	}
	for i := 1; i < len(vals)-1; i++ {
		if vals[i] < vals[i-1]+5 {
			t.Fatalf("progress %v: %d after %d", vals, vals[i], vals[i-1])
		}
	}
	if len(vals) < 20 {
		t.Fatalf("progress %v: want about every 5 %%", vals)
	}
}
