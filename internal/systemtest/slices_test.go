package systemtest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	gonetconf "github.com/Juniper/go-netconf/netconf"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/mup/updateserver"
)

// deviceRPC calls one of the device's MUP rpcs through the bridge and
// returns its retval and outputs.
func deviceRPC(t *testing.T, s *gonetconf.Session, rpc string, inputs ...updateserver.Leaf) (string, []string) {
	t.Helper()
	c := updateserver.NewClient(s)
	dev, err := c.Device("mup-1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Call(dev.Namespace, rpc, append([]updateserver.Leaf{{Name: "uuidInput", Value: "mup-1"}}, inputs...)...)
	if err != nil {
		t.Fatalf("%s: %v", rpc, err)
	}
	return out.Retval, out.Values()
}

// The device takes slices only in order and only up to the manifest's size:
// a truncated, reordered or duplicated stream never yields accepted
// firmware it was not meant to (MUP paper §4.4; PROTOCOL.md "Slices").
func TestBadSliceStreams(t *testing.T) {
	tamper := func(s mup.Slice) mup.Slice {
		d := bytes.Clone(s.Data)
		d[0] ^= 0xff
		return mup.Slice{Index: s.Index, Data: d}
	}
	for _, tc := range []struct {
		name      string
		stream    func([]mup.Slice) []mup.Slice
		wantState string
		reAcked   int // an index the device must ack more than once, or -1
	}{
		{"truncated", func(s []mup.Slice) []mup.Slice { return s[:len(s)-1] }, mup.StateImageInvalid, -1},
		{"reordered", func(s []mup.Slice) []mup.Slice {
			out := append([]mup.Slice{s[0], s[2], s[1]}, s[3:]...)
			return out
		}, mup.StateImageInvalid, 0},
		{"duplicate with other bytes is ignored", func(s []mup.Slice) []mup.Slice {
			out := append([]mup.Slice{}, s[:6]...)
			out = append(out, tamper(s[5]))
			return append(out, s[6:]...)
		}, mup.StateOK, 5},
		{"slice past the end is ignored", func(s []mup.Slice) []mup.Slice {
			return append(append([]mup.Slice{}, s...), mup.Slice{Index: uint32(len(s)), Data: []byte("extra")})
		}, mup.StateOK, 146},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := setup(t, "")
			state, outs := deviceRPC(t, w.s, "getDeviceToken")
			tok, err := mup.DecodeToken(outs)
			if state != mup.StateOK || err != nil {
				t.Fatalf("token: %s %v", state, err)
			}
			serverKey := w.serverKey
			ext, err := mup.SignExtendedManifest(w.signed, "mup-1", tok.Nonce, serverKey)
			if err != nil {
				t.Fatal(err)
			}
			if state, _ := deviceRPC(t, w.s, "sendExtendedManifest", updateserver.Leaf{Name: "input_1_Manifest", Value: base64.StdEncoding.EncodeToString(ext)}); state != mup.StateOK {
				t.Fatalf("manifest: %s", state)
			}
			ctx := context.Background()
			topic := "yang/update/image/mup-1"
			var mu sync.Mutex
			var acks []uint32
			pub, err := client.Dial(ctx, client.Config{URL: w.url, ClientID: "slice-test", Protocol: client.MQTT5, Logger: testenv.Logger(),
				Credentials: w.updater, // it plays the Update Server
				OnMessage: func(m client.Message) {
					if a, err := mup.DecodeAck(m.Payload); err == nil {
						mu.Lock()
						acks = append(acks, a.Index)
						mu.Unlock()
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer pub.Close(ctx)
			if err := pub.Subscribe(ctx, topic+"/ack"); err != nil {
				t.Fatal(err)
			}
			// The device acks every slice it sees (cumulatively); like the
			// Update Server, keep at most 8 slices unacknowledged.
			waitAcks := func(want int) {
				testenv.WaitFor(t, fmt.Sprintf("%d acks", want), func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(acks) >= want
				})
			}
			stream := tc.stream(mup.SplitImage(w.image, 600))
			for i, s := range stream {
				waitAcks(i - 8)
				if err := pub.Publish(ctx, client.Message{Topic: topic, Payload: s.Encode()}, 0); err != nil { // QoS 0, as the Update Server sends slices
					t.Fatal(err)
				}
			}
			waitAcks(len(stream))
			mu.Lock()
			count := 0
			for _, a := range acks {
				if int(a) == tc.reAcked {
					count++
				}
			}
			mu.Unlock()
			if tc.reAcked >= 0 && count < 2 {
				t.Errorf("index %d acked %d times; want a re-ack", tc.reAcked, count)
			}
			digest := sha256.Sum256(w.image)
			state, _ = deviceRPC(t, w.s, "sendFirmwareImage", updateserver.Leaf{Name: "input_1_ImageDigest", Value: hex.EncodeToString(digest[:])})
			if state != tc.wantState {
				t.Fatalf("image check: %s, want %s", state, tc.wantState)
			}
			wantVersion := uint32(3)
			if tc.wantState == mup.StateOK {
				wantVersion = 4
			}
			if v := w.dev.FirmwareVersion(); v != wantVersion {
				t.Errorf("device runs %d, want %d", v, wantVersion)
			}
			if tc.wantState == mup.StateOK {
				waitFirmwareVersion(t, w.s, "4")
			}
		})
	}
}
