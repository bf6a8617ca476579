package broker

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// peerClosed reports whether the client has closed conn (or reset it),
// with nothing left to read: a look at the socket (recv with MSG_PEEK and
// MSG_DONTWAIT), which neither waits nor consumes anything. Bytes waiting
// (a pipelined packet, a TLS alert) count as alive.
func peerClosed(conn net.Conn) bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == nil:
			closed = n == 0 // an orderly shutdown: EOF
		case errors.Is(err, syscall.ECONNRESET):
			closed = true
		}
		return true // done: never wait for readiness
	})
	return closed
}
