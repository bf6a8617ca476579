package manager

import (
	"context"
	"errors"
)

// Exchange is a kind of exchange on an E2E channel, as Observers are told.
type Exchange string

// The exchanges of a channel.
const (
	// ExchangeKeyAgreement is the handshake of Open: the signed notify,
	// the device's ready, the key agreement (paper Fig. 5, 6).
	ExchangeKeyAgreement Exchange = "key-agreement"
	// ExchangeRenewal is Renew: a new certificate and key, sealed, and
	// the device's status that it installed them (paper Fig. 7).
	ExchangeRenewal Exchange = "renewal"
	// ExchangeFirmwareKey is SendFirmwareKey: the key of an encrypted
	// firmware transfer, sealed, and the device's status.
	ExchangeFirmwareKey Exchange = "firmware-key"
)

// Observer is told of each exchange on the manager's channels as it ends,
// in the manner of the hooks of mochi-mqtt's broker: a console counts
// handshakes with it. Exchanged is called once per Open, Renew and
// SendFirmwareKey, from the goroutine that ran it, with the device, what
// the exchange cost (zero when Open failed) and its error (nil: it
// succeeded; Outcome classifies it). It must not block: the exchange's
// caller waits for it.
type Observer interface {
	Exchanged(kind Exchange, device string, cost Phase, err error)
}

type observer struct{ o Observer }

// AddObserver has o told of every exchange from now on, until the
// returned remove is called (remove may be called more than once).
func (m *Manager) AddObserver(o Observer) (remove func()) {
	h := &observer{o}
	m.mu.Lock()
	m.observers = append(m.observers, h)
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for i, x := range m.observers {
			if x == h {
				// A new slice: observe may be ranging over the old one.
				m.observers = append(m.observers[:i:i], m.observers[i+1:]...)
				return
			}
		}
	}
}

// observe tells the observers of an exchange.
func (m *Manager) observe(kind Exchange, device string, cost Phase, err error) {
	m.mu.Lock()
	hs := m.observers
	m.mu.Unlock()
	for _, h := range hs {
		h.o.Exchanged(kind, device, cost, err)
	}
}

// Outcomes of an exchange (Outcome): a small fixed set, to count
// exchanges by.
const (
	OutcomeOK = "ok"
	// OutcomeRefused: the device answered, authenticated, with a status
	// other than OK, or installed another certificate (ErrRefused).
	OutcomeRefused = "refused"
	// OutcomeTimeout: no answer that verified came in time (no valid
	// ready, no status).
	OutcomeTimeout = "timeout"
	// OutcomeCanceled: the caller canceled the exchange.
	OutcomeCanceled = "canceled"
	// OutcomeError: anything else (not started, a device name that is not
	// one, a manager that may not renew, the broker refused the publish).
	OutcomeError = "error"
)

// Outcome classifies an exchange's error (nil: OutcomeOK) into one of the
// Outcome constants; never free text, so that it can be a metric label.
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrRefused):
		return OutcomeRefused
	case errors.Is(err, context.DeadlineExceeded):
		return OutcomeTimeout
	case errors.Is(err, context.Canceled):
		return OutcomeCanceled
	}
	return OutcomeError
}
