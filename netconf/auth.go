package netconf

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// User is an account that may open NETCONF sessions.
type User struct {
	Name           string
	PasswordHash   string // bcrypt; "" disables password authentication
	Groups         []string
	AuthorizedKeys []ssh.PublicKey
}

// Users is the account database. It is safe for concurrent use and can be
// replaced at runtime with Replace.
type Users struct {
	mu     sync.RWMutex
	byName map[string]*User
	// dummyHash is compared against when a user is unknown, so that unknown
	// and known users take the same time to refuse.
	dummyHash []byte
}

// NewUsers returns a database holding users.
func NewUsers(users ...*User) *Users {
	u := &Users{byName: map[string]*User{}}
	u.dummyHash, _ = bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)
	for _, x := range users {
		u.byName[x.Name] = x
	}
	return u
}

// Lookup returns a user by name.
func (u *Users) Lookup(name string) (*User, bool) {
	u.mu.RLock()
	defer u.mu.RUnlock()
	x, ok := u.byName[name]
	return x, ok
}

// Replace swaps the whole database, for a reload.
func (u *Users) Replace(other *Users) {
	other.mu.RLock()
	m := other.byName
	other.mu.RUnlock()
	u.mu.Lock()
	u.byName = m
	u.mu.Unlock()
}

// checkPassword verifies a password against the user's bcrypt hash.
func (u *Users) checkPassword(name string, password []byte) (*User, bool) {
	x, ok := u.Lookup(name)
	if !ok || x.PasswordHash == "" {
		_ = bcrypt.CompareHashAndPassword(u.dummyHash, password)
		return nil, false
	}
	return x, bcrypt.CompareHashAndPassword([]byte(x.PasswordHash), password) == nil
}

// checkKey reports whether key is one of the user's authorized keys.
func (u *Users) checkKey(name string, key ssh.PublicKey) (*User, bool) {
	x, ok := u.Lookup(name)
	if !ok {
		return nil, false
	}
	want := key.Marshal()
	for _, k := range x.AuthorizedKeys {
		if subtle.ConstantTimeCompare(k.Marshal(), want) == 1 {
			return x, true
		}
	}
	return nil, false
}

// HashPassword returns a bcrypt hash for a users file.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	return string(h), err
}

// ParseUsers reads a users file: one account per line,
// "name:bcrypt-hash:group,group". Blank lines and lines starting with '#'
// are ignored; an empty hash disables password login for that user.
func ParseUsers(data []byte) (*Users, error) {
	u := NewUsers()
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		if len(parts) != 3 || parts[0] == "" {
			return nil, fmt.Errorf("users file line %d: want name:hash:groups", n)
		}
		if parts[1] != "" {
			if _, err := bcrypt.Cost([]byte(parts[1])); err != nil {
				return nil, fmt.Errorf("users file line %d: user %s: not a bcrypt hash: %w", n, parts[0], err)
			}
		}
		var groups []string
		for _, g := range strings.Split(parts[2], ",") {
			if g = strings.TrimSpace(g); g != "" {
				groups = append(groups, g)
			}
		}
		if _, dup := u.byName[parts[0]]; dup {
			return nil, fmt.Errorf("users file line %d: user %s defined twice", n, parts[0])
		}
		u.byName[parts[0]] = &User{Name: parts[0], PasswordHash: parts[1], Groups: groups}
	}
	return u, sc.Err()
}

// LoadAuthorizedKeys reads dir/<user> files in OpenSSH authorized_keys
// format and attaches the keys to the users of the same name. Files for
// unknown users are an error, so that a typo does not go unnoticed.
func (u *Users) LoadAuthorizedKeys(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		user, ok := u.byName[e.Name()]
		if !ok {
			return fmt.Errorf("authorized keys for unknown user %q in %s", e.Name(), dir)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		for len(bytes.TrimSpace(data)) > 0 {
			key, _, options, rest, err := ssh.ParseAuthorizedKey(data)
			if err != nil {
				return fmt.Errorf("authorized keys for %s: %w", e.Name(), err)
			}
			if len(options) > 0 {
				// from=, expiry-time= and friends are not enforced here, so
				// a key that carries them is refused rather than trusted
				// more widely than intended.
				return fmt.Errorf("authorized keys for %s: options %q are not supported", e.Name(), options)
			}
			user.AuthorizedKeys = append(user.AuthorizedKeys, key)
			data = rest
		}
	}
	return nil
}

// LoadOrCreateHostKey reads an ed25519 host key in OpenSSH PEM form from
// path, or generates one and writes it with mode 0600 (the directory is
// created with 0700). The key is never logged.
func LoadOrCreateHostKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("host key %s is readable by others (mode %v); chmod 600 it", path, info.Mode().Perm())
		}
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("host key %s: %w", path, err)
		}
		return signer, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "myno netconf host key")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := pem.Encode(f, block); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return ssh.NewSignerFromKey(priv)
}
