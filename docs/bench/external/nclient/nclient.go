// Package nclient is the NETCONF-over-SSH client side that the benchmark
// programs ncbench and ncscale share: a session is its own SSH connection
// with the netconf subsystem, says hello, and sends one rpc at a time in
// base:1.0 end-of-message or base:1.1 chunked framing (RFC 6242). It also
// holds the nearest-rank percentile both report. It does not import the
// bridge.
package nclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"
)

const (
	base10 = "urn:ietf:params:netconf:base:1.0"
	base11 = "urn:ietf:params:netconf:base:1.1"
	eom    = "]]>]]>"
)

// ErrTransport marks errors after which the session cannot go on.
var ErrTransport = errors.New("transport")

// Config says how to open a session.
type Config struct {
	Addr string // host:port
	User string
	Auth []ssh.AuthMethod
	// Timeout is the SSH handshake timeout, the longest wait for the
	// server's hello, and the longest wait for one reply.
	Timeout time.Duration
	// Framing is "auto" or "" (base:1.1 chunked when the server offers
	// it), "1.0" or "1.1".
	Framing string
	// HelloPause is slept after our hello is sent.
	HelloPause time.Duration
	// ReadBuffer is the size of the buffer replies are read through.
	ReadBuffer int
	// IDWindow is how many bytes at the start of a reply are searched
	// for its message-id; 0: the whole reply.
	IDWindow int
}

// Session is one NETCONF session; its methods are not safe for
// concurrent use.
type Session struct {
	conn     *ssh.Client
	ssh      *ssh.Session
	w        io.WriteCloser
	r        *bufio.Reader
	chunked  bool
	framing  string
	timeout  time.Duration
	idWindow int
	id       int
	out      []byte
	broken   bool
}

