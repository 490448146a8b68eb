//go:build unix

package audit

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockWait is how long a writer waits for another process to let go of a
// database (a restart overlapping the old process's shutdown).
const lockWait = 10 * time.Second

// lockWriter takes an exclusive flock(2) on path+".lock", so that two
// Sluice processes never continue the same chain: each would number its
// records from the same head. The kernel releases the lock when the
// process dies, so a kill -9 leaves nothing to clean up.
func lockWriter(path string, wait time.Duration) (unlock func(), err error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit lock: %w", err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("audit lock %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(name)
			f.Close()
			return nil, fmt.Errorf("audit database %s is in use by another Sluice process (pid %s): give each its own data directory: %w", path, strings.TrimSpace(string(holder)), ErrInUse)
		}
		time.Sleep(50 * time.Millisecond)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
