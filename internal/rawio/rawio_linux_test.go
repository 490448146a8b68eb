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

	// A deadline that has passed wins over the end of the file, and a
	// loaded machine may take milliseconds to come back to this goroutine:
	// the deadline only bounds a read that would wrongly wait.
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
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

// TestRegular: writes to a regular file land where the file's offset says,
// and reads see them; other kinds of file are not wrapped.
func TestRegular(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "journal")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := WrapRegular(f)
	if w == nil {
		t.Fatal("a regular file was not wrapped")
	}
	for _, s := range []string{"one\n", "two\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d %v", s, n, err)
		}
	}
	if err := f.Truncate(4); err != nil {
		t.Fatal(err)
	}
	f.Seek(4, io.SeekStart)
	w.Write([]byte("three\n"))
	got, err := os.ReadFile(f.Name())
	if err != nil || string(got) != "one\nthree\n" {
		t.Fatalf("file holds %q, %v", got, err)
	}
	f.Seek(0, io.SeekStart)
	buf := make([]byte, 64)
	n, err := w.Read(buf)
	if err != nil || string(buf[:n]) != "one\nthree\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	f.Close()
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("a write to a closed file succeeded")
	}
	r, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer pw.Close()
	if WrapRegular(r) != nil {
		t.Error("a pipe was wrapped as a regular file")
	}
}
