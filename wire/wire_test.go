package wire

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Shared fixtures drive both encoding and decoding (mochi-mqtt style).
var requestFixtures = []struct {
	raw string
	req Request
}{
	{"r1;ON", Request{ReqID: "r1", Method: "ON"}},
	{"42;color;red", Request{ReqID: "42", Method: "color", Args: []string{"red"}}},
	{"a-b;RGB;255,0,128;x", Request{ReqID: "a-b", Method: "RGB", Args: []string{"255,0,128", "x"}}},
	{"7;SET;", Request{ReqID: "7", Method: "SET", Args: []string{""}}},
}

func TestRequestFixtures(t *testing.T) {
	for _, f := range requestFixtures {
		got, err := DecodeRequest([]byte(f.raw))
		if err != nil || got.ReqID != f.req.ReqID || got.Method != f.req.Method || !slices.Equal(got.Args, f.req.Args) {
			t.Errorf("decode %q = %+v, %v", f.raw, got, err)
		}
		if enc := string(f.req.Encode()); enc != f.raw {
			t.Errorf("encode %+v = %q, want %q", f.req, enc, f.raw)
		}
	}
	for _, bad := range []string{"", "noseparator", ";ON", "r1;", string(bytes.Repeat([]byte("x"), 300)) + ";ON"} {
		if _, err := DecodeRequest([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestResponseFixtures(t *testing.T) {
	for raw, want := range map[string]Response{
		"r1;OK":                    {ReqID: "r1", Value: "OK"},
		"9;10_OK;dev-1;a1b2c3d4;3": {ReqID: "9", Value: "10_OK", Outputs: []string{"dev-1", "a1b2c3d4", "3"}},
		"9;ERROR":                  {ReqID: "9", Value: "ERROR"},
	} {
		got, err := DecodeResponse([]byte(raw))
		if err != nil || got.ReqID != want.ReqID || got.Value != want.Value || !slices.Equal(got.Outputs, want.Outputs) {
			t.Errorf("decode %q = %+v, %v", raw, got, err)
		}
		if enc := string(want.Encode()); enc != raw {
			t.Errorf("encode = %q, want %q", enc, raw)
		}
	}
	if _, err := DecodeResponse([]byte("OK")); !errors.Is(err, ErrMalformed) {
		t.Errorf("answer without reqId: %v", err)
	}
}

func TestChunks(t *testing.T) {
	desc := []byte(`{"@graph": [{"a": "b;c"}]}`)
	chunks := SplitDescription("dev-1", desc, 10)
	if len(chunks) != 4 || !chunks[3].End {
		t.Fatalf("%d chunks", len(chunks))
	}
	var joined []byte
	for _, c := range chunks {
		got, err := DecodeChunk(c.Encode())
		if err != nil || got.UUID != "dev-1" || got.End != c.End {
			t.Fatalf("%q: %+v %v", c.Encode(), got, err)
		}
		joined = append(joined, got.Data...)
	}
	if !bytes.Equal(joined, desc) {
		t.Errorf("reassembled %q", joined)
	}
	if one := SplitDescription("d", desc, 0); len(one) != 2 {
		t.Errorf("one chunk: %d messages", len(one))
	}
	for _, bad := range []string{"nouuid", "a/b;x", ";x", "a b;x"} {
		if _, err := DecodeChunk([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestTopics(t *testing.T) {
	if got := CommandTopic("actuator/led/%s", "d1"); got != "actuator/led/d1" {
		t.Error(got)
	}
	if got := CommandTopic("relay", "d1"); got != "relay/d1" {
		t.Error(got)
	}
	if got := BootstrapResponseTopic(TopicCreate, "d1"); got != "yang/config/create/response/d1" {
		t.Error(got)
	}
	if got := string(ErrorAnswer("bad; worse\nworst")); got != "ERROR;bad  worse worst" {
		t.Error(got)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, fx := range requestFixtures {
		f.Add([]byte(fx.raw))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, err := DecodeRequest(r.Encode())
		if err != nil || again.ReqID != r.ReqID || again.Method != r.Method || !slices.Equal(again.Args, r.Args) {
			t.Fatalf("round trip of %q: %+v %v", b, again, err)
		}
	})
}

func FuzzDecodeChunk(f *testing.F) {
	f.Add([]byte("dev-1;{\"a\":1}"))
	f.Add([]byte("dev-1;END"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeChunk(b)
		if err != nil {
			return
		}
		if !bytes.Equal(c.Encode(), b) {
			t.Fatalf("round trip %q -> %q", b, c.Encode())
		}
	})
}

func TestFirmwareStatus(t *testing.T) {
	if got := FirmwareStatusTopic("d1"); got != "yang/update/status/d1" {
		t.Errorf("topic %q", got)
	}
	v, err := DecodeFirmwareStatus(EncodeFirmwareStatus(42))
	if err != nil || v != "42" {
		t.Errorf("round trip: %q %v", v, err)
	}
	for _, bad := range []string{"", "VERSION;", "VERSION;4a", "version;4", "VERSION;12345678901", "VERSION;-1"} {
		if _, err := DecodeFirmwareStatus([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// Presence announcements round-trip; anything else is malformed.
func TestPresence(t *testing.T) {
	for _, p := range []Presence{{Online: true, Session: "s1"}, {Session: "Zx-9_"}} {
		got, err := DecodePresence(p.Encode())
		if err != nil || got != p {
			t.Errorf("%+v: %+v %v", p, got, err)
		}
	}
	for _, bad := range []string{"", "online", "online;", "up;s", "offline;a;b", "online;" + strings.Repeat("x", 65), "online;a\nb"} {
		if _, err := DecodePresence([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if u, ok := PresenceUUID(PresenceTopic("dev-1")); !ok || u != "dev-1" {
		t.Errorf("PresenceUUID: %q %v", u, ok)
	}
	if _, ok := PresenceUUID(FirmwareStatusTopic("dev-1")); ok {
		t.Error("a status topic taken for a presence topic")
	}
	if err := CheckDeviceTopic(PresenceTopic("%s")); err == nil {
		t.Error("a description may name the presence tree")
	}
}
