package systemtest_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
	v1 "github.com/myno-bridge/myno/mup/v1"
	"github.com/myno-bridge/myno/wire"
)

// firmwareLike is a device that behaves on the wire exactly as MYNO's
// CC2538 firmware does (MUP-V1.md §2, §5, §7 D1, D2, D7), written with a
// bare MQTT client: it listens only on yang/update/<uuid> and tells the
// operations apart by their keyword, answers every token "123456,1",
// checks only the two signatures at START-UPDATE and answers a failure
// OK, takes slices in order and re-acks the last one otherwise, compares
// the hash at FIN, and keeps reporting version 1. None of the virtual
// device's stronger checks: the Update Server must cope with this one.
type firmwareLike struct {
	t          *testing.T
	uuid       string
	tr         client.Transport
	vendor     *ecdsa.PublicKey
	server     *ecdsa.PublicKey
	sliceTopic string

	mu       sync.Mutex
	asm      v1.Assembler
	manifest *v1.Manifest
	next     uint32
	digest   []byte // the slices received, hashed at FIN
	results  []string
}

func startFirmwareLike(t *testing.T, url, uuid string, vendor, server *ecdsa.PublicKey) *firmwareLike {
	t.Helper()
	desc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "descriptions", "mup-v1-device.jsonld"))
	if err != nil {
		t.Fatal(err)
	}
	desc = mynoSameTopic(desc) // all three operations on yang/update, as the firmware listens
	f := &firmwareLike{t: t, uuid: uuid, vendor: vendor, server: server, sliceTopic: "yang/update/image/" + uuid}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	registered := make(chan string, 1)
	f.tr, err = client.Dial(ctx, client.Config{URL: url, ClientID: "cc2538-" + uuid, Protocol: client.MQTT5, Logger: testenv.Logger(),
		OnMessage: func(m client.Message) {
			switch {
			case wire.IsBootstrapResponse(m.Topic, uuid):
				select {
				case registered <- string(m.Payload):
				default:
				}
			case m.Topic == "yang/update/"+uuid:
				f.command(m.Payload)
			case m.Topic == f.sliceTopic:
				f.slice(m.Payload)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.tr.Close(context.Background()) })
	for _, topic := range []string{"yang/update/" + uuid, wire.BootstrapResponseTopic(wire.TopicCreate, uuid)} {
		if err := f.tr.Subscribe(ctx, topic); err != nil {
			t.Fatal(err)
		}
	}
	// The firmware's bootstrap: the description in parts, then END.
	for _, c := range wire.SplitDescription(uuid, desc, 4054) {
		if err := f.tr.Publish(ctx, client.Message{Topic: wire.DeviceBootstrapTopic(wire.TopicCreate, uuid), Payload: c.Encode()}, 1); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case answer := <-registered:
		if answer != wire.AnswerOK {
			t.Fatalf("bootstrap answered %q", answer)
		}
	case <-ctx.Done():
		t.Fatal("no bootstrap answer")
	}
	return f
}

func (f *firmwareLike) answer(reqID, text string) {
	_ = f.tr.Publish(context.Background(), client.Message{Topic: wire.ResponseTopic(f.uuid), Payload: []byte(reqID + ";" + text)}, 0)
}

func (f *firmwareLike) command(payload []byte) {
	req, err := wire.DecodeRequest(payload)
	if err != nil {
		return
	}
	switch {
	case req.Method == v1.MethodGetDeviceToken:
		f.answer(req.ReqID, "123456,1;OK") // constant (§2.1)
	case req.Method == v1.MethodPubUpdateManifest && len(req.Args) == 1:
		field, err := v1.DecodeField([]byte(req.Args[0]))
		if err != nil {
			f.answer(req.ReqID, "ERROR")
			return
		}
		f.mu.Lock()
		m, done, err := f.asm.Add(field)
		f.mu.Unlock()
		if !done {
			f.answer(req.ReqID, "OK")
			return
		}
		// Only the signatures are checked, and a failure is answered OK (§5).
		if err != nil || m.Verify(f.vendor, f.server) != nil {
			f.answer(req.ReqID, "OK")
			return
		}
		if err := f.tr.Subscribe(context.Background(), f.sliceTopic); err != nil {
			f.t.Errorf("slice topic: %v", err)
		}
		f.mu.Lock()
		f.manifest, f.next, f.digest = &m, 0, nil
		f.mu.Unlock()
		f.answer(req.ReqID, "MANIFEST-SUCCESS")
	case req.Method == v1.MethodPubUpdateImage && len(req.Args) == 1 && req.Args[0] == v1.Fin:
		f.mu.Lock()
		sum := sha256.Sum256(f.digest)
		ok := f.manifest != nil && hex.EncodeToString(sum[:]) == hex.EncodeToString(f.manifest.Hash[:])
		result := "ERROR"
		if ok {
			result = "FIRMWARE-SUCCESS"
		}
		f.results = append(f.results, result)
		f.digest = nil
		f.mu.Unlock()
		f.answer(req.ReqID, result) // no new version, ever (§7 D7)
	default:
		f.answer(req.ReqID, "ERROR")
	}
}

func (f *firmwareLike) slice(payload []byte) {
	s, err := v1.DecodeSlice(payload)
	f.mu.Lock()
	var ack string
	switch {
	case err != nil || s.Index != f.next:
		ack = strconv.Itoa(int(f.next)-1) + ",OK" // "-1,OK" before slice 0 (§2.3)
	default:
		f.digest = append(f.digest, s.Data...)
		f.next++
		ack = strconv.Itoa(int(s.Index)) + ",OK"
	}
	f.mu.Unlock()
	_ = f.tr.Publish(context.Background(), client.Message{Topic: wire.MUPv1AckTopic(f.sliceTopic), Payload: []byte(ack)}, 0)
}

// myno update copes with MYNO's firmware as it is (issue 14: "it
// tolerates MYNO's quirks"): the update succeeds on one topic for all
// operations, with a note that the device's nonce is the firmware's
// constant and that it does not report the new version; a forged outer
// signature, which the firmware answers OK, is reported as a refusal.
func TestV1UpdateOfMYNOsFirmware(t *testing.T) {
	m := testenv.StartMosquitto(t) // the firmware has no credentials; Mosquitto without an ACL, as MYNO's setup
	b := startBridge(t, m.URL(), nil)
	vendorKey, serverKey := v1TestKey(t, "key-manufacturer.priv.hex"), v1TestKey(t, "key-updateserver.priv.hex")
	fw := startFirmwareLike(t, m.URL(), "MYNO-UPDATE-CC2538", &vendorKey.PublicKey, &serverKey.PublicKey)
	s := dialBridge(t, b)
	image, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "mup", "v1", "testdata", "test-image-2000.bin"))
	if err != nil {
		t.Fatal(err)
	}
	update := func(key *ecdsa.PrivateKey) (*updateserver.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return updateserver.Update(ctx, updateserver.UpdateConfig{UUID: fw.uuid, V1Manifest: v1Vendor(t, vendorKey, image, 2, 1), Image: image,
			ServerKey: key, NETCONF: s, MQTTURL: m.URL(), Flow: updateserver.Windowed})
	}
	res, err := update(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	if res.Protocol != updateserver.ProtocolV1 || res.Slices != 4 || res.Version != 1 || res.Verdict != updateserver.Unverified ||
		!strings.Contains(res.Note, "does not report a new version") || !strings.Contains(res.Note, "123456") {
		t.Errorf("result %+v", res)
	}
	rogue, _ := mup.GenerateKey()
	_, err = update(rogue)
	var ue *updateserver.UpdateError
	if !errors.As(err, &ue) || ue.State != "OK" || !errors.Is(err, updateserver.ErrV1Refused) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("forged outer signature: %v", err)
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if len(fw.results) != 1 || fw.results[0] != "FIRMWARE-SUCCESS" {
		t.Errorf("FIN results on the device: %v", fw.results)
	}
}
