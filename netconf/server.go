package netconf

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/internal/failguard"

	"github.com/myno-bridge/myno/internal/acceptbackoff"
	"golang.org/x/crypto/ssh"
)

// Config configures a Server, the way ssh.ServerConfig configures an SSH
// server: plain data plus the account database. Zero values mean the
// documented defaults.
// DefaultMaxAuthTries is the authentication attempts one SSH connection
// gets, as OpenSSH's sshd (MaxAuthTries 6): a client that offers the
// user's keys first (ncclient, ssh with several -i) still reaches the
// password.
const DefaultMaxAuthTries = 6

type Config struct {
	HostKey ssh.Signer // required; see LoadOrCreateHostKey
	Users   *Users     // required: there is no anonymous access
	Access  *AccessControl

	MaxSessions int // concurrent NETCONF sessions; default 64
	// MaxUserSessions bounds the sessions of one user not in group admin;
	// default 16 (an admin's campaign may run more). AdminReserve of the
	// MaxSessions are for users of group admin only; default 4. One user
	// cannot take every session, nor all users together lock the admins
	// out (issue 12).
	MaxUserSessions int
	AdminReserve    int
	MaxAuthTries    int           // authentication attempts per connection; default DefaultMaxAuthTries
	HandshakeTime   time.Duration // SSH handshake and authentication; default 10s
	HelloTimeout    time.Duration // from channel open to the client's hello; default 10s
	IdleTimeout     time.Duration // no message while nothing is in flight; default 10m
	MaxMessageSize  int           // largest message accepted; default DefaultMaxMessage
	MaxPipelined    int           // rpcs in flight per session before reading pauses; default 64
	XMLLimits       Limits        // nesting, element, attribute and name limits on every message (Limits)

	// SSH handshakes before authentication (see startupGate for the
	// design). MaxStartups are in progress at once (default 32), at most
	// MaxStartupsPerSource from one address (default MaxStartups/4, at
	// least 1). Connections beyond wait for a slot, for at most
	// HandshakeTime, in a queue of MaxStartupQueue (default 128) of which
	// one address may hold MaxStartupQueuePerSource (default half the
	// queue); the handshake then has HandshakeTime of its own. A
	// connection beyond its address's share or a full queue is closed at
	// once. Server.Startups counts them.
	MaxStartups              int
	MaxStartupsPerSource     int
	MaxStartupQueue          int
	MaxStartupQueuePerSource int

	// ChooseModule picks, for an rpc that arrives without a namespace (as
	// MYNO's clients send them), one of the namespaces that have an rpc of
	// its name (candidates, sorted); the bridge picks the module of the
	// device its selector leaf names. It returns "" to leave the choice to
	// the server, which takes the only candidate and refuses an ambiguous
	// name (see resolveUnqualified). nil: the server's rule alone.
	ChooseModule func(op *Element, candidates []string) (namespace string, err error)
	// AllSchemas, when set, answers a get-schema whose identifier is
	// empty (RFC 6022 §3.1 makes it mandatory): the sources of the
	// application's modules, one after another, as MYNO's bridge answers
	// its clients. nil: an empty identifier is missing-element.
	AllSchemas func() string

	// Streams are the notification streams besides NETCONF (RFC 5277
	// §3.2), listed in /netconf/streams; NotifyStream sends on them.
	Streams []Stream
	// ReplayEvents and ReplayBytes bound the notifications kept for
	// replay (create-subscription's startTime); defaults DefaultReplayEvents
	// and DefaultReplayBytes. ReplayEvents < 0 turns replay off.
	ReplayEvents int
	ReplayBytes  int

	// Configuration, when set, gives the server configuration
	// datastores: running and candidate, edit-config, commit and the
	// rest (datastore.go). nil: the server holds no configuration.
	Configuration *Configuration

	Logger *slog.Logger // default slog.Default()
}

