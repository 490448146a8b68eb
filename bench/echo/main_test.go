package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	legacy = "2025-11-25"
	modern = "2026-07-28"
)

// connectFunc returns a client session to a fresh echo server.
type connectFunc func(t *testing.T) *mcp.ClientSession

func httpConnect(stateless, jsonResponse bool, version string) connectFunc {
	return func(t *testing.T) *mcp.ClientSession {
		h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newServer() },
			&mcp.StreamableHTTPOptions{Stateless: stateless, JSONResponse: jsonResponse})
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		return clientSession(t, &mcp.StreamableClientTransport{Endpoint: ts.URL, DisableStandaloneSSE: true}, version)
	}
}

func stdioConnect(version string) connectFunc {
	return func(t *testing.T) *mcp.ClientSession {
		serverIn, clientOut := io.Pipe()
		clientIn, serverOut := io.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- run(t.Context(), nil, serverIn, serverOut, io.Discard)
			serverOut.Close()
		}()
		t.Cleanup(func() {
			clientOut.Close()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
		return clientSession(t, &mcp.IOTransport{Reader: clientIn, Writer: clientOut}, version)
	}
}

func clientSession(t *testing.T, tr mcp.Transport, version string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "echo-test", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != version {
		t.Fatalf("negotiated %q, want %q", got, version)
	}
	return cs
}

func TestEcho(t *testing.T) {
	targets := []struct {
		name    string
		connect connectFunc
	}{
		{"stdio legacy", stdioConnect(legacy)},
		{"stdio modern", stdioConnect(modern)},
		{"http stateful json", httpConnect(false, true, legacy)},
		{"http stateful sse", httpConnect(false, false, legacy)},
		{"http stateless legacy", httpConnect(true, true, legacy)},
		{"http stateless modern", httpConnect(true, true, modern)},
	}
	type result struct {
		IsError bool
		Len     int // of the text, for successful calls
		Prefix  string
	}
	calls := []struct {
		name string
		args any
		want result
	}{
		{"text", map[string]any{"text": "hello"}, result{Len: 5, Prefix: "hello"}},
		{"size zero echoes text", map[string]any{"text": "hi", "size": 0}, result{Len: 2, Prefix: "hi"}},
		{"one byte", map[string]any{"size": 1}, result{Len: 1, Prefix: "T"}},
		{"64 KiB", map[string]any{"size": 65536}, result{Len: 65536, Prefix: "The quick brown fox"}},
		{"64 KiB of records", map[string]any{"size": 65536, "records": true}, result{Len: 65536, Prefix: `{"id":"ord_`}},
		{"larger than the prebuilt filler", map[string]any{"size": 1<<20 + 4096}, result{Len: 1<<20 + 4096, Prefix: "The quick brown fox"}},
		{"no arguments", nil, result{}},
		{"negative size", map[string]any{"size": -1}, result{IsError: true, Prefix: "size must be between 0 and 67108864"}},
		{"too large", map[string]any{"size": maxSize + 1}, result{IsError: true, Prefix: "size must be between 0 and 67108864"}},
		{"wrong type", map[string]any{"text": 5}, result{IsError: true, Prefix: "invalid arguments: "}},
	}
	for _, target := range targets {
		t.Run(target.name, func(t *testing.T) {
			cs := target.connect(t)
			for _, c := range calls {
				t.Run(c.name, func(t *testing.T) {
					res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: c.args})
					if err != nil {
						t.Fatalf("CallTool: %v", err)
					}
					if len(res.Content) != 1 {
						t.Fatalf("%d contents, want 1", len(res.Content))
					}
					text := res.Content[0].(*mcp.TextContent).Text
					got := result{IsError: res.IsError, Len: len(text), Prefix: text[:min(len(text), len(c.want.Prefix))]}
					if res.IsError {
						got.Len = 0 // the wording after the prefix is not part of the contract
					}
					if diff := cmp.Diff(c.want, got); diff != "" {
						t.Errorf("result (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestFillerIsDeterministic(t *testing.T) {
	for _, n := range []int{1, len(fillerPattern), 1 << 20, 2<<20 + 7} {
		got := filler(n)
		if len(got) != n {
			t.Fatalf("filler(%d) has %d bytes", n, len(got))
		}
		want := strings.Repeat(fillerPattern, n/len(fillerPattern)+1)[:n]
		if got != want {
			t.Errorf("filler(%d) is not the repeated pattern", n)
		}
	}
}

// TestRunHTTP starts the command's HTTP mode on a free loopback port, reads
// the announced address, calls the tool and stops the server.
func TestRunHTTP(t *testing.T) {
	for _, stateless := range []bool{false, true} {
		name := map[bool]string{false: "stateful", true: "stateless"}[stateless]
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			args := []string{"-http", "127.0.0.1:0", "-json=false"}
			if stateless {
				args = append(args, "-stateless")
			}
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, args, strings.NewReader(""), io.Discard, pw)
				pw.Close()
			}()
			line, err := bufio.NewReader(pr).ReadString('\n')
			if err != nil {
				t.Fatalf("reading the announced address: %v", err)
			}
			go io.Copy(io.Discard, pr)
			url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
			if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/mcp") {
				t.Fatalf("announcement %q, want listening on http://127.0.0.1:PORT/mcp", line)
			}
			cs := clientSession(t, &mcp.StreamableClientTransport{Endpoint: url, DisableStandaloneSSE: true}, legacy)
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"size": 100}})
			if err != nil || res.IsError {
				t.Fatalf("CallTool: %v %+v", err, res)
			}
			cs.Close()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("run did not return after cancel")
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-nope"}, {"extra"}, {"-http", "256.0.0.1:bad"}} {
		if err := run(t.Context(), args, strings.NewReader(""), io.Discard, io.Discard); err == nil {
			t.Errorf("run(%q) succeeded, want an error", args)
		}
	}
}

// TestRunTrace: with -trace over stdio, every read of the request and every
// write of the answer is reported on standard error, with the message's
// first bytes.
func TestRunTrace(t *testing.T) {
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	var stderr strings.Builder
	var mu sync.Mutex
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"-trace"}, serverIn, serverOut, writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return stderr.Write(p)
		}))
		serverOut.Close()
	}()
	cs := clientSession(t, &mcp.IOTransport{Reader: clientIn, Writer: clientOut}, legacy)
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}}); err != nil {
		t.Fatal(err)
	}
	cs.Close()
	clientOut.Close()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	out := stderr.String()
	for _, want := range []string{` read `, ` write `, `\"method\":\"tools/call\"`, `\"result\"`} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestWatchDumpsStalledRequest: a request read and not answered within the
// limit makes the watch write every goroutine's stack, once; an answered
// one does not.
func TestWatchDumpsStalledRequest(t *testing.T) {
	var mu sync.Mutex
	var out strings.Builder
	w := &watch{log: writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(p)
	}), after: 40 * time.Millisecond, pending: map[string]time.Time{}}
	w.saw("read", []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}`))
	w.saw("read", []byte(`{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{}}`))
	w.saw("write", []byte(`{"jsonrpc":"2.0","id":8,"result":{}}`))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	got := out.String()
	if strings.Count(got, "trace stall: requests [7]") != 1 || !strings.Contains(got, "goroutine ") || strings.Contains(got, "[8]") {
		t.Fatalf("watch output:\n%.500s", got)
	}
}
