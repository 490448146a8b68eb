//go:build linux

package rawio

// Raw file I/O is Linux's only (elsewhere WrapFile returns nil), so these
// tests are too.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"syscall"
	"testing"
	"time"
)

func pipe(t *testing.T) (r, w *File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close(); pw.Close() })
	r, w = WrapFile(pr), WrapFile(pw)
	if r == nil || w == nil {
		t.Fatal("WrapFile refused the ends of an os.Pipe")
	}
	return r, w
}

func TestPipe(t *testing.T) {
	r, w := pipe(t)
	want := make([]byte, 1<<20+3)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := w.Write(want) // more than a pipe holds: the writer waits
		if err == nil {
			err = w.Close()
		}
		errc <- err
	}()
	got, err := io.ReadAll(struct{ io.Reader }{r})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}

	r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := r.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after the writer closed: %v, want io.EOF", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write on a closed file: %v, want os.ErrClosed", err)
	}
}

func TestPipeErrors(t *testing.T) {
	r, w := pipe(t)
	r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	r.Close()
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read on a closed file: %v, want os.ErrClosed", err)
	}
	// The reader is gone: the write fails with EPIPE, and the process lives.
	_, err := w.Write([]byte("nobody reads this"))
	var pe *os.PathError
	if !errors.Is(err, syscall.EPIPE) || !errors.As(err, &pe) || pe.Op != "write" {
		t.Fatalf("write to a pipe without a reader: %v, want EPIPE", err)
	}
}

func TestWrapFileBlocking(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "regular")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if WrapFile(f) != nil {
		t.Fatal("WrapFile accepted a regular file, which is not in non-blocking mode")
	}
}
