package updateserver

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const testNS = "urn:myno:yang:myno-test"

func reply(body string) []byte {
	return []byte(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="1">` + body + `</rpc-reply>`)
}

func leaf(name, value string) string {
	return `<` + name + ` xmlns="` + testNS + `">` + value + `</` + name + `>`
}

// The reply parser reads retval and the outputs in order, and refuses what
// a hostile or broken server could send, without panicking or reading
// without bound.
func TestParseOutput(t *testing.T) {
	many := strings.Repeat(leaf("o", "x"), MaxOutputs+1)
	deep := strings.Repeat("<a>", 20000) + strings.Repeat("</a>", 20000)
	for _, tc := range []struct {
		name    string
		raw     []byte
		retval  string
		outputs []Leaf
		err     error // ErrBadReply, or nil for an *RPCError
		errText string
	}{
		{name: "retval and outputs in order", raw: reply(leaf("retval", "10_OK") + leaf("b", "2") + leaf("a", "1") + leaf("c", "")),
			retval: "10_OK", outputs: []Leaf{{Name: "b", Value: "2"}, {Name: "a", Value: "1"}, {Name: "c", Value: ""}}},
		{name: "retval after the outputs", raw: reply(leaf("z", "1") + leaf("retval", "12_ERROR")), retval: "12_ERROR", outputs: []Leaf{{Name: "z", Value: "1"}}},
		{name: "escaped text", raw: reply(leaf("retval", "10_OK") + leaf("o", "&lt;a&gt; &amp; &#34;b&#34; <![CDATA[<c>]]>")),
			retval: "10_OK", outputs: []Leaf{{Name: "o", Value: `<a> & "b" <c>`}}},
		{name: "prefixed namespace", raw: reply(`<m:retval xmlns:m="` + testNS + `">10_OK</m:retval>`), retval: "10_OK"},
		{name: "a warning is not an error", raw: reply(`<rpc-error><error-type>application</error-type><error-tag>x</error-tag><error-severity>warning</error-severity></rpc-error>` + leaf("retval", "10_OK")),
			retval: "10_OK"},
		{name: "rpc-error", raw: reply(`<rpc-error><error-type>application</error-type><error-tag>operation-failed</error-tag><error-severity>error</error-severity><error-app-tag>device-timeout</error-app-tag><error-message xml:lang="en">no answer</error-message></rpc-error>`),
			errText: "netconf op: rpc-error operation-failed (device-timeout): no answer"},
		{name: "not XML", raw: []byte("<rpc-reply"), err: ErrBadReply},
		{name: "empty", raw: nil, err: ErrBadReply},
		{name: "not an rpc-reply", raw: []byte(`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>`), err: ErrBadReply},
		{name: "rpc-reply in another namespace", raw: []byte(`<rpc-reply xmlns="urn:x">` + leaf("retval", "10_OK") + `</rpc-reply>`), err: ErrBadReply},
		{name: "ok, no retval", raw: reply(`<ok/>`), err: ErrBadReply},
		{name: "no retval", raw: reply(leaf("output_1", "x")), err: ErrBadReply},
		{name: "empty retval", raw: reply(leaf("retval", "")), err: ErrBadReply},
		{name: "two retvals", raw: reply(leaf("retval", "10_OK") + leaf("retval", "12_ERROR")), err: ErrBadReply},
		{name: "retval in another namespace", raw: reply(`<retval xmlns="urn:other">10_OK</retval>`), err: ErrBadReply},
		{name: "retval without a namespace", raw: []byte(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><retval xmlns="">10_OK</retval></rpc-reply>`), err: ErrBadReply},
		{name: "an output that is not a leaf", raw: reply(leaf("retval", "10_OK") + leaf("o", "<x>1</x>")), err: ErrBadReply},
		{name: "too many outputs", raw: reply(leaf("retval", "10_OK") + many), err: ErrBadReply},
		{name: "a reply over the size limit", raw: reply(leaf("retval", "10_OK") + leaf("o", strings.Repeat("x", MaxReplyBytes))), err: ErrBadReply},
		{name: "an undefined entity", raw: reply(leaf("retval", "&boom;")), err: ErrBadReply},
		{name: "a DTD with an entity", raw: append([]byte(`<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>`), reply(leaf("retval", "&b;"))...), err: ErrBadReply},
		{name: "deep nesting", raw: reply(leaf("retval", "10_OK") + leaf("o", deep)), err: ErrBadReply},
		{name: "trailing garbage inside", raw: reply(leaf("retval", "10_OK") + "<o"), err: ErrBadReply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := parseOutput("op", testNS, tc.raw)
			switch {
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %+v, %v; want %v", out, err, tc.err)
				}
			case tc.errText != "":
				var rpcErr *RPCError
				if !errors.As(err, &rpcErr) || err.Error() != tc.errText {
					t.Fatalf("got %v, want %q", err, tc.errText)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				if out.Retval != tc.retval || fmt.Sprint(out.Leaves) != fmt.Sprint(tc.outputs) {
					t.Fatalf("got %q %v, want %q %v", out.Retval, out.Leaves, tc.retval, tc.outputs)
				}
			}
		})
	}
}

