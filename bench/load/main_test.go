package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stdioServerEnv makes the test binary act as a stdio echo server, so that
// -cmd can launch it.
const stdioServerEnv = "LOAD_TEST_STDIO_ECHO"

func TestMain(m *testing.M) {
	if os.Getenv(stdioServerEnv) == "1" {
		err := echoServer(0).Run(context.Background(), &mcp.StdioTransport{})
		if err != nil && !strings.Contains(err.Error(), "EOF") {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type echoIn struct {
	Text    string `json:"text,omitempty"`
	Size    int    `json:"size,omitempty"`
	Records bool   `json:"records,omitempty"`
}

// recordsCalls counts the calls asking the stand-in for records.
var recordsCalls atomic.Int64

// echoServer is a stand-in for bench/echo: the same tool contract. A
// non-zero skew makes it answer with the wrong number of bytes.
func echoServer(skew int) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test-echo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		text := in.Text
		switch {
		case in.Size > 0 && in.Records:
			recordsCalls.Add(1)
			text = strings.Repeat("r", in.Size)
		case in.Size > 0:
			text = strings.Repeat("x", in.Size)
		}
		text += strings.Repeat("y", skew)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	return s
}

func httpTarget(t *testing.T, s *mcp.Server, stateless bool) string {
	t.Helper()
	ts := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{Stateless: stateless, JSONResponse: true}))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// runLoad runs the command and decodes its JSON report.
func runLoad(t *testing.T, args ...string) (report, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, &stdout, &stderr)
	var rep report
	if err == nil {
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("decoding report %q: %v", stdout.String(), err)
		}
		if !strings.Contains(stderr.String(), "calls/s") {
			t.Errorf("human line missing from stderr: %q", stderr.String())
		}
	}
	return rep, err
}

// checkReport checks the invariants every successful report keeps.
func checkReport(t *testing.T, rep report) {
	t.Helper()
	if rep.Calls == 0 || rep.TotalCalls < rep.Calls || rep.Seconds <= 0 || rep.CallsPerSecond <= 0 {
		t.Errorf("implausible counts: %+v", rep)
	}
	if !(0 < rep.P50Micros && rep.P50Micros <= rep.P90Micros && rep.P90Micros <= rep.P99Micros && rep.P99Micros <= rep.MaxMicros) {
		t.Errorf("percentiles out of order: %+v", rep)
	}
}

func TestMeasure(t *testing.T) {
	stateful := httpTarget(t, echoServer(0), false)
	stateless := httpTarget(t, echoServer(0), true)
	t.Setenv(stdioServerEnv, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		Transport, Era, ProtocolVersion string
		Clients, Size, Errors           int
	}
	tests := []struct {
		name string
		args []string
		want want
		// calls, when positive, is the exact number of measured calls.
		calls int
	}{
		{"legacy over a stateful server", []string{"-url", stateful, "-clients", "3", "-duration", "200ms", "-warmup", "50ms"},
			want{"http", "legacy", legacyVersion, 3, 0, 0}, 0},
		{"legacy over a stateless server", []string{"-url", stateless, "-duration", "100ms", "-warmup", "0"},
			want{"http", "legacy", legacyVersion, 1, 0, 0}, 0},
		{"modern", []string{"-url", stateless, "-era", "modern", "-clients", "2", "-duration", "100ms", "-warmup", "20ms"},
			want{"http", "modern", modernVersion, 2, 0, 0}, 0},
		{"fixed number of large calls", []string{"-url", stateful, "-clients", "4", "-calls", "37", "-size", "65536", "-warmup", "20ms"},
			want{"http", "legacy", legacyVersion, 4, 65536, 0}, 37},
		{"records", []string{"-url", stateful, "-calls", "5", "-size", "4096", "-records", "-warmup", "0"},
			want{"http", "legacy", legacyVersion, 1, 4096, 0}, 5},
		{"stdio", []string{"-cmd", self + " -test.run=^$", "-clients", "2", "-calls", "20", "-warmup", "0"},
			want{"stdio", "legacy", legacyVersion, 2, 0, 0}, 20},
		{"stdio modern", []string{"-cmd", self, "-era", "modern", "-calls", "5", "-warmup", "0"},
			want{"stdio", "modern", modernVersion, 1, 0, 0}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked := recordsCalls.Load()
			rep, err := runLoad(t, tt.args...)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			checkReport(t, rep)
			got := want{rep.Transport, rep.Era, rep.ProtocolVersion, rep.Clients, rep.Size, rep.Errors}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if tt.calls > 0 && rep.Calls != tt.calls {
				t.Errorf("measured %d calls, want %d", rep.Calls, tt.calls)
			}
			if rep.FirstError != "" {
				t.Errorf("first error %q, want none", rep.FirstError)
			}
			if records := slices.Contains(tt.args, "-records"); records != (recordsCalls.Load() > asked) {
				t.Errorf("records asked for: %v, with -records: %v", recordsCalls.Load() > asked, records)
			}
		})
	}
}

