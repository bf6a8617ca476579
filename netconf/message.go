package netconf

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Capability URIs (RFC 6241 §8, RFC 5277 §3.1 and §6, RFC 6022, RFC 8526 §2).
const (
	CapBase10       = "urn:ietf:params:netconf:base:1.0"
	CapBase11       = "urn:ietf:params:netconf:base:1.1"
	CapNotification = "urn:ietf:params:netconf:capability:notification:1.0"
	CapInterleave   = "urn:ietf:params:netconf:capability:interleave:1.0"
)

// hello is a decoded <hello> message (RFC 6241 §8.1).
type hello struct {
	capabilities []string
	sessionID    string // only servers send one
}

// decodeHello parses a hello message.
func decodeHello(msg []byte, lim Limits) (*hello, error) {
	root, err := ParseElement(msg, lim)
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "hello" || root.Name.Space != NSBase {
		return nil, fmt.Errorf("expected <hello> in %s, got <%s> in %q", NSBase, root.Name.Local, root.Name.Space)
	}
	h := &hello{}
	for _, c := range root.Children {
		switch c.Name.Local {
		case "capabilities":
			for _, cap := range c.Children {
				if cap.Name.Local == "capability" {
					h.capabilities = append(h.capabilities, strings.TrimSpace(cap.Text))
				}
			}
		case "session-id":
			h.sessionID = strings.TrimSpace(c.Text)
		}
	}
	return h, nil
}

