package netconf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"
)

// session is one NETCONF session on an SSH channel (RFC 6241 §8.1,
// RFC 6242). A reader goroutine frames and decodes messages; each rpc runs
// in its own goroutine; the writer goroutine sends replies in request order
// (RFC 6241 §4.1) and notifications in between (RFC 5277 §6, interleave).
type session struct {
	srv    *Server
	ch     ssh.Channel
	ctx    context.Context
	cancel context.CancelFunc
	// hctx is the handlers' context: cancelled on a fatal error so that the
	// replies queued before the error can drain.
	hctx      context.Context
	hcancel   context.CancelFunc
	closeConn func() // ends the SSH connection: unblocks a writer stuck on a client that does not read
	info      SessionInfo
	login     time.Time

	fw     *FrameWriter
	base11 bool
	queue  chan *pending // replies in request order
	notify chan [][]byte // notifications to send, in order
	// holder is the create-subscription whose reply is not out yet;
	// held are the notifications kept back for it until then; ended is
	// set when the session ends. Guarded by the server's notifyMu.
	holder   *pending
	held     [][]byte
	ended    bool
	inflight atomic.Int32

	subscribed atomic.Pointer[subscription]
	closing    atomic.Bool // close-session accepted

	inRPCs, inBadRPCs, outRPCErrors, outNotifications atomic.Uint64
}

// pending is the reply slot of one rpc.
type pending struct {
	reply      chan []byte // exactly one message
	endSession bool        // close the session once this reply is out
	// subscribe: a create-subscription, whose notifications (a replay
	// first) are held until its reply is out (Server.release).
	subscribe bool
}

// inbound is what the reader goroutine hands to the session loop.
type inbound struct {
	msg   []byte
	hello *hello
	err   error
}

func (sess *session) log() []any {
	return []any{"session", sess.info.ID, "user", sess.info.User, "remote", sess.info.RemoteAddr}
}

// run serves the session until it ends.
func (sess *session) run() {
	s := sess.srv
	defer s.endSession(sess)
	defer sess.cancel()
	s.log.Info("netconf session start", sess.log()...)
	defer func() { s.log.Info("netconf session end", sess.log()...) }()

	fr := NewFrameReader(sess.ch, s.cfg.MaxMessageSize)
	sess.fw = NewFrameWriter(sess.ch)
	sess.queue = make(chan *pending, s.cfg.MaxPipelined)
	sess.notify = make(chan [][]byte, 1024)

	// RFC 6241 §8.1: each peer sends its hello as soon as the session opens.
	if err := sess.fw.WriteMessage(encodeHello(s.capabilities(), sess.info.ID)); err != nil {
		return
	}
	in := make(chan inbound)
	go sess.readLoop(fr, in)

	helloTimer := time.NewTimer(s.cfg.HelloTimeout)
	defer helloTimer.Stop()
	// No rpc is processed before the client's hello.
	select {
	case r := <-in:
		if r.err != nil || r.hello == nil {
			s.stats.inBadHellos.Add(1)
			s.log.Info("netconf bad hello", append(sess.log(), "err", r.err)...)
			if r.msg != nil { // an rpc instead of a hello: say why before closing
				sess.writeNow(encodeReply(nil, []*Element{NewRPCError(ErrTypeRPC, TagOperationFailed, "expected <hello>, the session was closed").element()}))
			}
			return
		}
		if !r.hello.has(CapBase10) && !r.hello.has(CapBase11) {
			s.stats.inBadHellos.Add(1)
			s.log.Info("netconf hello without a common base version", sess.log()...)
			return
		}
		if r.hello.sessionID != "" { // RFC 6241 §8.1
			s.stats.inBadHellos.Add(1)
			s.log.Info("netconf client hello carries a session-id", sess.log()...)
			return
		}
		sess.base11 = r.hello.has(CapBase11)
	case <-helloTimer.C:
		s.stats.inBadHellos.Add(1)
		s.log.Info("netconf hello timeout", sess.log()...)
		return
	case <-sess.ctx.Done():
		return
	}
	if sess.base11 { // RFC 6242 §4.1: chunked framing once both say base:1.1
		sess.fw.SetFraming(FramingChunked)
	}

	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		sess.writeLoop()
	}()
	defer func() {
		// A client that stops reading blocks the writer inside the SSH
		// channel, which no cancel reaches: end the connection.
		select {
		case <-writerDone:
		case <-time.After(writeGrace):
			s.log.Warn("netconf client not reading; closing its connection", sess.log()...)
			if sess.closeConn != nil {
				sess.closeConn()
			}
			<-writerDone
		}
	}()
	defer sess.cancel()

	idle := time.NewTimer(s.cfg.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case r, ok := <-in:
			if !ok {
				return
			}
			if r.err != nil {
				if errors.Is(r.err, io.EOF) && sess.ctx.Err() == nil {
					// The client closed its side: finish and send what it
					// asked for (RFC 6241 §4.1), then end.
					sess.drain(writerDone)
					return
				}
				sess.readFailed(r.err)
				return
			}
			idle.Reset(s.cfg.IdleTimeout)
			if !sess.dispatch(r.msg) {
				return
			}
		case <-idle.C:
			if sess.inflight.Load() > 0 || sess.subscribed.Load() != nil {
				idle.Reset(s.cfg.IdleTimeout)
				continue
			}
			s.log.Info("netconf session idle, closing", append(sess.log(), "idle", s.cfg.IdleTimeout)...)
			return
		case <-sess.ctx.Done():
			return
		}
	}
}

