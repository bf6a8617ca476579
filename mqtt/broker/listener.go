package broker

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/myno-bridge/myno/internal/acceptbackoff"
)

// listener is the broker's mochi-mqtt listener (listeners.Listener) on a
// net.Listener. Unlike mochi's listeners.TCP, which returned on the first
// failed Accept and left the broker deaf with no log line (as at the
// file-descriptor limit, EMFILE), it keeps accepting after any error but
// its own closing, with a backoff, logs a warning naming the cause, and
// counts the errors. Close closes the net.Listener before the clients, so
// that no connection is accepted and then left unserved while the broker
// shuts down, and waits for the accept loop and for every connection it
// handed to the broker.
type listener struct {
	id     string
	ln     net.Listener
	log    *slog.Logger
	errors atomic.Uint64 // failed Accepts

	mu      sync.Mutex
	closed  bool
	done    chan struct{}         // closed by Close
	serving sync.WaitGroup        // Serve
	conns   map[net.Conn]struct{} // connections whose establish has not returned
	connsWG sync.WaitGroup        // their goroutines
	// admit, when not nil, holds Accept until it is closed
	// (Config.HoldConnections, Broker.Admit).
	admit <-chan struct{}
	// gate, when not nil, is told of each connection's start and end
	// (sessionGate).
	gate *sessionGate
}

var _ listeners.Listener = (*listener)(nil)

func newListener(id string, ln net.Listener) *listener {
	return &listener{id: id, ln: ln, log: slog.Default(), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

// ID names the listener in mochi-mqtt.
func (l *listener) ID() string { return l.id }

// Address is the address the listener accepts on.
func (l *listener) Address() string { return l.ln.Addr().String() }

// Protocol is the network of the address ("tcp").
func (l *listener) Protocol() string { return l.ln.Addr().Network() }

// Init takes the logger mochi-mqtt gives the listener; the net.Listener
// is open already.
func (l *listener) Init(log *slog.Logger) error {
	if log != nil {
		l.log = log
	}
	return nil
}

// Serve accepts connections and hands each to establish on a goroutine of
// its own, until Close. mochi-mqtt runs it on a goroutine it starts;
// Close waits for it to return.
func (l *listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.serving.Add(1) // under the lock Close takes before it waits
	l.mu.Unlock()
	defer l.serving.Done()
	addr := l.Address()
	if l.admit != nil {
		// Connections wait in the kernel's backlog until the broker
		// admits clients.
		select {
		case <-l.admit:
		case <-l.done:
			return
		}
	}
	var backoff acceptbackoff.Backoff
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.log.Error("mqtt listener closed from outside the broker; no longer accepting", "addr", addr, "err", err)
				return
			}
			n := l.errors.Add(1)
			wait, log := backoff.Failed(time.Now())
			if log {
				l.log.Warn("mqtt accept failed; retrying", "addr", addr, "err", err, "retry_in", wait, "accept_errors", n)
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return
			}
			continue
		}
		if run := backoff.Accepted(); run > 0 {
			l.log.Info("mqtt accepting again", "addr", addr, "failed_accepts", run)
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_ = conn.Close()
			return
		}
		l.conns[conn] = struct{}{}
		l.connsWG.Add(1)
		l.mu.Unlock()
		if l.gate != nil {
			l.gate.opened(conn)
		}
		go func() {
			defer l.connsWG.Done()
			err := establish(l.id, conn)
			if l.gate != nil {
				l.gate.closed(conn)
			}
			l.mu.Lock()
			delete(l.conns, conn)
			l.mu.Unlock()
			_ = conn.Close() // mochi-mqtt has closed it already, mostly
			switch {
			case err == nil:
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNRESET), errors.Is(err, errPeerGone), refused(err):
				// A client that went (a reset: one that gave up waiting,
				// or was killed) is not the broker's problem.
				l.log.Debug("mqtt connection ended", "remote", conn.RemoteAddr().String(), "err", err)
			default:
				l.log.Warn("mqtt connection ended with an error", "remote", conn.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops accepting, has mochi-mqtt close the listener's clients
// (closeClients, only on the first call: mochi's Server.Close calls Close
// again, see CloseMochi), closes the connections not yet clients, and
// waits for the accept loop and the connections' goroutines.
func (l *listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	_ = l.ln.Close()
	l.serving.Wait()
	closeClients(l.id)
	l.mu.Lock()
	for c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.connsWG.Wait()
}

// AcceptErrors is how many times Accept failed (and was tried again).
func (l *listener) AcceptErrors() uint64 { return l.errors.Load() }

// refused reports whether err is a connection the access control refused
// with a CONNACK reason code (MQTT 5 §3.2.2.2: 0x85 client identifier not
// valid, 0x86 bad user name or password, 0x87 not authorized, 0x8A
// banned): it logs its refusals itself. Other codes (a malformed packet,
// a protocol error, an unsupported version) are the connection's own
// fault and are logged here with their cause.
func refused(err error) bool {
	var code packets.Code
	if !errors.As(err, &code) {
		return false
	}
	switch code.Code {
	case packets.ErrClientIdentifierNotValid.Code, packets.ErrBadUsernameOrPassword.Code, packets.ErrNotAuthorized.Code, packets.ErrBanned.Code:
		return true
	}
	return false
}
