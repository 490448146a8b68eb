// Package rawio gives TCP connections and pipes reads and writes that skip
// the Go runtime's system-call hand-off.
//
// Why: an ordinary socket read or write enters the runtime's system-call
// state. A write on a loopback socket runs the receiver's side of TCP in the
// writer's system call and takes tens of microseconds, long enough for the
// runtime's monitor thread to hand the processor to another thread, which
// wakes, finds nothing to do and sleeps again; each system call also wakes
// the monitor from its deep sleep. At one call at a time through the gateway
// that churn made seven context switches per tool call where the work needs
// two (2.5 with raw I/O), and raw I/O cut Sluice's CPU per call by about a
// fifth (docs/benchmarks.md). The sockets are non-blocking, so a read or write never waits
// in the kernel; when one would block it returns EAGAIN and the goroutine
// waits in the network poller as usual, with deadlines and Close working as
// they do for any [net.Conn] or [*os.File].
//
// Under the race detector the same calls go through package syscall, whose
// annotations let the detector see the ordering a socket gives.
package rawio

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// Conn is a [*net.TCPConn] with raw reads and writes. Every other method,
// including ReadFrom and WriteTo, is the TCPConn's own.
type Conn struct {
	*net.TCPConn
	r, w *raw
}

var _ net.Conn = (*Conn)(nil)

// WrapConn returns c with raw reads and writes where this platform supports
// them and c is a TCP connection, and c itself otherwise.
func WrapConn(c net.Conn) net.Conn {
	if !supported {
		return c
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	c2 := &Conn{TCPConn: tc}
	c2.r, c2.w = newRaw(rc, tc, c2.opError)
	return c2
}

func (c *Conn) Read(p []byte) (int, error)  { return c.r.read(p) }
func (c *Conn) Write(p []byte) (int, error) { return c.w.write(p) }

// opError reports a system call's error as package net does.
func (c *Conn) opError(op string, errno error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// Listener wraps every connection it accepts with [WrapConn].
type Listener struct{ net.Listener }

func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return WrapConn(c), nil
}

// File is an [*os.File] (the parent's end of a pipe) with raw reads and
// writes. Every other method is the File's own.
type File struct {
	*os.File
	r, w *raw
}

// WrapFile returns f as a [File], or nil where this platform does not
// support raw reads and writes or f is not in non-blocking mode (only
// pollable files, such as the ends of an [os.Pipe], are).
func WrapFile(f *os.File) *File {
	if !supported {
		return nil
	}
	if nb, err := nonblocking(f); err != nil || !nb {
		return nil
	}
	return wrapFile(f)
}

func wrapFile(f *os.File) *File {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	f2 := &File{File: f}
	f2.r, f2.w = newRaw(rc, f, f2.pathError)
	return f2
}

// WrapRegular returns f, a regular file, as a [File] whose reads and
// writes are raw system calls, or nil where this platform does not support
// them or f is not a regular file. It is for small writes to the page
// cache, such as an append-only journal's: they take microseconds, too
// short to hand the processor to another thread as the runtime does for a
// blocking system call. A write the kernel holds back (dirty-page
// throttling) keeps the goroutine's processor meanwhile.
func WrapRegular(f *os.File) *File {
	if !supported {
		return nil
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	return wrapFile(f)
}

func (f *File) Read(p []byte) (int, error)  { return f.r.read(p) }
func (f *File) Write(p []byte) (int, error) { return f.w.write(p) }

// pathError reports a system call's error as package os does.
func (f *File) pathError(op string, errno error) error {
	return &os.PathError{Op: op, Path: f.Name(), Err: errno}
}

// maxWrite bounds one write system call, which holds its goroutine's
// processor for its whole length.
const maxWrite = 256 << 10

// raw is one direction of raw I/O on a descriptor. Its poller callback is
// made once, so that a read or write allocates nothing; the mutex keeps
// concurrent readers (or writers) of one connection, which net.Conn allows,
// from sharing the state the callback works on.
type raw struct {
	mu       sync.Mutex
	rc       syscall.RawConn
	plain    io.ReadWriter                      // the ordinary reads and writes
	sysError func(op string, errno error) error // wraps a system call's error
	p        []byte
	n        int
	errno    error
	callback func(uintptr) bool
}

func newRaw(rc syscall.RawConn, plain io.ReadWriter, sysError func(string, error) error) (r, w *raw) {
	r = &raw{rc: rc, plain: plain, sysError: sysError}
	w = &raw{rc: rc, plain: plain, sysError: sysError}
	r.callback = r.readOnce
	w.callback = w.writeAll
	return r, w
}

// read is io.Reader's Read. When the poller fails (the descriptor is
// closed, or past a deadline), the ordinary read runs, so that the error
// reads in the words callers check for.
func (r *raw) read(p []byte) (int, error) {
	n, errno, err := r.sysRead(p)
	switch {
	case err != nil:
		return r.plain.Read(p)
	case errno != nil:
		return 0, r.sysError("read", errno)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

// write is io.Writer's Write, with the same fallback as read.
func (w *raw) write(p []byte) (int, error) {
	n, errno, err := w.sysWrite(p)
	switch {
	case err != nil:
		m, err := w.plain.Write(p[n:])
		return n + m, err
	case errno != nil:
		return n, w.sysError("write", errno)
	}
	return n, nil
}

// sysRead reads once into p, waiting in the poller while there is nothing
// to read. errno is the system call's error; err is the poller's.
func (r *raw) sysRead(p []byte) (n int, errno, err error) {
	if len(p) == 0 {
		return 0, nil, nil
	}
	r.mu.Lock()
	r.p, r.n, r.errno = p, 0, nil
	err = r.rc.Read(r.callback)
	n, errno = r.n, r.errno
	r.p = nil
	r.mu.Unlock()
	return n, errno, err
}

func (r *raw) readOnce(fd uintptr) bool {
	for {
		n, e := read(fd, r.p)
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.n, r.errno = n, e
		return true
	}
}

// sysWrite writes all of p, waiting in the poller while the kernel's buffer
// is full, and returns how much it wrote before any error.
func (w *raw) sysWrite(p []byte) (n int, errno, err error) {
	w.mu.Lock()
	w.p, w.n, w.errno = p, 0, nil
	err = w.rc.Write(w.callback)
	n, errno = w.n, w.errno
	w.p = nil
	w.mu.Unlock()
	return n, errno, err
}

func (w *raw) writeAll(fd uintptr) bool {
	for w.n < len(w.p) {
		chunk := w.p[w.n:]
		if len(chunk) > maxWrite {
			chunk = chunk[:maxWrite]
		}
		n, e := write(fd, chunk)
		switch e {
		case nil:
			w.n += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			w.errno = e
			return true
		}
	}
	return true
}
