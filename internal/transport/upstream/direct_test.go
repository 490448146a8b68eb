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
