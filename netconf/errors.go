package netconf

import (
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Namespaces of the protocol (RFC 6241 §3.1, RFC 5277 §4, RFC 6022, RFC 8525, RFC 6470).
const (
	NSBase          = "urn:ietf:params:xml:ns:netconf:base:1.0"
	NSNotification  = "urn:ietf:params:xml:ns:netconf:notification:1.0"
	NSNotifications = "urn:ietf:params:xml:ns:netmod:notification"
	NSMonitoring    = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
	NSYangLibrary   = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
	NSNCNotif       = "urn:ietf:params:xml:ns:yang:ietf-netconf-notifications"
)

// ErrorType is the layer an rpc-error comes from (RFC 6241 §4.3).
type ErrorType string

// Error types.
const (
	ErrTypeTransport   ErrorType = "transport"
	ErrTypeRPC         ErrorType = "rpc"
	ErrTypeProtocol    ErrorType = "protocol"
	ErrTypeApplication ErrorType = "application"
)

// Error tags (RFC 6241 Appendix A).
const (
	TagInUse                 = "in-use"
	TagInvalidValue          = "invalid-value"
	TagTooBig                = "too-big"
	TagMissingAttribute      = "missing-attribute"
	TagBadAttribute          = "bad-attribute"
	TagUnknownAttribute      = "unknown-attribute"
	TagMissingElement        = "missing-element"
	TagBadElement            = "bad-element"
	TagUnknownElement        = "unknown-element"
	TagUnknownNamespace      = "unknown-namespace"
	TagAccessDenied          = "access-denied"
	TagLockDenied            = "lock-denied"
	TagResourceDenied        = "resource-denied"
	TagRollbackFailed        = "rollback-failed"
	TagDataExists            = "data-exists"
	TagDataMissing           = "data-missing"
	TagOperationNotSupported = "operation-not-supported"
	TagOperationFailed       = "operation-failed"
	TagMalformedMessage      = "malformed-message"
)

// RPCError is an <rpc-error> (RFC 6241 §4.3 and Appendix A). Handlers
// return one to answer with a precise error; any other error becomes
// operation-failed.
type RPCError struct {
	Type     ErrorType
	Tag      string
	Severity string // "error" unless set to "warning"
	AppTag   string
	Path     string // an XPath to the offending node, its steps prefixed
	// PathPrefixes binds the prefixes of Path to namespaces; they are
	// declared on <rpc-error>, where RFC 6241 §4.3 takes error-path's
	// namespace context from.
	PathPrefixes map[string]string
	Message      string
	Info         []*Element // error-info children, e.g. bad-element, session-id
}

func (e *RPCError) Error() string {
	msg := fmt.Sprintf("netconf: %s %s", e.Type, e.Tag)
	if e.AppTag != "" {
		msg += " (" + e.AppTag + ")"
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// NewRPCError returns an error of the given type and tag with a message.
func NewRPCError(t ErrorType, tag, format string, args ...any) *RPCError {
	return &RPCError{Type: t, Tag: tag, Message: fmt.Sprintf(format, args...)}
}

// WithInfo adds an error-info child in the base namespace, such as
// bad-element or session-id, and returns e.
func (e *RPCError) WithInfo(local, value string) *RPCError {
	e.Info = append(e.Info, NewLeaf(NSBase, local, value))
	return e
}

// asRPCError turns any handler error into an rpc-error.
func asRPCError(err error) *RPCError {
	var re *RPCError
	if errors.As(err, &re) {
		return re
	}
	return &RPCError{Type: ErrTypeApplication, Tag: TagOperationFailed, Message: err.Error()}
}

// element renders the rpc-error in the base namespace.
func (e *RPCError) element() *Element {
	sev := e.Severity
	if sev == "" {
		sev = "error"
	}
	typ := e.Type
	if typ == "" {
		typ = ErrTypeApplication
	}
	out := NewNode(NSBase, "rpc-error",
		NewLeaf(NSBase, "error-type", string(typ)),
		NewLeaf(NSBase, "error-tag", e.Tag),
		NewLeaf(NSBase, "error-severity", sev))
	if e.AppTag != "" {
		out.Children = append(out.Children, NewLeaf(NSBase, "error-app-tag", e.AppTag))
	}
	if e.Path != "" {
		for _, prefix := range slices.Sorted(maps.Keys(e.PathPrefixes)) {
			out.Attrs = append(out.Attrs, xml.Attr{Name: xml.Name{Space: "xmlns", Local: prefix}, Value: e.PathPrefixes[prefix]})
		}
		out.Children = append(out.Children, NewLeaf(NSBase, "error-path", e.Path))
	}
	if e.Message != "" {
		msg := NewLeaf(NSBase, "error-message", e.Message)
		msg.Attrs = append(msg.Attrs, xmlLang)
		out.Children = append(out.Children, msg)
	}
	if len(e.Info) > 0 {
		out.Children = append(out.Children, NewNode(NSBase, "error-info", e.Info...))
	}
	return out
}
