package access

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/wire"
)

// Role is what an MQTT identity is for; each role has its own topic rules
// (policy.go).
type Role string

// The roles.
const (
	RoleDevice       Role = "device"        // a device; its name is its uuid
	RoleBridge       Role = "bridge"        // an instance of the bridge
	RoleUpdateServer Role = "update-server" // myno update; also an E2E manager under its name
	RoleE2EManager   Role = "e2e-manager"   // myno e2e renew
)

// Roles lists the roles, for flags and messages.
var Roles = []Role{RoleDevice, RoleBridge, RoleUpdateServer, RoleE2EManager}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if slices.Contains(Roles, Role(s)) {
		return Role(s), nil
	}
	return "", fmt.Errorf("unknown role %q (one of %v)", s, Roles)
}

// Credential is one MQTT identity of the store. The token itself is never
// stored: TokenSHA256 is its digest (the token is 256 random bits, so a
// digest without salt or stretching is enough, and it stays cheap when
// thousands of devices connect at once; bcrypt stays for people's
// passwords), MosquittoHash the same token in Mosquitto's password-file
// form, for ExportMosquitto.
type Credential struct {
	Name          string    `json:"name"`
	Role          Role      `json:"role"`
	TokenSHA256   string    `json:"token_sha256"`
	MosquittoHash string    `json:"mosquitto_hash,omitempty"`
	Created       time.Time `json:"created"`
	// Enrolment marks a one-time enrolment token (--enrol token): the
	// device's first connection with it turns it into the device's
	// credential, and it cannot enrol anything again. Expires bounds an
	// unused one.
	Enrolment bool      `json:"enrolment,omitempty"`
	Expires   time.Time `json:"expires,omitzero"`
	// Enrolled is when a device enrolled (a used enrolment token, or a
	// device admitted by --enrol open).
	Enrolled time.Time `json:"enrolled,omitzero"`
	// Certificate marks an identity that logs in with a client
	// certificate only: it has no token.
	Certificate bool `json:"certificate,omitempty"`
}

// storeFile is the JSON form of the store.
type storeFile struct {
	Version int          `json:"version"`
	Clients []Credential `json:"clients"`
}

// Store is the credential file. Every change is a read-modify-write of the
// whole file under an exclusive lock on "<file>.lock" (flock), so the
// myno devices command and a running bridge can both change it.
type Store struct {
	path string

	writeMu sync.Mutex // one change at a time in this process (the flock: across processes)

	mu    sync.Mutex // guards creds and stamp
	creds map[string]Credential
	stamp fileStamp // of the file last read

	enrolMu      sync.Mutex
	enrolQueue   []*pendingEnrolment
	enrolWriting bool // a goroutine is writing enrolments; others queue

	// lines are the encoded lines of the credentials last written, by
	// name (guarded by writeMu): a change encodes only what changed.
	lines map[string]encodedLine
}

// encodedLine is a credential and its line in the file.
type encodedLine struct {
	c    Credential
	line []byte
}

// fileStamp tells whether a file changed since it was read. Every change
// replaces the file (a new inode), so two changes within one clock tick
// that keep the size are told apart too.
type fileStamp struct {
	mod   time.Time
	size  int64
	inode uint64
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.inode = sys.Ino
	}
	return st
}

// OpenStore reads the credential file at path; a missing file is an
// empty store (it is created by the first change).
func OpenStore(path string) (*Store, error) {
	s := &Store{path: path, creds: map[string]Credential{}}
	if _, err := atomicfile.RemoveLeftovers(path); err != nil {
		return nil, err
	}
	if err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the store's file.
func (s *Store) Path() string { return s.path }

// read loads the file into s (OpenStore: nobody else has s yet).
func (s *Store) read() error {
	creds, stamp, err := s.readFile()
	if err != nil {
		return err
	}
	s.creds, s.stamp = creds, stamp
	return nil
}

// readFile parses the file; a missing file is empty. It takes no lock of
// s: a login looks credentials up while a change reads and writes.
func (s *Store) readFile() (map[string]Credential, fileStamp, error) {
	stamp := stampOf(s.path)
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Credential{}, fileStamp{}, nil
	}
	if err != nil {
		return nil, stamp, fmt.Errorf("mqtt credentials: %w", err)
	}
	var f storeFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, stamp, fmt.Errorf("mqtt credentials %s: %w", s.path, err)
	}
	if f.Version != 1 {
		return nil, stamp, fmt.Errorf("mqtt credentials %s: version %d, want 1", s.path, f.Version)
	}
	creds := make(map[string]Credential, len(f.Clients))
	for _, c := range f.Clients {
		if err := checkName(c.Name, c.Role); err != nil {
			return nil, stamp, fmt.Errorf("mqtt credentials %s: %w", s.path, err)
		}
		creds[c.Name] = c
	}
	return creds, stamp, nil
}