// readLoop frames messages. The first is the hello, decoded here so that
// the framing switches exactly after it.
func (sess *session) readLoop(fr *FrameReader, in chan<- inbound) {
	defer close(in)
	s := sess.srv
	send := func(r inbound) bool {
		select {
		case in <- r:
			return true
		case <-sess.ctx.Done():
			return false
		}
	}
	msg, err := fr.ReadMessage()
	if err != nil {
		send(inbound{err: err})
		return
	}
	h, err := decodeHello(msg, s.cfg.XMLLimits)
	if err != nil {
		send(inbound{msg: msg, err: err})
		return
	}
	if h.has(CapBase11) {
		fr.SetFraming(FramingChunked)
	}
	if !send(inbound{hello: h}) {
		return
	}
	for {
		msg, err := fr.ReadMessage()
		if !send(inbound{msg: msg, err: err}) || err != nil {
			return
		}
	}
}

// readFailed ends the session after a transport or framing error. A
// framing violation is answered with malformed-message (or too-big) first.
func (sess *session) readFailed(err error) {
	s := sess.srv
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), sess.ctx.Err() != nil:
		return
	case errors.Is(err, ErrMessageTooLarge):
		s.log.Warn("netconf message too large", append(sess.log(), "err", err)...)
		sess.inBadRPCs.Add(1)
		s.stats.inBadRPCs.Add(1)
		sess.sendError(nil, NewRPCError(ErrTypeTransport, TagTooBig, "%v; the session is closed", err), true)
	case errors.Is(err, ErrMalformedFrame):
		s.log.Warn("netconf framing error", append(sess.log(), "err", err)...)
		sess.inBadRPCs.Add(1)
		s.stats.inBadRPCs.Add(1)
		sess.sendError(nil, NewRPCError(ErrTypeRPC, TagMalformedMessage, "%v; the session is closed", err), true)
	default:
		s.log.Info("netconf read failed", append(sess.log(), "err", err)...)
	}
}

// dispatch handles one framed message; false ends the session.
func (sess *session) dispatch(msg []byte) bool {
	s := sess.srv
	if sess.closing.Load() {
		return true // RFC 6241 §7.8: nothing after close-session is processed
	}
	req, err := decodeRPC(msg, s.cfg.XMLLimits)
	if err != nil {
		sess.inBadRPCs.Add(1)
		s.stats.inBadRPCs.Add(1)
		var re *RPCError
		if !errors.As(err, &re) {
			// Not XML, or not an rpc: there is no message-id to answer to.
			re = NewRPCError(ErrTypeRPC, TagMalformedMessage, "%v", err)
		}
		var attrs []Attr
		if req != nil {
			attrs = req.attrs
		}
		s.log.Info("netconf bad rpc", append(sess.log(), "tag", re.Tag, "err", re.Message)...)
		return sess.sendError(attrs, re, false)
	}
	sess.inRPCs.Add(1)
	s.stats.inRPCs.Add(1)
	p := &pending{reply: make(chan []byte, 1)}
	op := req.operation
	if op.Name.Space == NSBase && op.Name.Local == "close-session" {
		p.endSession = true
		sess.closing.Store(true)
	}
	p.subscribe = op.Name.Space == NSNotification && op.Name.Local == "create-subscription"
	req.pending = p
	select {
	case sess.queue <- p: // blocks when MaxPipelined replies are outstanding
	case <-sess.ctx.Done():
		return false
	}
	sess.inflight.Add(1)
	go func() {
		defer sess.inflight.Add(-1)
		p.reply <- sess.serve(req)
	}()
	return true
}

