package rawio

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, each wrapped.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := Listener{ln}.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	client = WrapConn(c)
	t.Cleanup(func() { client.Close(); s.Close() })
	if runtime.GOOS == "linux" {
		if _, ok := client.(*Conn); !ok {
			t.Fatalf("WrapConn returned %T, want *Conn", client)
		}
		if _, ok := s.(*Conn); !ok {
			t.Fatalf("Accept returned %T, want *Conn", s)
		}
	}
	return client, s
}

// TestLargeTransfer sends more than the socket buffers hold both ways at
// once, so that writes are partial and both sides wait in the poller.
func TestLargeTransfer(t *testing.T) {
	c, s := pair(t)
	want := make([]byte, 3<<20+17)
	rand.Read(want)
	errc := make(chan error, 2)
	go func() { // the server echoes
		_, err := io.Copy(struct{ io.Writer }{s}, struct{ io.Reader }{s})
		errc <- err
	}()
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		errc <- err
	}()
	var got bytes.Buffer
	buf := make([]byte, 1000) // odd sizes, many reads
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if got.Len() == len(want) {
			s.(interface{ CloseWrite() error }).CloseWrite()
		}
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("echoed %d bytes, not the %d sent", got.Len(), len(want))
	}
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read = %d, %v", n, err)
	}
}

func TestDeadlines(t *testing.T) {
	c, s := pair(t)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	if oe := (*net.OpError)(nil); !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read error %#v, want a net.OpError for read", err)
	}
	// Nobody reads s: the socket buffers fill and the write waits. The
	// deadline leaves a loaded machine time to start writing.
	c.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v, want a timeout", err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Fatalf("write reported %d bytes written, want a part", n)
	}
	// A deadline in the past interrupts a read at once, as net/http does to
	// stop its background read.
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() { _, err := s.Read(make([]byte, 1)); done <- err }()
	time.Sleep(10 * time.Millisecond)
	s.SetReadDeadline(time.Unix(1, 0))
	// s has unread bytes from c's write, so it may read them first.
	if err := <-done; err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("interrupted read: %v", err)
	}
}

func TestCloseAndEOF(t *testing.T) {
	c, s := pair(t)
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 10)); done <- err }()
	time.Sleep(10 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed conn: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed conn: %v, want net.ErrClosed", err)
	}
	if _, err := s.Read(make([]byte, 10)); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
	// Writing to a peer that is gone fails with the kernel's error.
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = s.Write([]byte("after close"))
		time.Sleep(time.Millisecond)
	}
	if err == nil || errors.Is(err, net.ErrClosed) {
		t.Fatalf("writing to a closed peer: %v, want a reset or broken pipe", err)
	}
}

// TestHTTP serves net/http over wrapped connections, with keep-alive, request
// bodies, the server's background read and a client that hangs up.
func TestHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hungUp := make(chan error, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// An HTTP/1 handler reads the whole body before it answers.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(body)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			hungUp <- r.Context().Err()
		case <-time.After(5 * time.Second):
			hungUp <- errors.New("the server did not see the client go")
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(Listener{ln})
	t.Cleanup(func() { srv.Close() })
	dials := 0
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials++
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return WrapConn(c), nil
	}}}
	for i := range 200 {
		body := strings.Repeat("x", i*97)
		resp, err := client.Post("http://"+ln.Addr().String()+"/echo", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(got) != body {
			t.Fatalf("request %d: %d bytes back, err %v", i, len(got), err)
		}
	}
	// The client reuses a connection only once its writer has reported the
	// request written, and waits 50 ms for that; on a loaded machine that
	// report can come later, and the client dials again. Keep-alive broken by
	// the wrapping would dial for every request.
	if dials > 10 {
		t.Fatalf("%d connections for 200 sequential requests, want keep-alive (at most 10)", dials)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+ln.Addr().String()+"/hang", nil)
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := client.Do(req); err == nil {
		t.Fatal("a cancelled request succeeded")
	}
	if err := <-hungUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler: %v", err)
	}
}

func TestWrapOther(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if WrapConn(a) != a {
		t.Fatal("WrapConn changed a connection that is not TCP")
	}
}

func TestAllocs(t *testing.T) {
	c, s := pair(t)
	buf := make([]byte, 64)
	msg := []byte("ping")
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("a write and a read allocate %v times, want 0", allocs)
	}
}
