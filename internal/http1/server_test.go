package http1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/testenv"
)

// testServer serves h with a Server in front of net/http, as `sluice
// serve` does, and returns its address.
func testServer(t *testing.T, h http.Handler) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &Server{Handler: h, ReadHeaderTimeout: time.Second, ErrorLog: log.New(&testenv.SyncBuffer{}, "", 0)}
	srv := &http.Server{Handler: h}
	go front.Serve(ln)
	go srv.Serve(front.Fallback())
	t.Cleanup(func() {
		front.Close()
		srv.Close()
	})
	return front, ln.Addr().String()
}

// echo answers with who served the request (this package or net/http),
// the method, and the body.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	by := "net/http"
	if _, ok := w.(*response); ok {
		by = "http1"
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s %s %s", by, r.Method, r.Host, b)
})

// exchange writes raw to a new connection and reads n responses from it.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var out []*http.Response
	for len(out) < n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(out)+1, err)
		}
		if resp.StatusCode < 200 {
			continue // 100 Continue, before the response
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		out = append(out, resp)
	}
	return out
}

func bodyOf(r *http.Response) string {
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

func TestServe(t *testing.T) {
	_, addr := testServer(t, echo)
	post := func(body string) string {
		return fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	for _, tc := range []struct {
		name, raw string
		want      []string
	}{
		{"one", post("hi"), []string{"http1 POST h hi"}},
		{"pipelined", post("a") + post("bb") + post(""), []string{"http1 POST h a", "http1 POST h bb", "http1 POST h "}},
		{"get then post", "GET /x HTTP/1.1\r\nHost: h\r\n\r\n" + post("c"), []string{"net/http GET h ", "net/http POST h c"}},
		{"post then get", post("d") + "GET /x HTTP/1.1\r\nHost: h\r\n\r\n", []string{"http1 POST h d", "net/http GET h "}},
		{"chunked", "POST /mcp HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\ne\r\n0\r\n\r\n", []string{"net/http POST h e"}},
		{"expect", "POST /mcp HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nf", []string{"net/http POST h f"}},
		{"bare LF", "POST /mcp HTTP/1.1\nHost: h\nContent-Length: 1\n\ng", []string{"net/http POST h g"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resps := exchange(t, addr, tc.raw, len(tc.want))
			for i, r := range resps {
				if got := bodyOf(r); got != tc.want[i] {
					t.Errorf("response %d: %q, want %q", i+1, got, tc.want[i])
				}
			}
		})
	}
}

// TestServeRefusals sends heads net/http refuses: they reach net/http
// and get its answer, not the handler.
func TestServeRefusals(t *testing.T) {
	called := make(chan string, 10)
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called <- r.Method
	}))
	for _, raw := range []string{
		"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
		"POST /mcp HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
		"POST /mcp HTTP/1.1\r\nHost: a\r\nHost: b\r\nContent-Length: 0\r\n\r\n",
		"POST /mcp HTTP/1.1\r\nHost: h\r\nBad Name: v\r\nContent-Length: 0\r\n\r\n",
		"POST /mcp HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\nContent-Length: 0\r\n\r\n",
		"POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
	} {
		resps := exchange(t, addr, raw, 1)
		if resps[0].StatusCode != http.StatusBadRequest {
			t.Errorf("%q: status %d, want 400", raw, resps[0].StatusCode)
		}
	}
	select {
	case m := <-called:
		t.Errorf("the handler saw a %s request net/http refuses", m)
	default:
	}
}

// TestServeResponses checks the heads written for what handlers do.
func TestServeResponses(t *testing.T) {
	big := strings.Repeat("x", bufferLimit+1)
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/empty":
		case "/sniff":
			io.WriteString(w, "<html><body>hi</body></html>")
		case "/status":
			w.Header()["Date"] = nil
			w.WriteHeader(http.StatusAccepted)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
				panic("a body after 204 was accepted")
			}
		case "/declared":
			w.Header().Set("Content-Length", "3")
			io.WriteString(w, "abc")
			if _, err := io.WriteString(w, "d"); !errors.Is(err, http.ErrContentLength) {
				panic("a body past its Content-Length was accepted")
			}
		case "/big":
			io.WriteString(w, big)
		case "/late-length":
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Content-Length", "99")
			io.WriteString(w, "ab")
		case "/injected":
			w.Header().Set("X-A", "1\r\nX-Injected: yes")
			w.Header()["Bad Name"] = []string{"v"}
			w.Header().Set("Connection", "close")
		}
	}))
	req := func(path string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
	}
	resps := exchange(t, addr, req("/empty")+req("/sniff")+req("/status")+req("/nocontent")+req("/declared")+req("/big")+req("/late-length")+req("/injected"), 8)
	check := func(i int, status int, length int64, chunked bool, header http.Header, body string) {
		t.Helper()
		r := resps[i]
		te := len(r.TransferEncoding) > 0
		if r.StatusCode != status || r.ContentLength != length || te != chunked || bodyOf(r) != body {
			t.Errorf("response %d: %d length=%d chunked=%v, want %d length=%d chunked=%v", i+1, r.StatusCode, r.ContentLength, te, status, length, chunked)
		}
		for k, v := range header {
			if got := r.Header.Values(k); !reflect.DeepEqual(got, v) {
				t.Errorf("response %d: %s = %q, want %q", i+1, k, got, v)
			}
		}
	}
	check(0, 200, 0, false, nil, "")
	if resps[0].Header.Get("Date") == "" {
		t.Error("no Date")
	}
	check(1, 200, 28, false, http.Header{"Content-Type": {"text/html; charset=utf-8"}}, "<html><body>hi</body></html>")
	check(2, 202, 0, false, http.Header{"Date": nil}, "")
	check(3, 204, 0, false, http.Header{"Content-Length": nil}, "")
	check(4, 200, 3, false, nil, "abc")
	check(5, 200, -1, true, nil, big)
	check(6, 200, 2, false, http.Header{"Content-Length": {"2"}}, "ab")
	check(7, 200, 0, false, http.Header{"X-A": {"1  X-Injected: yes"}, "X-Injected": nil, "Bad Name": nil}, "")
	if !resps[7].Close {
		t.Error("Connection: close set by the handler did not close")
	}
}