// Reload reads the file again if it changed since it was last read (the
// myno devices command changed it). It returns the names that are gone.
func (s *Store) Reload() (removed []string, err error) {
	// After a change under way in this process, the file is the one it
	// wrote: no need to parse it again (a storm of first logins, each a
	// miss, parsed it between the rename and the stamp's update).
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	unchanged := stampOf(s.path) == s.stamp
	s.mu.Unlock()
	if unchanged {
		return nil, nil
	}
	creds, stamp, err := s.readFile()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	old := s.creds
	s.creds, s.stamp = creds, stamp
	s.mu.Unlock()
	for name := range old {
		if _, ok := creds[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// change runs f on the current content of the file under the file lock,
// and writes the result. Logins keep looking credentials up meanwhile:
// s.mu is held only to swap the new content in.
func (s *Store) change(f func(map[string]Credential) error) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	unlock, err := lockFile(s.path + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	// The file as this process last read or wrote it needs no parsing.
	var creds map[string]Credential
	s.mu.Lock()
	if stampOf(s.path) == s.stamp && s.stamp != (fileStamp{}) {
		creds = maps.Clone(s.creds)
	}
	s.mu.Unlock()
	if creds == nil {
		if creds, _, err = s.readFile(); err != nil {
			return err
		}
	}
	if err := f(creds); err != nil {
		return err
	}
	// Only new and changed credentials are encoded again: with 10,000
	// devices, encoding every one on each group of enrolments was most of
	// what a registration cost the embedded broker.
	lines := make(map[string]encodedLine, len(creds))
	names := make([]string, 0, len(creds))
	for name, c := range creds {
		names = append(names, name)
		if l, ok := s.lines[name]; ok && l.c == c {
			lines[name] = l
			continue
		}
		line, err := json.Marshal(c)
		if err != nil {
			return err
		}
		lines[name] = encodedLine{c: c, line: line}
	}
	slices.Sort(names)
	data := encodeLines(names, lines)
	if err := atomicfile.Write(s.path, data, 0o600); err != nil {
		return fmt.Errorf("mqtt credentials: %w", err)
	}
	stamp := stampOf(s.path)
	s.lines = lines
	s.mu.Lock()
	s.creds, s.stamp = creds, stamp
	s.mu.Unlock()
	return nil
}

// encodeLines writes the file (storeFile, version 1) one credential per
// line, in the order of names: still JSON, easy to read and to diff, and
// cheaper than indenting (the file is rewritten with every change, and
// holds 10,000 devices and more).
func encodeLines(names []string, lines map[string]encodedLine) []byte {
	size := 32
	for _, l := range lines {
		size += len(l.line) + 2
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	b.WriteString("{\"version\": 1, \"clients\": [\n")
	for i, name := range names {
		b.Write(lines[name].line)
		if i < len(names)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// lockFile takes an exclusive flock on path, creating it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mqtt credentials lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("mqtt credentials lock %s: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// ErrExists is returned by Add for a name the store has.
var ErrExists = errors.New("already provisioned")

// checkName refuses a name that cannot be an MQTT identity of role: a
// device's name is its uuid; every name goes into topics and files.
func checkName(name string, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	if !wire.ValidUUID(name) {
		return fmt.Errorf("name %q: want 1-%d of A-Z a-z 0-9 . _ : -", name, wire.MaxUUIDLength)
	}
	// Client identifiers of that form are the devices' (wire.DeviceClientID).
	if strings.HasPrefix(name, wire.DeviceClientID("")) {
		return fmt.Errorf("name %q: %q starts the devices' client identifiers", name, wire.DeviceClientID(""))
	}
	return nil
}

// isDevice reports whether name is a device of the store.
// IsDevice reports whether name is a provisioned device.
func (s *Store) IsDevice(name string) bool { return s.isDevice(name) }

func (s *Store) isDevice(name string) bool {
	c, ok := s.lookup(name)
	return ok && c.Role == RoleDevice
}

// NewToken makes a random token: 256 bits, base64url.
func NewToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// digest is the stored form of a token.
func digest(token []byte) string {
	sum := sha256.Sum256(token)
	return hex.EncodeToString(sum[:])
}

// matches compares a presented token with a stored digest in constant time.
func (c Credential) matches(token []byte) bool {
	want, err := hex.DecodeString(c.TokenSHA256)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	sum := sha256.Sum256(token)
	return subtle.ConstantTimeCompare(sum[:], want) == 1
}

// AddOptions are the choices of Add.
type AddOptions struct {
	// Enrolment makes a one-time enrolment token for a device (--enrol
	// token) instead of its credential; TTL bounds it (0: no expiry).
	Enrolment bool
	TTL       time.Duration
	// Replace gives an existing name a new token instead of failing.
	Replace bool
	// Certificate provisions a device that logs in with a client
	// certificate only (its common name is the name): no token.
	Certificate bool
}

// Add provisions name with role and returns its token, shown once.
func (s *Store) Add(name string, role Role, opts AddOptions) (string, error) {
	if err := checkName(name, role); err != nil {
		return "", err
	}
	if opts.Enrolment && role != RoleDevice {
		return "", fmt.Errorf("an enrolment token is for a device, not a %s", role)
	}
	if opts.Certificate && opts.Enrolment {
		return "", errors.New("a certificate login has no enrolment token")
	}
	now := time.Now().UTC().Truncate(time.Second)
	c := Credential{Name: name, Role: role, Created: now, Enrolment: opts.Enrolment, Certificate: opts.Certificate}
	token := ""
	if !opts.Certificate {
		token = NewToken()
		hash, err := MosquittoHash(token)
		if err != nil {
			return "", err
		}
		c.TokenSHA256, c.MosquittoHash = digest([]byte(token)), hash
	}
	if opts.Enrolment && opts.TTL > 0 {
		c.Expires = now.Add(opts.TTL)
	}
	err := s.change(func(m map[string]Credential) error {
		if _, ok := m[name]; ok && !opts.Replace {
			return fmt.Errorf("%s: %w (--replace gives it a new token)", name, ErrExists)
		}
		m[name] = c
		return nil
	})
	if err != nil {
		return "", err
	}
	return token, nil
}

// Remove deletes name; it reports whether the store had it.
func (s *Store) Remove(name string) (bool, error) {
	found := false
	err := s.change(func(m map[string]Credential) error {
		_, found = m[name]
		delete(m, name)
		return nil
	})
	return found, err
}

// List returns the credentials, sorted by name.
func (s *Store) List() []Credential {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Credential, 0, len(s.creds))
	for _, c := range s.creds {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Credential) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Len is how many credentials the store has.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.creds)
}

// lookup returns name's credential.
func (s *Store) lookup(name string) (Credential, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.creds[name]
	return c, ok
}

// enrol records a device's first connection: under --enrol open a new
// device and its token (trust on first use), under --enrol token the use
// of its enrolment token. It fails when the file changed meanwhile in a
// way that no longer allows it (another enrolment won the race).
//
// Enrolments arriving together share one write of the file (a group
// commit): when 10,000 devices enrol at once, the file is not rewritten
// 10,000 times.
func (s *Store) enrol(name string, token []byte, open bool) error {
	hash, err := MosquittoHash(string(token))
	if err != nil {
		return err
	}
	e := &pendingEnrolment{name: name, token: token, open: open, hash: hash, done: make(chan error, 1)}
	s.enrolMu.Lock()
	s.enrolQueue = append(s.enrolQueue, e)
	if s.enrolWriting {
		s.enrolMu.Unlock()
		return <-e.done
	}
	s.enrolWriting = true
	s.enrolMu.Unlock()
	// A fleet's connects arrive a few at a time: waiting a moment lets
	// those in flight join this write instead of waiting for the next.
	time.Sleep(enrolCoalesce)
	for {
		s.enrolMu.Lock()
		batch := s.enrolQueue
		s.enrolQueue = nil
		if len(batch) == 0 {
			s.enrolWriting = false
			s.enrolMu.Unlock()
			break
		}
		s.enrolMu.Unlock()
		s.commitEnrolments(batch)
	}
	return <-e.done
}

// enrolCoalesce is how long the first enrolment of a group waits for
// others before the file is written: a write of a store of 10,000 devices
// takes tens of milliseconds.
const enrolCoalesce = 5 * time.Millisecond

// enrolCertificate records a device admitted by its client certificate
// under --enrol open (one write per device: certificate devices enrol
// one at a time, through TLS handshakes).
func (s *Store) enrolCertificate(name string) error {
	now := time.Now().UTC().Truncate(time.Second)
	return s.change(func(m map[string]Credential) error {
		if _, ok := m[name]; ok {
			return errEnrolRace
		}
		m[name] = Credential{Name: name, Role: RoleDevice, Certificate: true, Created: now, Enrolled: now}
		return nil
	})
}

// pendingEnrolment is one enrolment waiting for the next write.
type pendingEnrolment struct {
	name  string
	token []byte
	open  bool
	hash  string
	done  chan error
}

// commitEnrolments writes a batch of enrolments at once and tells each
// whether it was taken.
func (s *Store) commitEnrolments(batch []*pendingEnrolment) {
	now := time.Now().UTC().Truncate(time.Second)
	results := make([]error, len(batch))
	err := s.change(func(m map[string]Credential) error {
		for i, e := range batch {
			c, ok := m[e.name]
			switch {
			case e.open && !ok:
				m[e.name] = Credential{Name: e.name, Role: RoleDevice, TokenSHA256: digest(e.token), MosquittoHash: e.hash, Created: now, Enrolled: now}
			case ok && c.Enrolment && c.matches(e.token) && (c.Expires.IsZero() || now.Before(c.Expires)):
				c.Enrolment, c.Expires, c.Enrolled = false, time.Time{}, now
				m[e.name] = c
			case e.open && ok && !c.Enrolment && c.matches(e.token):
				// The same device twice in one batch: already enrolled.
			default:
				results[i] = errEnrolRace
			}
		}
		return nil
	})
	for i, e := range batch {
		if err != nil {
			results[i] = err
		}
		e.done <- results[i]
	}
}

var errEnrolRace = errors.New("enrolment no longer possible")
