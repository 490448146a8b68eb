//go:build unix

package upstream

import (
	"errors"
	"net"
	"syscall"
)

// alive reports whether an idle pooled connection is still open, with one
// non-blocking read: a server that closed its end shows EOF (or a reset),
// an open idle connection has nothing to read. Bytes arriving unasked also
// disqualify it.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, rerr := syscall.Read(int(fd), buf[:])
		ok = n < 0 && errors.Is(rerr, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && ok
}
