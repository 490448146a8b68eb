package rawio

import (
	"os"
	"syscall"
)

// nonblocking reports whether f's descriptor is in non-blocking mode, which
// raw reads and writes depend on: a blocking read would hold its thread and
// processor until data came.
func nonblocking(f *os.File) (bool, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return false, err
	}
	var flags uintptr
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		flags, _, errno = syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
	}); err != nil {
		return false, err
	}
	if errno != 0 {
		return false, errno
	}
	return flags&syscall.O_NONBLOCK != 0, nil
}