func (c *Config) setDefaults() {
	if c.ReplayEvents == 0 {
		c.ReplayEvents = DefaultReplayEvents
	}
	if c.ReplayBytes <= 0 {
		c.ReplayBytes = DefaultReplayBytes
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 64
	}
	if c.MaxAuthTries <= 0 {
		c.MaxAuthTries = DefaultMaxAuthTries
	}
	if c.MaxUserSessions <= 0 {
		c.MaxUserSessions = 16
	}
	if c.AdminReserve <= 0 {
		c.AdminReserve = min(4, c.MaxSessions/4)
	}
	if c.HandshakeTime <= 0 {
		c.HandshakeTime = 10 * time.Second
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessage
	}
	if c.MaxPipelined <= 0 {
		c.MaxPipelined = 64
	}
	if c.MaxStartups <= 0 {
		c.MaxStartups = 32
	}
	if c.MaxStartupsPerSource <= 0 {
		c.MaxStartupsPerSource = max(1, c.MaxStartups/4)
	}
	c.MaxStartupsPerSource = min(c.MaxStartupsPerSource, c.MaxStartups)
	if c.MaxStartupQueue <= 0 {
		c.MaxStartupQueue = 128
	}
	if c.MaxStartupQueuePerSource <= 0 {
		c.MaxStartupQueuePerSource = max(1, c.MaxStartupQueue/2)
	}
	c.MaxStartupQueuePerSource = min(c.MaxStartupQueuePerSource, c.MaxStartupQueue)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// SessionInfo describes the session an rpc arrives on.
type SessionInfo struct {
	ID         uint32
	User       string
	Groups     []string
	RemoteAddr string
}

// Request is one rpc for a Handler.
type Request struct {
	Session   SessionInfo
	MessageID string
	// Operation is the rpc's operation element with its namespace, e.g.
	// <setColor xmlns="urn:myno:yang:..."><uuidInput>..</uuidInput>...</setColor>.
	// Operation.String() renders it as self-contained XML.
	Operation *Element
}

// Handler answers rpcs. It returns the reply's content (output nodes, in
// the module's namespace) or nothing for <ok/>. Returning an *RPCError
// answers with that error; any other error becomes operation-failed. ctx is
// cancelled when the session ends.
type Handler interface {
	ServeRPC(ctx context.Context, req *Request) ([]*Element, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([]*Element, error)

// ServeRPC calls f.
func (f HandlerFunc) ServeRPC(ctx context.Context, req *Request) ([]*Element, error) {
	return f(ctx, req)
}

// StateFunc returns state data (config false) for <get>: top-level nodes in
// their module namespaces. Subtree filters are applied by the server.
type StateFunc func(ctx context.Context) ([]*Element, error)

// Module is a YANG module the server announces and serves with get-schema.
type Module struct {
	Name      string
	Revision  string // YYYY-MM-DD, or "" when the module has none
	Namespace string
	Source    string // YANG text
	// ImportOnly marks modules present only for their definitions
	// (ietf-yang-types): listed in the library, not implemented.
	ImportOnly bool
	// Features are the module's features the server supports (RFC 7950
	// §7.20.1), listed in the library and the capability.
	Features []string
}

// capability is the module's capability URI (RFC 6020 §5.6.4).
func (m *Module) capability() string {
	c := m.Namespace + "?module=" + m.Name
	if m.Revision != "" {
		c += "&revision=" + m.Revision
	}
	if len(m.Features) > 0 {
		c += "&features=" + strings.Join(m.Features, ",")
	}
	return c
}

type rpcEntry struct {
	module  string
	handler Handler
}

// Server is a NETCONF server over SSH (RFC 6242). It knows nothing about
// what its rpcs do: applications add modules, rpc handlers, state sources
// and notifications at runtime.
type Server struct {
	cfg       Config
	log       *slog.Logger
	sshConfig *ssh.ServerConfig
	started   time.Time

	mu        sync.RWMutex
	modules   map[string]*Module
	handlers  map[xml.Name]rpcEntry
	state     map[string]StateSource
	contentID uint64
	sessions  map[uint32]*session
	nextID    uint32
	lockOwner uint32 // session holding the running datastore lock, 0 if none
	// candidateLockOwner holds the candidate's lock, 0 if none.
	candidateLockOwner uint32
	candidateLockTime  time.Time
	ds                 *datastores // nil without Config.Configuration
	closed             bool
	listeners          map[net.Listener]bool
	conns              map[*ssh.ServerConn]bool

	wg       sync.WaitGroup
	stats    counters
	startups *startupGate     // SSH handshakes before authentication
	guard    *failguard.Guard // failed password logins per source address
	lockTime time.Time

	// life ends with the first Shutdown: connections still waiting for or
	// in their SSH handshake are closed then.
	life         context.Context
	endLife      context.CancelFunc
	acceptErrors atomic.Uint64
	authFailures atomic.Uint64 // password logins refused

	// notifyMu orders notifications: logging one for replay and sending
	// it, against a subscription's replay (notify.go).
	notifyMu sync.Mutex
	replay   *replayLog
}

// counters are the RFC 6022 statistics.
type counters struct {
	inBadHellos, inSessions, droppedSessions     atomic.Uint64
	inRPCs, inBadRPCs, outRPCErrors, outNotifies atomic.Uint64
}

// NewServer returns a server with the built-in modules loaded.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.HostKey == nil {
		return nil, errors.New("netconf: Config.HostKey is required")
	}
	if cfg.Users == nil {
		return nil, errors.New("netconf: Config.Users is required (no anonymous access)")
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		started:   time.Now().UTC(),
		modules:   map[string]*Module{},
		handlers:  map[xml.Name]rpcEntry{},
		state:     map[string]StateSource{},
		sessions:  map[uint32]*session{},
		listeners: map[net.Listener]bool{},
		conns:     map[*ssh.ServerConn]bool{},
		startups:  newStartupGate(cfg.MaxStartups, cfg.MaxStartupsPerSource, cfg.MaxStartupQueue, cfg.MaxStartupQueuePerSource),
		guard:     failguard.New(nil),
		replay:    &replayLog{maxEvents: max(cfg.ReplayEvents, 0), maxBytes: cfg.ReplayBytes, created: time.Now()},
	}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.sshConfig = &ssh.ServerConfig{
		MaxAuthTries: cfg.MaxAuthTries,
		PasswordCallback: func(c ssh.ConnMetadata, password []byte) (*ssh.Permissions, error) {
			source := failguard.Source(c.RemoteAddr().String())
			// A source that failed too often is refused without a bcrypt
			// check, right password or not, until its lockout ends.
			if d := s.guard.Locked(source); d > 0 {
				s.authFailures.Add(1)
				s.log.Warn("netconf authentication refused: too many failures from this address", "user", c.User(), "remote", c.RemoteAddr().String(), "retry_in", d.Round(time.Second))
				return nil, errors.New("too many failed logins from this address")
			}
			if _, ok := cfg.Users.checkPassword(c.User(), password); ok {
				s.guard.Succeeded(source)
				return &ssh.Permissions{Extensions: map[string]string{"user": c.User()}}, nil
			}
			s.guard.Failed(source)
			s.authFailures.Add(1)
			s.log.Warn("netconf authentication failed", "method", "password", "user", c.User(), "remote", c.RemoteAddr().String())
			return nil, errors.New("authentication failed")
		},
		PublicKeyCallback: func(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if _, ok := cfg.Users.checkKey(c.User(), key); ok {
				return &ssh.Permissions{Extensions: map[string]string{"user": c.User()}}, nil
			}
			return nil, errors.New("key not authorized")
		},
		ServerVersion: "SSH-2.0-myno-netconf",
	}
	s.sshConfig.AddHostKey(cfg.HostKey)
	for _, m := range builtinModules() {
		s.modules[m.Name] = m
	}
	if cfg.Configuration != nil {
		s.ds = newDatastores(*cfg.Configuration, s.log.Info)
		// RFC 6241 §8.2–§8.6 as features of ietf-netconf (RFC 7950 §7.20.1).
		s.modules["ietf-netconf"].Features = []string{"candidate", "confirmed-commit", "rollback-on-error", "validate", "writable-running", "xpath"}
	}
	return s, nil
}

// AddModule announces a module (or replaces one of the same name). Open
// sessions with a subscription get netconf-capability-change (RFC 6470).
func (s *Server) AddModule(m Module) {
	s.mu.Lock()
	old, existed := s.modules[m.Name]
	s.modules[m.Name] = &m
	s.contentID++
	s.mu.Unlock()
	var removed []string
	if existed && old.capability() != m.capability() {
		removed = append(removed, old.capability())
	}
	if !existed || old.capability() != m.capability() {
		s.capabilityChange([]string{m.capability()}, removed)
	}
}

// RemoveModule withdraws a module and every rpc handler registered for it.
func (s *Server) RemoveModule(name string) {
	s.mu.Lock()
	m, ok := s.modules[name]
	if ok {
		delete(s.modules, name)
		for k, e := range s.handlers {
			if e.module == name {
				delete(s.handlers, k)
			}
		}
		s.contentID++
	}
	s.mu.Unlock()
	s.ds.removeConfigRoots(name)
	if ok {
		s.capabilityChange(nil, []string{m.capability()})
	}
}

// Handle registers the handler for the rpc namespace:name of module.
func (s *Server) Handle(module, namespace, name string, h Handler) {
	s.mu.Lock()
	s.handlers[xml.Name{Space: namespace, Local: name}] = rpcEntry{module: module, handler: h}
	s.mu.Unlock()
}

// RemoveHandler unregisters an rpc.
func (s *Server) RemoveHandler(namespace, name string) {
	s.mu.Lock()
	delete(s.handlers, xml.Name{Space: namespace, Local: name})
	s.mu.Unlock()
}

// AddState registers a named state source for <get> that builds its
// state whole, whatever the filter (see AddStateSource).
func (s *Server) AddState(name string, f StateFunc) {
	s.AddStateSource(name, StateSource{Get: func(ctx context.Context, _ *StateQuery) ([]*Element, error) { return f(ctx) }})
}

// AddStateSource registers a named state source for <get> that is asked
// only when the filter may select one of its roots, and may build only
// what the filter selects.
func (s *Server) AddStateSource(name string, src StateSource) {
	s.mu.Lock()
	s.state[name] = src
	s.mu.Unlock()
}

// RemoveState unregisters a state source.
func (s *Server) RemoveState(name string) {
	s.mu.Lock()
	delete(s.state, name)
	s.mu.Unlock()
}

// capabilities lists the hello capabilities (RFC 6241 §8, RFC 5277 §3.1,
// RFC 8526 §2 and RFC 7895 for the YANG library).
func (s *Server) capabilities() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	caps := []string{CapBase10, CapBase11, CapNotification, CapInterleave, CapXPath, CapWithDefaults,
		fmt.Sprintf("urn:ietf:params:netconf:capability:yang-library:1.1?revision=2019-01-04&content-id=%d", s.contentID),
		fmt.Sprintf("urn:ietf:params:netconf:capability:yang-library:1.0?revision=2016-06-21&module-set-id=%d", s.contentID),
	}
	if s.ds != nil {
		caps = append(caps, CapWritableRunning, CapCandidate, CapConfirmedCommit, CapRollbackOnError, CapValidate)
	}
	var mods []string
	for _, m := range s.modules {
		if !m.ImportOnly || m.Name == "ietf-yang-types" || m.Name == "ietf-inet-types" {
			mods = append(mods, m.capability())
		}
	}
	sort.Strings(mods)
	return append(caps, mods...)
}