func (h *hello) has(capability string) bool {
	for _, c := range h.capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// encodeHello renders the server's hello.
func encodeHello(capabilities []string, sessionID uint32) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<hello xmlns="` + NSBase + `"><capabilities>`)
	for _, c := range capabilities {
		b.WriteString("<capability>")
		xmlEscape(&b, c)
		b.WriteString("</capability>")
	}
	b.WriteString("</capabilities><session-id>")
	b.WriteString(strconv.FormatUint(uint64(sessionID), 10))
	b.WriteString("</session-id></hello>")
	return b.Bytes()
}

// rpcRequest is a decoded <rpc> (RFC 6241 §4.1).
type rpcRequest struct {
	messageID string
	attrs     []Attr // all attributes of <rpc>, returned on the reply
	operation *Element
	pending   *pending // its place in the session's replies (session.dispatch)
}

// Attr is an XML attribute as carried between rpc and rpc-reply.
type Attr struct{ Space, Local, Value string }

// maxRPCAttrBytes bounds the attributes of one <rpc>.
const maxRPCAttrBytes = 4096

// errNotRPC marks a well-formed message that is not an <rpc>.
var errNotRPC = errors.New("not an rpc")

// decodeRPC parses an rpc message. An XML error is returned as is (the
// caller answers malformed-message); protocol errors are *RPCError values
// carrying the message-id when there is one.
func decodeRPC(msg []byte, lim Limits) (*rpcRequest, error) {
	root, err := ParseElement(msg, lim)
	if err != nil {
		return nil, err
	}
	if root.Name.Local == "hello" && root.Name.Space == NSBase {
		return nil, &RPCError{Type: ErrTypeRPC, Tag: TagMalformedMessage, Message: "unexpected <hello>: the session is already established"}
	}
	if root.Name.Local != "rpc" {
		return nil, fmt.Errorf("%w: <%s>", errNotRPC, root.Name.Local)
	}
	req := &rpcRequest{}
	attrBytes := 0
	for _, a := range root.Attrs {
		attrBytes += len(a.Name.Space) + len(a.Name.Local) + len(a.Value)
	}
	if attrBytes > maxRPCAttrBytes {
		// Attributes come back on the reply: bound what a client can make
		// the server hold per queued reply.
		return nil, (&RPCError{Type: ErrTypeRPC, Tag: TagBadAttribute,
			Message: fmt.Sprintf("<rpc> attributes exceed %d bytes", maxRPCAttrBytes)}).WithInfo("bad-element", "rpc")
	}
	for _, a := range root.Attrs {
		req.attrs = append(req.attrs, Attr{Space: a.Name.Space, Local: a.Name.Local, Value: a.Value})
		if a.Name.Local == "message-id" && (a.Name.Space == "" || a.Name.Space == NSBase) {
			req.messageID = a.Value
		}
	}
	if root.Name.Space != NSBase {
		return req, &RPCError{Type: ErrTypeRPC, Tag: TagUnknownNamespace, Message: fmt.Sprintf("<rpc> must be in namespace %s, not %q", NSBase, root.Name.Space)}
	}
	if _, ok := root.Attr("", "message-id"); !ok {
		if _, ok := root.Attr(NSBase, "message-id"); !ok {
			// RFC 6241 §4.1: message-id is mandatory.
			return req, (&RPCError{Type: ErrTypeRPC, Tag: TagMissingAttribute, Message: "the <rpc> element has no message-id attribute"}).
				WithInfo("bad-attribute", "message-id").WithInfo("bad-element", "rpc")
		}
	}
	ops := root.Children // RFC 6241 §4.1: exactly one operation
	switch len(ops) {
	case 0:
		return req, (&RPCError{Type: ErrTypeRPC, Tag: TagMissingElement, Message: "the <rpc> element holds no operation"}).WithInfo("bad-element", "rpc")
	case 1:
		req.operation = ops[0]
		// The prefixes declared on <rpc> are in scope in the operation.
		for prefix, uri := range root.Prefixes {
			if _, own := req.operation.Prefixes[prefix]; !own {
				if req.operation.Prefixes == nil {
					req.operation.Prefixes = map[string]string{}
				}
				req.operation.Prefixes[prefix] = uri
			}
		}
	default:
		return req, (&RPCError{Type: ErrTypeRPC, Tag: TagBadElement, Message: "the <rpc> element holds more than one operation"}).WithInfo("bad-element", ops[1].Name.Local)
	}
	if strings.TrimSpace(root.Text) != "" {
		return req, (&RPCError{Type: ErrTypeRPC, Tag: TagBadElement, Message: "text content in <rpc>"}).WithInfo("bad-element", "rpc")
	}
	return req, nil
}

// encodeReply renders an rpc-reply with the request's attributes (RFC 6241
// §4.2: every attribute of <rpc> is returned unmodified). body holds the
// reply content: <ok/>, <data>, rpc-errors or operation output.
func encodeReply(attrs []Attr, body []*Element) []byte {
	var b bytes.Buffer
	b.WriteString(`<rpc-reply xmlns="` + NSBase + `"`)
	prefixes := map[string]string{}
	var spaces []string
	for _, a := range attrs {
		if a.Space != "" && a.Space != NSBase && a.Space != xmlNamespace {
			if _, ok := prefixes[a.Space]; !ok {
				prefixes[a.Space] = "p" + strconv.Itoa(len(prefixes))
				spaces = append(spaces, a.Space)
			}
		}
	}
	sort.Strings(spaces)
	for _, s := range spaces {
		b.WriteString(" xmlns:" + prefixes[s] + `="`)
		xmlEscape(&b, s)
		b.WriteByte('"')
	}
	for _, a := range attrs {
		b.WriteByte(' ')
		switch {
		case a.Space == "" || a.Space == NSBase:
		case a.Space == xmlNamespace:
			b.WriteString("xml:")
		default:
			b.WriteString(prefixes[a.Space] + ":")
		}
		b.WriteString(a.Local + `="`)
		xmlEscape(&b, a.Value)
		b.WriteByte('"')
	}
	b.WriteByte('>')
	for _, e := range body {
		e.AppendXML(&b, NSBase)
	}
	b.WriteString("</rpc-reply>")
	return b.Bytes()
}

// okReply is the body of a reply without data.
func okBody() []*Element { return []*Element{NewLeaf(NSBase, "ok", "")} }
