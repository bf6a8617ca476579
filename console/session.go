package console

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	// update workers). It stays in this process.
	password string
	cfg      Config
	lastUsed time.Time // guarded by Console.mu

	bridges []*bridgeConn
}

// bridgeConn is the user's NETCONF session to one bridge. A go-netconf
// session carries one rpc at a time: mu serialises them.
type bridgeConn struct {
	addr   string
	mu     sync.Mutex
	nc     *gonetconf.Session
	client *updateserver.Client
	rules  *accessRules
}

func (s *session) sshConfig() *ssh.ClientConfig {
	return &ssh.ClientConfig{User: s.user, Auth: []ssh.AuthMethod{ssh.Password(s.password)}, HostKeyCallback: s.cfg.HostKey, Timeout: 10 * time.Second}
}

// openSession logs user in to every bridge; it fails only when none
// accepts, with each bridge's reason.
func openSession(ctx context.Context, cfg Config, user, password string) (*session, error) {
	if user == "" || password == "" {
		return nil, errors.New("give a user name and a password")
	}
	s := &session{id: newID(), csrf: newID(), user: user, password: password, cfg: cfg, lastUsed: time.Now()}
	var errs []error
	for _, addr := range cfg.Bridges {
		nc, err := gonetconf.DialSSH(addr, s.sshConfig())
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		b := &bridgeConn{addr: addr, nc: nc, client: updateserver.NewClient(nc)}
		if b.rules, err = readRules(nc); err != nil {
			nc.Close()
			errs = append(errs, fmt.Errorf("%s: reading your access rules: %w", addr, err))
			continue
		}
		s.bridges = append(s.bridges, b)
	}
	if len(s.bridges) == 0 {
		return nil, fmt.Errorf("login refused: %w", errors.Join(errs...))
	}
	return s, nil
}

func (s *session) close() {
	for _, b := range s.bridges {
		b.mu.Lock()
		b.nc.Close()
		b.mu.Unlock()
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
		b.mu.Lock()
		entries, err := b.client.Devices()
		b.mu.Unlock()
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
	return d.bridge.rules.allowed(d.Module, rpc)
}

// mayUpdate tells whether the user may run the update rpcs of a module.
func (s *session) mayUpdate(d *device) bool {
	return s.mayExec(d, "*")
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
// every rpc of the module is allowed, as an update needs.
func (a *accessRules) allowed(module, rpc string) bool {
	if a == nil || !a.Enabled {
		return true
	}
	for _, l := range a.RuleLists {
		for _, r := range l.Rules {
			if r.Ops != "*" && !strings.Contains(r.Ops, "exec") {
				continue
			}
			if (r.Module == "" || r.Module == "*" || r.Module == module) && (r.RPC == "*" || r.RPC == rpc) {
				return r.Action == "permit"
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
		return nil, err
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