// sendError queues an error reply in order with the other replies.
func (sess *session) sendError(attrs []Attr, re *RPCError, end bool) bool {
	sess.outRPCErrors.Add(1)
	sess.srv.stats.outRPCErrors.Add(1)
	p := &pending{reply: make(chan []byte, 1), endSession: end}
	p.reply <- encodeReply(attrs, []*Element{re.element()})
	if sess.queue == nil {
		sess.writeNow(<-p.reply)
		return !end
	}
	select {
	case sess.queue <- p:
	case <-sess.ctx.Done():
		return false
	}
	if end {
		// Abort the rpcs still running so that the replies before this one
		// drain; the writer ends the session after sending it.
		sess.hcancel()
		select {
		case <-sess.ctx.Done():
		case <-time.After(writeGrace):
		}
		return false
	}
	return true
}

// drainTimeout bounds how long replies are awaited after the client's EOF.
const drainTimeout = 30 * time.Second

// drain lets the writer send every queued reply, then returns.
func (sess *session) drain(writerDone <-chan struct{}) {
	close(sess.queue)
	select {
	case <-writerDone:
	case <-time.After(drainTimeout):
		sess.srv.log.Warn("netconf replies still pending after client EOF; dropping them", sess.log()...)
	case <-sess.ctx.Done():
	}
}

// writeNow writes a message outside the writer goroutine (before it runs).
func (sess *session) writeNow(msg []byte) { _ = sess.fw.WriteMessage(msg) }

// writeLoop sends replies in request order, and notifications whenever
// the session is waiting.
func (sess *session) writeLoop() {
	write := func(msg []byte) bool {
		if err := sess.fw.WriteMessage(msg); err != nil {
			sess.cancel()
			return false
		}
		return true
	}
	for {
		select {
		case p, ok := <-sess.queue:
			if !ok { // drained after the client's EOF
				return
			}
			for waiting := true; waiting; {
				select {
				case msg := <-p.reply:
					if p.subscribe {
						// What an earlier subscription queued goes before
						// this reply; nothing more is queued while this
						// one's notifications are held.
						for drained := false; !drained; {
							select {
							case ns := <-sess.notify:
								for _, n := range ns {
									if !write(n) {
										return
									}
								}
							default:
								drained = true
							}
						}
					}
					if !write(msg) {
						return
					}
					if p.subscribe {
						for _, n := range sess.srv.release(sess, p) {
							if !write(n) {
								return
							}
						}
					}
					waiting = false
				case ns := <-sess.notify:
					for _, n := range ns {
						if !write(n) {
							return
						}
					}
				case <-sess.ctx.Done():
					return
				}
			}
			if p.endSession {
				sess.cancel()
				return
			}
		case ns := <-sess.notify:
			for _, n := range ns {
				if !write(n) {
					return
				}
			}
		case <-sess.ctx.Done():
			return
		}
	}
}

// writeGrace is how long a session waits for its writer before it closes
// the connection under it.
const writeGrace = 2 * time.Second

// serve runs one rpc and renders its reply. A panicking handler answers
// operation-failed; it never takes the server down.
func (sess *session) serve(req *rpcRequest) (reply []byte) {
	defer func() {
		if r := recover(); r != nil {
			sess.srv.log.Error("netconf handler panicked", append(sess.log(), "rpc", req.operation.Name.Local, "panic", fmt.Sprint(r))...)
			sess.outRPCErrors.Add(1)
			reply = encodeReply(req.attrs, []*Element{NewRPCError(ErrTypeApplication, TagOperationFailed, "internal error in %s", req.operation.Name.Local).element()})
		}
	}()
	body, err := sess.srv.invoke(sess, req)
	if err != nil {
		re := asRPCError(err)
		sess.outRPCErrors.Add(1)
		sess.srv.stats.outRPCErrors.Add(1)
		return encodeReply(req.attrs, []*Element{re.element()})
	}
	if len(body) == 0 {
		body = okBody()
	}
	return encodeReply(req.attrs, body)
}
