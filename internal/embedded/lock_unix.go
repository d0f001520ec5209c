//go:build unix

package embedded

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir/.lock: two brokers writing one
// data directory would corrupt each other's segments. The kernel drops the
// lock when the process dies, so a crash leaves nothing to clean up.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedded broker data dir %s: %w: %s", dir, err, dirAdvice(err, "write its lock file"))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded broker data dir %s is in use by another hookline process: stop it, or choose another --data-dir", dir)
		}
		return nil, fmt.Errorf("lock embedded broker data dir %s: %w: if another hookline run uses this data dir, stop it; else choose another --data-dir", dir, err)
	}
	return f, nil
}
