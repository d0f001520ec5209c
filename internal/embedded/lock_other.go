//go:build !unix

package embedded

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir opens dir/.lock without locking it: this platform has no flock,
// and the embedded broker is for development on one host. Do not start two
// brokers on one data directory here.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("embedded broker data dir %s: %w: %s", dir, err, dirAdvice(err, "write its lock file"))
	}
	return f, nil
}
