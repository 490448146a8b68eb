package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProxyForwards runs the proxy in front of a server and checks that a
// request reaches it unchanged, path, headers and body, and that the answer
// comes back.
func TestProxyForwards(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Mcp-Session-Id", r.Header.Get("Mcp-Session-Id"))
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(body))
	}))
	defer up.Close()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, []string{"-upstream", up.URL}, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	base, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Mcp-Session-Id", "abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if want := `POST /mcp {"jsonrpc":"2.0","id":1,"method":"ping"}`; string(got) != want || resp.Header.Get("Mcp-Session-Id") != "abc" {
		t.Fatalf("got %q (session %q), want %q (session abc)", got, resp.Header.Get("Mcp-Session-Id"), want)
	}
}

// TestProxyRefusesBadUpstream: a relative upstream is a usage error.
func TestProxyRefusesBadUpstream(t *testing.T) {
	if err := run(context.Background(), []string{"-upstream", "/mcp"}, io.Discard); err == nil {
		t.Fatal("no error for a relative upstream")
	}
}
