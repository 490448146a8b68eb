package upstream

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirectTransport checks connection reuse, a server that drops idle
// connections, a body closed early, and cancellation mid-response.
func TestDirectTransport(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hang":
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/big":
			io.WriteString(w, strings.Repeat("x", 1<<20))
		default:
			b, _ := io.ReadAll(r.Body)
			io.WriteString(w, "echo:"+string(b))
		}
	}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tr := &DirectTransport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	post := func(body string) string {
		t.Helper()
		resp, err := client.Post(srv.URL+"/echo", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for i := range 20 {
		if got := post("hi"); got != "echo:hi" {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d connections, want 1", n)
	}

	// The server drops its idle connections: the next request still works.
	srv.CloseClientConnections()
	time.Sleep(2 * probeAfter)
	if got := post("again"); got != "echo:again" {
		t.Errorf("after the server closed idle connections: %q", got)
	}

	// A body closed before its end costs the connection, not correctness.
	resp, err := client.Get(srv.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	io.ReadFull(resp.Body, buf)
	resp.Body.Close()
	if got := post("after-partial"); got != "echo:after-partial" {
		t.Errorf("after a partial read: %q", got)
	}

	// Cancelling the context aborts a response in progress.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/hang", nil)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read of a cancelled response succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not abort the response read")
	}
	resp.Body.Close()
	if got := post("after-cancel"); got != "echo:after-cancel" {
		t.Errorf("after a cancel: %q", got)
	}
}

// TestDirectTransportWritesRequests checks that the requests written
// directly arrive as net/http would have sent them, and that a header
// which would break the request's framing falls back to net/http's own
// writer instead of reaching the wire as it stands.
func TestDirectTransportWritesRequests(t *testing.T) {
	type seen struct {
		method, uri, host, ua, body string
		length                      int64
		header                      http.Header
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.RequestURI, r.Host, r.UserAgent(), string(b), r.ContentLength, r.Header}
	}))
	defer srv.Close()
	tr := &DirectTransport{}
	defer tr.CloseIdleConnections()
	send := func(method, url, body string, h http.Header) (seen, error) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		if err != nil {
			t.Fatal(err)
		}
		for k, vs := range h {
			req.Header[k] = vs
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return seen{}, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return <-got, nil
	}

	s, err := send(http.MethodPost, srv.URL+"/mcp/p?x=1&y=%20", `{"a":1}`, http.Header{
		"Accept":       {"application/json", "text/event-stream"},
		"Mcp-Method":   {"tools/call"},
		"X-Tab-Inside": {"a\tb"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.method != "POST" || s.uri != "/mcp/p?x=1&y=%20" || s.host != strings.TrimPrefix(srv.URL, "http://") ||
		s.ua != "Go-http-client/1.1" || s.body != `{"a":1}` || s.length != 7 {
		t.Errorf("POST arrived as %+v", s)
	}
	if a := s.header.Values("Accept"); len(a) != 2 || a[1] != "text/event-stream" {
		t.Errorf("Accept arrived as %q", a)
	}
	if s.header.Get("Mcp-Method") != "tools/call" || s.header.Get("X-Tab-Inside") != "a\tb" {
		t.Errorf("headers arrived as %v", s.header)
	}

	s, err = send(http.MethodDelete, srv.URL+"/mcp", "", http.Header{"User-Agent": {"sluice-test"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.method != "DELETE" || s.ua != "sluice-test" || s.length != 0 || s.header.Get("Content-Length") != "" {
		t.Errorf("DELETE arrived as %+v", s)
	}

	// A value with a line break must not become a second header.
	s, err = send(http.MethodPost, srv.URL+"/mcp", "{}", http.Header{"X-Token": {"a\r\nX-Injected: yes"}})
	if err == nil && s.header.Get("X-Injected") != "" {
		t.Errorf("a line break in a header value injected a header: %v", s.header)
	}
	if !plainRequest(mustRequest(t, "X-Ok", "v")) || plainRequest(mustRequest(t, "X-Bad", "v\n")) ||
		plainRequest(mustRequest(t, "Bad Name", "v")) || plainRequest(mustRequest(t, "Connection", "close")) {
		t.Error("plainRequest judged a header wrongly")
	}
}

func mustRequest(t *testing.T, k, v string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/mcp", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header[k] = []string{v}
	return req
}