func TestMeasureCountsWrongAnswers(t *testing.T) {
	rep, err := runLoad(t, "-url", httpTarget(t, echoServer(1), false), "-calls", "10", "-size", "100", "-warmup", "0")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 10 || !strings.Contains(rep.FirstError, "101 bytes of text, want 100") {
		t.Errorf("errors %d, first %q: want 10 size mismatches", rep.Errors, rep.FirstError)
	}
}

// TestMeasureReplacesBrokenSessions breaks one session by answering a call
// with a body that is not JSON; the client replaces the session and the run
// goes on.
func TestMeasureReplacesBrokenSessions(t *testing.T) {
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return echoServer(0) },
		&mcp.StreamableHTTPOptions{JSONResponse: true})
	var toolCalls atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte(`"method":"tools/call"`)) && toolCalls.Add(1) == 3 {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, "{")
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	rep, err := runLoad(t, "-url", ts.URL, "-calls", "20", "-warmup", "0")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Calls != 20 || rep.Errors < 1 || rep.Reconnects < 1 {
		t.Errorf("report %+v: want 20 calls, an error and a replaced session", rep)
	}
}

func TestMeasureRefusesTheWrongEra(t *testing.T) {
	_, err := runLoad(t, "-url", httpTarget(t, echoServer(0), false), "-era", "modern", "-calls", "1")
	if err == nil || !strings.Contains(err.Error(), "server negotiated 2025-11-25") {
		t.Errorf("run: %v, want an error about the negotiated version", err)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no target", nil, "exactly one of -url and -cmd"},
		{"two targets", []string{"-url", "http://127.0.0.1:1/mcp", "-cmd", "x"}, "exactly one of -url and -cmd"},
		{"no clients", []string{"-cmd", "x", "-clients", "0"}, "-clients must be at least 1"},
		{"negative size", []string{"-cmd", "x", "-size", "-1"}, "must not be negative"},
		{"records without a size", []string{"-cmd", "x", "-records"}, "-records needs a positive -size"},
		{"nothing to measure", []string{"-cmd", "x", "-duration", "0"}, "one of -duration and -calls"},
		{"unknown era", []string{"-cmd", "x", "-era", "future"}, `-era "future"`},
		{"idle over stdio", []string{"-cmd", "x", "-idle-sessions", "5"}, "-idle-sessions needs -url"},
		{"idle modern", []string{"-url", "http://127.0.0.1:1/mcp", "-era", "modern", "-idle-sessions", "5"}, "modern clients have none"},
		{"stray argument", []string{"-cmd", "x", "more"}, "unexpected arguments"},
		{"bearer over stdio", []string{"-cmd", "x", "-bearer-file", "tok"}, "-bearer-file needs -url"},
		{"bearer file missing", []string{"-url", "http://127.0.0.1:1/mcp", "-bearer-file", "/nonexistent/tok"}, "-bearer-file: open /nonexistent/tok"},
		{"good", []string{"-cmd", "prog -flag value", "-clients", "16", "-calls", "5"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("parseFlags: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parseFlags: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	c, err := parseFlags([]string{"-cmd", "  prog -flag   value "}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"prog", "-flag", "value"}, c.cmd); diff != "" {
		t.Errorf("command (-want +got):\n%s", diff)
	}
}

// authenticated wraps an MCP endpoint so that it answers 401 to any request
// without "Authorization: Bearer token", as an authenticating gateway does,
// and counts the requests it let through.
func authenticated(t *testing.T, token string, passed *atomic.Int64) string {
	t.Helper()
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return echoServer(0) },
		&mcp.StreamableHTTPOptions{JSONResponse: true})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		passed.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := t.TempDir() + "/token"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBearerFile(t *testing.T) {
	const token = "sk-bench-0123456789abcdef.eyJhbGciOiJFUzI1NiJ9"
	var passed atomic.Int64
	url := authenticated(t, token, &passed)

	t.Run("without the token", func(t *testing.T) {
		_, err := runLoad(t, "-url", url, "-calls", "1", "-warmup", "0")
		if err == nil || !strings.Contains(err.Error(), "connecting") {
			t.Errorf("run: %v, want a connection error", err)
		}
	})
	t.Run("with the token", func(t *testing.T) {
		before := passed.Load()
		for _, content := range []string{token, token + "\n", token + "\r\n"} {
			rep, err := runLoad(t, "-url", url, "-bearer-file", writeFile(t, content), "-clients", "2", "-calls", "20", "-warmup", "0")
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep)
			if rep.Errors != 0 {
				t.Errorf("%d errors, first %q", rep.Errors, rep.FirstError)
			}
		}
		// Each run: two sessions opened (initialize, initialized), 20 calls.
		if got := passed.Load() - before; got < 3*(2*2+20) {
			t.Errorf("%d authenticated requests, want at least %d", got, 3*(2*2+20))
		}
	})
	t.Run("idle sessions too", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), []string{"-url", url, "-bearer-file", writeFile(t, token), "-idle-sessions", "3", "-hold", "10ms"}, &stdout, &stderr)
		if err != nil {
			t.Fatalf("run: %v (stderr %q)", err, stderr.String())
		}
	})
	t.Run("a wrong token is refused and never printed", func(t *testing.T) {
		const wrong = "sk-bench-wrong-0123456789"
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), []string{"-url", url, "-bearer-file", writeFile(t, wrong), "-calls", "1", "-warmup", "0"}, &stdout, &stderr)
		if err == nil {
			t.Fatal("run succeeded with a wrong token")
		}
		for _, s := range []string{err.Error(), stdout.String(), stderr.String()} {
			if strings.Contains(s, wrong) {
				t.Errorf("the token appears in the output: %q", s)
			}
		}
	})
	t.Run("bad files", func(t *testing.T) {
		for _, tc := range []struct{ name, content, wantErr string }{
			{"empty", "", "empty"},
			{"only a newline", "\n", "empty"},
			{"two lines", token + "\n" + token + "\n", "more than one line"},
			{"a space inside", "Bearer " + token, "white space"},
			{"too long", strings.Repeat("a", maxBearer+1), "longer than"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := parseFlags([]string{"-url", url, "-bearer-file", writeFile(t, tc.content)}, io.Discard)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags: %v, want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), token) {
					t.Errorf("the error quotes the token: %v", err)
				}
			})
		}
	})
}