// Serve accepts connections on ln until ctx ends or Shutdown is called;
// then it returns nil. A failed Accept (EMFILE at the file-descriptor
// limit, say) does not end it: it logs a warning naming the cause, counts
// the error (AcceptErrors) and accepts again after a pause, 5 ms doubling
// up to 1 s. Only ln closed by someone else ends it with an error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("netconf: server closed")
	}
	s.listeners[ln] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	addr := ln.Addr().String()
	s.log.Info("netconf server listening", "addr", addr)
	var backoff acceptbackoff.Backoff
	for {
		conn, err := ln.Accept()
		if err != nil {
			if s.isClosed() || ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("netconf: accept on %s: %w", addr, err)
			}
			n := s.acceptErrors.Add(1)
			wait, log := backoff.Failed(time.Now())
			if log {
				s.log.Warn("netconf accept failed; retrying", "addr", addr, "err", err, "retry_in", wait, "accept_errors", n)
			}
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-s.life.Done():
				t.Stop()
				return nil
			}
			continue
		}
		if run := backoff.Accepted(); run > 0 {
			s.log.Info("netconf accepting again", "addr", addr, "failed_accepts", run)
		}
		// Add under the lock that Shutdown takes before it waits: no Add
		// can race with that Wait (sync.WaitGroup's rule).
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.wg.Add(1)
		s.mu.Unlock()
		// A connection gets a handshake slot or a place in the queue
		// before it gets a goroutine; one beyond is closed here.
		ticket, err := s.startups.enter(conn.RemoteAddr().String())
		if err != nil {
			// Warn: the command's logger (internal/ratelog) keeps a
			// flood of these to a few lines and a count.
			st := s.startups.Stats()
			s.log.Warn("ssh connection refused before its handshake", "remote", conn.RemoteAddr().String(), "err", err,
				"in_progress", st.InProgress, "queued", st.Queued)
			conn.Close()
			s.wg.Done()
			continue
		}
		go func() {
			defer s.wg.Done()
			s.serveConn(ctx, conn, ticket)
		}()
	}
}

