//go:build unix

package bridge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockDataDir holds an exclusive lock on <dir>/lock for the bridge's
// life (flock(2)): a second bridge on the same data directory fails at
// once, naming the process that holds it, instead of stalling on the
// broker's database. The lock goes with the process, even on a crash.
func lockDataDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(holder))); perr == nil {
				return nil, fmt.Errorf("data directory %s in use by pid %d", dir, pid)
			}
			return nil, fmt.Errorf("data directory %s in use by another process", dir)
		}
		return nil, fmt.Errorf("data directory %s: lock: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
