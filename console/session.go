package console

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gonetconf "github.com/Juniper/go-netconf/netconf"
	"golang.org/x/crypto/ssh"

	"github.com/myno-bridge/myno/mup/updateserver"
)

// session is one logged-in user: a NETCONF session to each bridge that
// accepted the credentials, and the user's access rules.
type session struct {
	id, csrf string
	user     string
	// password opens the user's further NETCONF sessions (notifications,
	// update workers, a reopened session). It stays in this process.
	password string
	cfg      Config
	lastUsed time.Time // guarded by Console.mu
	created  time.Time

	// ctx ends with the session: the event streams of its pages stop.
	ctx    context.Context
	cancel context.CancelFunc

	bridges []*bridgeConn
}

// Deadlines of the console's NETCONF sessions.
const (
	// ioDeadline bounds every read and write on a session (a bridge
	// that stops answering fails the request instead of holding it).
	ioDeadline = 60 * time.Second
	// handshakeDeadline bounds the TCP connect, SSH handshake and login.
	handshakeDeadline = 15 * time.Second
	// reopenAfter is below the bridge's idle timeout (10 minutes by
	// default): a session unused longer is reopened before use.
	reopenAfter = 5 * time.Minute
)

// bridgeConn is the user's NETCONF session to one bridge. A go-netconf
// session carries one rpc at a time: mu serialises them. A session that
// broke (a transport error, the bridge's idle timeout, a restart) is
// reopened with the user's credentials at the next use.
type bridgeConn struct {
	addr   string
	s      *session
	mu     sync.Mutex
	client *updateserver.Client // of cur; guarded by mu
	used   time.Time            // guarded by mu
	cur    atomic.Pointer[gonetconf.Session]
	closed atomic.Bool

	rulesMu sync.Mutex
	rules   *accessRules
}

var errSessionClosed = errors.New("the console session ended")

// read runs f, which only reads (a <get>, get-schema), like use, and
// once more on a fresh session when the first one had broken (the
// bridge's idle timeout, a restart): no page shows such an error.
func (b *bridgeConn) read(f func(nc *gonetconf.Session, c *updateserver.Client) error) error {
	err := b.use(f)
	if errors.Is(err, errBroken) {
		err = b.use(f)
	}
	return err
}

// errBroken wraps the error of a call whose session broke.
var errBroken = errors.New("the NETCONF session broke")

// use runs f on the bridge session, opening or reopening it first. A
// call that may change something is not repeated: its error says the
// session broke (errBroken), and the next call opens another.
func (b *bridgeConn) use(f func(nc *gonetconf.Session, c *updateserver.Client) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed.Load() {
		return errSessionClosed
	}
	nc := b.cur.Load()
	if nc != nil && time.Since(b.used) > reopenAfter {
		nc.Close()
		nc = nil
	}
	if nc == nil {
		var err error
		if nc, err = gonetconf.DialSSHTimeout(b.addr, b.s.sshConfig(), ioDeadline); err != nil {
			b.cur.Store(nil)
			return fmt.Errorf("bridge %s: %w", b.addr, err)
		}
		b.cur.Store(nc)
		b.client = updateserver.NewClient(nc)
		if b.closed.Load() { // closed while dialling
			nc.Close()
			return errSessionClosed
		}
	}
	b.used = time.Now()
	err := f(nc, b.client)
	var re *updateserver.RPCError
	if err != nil && !errors.As(err, &re) && !errors.Is(err, updateserver.ErrBadReply) {
		// Not the bridge's answer: the session is broken. The next use
		// opens another.
		nc.Close()
		b.cur.CompareAndSwap(nc, nil)
		return fmt.Errorf("bridge %s: %w: %w", b.addr, errBroken, err)
	}
	return err
}

// close ends the session without waiting for a call in progress: closing
// the transport is what ends a call stuck on a bridge.
func (b *bridgeConn) close() {
	b.closed.Store(true)
	if nc := b.cur.Swap(nil); nc != nil {
		nc.Close()
	}
}

// refreshRules reads the user's access rules again: rights revoked on the
// bridge apply before an action it does not check itself.
func (b *bridgeConn) refreshRules() (*accessRules, error) {
	var rules *accessRules
	err := b.read(func(nc *gonetconf.Session, _ *updateserver.Client) (err error) {
		rules, err = readRules(nc)
		return err
	})
	if err != nil {
		return nil, err
	}
	b.rulesMu.Lock()
	b.rules = rules
	b.rulesMu.Unlock()
	return rules, nil
}

func (b *bridgeConn) currentRules() *accessRules {
	b.rulesMu.Lock()
	defer b.rulesMu.Unlock()
	return b.rules
}

func (s *session) sshConfig() *ssh.ClientConfig {
	return &ssh.ClientConfig{User: s.user, Auth: []ssh.AuthMethod{ssh.Password(s.password)}, HostKeyCallback: s.cfg.HostKey, Timeout: handshakeDeadline}
}