// AcceptErrors is how many times Accept failed, on every listener served,
// since NewServer. Serve accepts again after each.
func (s *Server) AcceptErrors() uint64 { return s.acceptErrors.Load() }

// AuthFailures counts the password logins refused (a wrong password, or
// a source locked out after too many).
func (s *Server) AuthFailures() uint64 { return s.authFailures.Load() }

func (s *Server) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// Shutdown stops accepting, ends every session and waits for them, or
// until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		s.endLife()
	}
	s.mu.Unlock()
	// A confirmed commit waiting stays unconfirmed in what is stored: the
	// next start goes back to the configuration before it (§8.4.1). Its
	// timer, if it fires, does nothing once life ended; it is stopped
	// here unless a change holds the datastores (Shutdown does not wait).
	s.ds.stopConfirmTimer()
	s.mu.Lock()
	for ln := range s.listeners {
		ln.Close()
	}
	for _, sess := range s.sessions {
		sess.cancel()
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) serveConn(ctx context.Context, conn net.Conn, ticket *startupTicket) {
	defer conn.Close()
	defer ticket.release()
	remote := conn.RemoteAddr().String()
	// Until it is authenticated, the connection ends with Serve's context
	// or the server.
	pre, cancelPre := context.WithCancel(ctx)
	defer cancelPre()
	stopLife := context.AfterFunc(s.life, cancelPre)
	defer stopLife()
	if err := ticket.wait(pre.Done(), s.cfg.HandshakeTime); err != nil {
		if errors.Is(err, errWaitedOut) {
			s.log.Warn("ssh connection closed: no handshake slot in time", "remote", remote, "waited", s.cfg.HandshakeTime)
		}
		return
	}
	stopClose := context.AfterFunc(pre, func() { conn.Close() })
	// RFC 6242 §3: SSH transport; the handshake and authentication must
	// finish in time, so a silent client cannot hold a connection.
	_ = conn.SetDeadline(time.Now().Add(s.cfg.HandshakeTime))
	sc, chans, reqs, err := ssh.NewServerConn(conn, s.sshConfig)
	ticket.release()
	if !stopClose() {
		if err == nil {
			sc.Close()
		}
		return
	}
	if err != nil {
		s.log.Info("ssh handshake failed", "remote", remote, "err", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		sc.Close()
		return
	}
	s.conns[sc] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, sc)
		s.mu.Unlock()
		sc.Close()
	}()
	go ssh.DiscardRequests(reqs)
	user := sc.Permissions.Extensions["user"]
	// An authenticated connection must start a NETCONF session in time.
	var hasSession atomic.Bool
	sessionStarted := func() { hasSession.Store(true) }
	noSession := time.AfterFunc(s.cfg.HelloTimeout, func() {
		if !hasSession.Load() {
			s.log.Info("ssh connection without a netconf session, closing", "user", user, "remote", remote)
			sc.Close()
		}
	})
	defer noSession.Stop()
	s.log.Info("ssh connection", "user", user, "remote", remote)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels are accepted")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.serveChannel(ctx, ch, chReqs, user, remote, func() { sc.Close() }, sessionStarted) {
				// A NETCONF session ends its connection. The client gets a
				// moment to disconnect by itself after the channel closed,
				// so that it does not write into a reset connection.
				closed := make(chan struct{})
				go func() { _ = sc.Wait(); close(closed) }()
				select {
				case <-closed:
				case <-time.After(closeGrace):
				case <-ctx.Done():
				}
				sc.Close()
			}
		}()
	}
	wg.Wait()
}