// TestServeAcceptError checks that an Accept error the runtime calls
// temporary (out of descriptors) does not end the server.
func TestServeAcceptError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &Server{Handler: echo}
	defer front.Close()
	done := make(chan error, 1)
	go func() { done <- front.Serve(&failingListener{Listener: ln}) }()
	if got := bodyOf(exchange(t, ln.Addr().String(), "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok", 1)[0]); got != "http1 POST h ok" {
		t.Errorf("after a temporary Accept error: %q", got)
	}
	front.Close()
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve returned %v after Close", err)
	}
}

// failingListener fails its first Accept as a process out of descriptors
// does.
type failingListener struct {
	net.Listener
	failed bool
}

func (l *failingListener) Accept() (net.Conn, error) {
	if !l.failed {
		l.failed = true
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeStream checks a response flushed as it is written: each part
// reaches the client before the handler goes on.
func TestServeStream(t *testing.T) {
	next := make(chan struct{})
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			<-next
		}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.TransferEncoding) == 0 {
		t.Fatal("a flushed response is not chunked")
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("data: %d\n", i) {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n')
		next <- struct{}{}
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after the events: %q %v", rest, err)
	}
}

// TestServeClientGone checks that a client hanging up during a long
// request cancels the request's context, and that a long request whose
// client stays does not lose the connection's next request.
func TestServeClientGone(t *testing.T) {
	cause := make(chan error, 1)
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * WatchAfter)
			io.WriteString(w, "slow")
			return
		}
		if r.URL.Path == "/fast" {
			io.WriteString(w, "fast")
			return
		}
		select {
		case <-r.Context().Done():
			cause <- context.Cause(r.Context())
		case <-time.After(10 * time.Second):
			cause <- errors.New("not cancelled")
		}
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "POST /hang HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	time.Sleep(2 * WatchAfter)
	c.Close()
	if err := <-cause; !errors.Is(err, ErrClientGone) {
		t.Errorf("cause %v, want ErrClientGone", err)
	}

	// The next request arrives while the watch reads: its first byte is
	// kept for it.
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	time.Sleep(2 * WatchAfter)
	io.WriteString(c, "POST /fast HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	br := bufio.NewReader(c)
	for _, want := range []string{"slow", "fast"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := bodyOf(resp); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestServePanic checks that a handler's panic costs its connection only.
func TestServePanic(t *testing.T) {
	front, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		io.WriteString(w, "ok")
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST /panic HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("after a panic the connection gave %d bytes, %v", n, err)
	}
	if got := bodyOf(exchange(t, addr, "POST /ok HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", 1)[0]); got != "ok" {
		t.Errorf("after a panic: %q", got)
	}
	if !strings.Contains(front.ErrorLog.Writer().(*testenv.SyncBuffer).String(), "panic serving") {
		t.Error("the panic was not logged")
	}
}

// TestServeUnreadBody checks that a body the handler did not read is
// dropped and the connection goes on.
func TestServeUnreadBody(t *testing.T) {
	_, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	body := strings.Repeat("y", 10000)
	raw := fmt.Sprintf("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n%sPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", len(body), body)
	resps := exchange(t, addr, raw, 2)
	if bodyOf(resps[0]) != "/a" || bodyOf(resps[1]) != "/b" {
		t.Error("the request after an unread body was lost")
	}
}

// TestServeShutdown checks that Shutdown closes idle connections at once
// and lets a request under way finish, with Connection: close.
func TestServeShutdown(t *testing.T) {
	release := make(chan struct{})
	front, addr := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}))
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	busy, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "POST /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- front.Shutdown(context.Background()) }()
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: %v, want EOF", err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a request under way", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bodyOf(resp) != "done" || !resp.Close {
		t.Errorf("the request under way ended with %q, close=%v", bodyOf(resp), resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// FuzzRequest holds every request head read here to net/http's reading of
// the same bytes.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"POST /mcp/p?x=1 HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\nconnection: close\r\nmcp-session-id: a\r\n\r\n",
		"POST /a%20b HTTP/1.1\r\nHost: h\r\nContent-Length:  1 \r\nX-A: 1\r\nX-A: 2\r\n\r\nx",
		"POST //x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		end, ok := headEnd([]byte(in), 0)
		if !ok || end == 0 {
			return
		}
		got := parseRequest(in[:end])
		if got == nil {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			t.Fatalf("read here, refused by net/http: %v", err)
		}
		delete(want.Header, "Host")
		if got.Method != want.Method || got.URL.String() != want.URL.String() || got.RequestURI != want.RequestURI ||
			got.Host != want.Host || got.ContentLength != want.ContentLength || got.Close != want.Close ||
			!reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("read here as %s %s host=%q len=%d close=%v %v; net/http: %s %s host=%q len=%d close=%v %v",
				got.Method, got.URL, got.Host, got.ContentLength, got.Close, got.Header,
				want.Method, want.URL, want.Host, want.ContentLength, want.Close, want.Header)
		}
	})
}
