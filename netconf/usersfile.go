package netconf

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// UsersFile is a users file's lines, edited in place: comments and the
// order of the other users are kept (myno users).
type UsersFile struct {
	lines []string
}

// ParseUsersFile reads a users file for editing; it must parse as
// ParseUsers parses it.
func ParseUsersFile(data []byte) (*UsersFile, error) {
	if _, err := ParseUsers(data); err != nil {
		return nil, err
	}
	f := &UsersFile{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f.lines = append(f.lines, sc.Text())
	}
	return f, sc.Err()
}

func (f *UsersFile) find(name string) int {
	return slices.IndexFunc(f.lines, func(l string) bool {
		l = strings.TrimSpace(l)
		return !strings.HasPrefix(l, "#") && strings.HasPrefix(l, name+":")
	})
}

// checkName refuses what the file format cannot hold.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, ":,# \t\r\n") {
		return fmt.Errorf("user name %q: want no ':', ',', '#' or space", name)
	}
	return nil
}

// Set adds the user, or replaces its hash and groups.
func (f *UsersFile) Set(name, hash string, groups []string) error {
	if err := checkName(name); err != nil {
		return err
	}
	for _, g := range groups {
		if err := checkName(g); err != nil {
			return fmt.Errorf("group: %w", err)
		}
	}
	line := name + ":" + hash + ":" + strings.Join(groups, ",")
	if i := f.find(name); i >= 0 {
		f.lines[i] = line
		return nil
	}
	f.lines = append(f.lines, line)
	return nil
}

// Groups returns a user's groups, and whether it exists.
func (f *UsersFile) Groups(name string) ([]string, bool) {
	i := f.find(name)
	if i < 0 {
		return nil, false
	}
	parts := strings.Split(strings.TrimSpace(f.lines[i]), ":")
	var out []string
	for _, g := range strings.Split(parts[2], ",") {
		if g = strings.TrimSpace(g); g != "" {
			out = append(out, g)
		}
	}
	return out, true
}

// Remove drops a user; it reports whether it existed.
func (f *UsersFile) Remove(name string) bool {
	i := f.find(name)
	if i < 0 {
		return false
	}
	f.lines = slices.Delete(f.lines, i, i+1)
	return true
}

// Names lists the users, in file order.
func (f *UsersFile) Names() []string {
	var out []string
	for _, l := range f.lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, strings.SplitN(l, ":", 2)[0])
	}
	return out
}

// Bytes renders the file.
func (f *UsersFile) Bytes() []byte {
	return []byte(strings.Join(f.lines, "\n") + "\n")
}
