package testenv

import (
	"net"
	"sync/atomic"
	"syscall"
)

// FailingListener is a net.Listener whose first Accept calls fail the way
// they do at the file-descriptor limit (EMFILE, "too many open files"),
// before it accepts as the listener it wraps.
type FailingListener struct {
	net.Listener
	left   atomic.Int64
	failed atomic.Int64
}

// FailAccepts wraps ln so that its first n Accept calls fail.
func FailAccepts(ln net.Listener, n int) *FailingListener {
	l := &FailingListener{Listener: ln}
	l.left.Store(int64(n))
	return l
}

// Accept fails while failures are left, then accepts from the wrapped
// listener.
func (l *FailingListener) Accept() (net.Conn, error) {
	if l.left.Add(-1) >= 0 {
		l.failed.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

// Failed is how many Accept calls have failed so far.
func (l *FailingListener) Failed() int64 { return l.failed.Load() }