// dialSSH opens an SSH connection as the user with every step of the
// handshake under handshakeDeadline, or until ctx ends.
func (s *session) dialSSH(ctx context.Context, addr string) (*ssh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeDeadline)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, s.sshConfig())
	stopped := stop()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !stopped {
		c.Close()
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// openSession logs user in to every bridge; it fails only when none
// accepts, with each bridge's reason.
func openSession(ctx context.Context, cfg Config, user, password string) (*session, error) {
	if user == "" || password == "" {
		return nil, errors.New("give a user name and a password")
	}
	s := &session{id: newID(), csrf: newID(), user: user, password: password, cfg: cfg, lastUsed: time.Now(), created: time.Now()}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	var errs []error
	for _, addr := range cfg.Bridges {
		b := &bridgeConn{addr: addr, s: s}
		if _, err := b.refreshRules(); err != nil {
			b.close()
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		s.bridges = append(s.bridges, b)
	}
	if len(s.bridges) == 0 {
		s.cancel()
		return nil, fmt.Errorf("login refused: %w", errors.Join(errs...))
	}
	return s, nil
}

// close ends the session: its bridge sessions and its pages' streams.
func (s *session) close() {
	s.cancel()
	for _, b := range s.bridges {
		b.close()
	}
}

// device is a device and the bridge that serves it.
type device struct {
	updateserver.DeviceEntry
	bridge *bridgeConn
}

// devices lists the devices of every bridge; a bridge that fails is
// reported, the others still listed.
func (s *session) devices() ([]device, []error) {
	var out []device
	var errs []error
	for _, b := range s.bridges {
		var entries []updateserver.DeviceEntry
		err := b.read(func(_ *gonetconf.Session, c *updateserver.Client) (err error) {
			entries, err = c.Devices()
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("bridge %s: %w", b.addr, err))
			continue
		}
		for _, e := range entries {
			out = append(out, device{DeviceEntry: e, bridge: b})
		}
	}
	return out, errs
}

// find returns device uuid, from the bridge that has it.
func (s *session) find(uuid string) (*device, error) {
	devs, errs := s.devices()
	for i := range devs {
		if devs[i].UUID == uuid {
			return &devs[i], nil
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, fmt.Errorf("no device %q on any bridge", uuid)
}

// mayExec tells whether the user may run rpc of module on the device's
// bridge, by the rules the bridge gave (it still checks).
func (s *session) mayExec(d *device, rpc string) bool {
	return d.bridge.currentRules().allowed(d.Module, rpc)
}

// mayUpdate tells whether the user may run every rpc of the device's
// module, as an update needs.
func (s *session) mayUpdate(d *device) bool {
	return s.mayExec(d, "*")
}

// mayAct decides an action the bridge does not check itself (a
// renewal, signing with the vendor key): with rules read now, and
// refused when the bridge shows none (fail closed).
func (s *session) mayAct(d *device) bool {
	rules, err := d.bridge.refreshRules()
	return err == nil && rules.Enabled && rules.allowed(d.Module, "*")
}

// accessRules is the user's view of a bridge's NACM (RFC 8341 §3.5.2):
// the exec rules of their groups in order, and the default.
type accessRules struct {
	ExecDefault string `xml:"exec-default"`
	RuleLists   []struct {
		Rules []struct {
			Module string `xml:"module-name"`
			RPC    string `xml:"rpc-name"`
			Ops    string `xml:"access-operations"`
			Action string `xml:"action"`
		} `xml:"rule"`
	} `xml:"rule-list"`
	Enabled bool `xml:"enable-nacm"`
}

// allowed runs the rules as NACM does (RFC 8341 §3.4.4): the first
// matching exec rule decides, else the default. rpc "*" asks whether
// every rpc of the module is allowed, as an update needs: a deny of any
// rpc of the module before the deciding rule makes it false.
func (a *accessRules) allowed(module, rpc string) bool {
	if a == nil || !a.Enabled {
		return true
	}
	for _, l := range a.RuleLists {
		for _, r := range l.Rules {
			if r.Ops != "*" && !strings.Contains(r.Ops, "exec") {
				continue
			}
			if r.Module != "" && r.Module != "*" && r.Module != module {
				continue
			}
			switch {
			case r.RPC == "*" || r.RPC == rpc:
				return r.Action == "permit"
			case rpc == "*" && r.Action != "permit":
				return false // some rpc of the module is denied
			}
		}
	}
	return a.ExecDefault != "deny"
}

// readRules reads the user's /nacm view with a <get>.
func readRules(nc *gonetconf.Session) (*accessRules, error) {
	reply, err := nc.Exec(gonetconf.RawMethod(`<get><filter type="subtree"><nacm xmlns="urn:ietf:params:xml:ns:yang:ietf-netconf-acm"/></filter></get>`))
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			NACM *accessRules `xml:"urn:ietf:params:xml:ns:yang:ietf-netconf-acm nacm"`
		} `xml:"data"`
	}
	if err := xml.Unmarshal([]byte(reply.RawReply), &r); err != nil {
		return nil, fmt.Errorf("%w: %w", updateserver.ErrBadReply, err)
	}
	if r.Data.NACM == nil {
		return &accessRules{}, nil // the server shows no rules: it still checks each request
	}
	return r.Data.NACM, nil
}

// CSRF is the session's token, for the pages' forms.
func (s *session) CSRF() string { return s.csrf }

// User is the session's user name, for the pages.
func (s *session) User() string { return s.user }

// Bridge is the address of the bridge that serves the device.
func (d *device) Bridge() string { return d.bridge.addr }