// closeGrace is how long a client may take to disconnect after its
// session ended.
const closeGrace = 2 * time.Second

// serveChannel waits for the "netconf" subsystem request (RFC 6242 §3.1)
// and runs the session. Every other request is refused. It reports whether
// a session ran.
func (s *Server) serveChannel(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request, user, remote string, closeConn func(), started func()) bool {
	defer ch.Close()
	timer := time.NewTimer(s.cfg.HelloTimeout)
	defer timer.Stop()
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				return false
			}
			if req.Type == "pty-req" {
				// scrapli-netconf's transport runs `ssh -tt`: a terminal
				// is asked for first. It is granted and ignored, as sshd
				// ignores it for a subsystem (RFC 4254 §6.2); NETCONF
				// runs on the channel's bytes as they are.
				_ = req.Reply(true, nil)
				continue
			}
			if req.Type != "subsystem" || subsystemName(req.Payload) != "netconf" {
				s.log.Info("refused ssh channel request", "type", req.Type, "subsystem", subsystemName(req.Payload), "user", user, "remote", remote)
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
				continue
			}
			sess, err := s.newSession(ctx, ch, user, remote)
			if err != nil {
				s.log.Warn("netconf session refused", "user", user, "remote", remote, "err", err)
				s.stats.droppedSessions.Add(1)
				_ = req.Reply(false, nil)
				return false
			}
			sess.closeConn = closeConn
			started()
			_ = req.Reply(true, nil)
			go func() { // later requests on this channel are refused, but a terminal's (see above)
				for r := range reqs {
					if r.WantReply {
						_ = r.Reply(r.Type == "pty-req", nil)
					}
				}
			}()
			sess.run()
			// Let the client see an orderly end (OpenSSH exits 0) before
			// the connection goes.
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(&struct{ Status uint32 }{0}))
			_ = ch.CloseWrite()
			return true
		case <-timer.C:
			s.log.Info("no netconf subsystem request in time", "user", user, "remote", remote)
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func subsystemName(payload []byte) string {
	var p struct{ Name string }
	if err := ssh.Unmarshal(payload, &p); err != nil {
		return ""
	}
	return p.Name
}

