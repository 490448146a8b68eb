//go:build unix

package testenv

import (
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an exclusive flock(2) on path, creating it, and waits as long as another
// process holds it. The lock belongs to the open file, so it also excludes other
// goroutines of this process that lock the same path, and the kernel releases it when a
// process dies mid-install.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
