package netconf

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRPC feeds arbitrary messages to the rpc decoder. Properties:
// no panic; an error is an XML error, errNotRPC or an *RPCError with a tag;
// a decoded rpc has exactly one operation; a reply rendered for it parses
// back as XML with the same message-id.
func FuzzDecodeRPC(f *testing.F) {
	for _, seed := range []string{
		`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		`<nc:rpc xmlns:nc="urn:ietf:params:xml:ns:netconf:base:1.0" nc:message-id="x" xmlns:e="urn:e" e:a="1"><nc:get-config><nc:source><nc:running/></nc:source></nc:get-config></nc:rpc>`,
		`<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><get/></rpc>`,
		`<hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"/>`,
		`<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><rpc>&b;</rpc>`,
		`<rpc message-id="1" xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><echo xmlns="urn:x"><msg>a&amp;b</msg></echo></rpc>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		req, err := decodeRPC(msg, Limits{})
		if err != nil {
			var re *RPCError
			if errors.As(err, &re) && re.Tag == "" {
				t.Fatalf("rpc-error without tag: %v", re)
			}
			return
		}
		if req.operation == nil {
			t.Fatal("decoded rpc without operation")
		}
		reply := encodeReply(req.attrs, []*Element{req.operation})
		back, err := ParseElement(reply, renderedLimits)
		if err != nil {
			t.Fatalf("reply does not parse: %v\n%s", err, reply)
		}
		if id, _ := back.Attr("", "message-id"); req.messageID != "" && id != req.messageID {
			if id2, _ := back.Attr(NSBase, "message-id"); id2 != req.messageID {
				t.Fatalf("message-id %q came back as %q", req.messageID, id)
			}
		}
		if !bytes.HasPrefix(reply, []byte("<rpc-reply")) {
			t.Fatalf("reply %s", reply)
		}
	})
}

// renderedLimits re-parse what the server rendered from an accepted tree:
// rendering declares a namespace for each prefixed attribute and may add
// depth (the reply's envelope), so a tree within the defaults may render
// beyond them. Well-formedness is the property checked here, not the limits.
var renderedLimits = Limits{MaxDepth: 1 << 10, MaxElements: 1 << 20, MaxAttributes: 1 << 20,
	MaxDocumentAttributes: 1 << 22, MaxStartTagBytes: 1 << 30, MaxNameBytes: 1 << 20}

// FuzzParseElement: any input either fails or round-trips through String.
func FuzzParseElement(f *testing.F) {
	f.Add([]byte(`<a xmlns="urn:a" xmlns:b="urn:b" b:x="1" xml:lang="en"><c>t&lt;</c><b:d/></a>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseElement(data, Limits{})
		if err != nil {
			return
		}
		again, err := ParseElement([]byte(e.String()), renderedLimits)
		if err != nil {
			t.Fatalf("rendered tree does not parse: %v\n%s", err, e.String())
		}
		if again.String() != e.String() {
			t.Fatalf("round trip differs:\n%s\n%s", e.String(), again.String())
		}
	})
}