// newSession registers a session, within MaxSessions.
func (s *Server) newSession(ctx context.Context, ch ssh.Channel, user, remote string) (*session, error) {
	u, ok := s.cfg.Users.Lookup(user)
	if !ok {
		return nil, fmt.Errorf("user %q no longer exists", user)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("server shutting down")
	}
	if len(s.sessions) >= s.cfg.MaxSessions {
		return nil, fmt.Errorf("session limit %d reached", s.cfg.MaxSessions)
	}
	admin := slices.Contains(u.Groups, AdminGroup)
	if !admin && len(s.sessions) >= s.cfg.MaxSessions-s.cfg.AdminReserve {
		return nil, fmt.Errorf("session limit %d reached for users not in group %s (%d are kept for admins)", s.cfg.MaxSessions-s.cfg.AdminReserve, AdminGroup, s.cfg.AdminReserve)
	}
	mine := 0
	for _, o := range s.sessions {
		if o.info.User == user {
			mine++
		}
	}
	if !admin && mine >= s.cfg.MaxUserSessions {
		return nil, fmt.Errorf("user %s has %d sessions, the most one user may have", user, mine)
	}
	s.nextID++
	if s.nextID == 0 { // session-id 0 is reserved (RFC 6241 §8.1)
		s.nextID = 1
	}
	sctx, cancel := context.WithCancel(ctx)
	hctx, hcancel := context.WithCancel(sctx)
	sess := &session{
		srv:     s,
		ch:      ch,
		ctx:     sctx,
		cancel:  cancel,
		hctx:    hctx,
		hcancel: hcancel,
		info: SessionInfo{ID: s.nextID, User: user, Groups: append([]string(nil), u.Groups...),
			RemoteAddr: remote},
		login: time.Now().UTC(),
	}
	s.sessions[sess.info.ID] = sess
	s.stats.inSessions.Add(1)
	s.wg.Add(1)
	return sess, nil
}

func (s *Server) endSession(sess *session) {
	id := sess.info.ID
	// The session goes first: a lock or a confirmed commit whose rpc is
	// still running sees it gone (opLock, opCommit), or is seen here.
	s.mu.Lock()
	delete(s.sessions, id)
	if s.lockOwner == id { // RFC 6241 §7.5: a lock ends with its session
		s.lockOwner = 0
	}
	heldCandidate := s.candidateLockOwner == id
	s.mu.Unlock()
	if d := s.ds; d != nil && (heldCandidate || d.confirmSession.Load() == id) {
		// change is taken only when the session's end changes something:
		// a session's end does not wait for an apply otherwise.
		d.change.Lock()
		if heldCandidate {
			// RFC 6241 §7.5: the candidate's lock ending with its session
			// discards the changes made under it; the lock is still held,
			// so no other session made any.
			d.discardLocked()
		}
		s.confirmSessionEndedLocked(id)
		d.change.Unlock()
	}
	s.mu.Lock()
	if s.candidateLockOwner == id {
		s.candidateLockOwner = 0
	}
	s.mu.Unlock()
	s.notifyMu.Lock() // against a create-subscription still running
	sess.ended, sess.holder, sess.held = true, nil, nil
	if sub := sess.subscribed.Swap(nil); sub != nil && sub.stop != nil {
		sub.stop.Stop() // its stopTime is moot
	}
	s.notifyMu.Unlock()
	s.wg.Done()
}

// Sessions returns the ids of the open sessions, for tests and operators.
func (s *Server) Sessions() []uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make([]uint32, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
