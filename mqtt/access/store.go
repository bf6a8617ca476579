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
	Version int `json:"version"`
	// Generation numbers the rewrites of the file; its journal applies to
	// the generation its header names, and no other.
	Generation uint64       `json:"generation,omitempty"`
	Clients    []Credential `json:"clients"`
}

// journalHeader is the first line of the journal (JournalPath): the
// generation of the file it extends.
type journalHeader struct {
	Journal    int    `json:"journal"` // 1
	Generation uint64 `json:"generation"`
}

// Store is the credential file and its journal. Every change holds an
// exclusive lock on "<file>.lock" (flock), so the myno devices command and
// a running bridge can both change them.
//
//   - Enrolments (a device's first connection under --enrol open or with
//     its enrolment token) are appended to the journal, "<file>.journal":
//     a header line naming the file's generation, then one credential
//     (JSON) per line, each replacing the one of its name. A write costs
//     what it adds, not the size of the store: rewriting the whole file
//     for each group of enrolments made registering 10,000 devices
//     quadratic.
//   - Every other change (myno devices add, remove; a journal grown past
//     compactAfter) rewrites the file, one credential per line, with the
//     next generation, and then removes the journal. A journal of an
//     older generation (a crash between the two) is ignored, so a
//     removed credential cannot come back from it.
//   - A line the process did not finish writing (a crash) ends the
//     journal without a newline: it is ignored, and cut off by the next
//     append.
type Store struct {
	path string

	writeMu sync.Mutex // one change at a time in this process (the flock: across processes)

	mu    sync.Mutex // guards creds and stamp
	creds map[string]Credential
	stamp storeStamp // of the files last read or written

	enrolMu      sync.Mutex
	enrolQueue   []*pendingEnrolment
	enrolWriting bool // a goroutine is writing enrolments; others queue

	// Guarded by writeMu:
	// lines are the encoded lines of the credentials last written to the
	// file, by name: a rewrite encodes only what changed.
	lines map[string]encodedLine
	// journal is what the store knows of the file's generation and its
	// journal.
	journal journalState
}

// journalState is the generation of the file and the extent of its
// journal.
type journalState struct {
	generation uint64
	entries    int   // credentials in the journal
	end        int64 // bytes of its whole lines (header included); 0: none
}

// JournalPath is the journal of the credential file at path.
func JournalPath(path string) string { return path + ".journal" }

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

// storeStamp tells whether the file or its journal changed.
type storeStamp struct {
	file, journal fileStamp
}

func (s *Store) currentStamp() storeStamp {
	return storeStamp{file: stampOf(s.path), journal: stampOf(JournalPath(s.path))}
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
	st, err := s.readFiles()
	if err != nil {
		return err
	}
	s.creds, s.stamp, s.journal = st.creds, st.stamp, st.journal
	return nil
}

// storeState is the content of the file and its journal.
type storeState struct {
	creds   map[string]Credential
	stamp   storeStamp
	journal journalState
}

// readFiles parses the file and its journal; a missing file is empty. It
// takes no lock of s: a login looks credentials up while a change reads
// and writes.
func (s *Store) readFiles() (storeState, error) {
	st := storeState{stamp: s.currentStamp()}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.creds = map[string]Credential{}
	case err != nil:
		return st, fmt.Errorf("mqtt credentials: %w", err)
	default:
		var f storeFile
		if err := json.Unmarshal(data, &f); err != nil {
			return st, fmt.Errorf("mqtt credentials %s: %w", s.path, err)
		}
		if f.Version != 1 {
			return st, fmt.Errorf("mqtt credentials %s: version %d, want 1", s.path, f.Version)
		}
		st.creds = make(map[string]Credential, len(f.Clients))
		for _, c := range f.Clients {
			if err := checkName(c.Name, c.Role); err != nil {
				return st, fmt.Errorf("mqtt credentials %s: %w", s.path, err)
			}
			st.creds[c.Name] = c
		}
		st.journal.generation = f.Generation
	}
	if err := s.readJournal(&st); err != nil {
		return st, err
	}
	return st, nil
}