func TestSummarize(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Microsecond // reversed, to check sorting
	}
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"empty", nil, summary{}},
		{"one", ms(4), summary{4000, 4000, 4000, 4000, 4000}},
		{"two", ms(1, 3), summary{2000, 1000, 3000, 3000, 3000}},
		{"hundred", hundred, summary{50.5, 50, 90, 99, 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := summarize(tt.in)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(summary{})); diff != "" {
				t.Errorf("summarize (-want +got):\n%s", diff)
			}
		})
	}
}

// TestIdleSessions opens idle sessions, checks that the server holds them
// while the command waits, and that they are closed once it is told to stop.
func TestIdleSessions(t *testing.T) {
	const n = 25
	var initialized atomic.Int64
	s := mcp.NewServer(&mcp.Implementation{Name: "idle", Version: "1"}, &mcp.ServerOptions{
		InitializedHandler: func(context.Context, *mcp.InitializedRequest) { initialized.Add(1) },
	})
	url := httpTarget(t, s, false)
	countSessions := func() int {
		n := 0
		for range s.Sessions() {
			n++
		}
		return n
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-url", url, "-idle-sessions", fmt.Sprint(n), "-parallel", "8"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadBytes('\n')
	if err != nil {
		t.Fatalf("reading the report: %v", err)
	}
	go io.Copy(io.Discard, pr)
	var rep idleReport
	if err := json.Unmarshal(line, &rep); err != nil {
		t.Fatalf("decoding %q: %v", line, err)
	}
	if diff := cmp.Diff(idleReport{Target: url, IdleSessions: n, OpenSeconds: rep.OpenSeconds}, rep); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	// The server runs its initialized handler after it has accepted the
	// notification, so the last ones may still be on their way.
	for deadline := time.Now().Add(10 * time.Second); initialized.Load() < n && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := initialized.Load(); got != n {
		t.Errorf("server saw %d initialized sessions, want %d", got, n)
	}
	if got := countSessions(); got != n {
		t.Errorf("server holds %d sessions while the command waits, want %d", got, n)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if got := countSessions(); got != 0 {
		t.Errorf("server still holds %d sessions after the command closed them", got)
	}
}

func TestIdleSessionsHold(t *testing.T) {
	url := httpTarget(t, echoServer(0), false)
	var stdout bytes.Buffer
	start := time.Now()
	if err := run(t.Context(), []string{"-url", url, "-idle-sessions", "3", "-hold", "150ms", "-sse"}, &stdout, io.Discard); err != nil {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("returned after %v, want at least the hold time", d)
	}
	var rep idleReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.IdleSessions != 3 || !rep.SSE || rep.Errors != 0 {
		t.Errorf("report %+v, want 3 sessions with SSE and no error", rep)
	}
}

func TestIdleSessionsReportFailures(t *testing.T) {
	// Nothing listens on a port that was just closed.
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL + "/mcp"
	ts.Close()
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"-url", url, "-idle-sessions", "2", "-timeout", "2s"}, &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "2 of 2 sessions failed to open") {
		t.Errorf("run: %v, want a failure to open", err)
	}
}