func TestParseDevices(t *testing.T) {
	devices := func(ns, body string) string {
		return `<data><devices xmlns="` + ns + `">` + body + `</devices></data>`
	}
	entry := `<device><uuid>mup-1</uuid><category>MUP</category><module>myno-mup</module><firmware-version>3</firmware-version><online>true</online>` +
		`<sensors><temperature><value>21.5</value><timestamp>2026-12-02T10:00:00Z</timestamp></temperature></sensors></device>`
	got, err := parseDevices(reply(devices("urn:a", entry) + devices("urn:b", strings.ReplaceAll(entry, "mup-1", "mup-2"))))
	want := DeviceEntry{UUID: "mup-1", Category: "MUP", Module: "myno-mup", Namespace: "urn:a", FirmwareVersion: "3", Online: true,
		Sensors: []Reading{{Sensor: "temperature", Value: "21.5", Timestamp: "2026-12-02T10:00:00Z"}}}
	if err != nil || len(got) != 2 || !reflect.DeepEqual(got[0], want) || got[1].Namespace != "urn:b" {
		t.Fatalf("%+v %v", got, err)
	}
	if got, err := parseDevices(reply(`<data/>`)); err != nil || len(got) != 0 {
		t.Errorf("no devices: %+v %v", got, err)
	}
	for name, raw := range map[string][]byte{
		"no data":                      reply(""),
		"devices without a namespace":  []byte(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data><devices xmlns="">` + entry + `</devices></data></rpc-reply>`),
		"device in another namespace":  reply(devices("urn:a", `<device xmlns="urn:b"><uuid>x</uuid></device>`)),
		"not XML":                      []byte("<rpc-reply><data>"),
		"over the size limit":          reply(devices("urn:a", strings.Repeat(entry, MaxReplyBytes/len(entry)+1))),
		"an rpc-error":                 reply(`<rpc-error><error-tag>access-denied</error-tag><error-severity>error</error-severity></rpc-error>`),
		"data outside the base module": reply(`<data xmlns="urn:x">` + devices("urn:a", entry) + `</data>`),
	} {
		if got, err := parseDevices(raw); err == nil {
			t.Errorf("%s: accepted as %+v", name, got)
		}
	}
}

func TestParseSchema(t *testing.T) {
	const nsMon = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
	text, err := parseSchema("m", reply(`<data xmlns="`+nsMon+`">module m { prefix &quot;m&quot;; }</data>`))
	if err != nil || text != `module m { prefix "m"; }` {
		t.Fatalf("%q %v", text, err)
	}
	for name, raw := range map[string][]byte{
		"no data":          reply(""),
		"empty data":       reply(`<data xmlns="` + nsMon + `"></data>`),
		"data in base":     reply(`<data>module m {}</data>`),
		"elements in data": reply(`<data xmlns="` + nsMon + `">module <b/> m {}</data>`),
		"an rpc-error":     reply(`<rpc-error><error-tag>invalid-value</error-tag><error-severity>error</error-severity></rpc-error>`),
		"over the limit":   reply(`<data xmlns="` + nsMon + `">` + strings.Repeat("x", MaxReplyBytes) + `</data>`),
		"malformed":        []byte(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><data xmlns="` + nsMon + `">`),
	} {
		if text, err := parseSchema("m", raw); err == nil {
			t.Errorf("%s: accepted as %.40q", name, text)
		}
	}
}

// FuzzParseOutput: whatever the bytes, the parser returns an error or an
// output with one non-empty retval and at most MaxOutputs leaves.
func FuzzParseOutput(f *testing.F) {
	f.Add(reply(leaf("retval", "10_OK") + leaf("output_1_Uuid", "mup-1")))
	f.Add(reply(`<rpc-error><error-tag>operation-failed</error-tag><error-severity>error</error-severity></rpc-error>`))
	f.Add(reply(`<ok/>`))
	f.Add([]byte(`<rpc-reply xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><retval xmlns="` + testNS + `">`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := parseOutput("op", testNS, raw)
		if err != nil {
			if out != nil {
				t.Fatalf("output %+v with error %v", out, err)
			}
			return
		}
		if out.Retval == "" || len(out.Leaves) > MaxOutputs {
			t.Fatalf("accepted %+v", out)
		}
	})
}

// FuzzParseDevices: whatever the bytes, every device returned has the
// namespace of its module.
func FuzzParseDevices(f *testing.F) {
	f.Add(reply(`<data><devices xmlns="urn:a"><device><uuid>u</uuid><module>m</module></device></devices></data>`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := parseDevices(raw)
		for _, d := range got {
			if err != nil || d.Namespace == "" {
				t.Fatalf("%+v %v", got, err)
			}
		}
	})
}

// BenchmarkParseOutput reads a getDeviceToken reply.
func BenchmarkParseOutput(b *testing.B) {
	raw := reply(leaf("retval", "10_OK") + leaf("output_1_Uuid", "mup-1") + leaf("output_2_Nonce", strings.Repeat("ab", 16)) + leaf("output_3_Version", "3"))
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if out, err := parseOutput("getDeviceToken", testNS, raw); err != nil || len(out.Leaves) != 3 {
			b.Fatal(out, err)
		}
	}
}
