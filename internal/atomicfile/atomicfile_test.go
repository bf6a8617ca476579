package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/myno-bridge/myno/internal/atomicfile"
)

// Write creates and replaces files with the given mode and leaves no
// temporary file behind; into a missing directory it fails.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.pem")
	for _, tc := range []struct {
		data string
		mode os.FileMode
	}{{"first", 0o644}, {"second, longer content", 0o600}} {
		if err := atomicfile.Write(path, []byte(tc.data), tc.mode); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != tc.data {
			t.Fatalf("content %q, %v", got, err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != tc.mode {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.mode)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1", len(entries))
	}
	if err := atomicfile.Write(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// RemoveLeftovers removes the temporary files a crash left beside a file,
// and nothing else: not the file, not other files with similar names.
func TestRemoveLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.json")
	keep := []string{"registry.json", "registry.json.bak", ".other.json.123", "x.registry.json.1"}
	leftovers := []string{".registry.json.123456", ".registry.json.abc"}
	for _, name := range append(keep, leftovers...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := atomicfile.RemoveLeftovers(path)
	if err != nil || n != len(leftovers) {
		t.Fatalf("removed %d, %v; want %d", n, err, len(leftovers))
	}
	for _, name := range keep {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s removed: %v", name, err)
		}
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s still there", name)
		}
	}
}