// Dial opens a session: SSH (the host key is not checked: the benchmarks
// run on loopback against servers their harness started with fresh host
// keys, so there is nothing to check it against), the netconf subsystem,
// and the hello exchange.
func Dial(c Config) (*Session, error) {
	cfg := &ssh.ClientConfig{
		User:            c.User,
		Auth:            c.Auth,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         c.Timeout,
	}
	conn, err := ssh.Dial("tcp", c.Addr, cfg)
	if err != nil {
		return nil, err
	}
	s := &Session{conn: conn, timeout: c.Timeout, idWindow: c.IDWindow}
	fail := func(what string, err error) (*Session, error) {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if s.ssh, err = conn.NewSession(); err != nil {
		return fail("session", err)
	}
	if s.w, err = s.ssh.StdinPipe(); err != nil {
		return fail("stdin", err)
	}
	stdout, err := s.ssh.StdoutPipe()
	if err != nil {
		return fail("stdout", err)
	}
	s.r = bufio.NewReaderSize(stdout, c.ReadBuffer)
	if err := s.ssh.RequestSubsystem("netconf"); err != nil {
		return fail("netconf subsystem", err)
	}
	if err := s.hello(c); err != nil {
		return fail("hello", err)
	}
	return s, nil
}

// hello reads the server's hello (always end-of-message framed), sends
// ours, and picks the framing.
func (s *Session) hello(c Config) error {
	stop := s.deadline(c.Timeout)
	server, err := s.readEOM()
	stop()
	if err != nil {
		return err
	}
	offers11 := bytes.Contains(server, []byte(">"+base11+"<"))
	caps := "<capability>" + base10 + "</capability>"
	switch c.Framing {
	case "auto", "":
		caps += "<capability>" + base11 + "</capability>"
		s.chunked = offers11
	case "1.1":
		if !offers11 {
			return errors.New("-framing 1.1: the server does not offer base:1.1")
		}
		caps = "<capability>" + base11 + "</capability>"
		s.chunked = true
	case "1.0":
	default:
		return fmt.Errorf("-framing %q: want auto, 1.0 or 1.1", c.Framing)
	}
	s.framing = "1.0"
	if s.chunked {
		s.framing = "1.1"
	}
	msg := `<?xml version="1.0" encoding="UTF-8"?><hello xmlns="urn:ietf:params:xml:ns:netconf:base:1.0"><capabilities>` + caps + `</capabilities></hello>` + eom
	if _, err = io.WriteString(s.w, msg); err != nil {
		return err
	}
	if c.HelloPause > 0 {
		time.Sleep(c.HelloPause)
	}
	return nil
}

// Framing is the framing in use: "1.0" or "1.1".
func (s *Session) Framing() string { return s.framing }

// deadline closes the connection unless the returned stop is called
// within d: x/crypto/ssh channels have no read deadlines.
func (s *Session) deadline(d time.Duration) (stop func()) {
	t := time.AfterFunc(d, func() { s.conn.Close() })
	return func() { t.Stop() }
}

// Call sends one rpc with content body and waits for its reply, at most
// the Config's Timeout. It returns the reply and the time from sending to
// the reply's end. Errors wrapping ErrTransport break the session: later
// calls fail at once.
func (s *Session) Call(body string) (reply []byte, latency time.Duration, err error) {
	return s.call(body, s.timeout)
}

func (s *Session) call(body string, timeout time.Duration) ([]byte, time.Duration, error) {
	if s.broken {
		return nil, 0, fmt.Errorf("%w: session closed", ErrTransport)
	}
	s.id++
	id := strconv.Itoa(s.id)
	rpc := `<rpc xmlns="urn:ietf:params:xml:ns:netconf:base:1.0" message-id="` + id + `">` + body + `</rpc>`
	s.out = s.out[:0]
	if s.chunked {
		s.out = append(s.out, "\n#"...)
		s.out = strconv.AppendInt(s.out, int64(len(rpc)), 10)
		s.out = append(s.out, '\n')
		s.out = append(s.out, rpc...)
		s.out = append(s.out, "\n##\n"...)
	} else {
		s.out = append(s.out, rpc...)
		s.out = append(s.out, eom...)
	}
	stop := s.deadline(timeout)
	defer stop()
	start := time.Now()
	if _, err := s.w.Write(s.out); err != nil {
		s.broken = true
		return nil, 0, fmt.Errorf("%w: %v", ErrTransport, err)
	}
	var reply []byte
	var err error
	if s.chunked {
		reply, err = s.readChunked()
	} else {
		reply, err = s.readEOM()
	}
	d := time.Since(start)
	if err != nil {
		s.broken = true
		return nil, 0, fmt.Errorf("%w: %v", ErrTransport, err)
	}
	head := reply
	if s.idWindow > 0 {
		head = reply[:min(len(reply), s.idWindow)]
	}
	if !bytes.Contains(head, []byte(`message-id="`+id+`"`)) {
		s.broken = true
		return nil, 0, fmt.Errorf("%w: reply without message-id %s: %.300s", ErrTransport, id, reply)
	}
	return reply, d, nil
}

// readEOM reads up to ]]>]]> (NETCONF 1.0 framing).
func (s *Session) readEOM() ([]byte, error) {
	var msg []byte
	for {
		line, err := s.r.ReadSlice('>')
		msg = append(msg, line...)
		if bytes.HasSuffix(msg, []byte(eom)) {
			return msg[:len(msg)-len(eom)], nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

// readChunked reads one chunked message (NETCONF 1.1, RFC 6242).
func (s *Session) readChunked() ([]byte, error) {
	var msg []byte
	for {
		if b, err := s.r.ReadByte(); err != nil {
			return nil, err
		} else if b != '\n' {
			return nil, fmt.Errorf("chunk header starts with %q", b)
		}
		if b, err := s.r.ReadByte(); err != nil {
			return nil, err
		} else if b != '#' {
			return nil, fmt.Errorf("chunk header: %q after newline", b)
		}
		head, err := s.r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		size := bytes.TrimSuffix(head, []byte("\n"))
		if string(size) == "#" {
			return msg, nil
		}
		n, err := strconv.Atoi(string(size))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("chunk size %q", size)
		}
		start := len(msg)
		msg = slices.Grow(msg, n)[:start+n]
		if _, err := io.ReadFull(s.r, msg[start:]); err != nil {
			return nil, err
		}
	}
}

// Close ends the session: politely (<close-session/>, waited for at most
// 2 s, not checked) unless it is broken, then the connection.
func (s *Session) Close() {
	if !s.broken {
		_, _, _ = s.call("<close-session/>", 2*time.Second)
	}
	s.conn.Close()
}

// Abort closes the connection without <close-session/>.
func (s *Session) Abort() { s.conn.Close() }

// Percentile is the nearest-rank percentile p (0 to 100) of sorted; 0
// when sorted is empty.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}