// readJournal applies the journal of st's generation to st.creds.
func (s *Store) readJournal(st *storeState) error {
	path := JournalPath(s.path)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mqtt credentials journal: %w", err)
	}
	line, rest, whole := bytes.Cut(data, []byte("\n"))
	if !whole {
		return nil // a header cut short: an empty journal
	}
	var h journalHeader
	if err := json.Unmarshal(line, &h); err != nil || h.Journal != 1 {
		return fmt.Errorf("mqtt credentials journal %s: not a journal header: %q", path, line)
	}
	if h.Generation != st.journal.generation {
		return nil // of an older file: what it held was written into the file, or removed from it
	}
	end := int64(len(line) + 1)
	for len(rest) > 0 {
		line, rest, whole = bytes.Cut(rest, []byte("\n"))
		if !whole {
			break // the last line, cut short by a crash: not applied, cut off by the next append
		}
		var c Credential
		if err := json.Unmarshal(line, &c); err != nil {
			return fmt.Errorf("mqtt credentials journal %s, byte %d: %w", path, end, err)
		}
		if err := checkName(c.Name, c.Role); err != nil {
			return fmt.Errorf("mqtt credentials journal %s: %w", path, err)
		}
		st.creds[c.Name] = c
		st.journal.entries++
		end += int64(len(line) + 1)
	}
	st.journal.end = end
	return nil
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
	unchanged := s.currentStamp() == s.stamp
	s.mu.Unlock()
	if unchanged {
		return nil, nil
	}
	st, err := s.readFiles()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	old := s.creds
	s.creds, s.stamp = st.creds, st.stamp
	s.mu.Unlock()
	s.journal = st.journal
	for name := range old {
		if _, ok := st.creds[name]; !ok {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	return removed, nil
}

// change runs f on the current content of the file under the file lock,
// and rewrites the file with the result. Logins keep looking credentials
// up meanwhile: s.mu is held only to swap the new content in.
func (s *Store) change(f func(map[string]Credential) error) error {
	unlock, err := s.lockCurrent()
	if err != nil {
		return err
	}
	defer unlock()
	s.mu.Lock()
	creds := maps.Clone(s.creds)
	s.mu.Unlock()
	if err := f(creds); err != nil {
		return err
	}
	return s.rewriteLocked(creds)
}

// lockCurrent takes writeMu and the file lock, and reads the file and
// its journal again if another process changed them: what every change
// starts with. unlock releases both.
func (s *Store) lockCurrent() (unlock func(), err error) {
	s.writeMu.Lock()
	unlockFile, err := lockFile(s.path + ".lock")
	if err != nil {
		s.writeMu.Unlock()
		return nil, err
	}
	unlock = func() { unlockFile(); s.writeMu.Unlock() }
	if err := s.refreshLocked(); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// refreshLocked reads the file and its journal again when another
// process changed them since this one last read or wrote them (writeMu
// and the file lock held).
func (s *Store) refreshLocked() error {
	s.mu.Lock()
	unchanged := s.currentStamp() == s.stamp
	s.mu.Unlock()
	if unchanged {
		return nil
	}
	st, err := s.readFiles()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.creds, s.stamp = st.creds, st.stamp
	s.mu.Unlock()
	s.journal = st.journal
	return nil
}

// rewriteLocked writes creds as the file's next generation and removes
// the journal (writeMu and the file lock held).
func (s *Store) rewriteLocked(creds map[string]Credential) error {
	// Only new and changed credentials are encoded again.
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
	generation := s.journal.generation + 1
	data := encodeLines(generation, names, lines)
	if err := atomicfile.Write(s.path, data, 0o600); err != nil {
		return fmt.Errorf("mqtt credentials: %w", err)
	}
	// The file holds what the journal did: a crash before the removal
	// leaves a journal of the previous generation, ignored.
	if err := os.Remove(JournalPath(s.path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("mqtt credentials journal: %w", err)
	}
	s.journal = journalState{generation: generation}
	stamp := s.currentStamp()
	s.lines = lines
	s.mu.Lock()
	s.creds, s.stamp = creds, stamp
	s.mu.Unlock()
	return nil
}

// compactAfter is how many credentials the journal holds before the file
// is rewritten with them: at least minCompact, else half the store, so
// that rewrites cost a constant per enrolment however large the store.
func compactAfter(storeSize int) int { return max(minCompact, storeSize/2) }

const minCompact = 1024

// appendLocked adds creds to the journal (writeMu and the file lock
// held, the store current) and to the store; it rewrites the file instead
// when the journal has grown past compactAfter.
func (s *Store) appendLocked(creds []Credential) error {
	if len(creds) == 0 {
		return nil
	}
	if s.journal.entries+len(creds) > compactAfter(len(s.creds)) {
		s.mu.Lock()
		all := maps.Clone(s.creds)
		s.mu.Unlock()
		for _, c := range creds {
			all[c.Name] = c
		}
		return s.rewriteLocked(all)
	}
	var b bytes.Buffer
	if s.journal.end == 0 {
		h, err := json.Marshal(journalHeader{Journal: 1, Generation: s.journal.generation})
		if err != nil {
			return err
		}
		b.Write(h)
		b.WriteByte('\n')
	}
	for _, c := range creds {
		line, err := json.Marshal(c)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := s.writeJournal(b.Bytes()); err != nil {
		return fmt.Errorf("mqtt credentials journal: %w", err)
	}
	s.journal.entries += len(creds)
	s.journal.end += int64(b.Len())
	stamp := s.currentStamp()
	s.mu.Lock()
	for _, c := range creds {
		s.creds[c.Name] = c
	}
	s.stamp = stamp
	s.mu.Unlock()
	return nil
}

// writeJournal writes data at the end of the journal's whole lines (a
// line a crash cut short is cut off; a journal of another generation is
// replaced: s.journal.end is 0 then), and syncs it.
func (s *Store) writeJournal(data []byte) error {
	f, err := os.OpenFile(JournalPath(s.path), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(s.journal.end); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteAt(data, s.journal.end); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// encodeLines writes the file (storeFile, version 1) one credential per
// line, in the order of names: still JSON, easy to read and to diff, and
// cheaper than indenting (a store holds 10,000 devices and more).
func encodeLines(generation uint64, names []string, lines map[string]encodedLine) []byte {
	size := 64
	for _, l := range lines {
		size += len(l.line) + 2
	}
	b := bytes.NewBuffer(make([]byte, 0, size))
	fmt.Fprintf(b, "{\"version\": 1, \"generation\": %d, \"clients\": [\n", generation)
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
// under --enrol open (one journal line per device: certificate devices
// enrol one at a time, through TLS handshakes).
func (s *Store) enrolCertificate(name string) error {
	now := time.Now().UTC().Truncate(time.Second)
	return s.appendChange(func(get func(string) (Credential, bool)) ([]Credential, error) {
		if _, ok := get(name); ok {
			return nil, errEnrolRace
		}
		return []Credential{{Name: name, Role: RoleDevice, Certificate: true, Created: now, Enrolled: now}}, nil
	})
}

// appendChange runs f under the file lock, with get looking names up in
// the current content (before f's change), and appends the credentials f
// returns, new or replacing those of their names, to the journal
// (appendLocked).
func (s *Store) appendChange(f func(get func(string) (Credential, bool)) ([]Credential, error)) error {
	unlock, err := s.lockCurrent()
	if err != nil {
		return err
	}
	defer unlock()
	// Only writers change s.creds, and they hold writeMu: reading it
	// needs no other lock here.
	get := func(name string) (Credential, bool) { c, ok := s.creds[name]; return c, ok }
	creds, err := f(get)
	if err != nil {
		return err
	}
	return s.appendLocked(creds)
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
	err := s.appendChange(func(get func(string) (Credential, bool)) ([]Credential, error) {
		added := map[string]Credential{} // by this batch
		var out []Credential
		for i, e := range batch {
			c, ok := added[e.name]
			if !ok {
				c, ok = get(e.name)
			}
			switch {
			case e.open && !ok:
				c = Credential{Name: e.name, Role: RoleDevice, TokenSHA256: digest(e.token), MosquittoHash: e.hash, Created: now, Enrolled: now}
			case ok && c.Enrolment && c.matches(e.token) && (c.Expires.IsZero() || now.Before(c.Expires)):
				c.Enrolment, c.Expires, c.Enrolled = false, time.Time{}, now
			case e.open && ok && !c.Enrolment && c.matches(e.token):
				continue // the same device twice in one batch: already enrolled
			default:
				results[i] = errEnrolRace
				continue
			}
			if _, again := added[e.name]; !again {
				out = append(out, c)
			} else {
				out[slices.IndexFunc(out, func(o Credential) bool { return o.Name == e.name })] = c
			}
			added[e.name] = c
		}
		return out, nil
	})
	for i, e := range batch {
		if err != nil {
			results[i] = err
		}
		e.done <- results[i]
	}
}

var errEnrolRace = errors.New("enrolment no longer possible")
