package access_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/myno-bridge/myno/mqtt/access"
)

// enrol has n devices named prefix-NNNN enrol at once (--enrol open).
func enrol(t testing.TB, c *access.Controller, prefix string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("%s-%04d", prefix, i)
			if _, err := c.Authenticate(access.ConnectRequest{ClientID: name, Username: name, Password: []byte("token-of-" + name + "-0123456789abcdef")}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

func fileInode(t *testing.T, path string) (uint64, int64) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return inode(fi), fi.Size()
}

// Enrolments are appended to the journal; the credential file is not
// rewritten for them (it was, whole, for each group: quadratic in the
// fleet), and a store opened later, or another process's, sees them.
func TestEnrolmentsAreAppendedToTheJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.json")
	store, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Add("bridge-1", access.RoleBridge, access.AddOptions{}); err != nil {
		t.Fatal(err)
	}
	other, err := access.OpenStore(path) // myno devices, say
	if err != nil {
		t.Fatal(err)
	}
	ino, size := fileInode(t, path)
	c := &access.Controller{Store: store, Enrolment: access.EnrolOpen}
	enrol(t, c, "dev", 300)
	if i, sz := fileInode(t, path); i != ino || sz != size {
		t.Errorf("the credential file was rewritten for enrolments")
	}
	data, err := os.ReadFile(access.JournalPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(data), "\n"); lines != 301 {
		t.Errorf("journal of %d lines, want a header and 300 credentials", lines)
	}
	again, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Len() != 301 {
		t.Errorf("reopened: %d credentials, want 301", again.Len())
	}
	if _, err := other.Reload(); err != nil {
		t.Fatal(err)
	}
	if other.Len() != 301 {
		t.Errorf("another process: %d credentials, want 301", other.Len())
	}
	// That process removes one: the file is rewritten with the journal's
	// credentials, and the journal goes.
	if ok, err := other.Remove("dev-0007"); err != nil || !ok {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if _, err := os.Stat(access.JournalPath(path)); !os.IsNotExist(err) {
		t.Errorf("journal still there after a rewrite: %v", err)
	}
	removed, err := store.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != "dev-0007" || store.Len() != 300 {
		t.Errorf("removed %v, %d left; want [dev-0007], 300", removed, store.Len())
	}
	// The bridge's next enrolment starts a journal of the new generation.
	enrol(t, c, "late", 2)
	again, err = access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Len() != 302 || again.IsDevice("dev-0007") {
		t.Errorf("%d credentials (want 302), dev-0007 there: %v", again.Len(), again.IsDevice("dev-0007"))
	}
}

// Past its bound the journal is folded into the file: the file is
// rewritten once per that many enrolments, not once per group.
func TestJournalIsCompacted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.json")
	store, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &access.Controller{Store: store, Enrolment: access.EnrolOpen}
	rewrites := 0
	ino := uint64(0)
	for g := range 30 {
		enrol(t, c, fmt.Sprintf("g%02d", g), 100)
		if fi, err := os.Stat(path); err == nil && inode(fi) != ino {
			rewrites++
			ino = inode(fi)
		}
	}
	if rewrites < 1 || rewrites > 3 {
		t.Errorf("the file was written %d times for 3,000 enrolments in 30 groups; want 1 to 3", rewrites)
	}
	again, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if again.Len() != 3000 {
		t.Errorf("%d credentials, want 3000", again.Len())
	}
}

// A crash mid-append leaves a line without its newline: it is ignored,
// and the next append cuts it off instead of gluing a line to it. A
// journal older than the file (a crash between a rewrite and the
// journal's removal) is ignored: a removed credential does not come back.
func TestJournalAfterACrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "creds.json")
	store, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &access.Controller{Store: store, Enrolment: access.EnrolOpen}
	enrol(t, c, "a", 3)
	journal := access.JournalPath(path)
	f, err := os.OpenFile(journal, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"name":"torn","role":"dev`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	restarted, err := access.OpenStore(path)
	if err != nil {
		t.Fatalf("a torn last line: %v", err)
	}
	if restarted.Len() != 3 {
		t.Errorf("%d credentials, want 3", restarted.Len())
	}
	enrol(t, &access.Controller{Store: restarted, Enrolment: access.EnrolOpen}, "b", 2)
	again, err := access.OpenStore(path)
	if err != nil {
		t.Fatalf("after appending behind a torn line: %v", err)
	}
	if again.Len() != 5 {
		t.Errorf("%d credentials, want 5", again.Len())
	}

	// A rewrite (a removal), then the old journal put back, as if the
	// process had died before removing it.
	old, err := os.ReadFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Remove("a-0001"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(journal, old, 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := access.OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if after.IsDevice("a-0001") || after.Len() != 4 {
		t.Errorf("an old journal brought a-0001 back (%d credentials, want 4)", after.Len())
	}
}
