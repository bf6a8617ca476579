package updateserver

import (
	"context"
	"errors"
	"strings"

	v1 "github.com/myno-bridge/myno/mup/v1"
)

// Observer is told of each update as it ends, in the manner of the hooks
// of mochi-mqtt's broker: a console counts updates with it, a log could
// record them. UpdateDone is called once per Update, from the goroutine
// that ran it, after the update's own goroutines have ended, with what
// Update returns: res is never nil (its Phases are those the update went
// through, Bytes and Resent what its transfer sent), err is nil on
// success. It must not block: the update's caller waits for it.
type Observer interface {
	UpdateDone(uuid string, res *Result, err error)
}

// Errors that end a transfer or the wait for the new version.
var (
	// ErrNoAck: a slice was sent MaxRetries+1 times without an ack,
	// AckTimeout each.
	ErrNoAck = errors.New("no acknowledgement")
	// ErrNoNewVersion: the device did not report the new version within
	// RebootWait.
	ErrNoNewVersion = errors.New("the device does not report the new version")
)

// Outcomes of an update (Outcome): a small fixed set, to count updates by.
const (
	OutcomeOK = "ok"
	// OutcomeRefused: the device answered with a state other than OK
	// (MUP: a state code; MUP v1: its refusal).
	OutcomeRefused = "refused"
	// OutcomeTimeout: an answer did not come in time: an rpc the bridge
	// gave up on (device-timeout) or did not answer (ErrNoAnswer), a
	// broker that did not connect, slices without acks, no new version
	// after the reboot, or the caller's deadline.
	OutcomeTimeout = "timeout"
	// OutcomeCanceled: the caller canceled the update (a shutdown).
	OutcomeCanceled = "canceled"
	// OutcomeError: anything else, e.g. an rpc the bridge refused, a
	// receipt that does not verify, a manifest that is missing.
	OutcomeError = "error"
)

// Outcome classifies an update's error (nil: OutcomeOK) into one of the
// Outcome constants; never free text, so that it can be a metric label.
func Outcome(err error) string {
	var ue *UpdateError
	var re *RPCError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrNoAck), errors.Is(err, ErrNoNewVersion), errors.Is(err, ErrNoAnswer),
		errors.As(err, &re) && re.AppTag == "device-timeout":
		return OutcomeTimeout
	case errors.As(err, &ue) && ue.State != "", errors.Is(err, ErrV1Refused):
		return OutcomeRefused
	}
	return OutcomeError
}

// Phase is the phase in which the update stopped: a phase of
// Result.Phases (token, manifest, key, transfer, image, reboot), or
// "receipt" (the device's signed receipt, or the lack of a CA to check
// it), "setup" (the device, its module and firmware topic, the broker
// connection, before anything reaches the device, or a campaign's NETCONF
// session), "other".
// Like Outcome, it is one of a fixed set.
func (e *UpdateError) Phase() string {
	switch s := e.Step; {
	case s == tokenRPC, s == v1.RPCGetDeviceToken:
		return "token"
	case s == manifestRPC, s == "manifest", s == "sign", strings.HasPrefix(s, v1.RPCPubUpdateManifest):
		return "manifest"
	case s == "key", s == "transfer", s == "receipt", s == "reboot":
		return s
	case s == firmwareRPC, s == v1.RPCPubUpdateImage:
		return "image"
	case s == "find device", s == "firmware topic", s == "connect", s == "broker":
		return "setup"
	}
	return "other"
}
