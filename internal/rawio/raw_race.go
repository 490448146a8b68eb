//go:build linux && race

package rawio

import "syscall"

const supported = true

// Under the race detector, package syscall's read and write carry the
// annotations that order a write before the read that sees its bytes.

func read(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Read(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}

func write(fd uintptr, p []byte) (int, error) {
	n, err := syscall.Write(int(fd), p)
	if err != nil {
		return 0, err
	}
	return n, nil
}
