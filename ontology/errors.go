package ontology

import (
	"errors"
	"fmt"
)

// Error kinds. Every error returned by [Parse] is an *Error whose Kind is one
// of these, so callers can use errors.Is(err, ontology.ErrNoDevice).
var (
	ErrTooLarge          = errors.New("description too large")
	ErrNotJSON           = errors.New("not JSON")
	ErrNotJSONLD         = errors.New("not JSON-LD")
	ErrNoDevice          = errors.New("no onem2m:Device node")
	ErrMultipleDevices   = errors.New("more than one onem2m:Device node")
	ErrMissingOperation  = errors.New("functionality has no operation")
	ErrMissingMethod     = errors.New("operation has no myno:mqttMethod")
	ErrMissingTopic      = errors.New("missing myno:mqttTopic")
	ErrDanglingReference = errors.New("reference to an undefined node")
	ErrInvalidRange      = errors.New("invalid range")
	ErrInvalid           = errors.New("invalid description")
)

// Error is a description error. Node is the IRI of the offending node when
// one can be named.
type Error struct {
	Kind   error  // one of the Err… kinds above
	Node   string // IRI of the offending node, if any
	Detail string // human-readable detail
}

func (e *Error) Error() string {
	msg := e.Kind.Error()
	if e.Node != "" {
		msg += " at <" + e.Node + ">"
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap lets errors.Is match the error kind.
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, node string, format string, args ...any) *Error {
	return &Error{Kind: kind, Node: node, Detail: fmt.Sprintf(format, args...)}
}
