package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/gateway"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Helpers of the robustness tests. They speak raw HTTP to an in-process
// gateway so that malformed input reaches it byte for byte, and they run
// real upstream servers: the go-sdk conformance everything-server and
// testdata/misbehave, which crashes, hangs and dawdles on request.

const (
	rbLegacyVersion = "2025-11-25"
	rbModernVersion = "2026-07-28"
	// rbDeadline bounds every request a test sends, so that a gateway that
	// never answers fails the test instead of hanging it.
	rbDeadline = 20 * time.Second
)

// rbLeakCheck verifies, when the test ends, that it left no goroutine
// behind. Call it first, so that its cleanup runs after every other one.
// Goroutines that already existed (other tests' leftovers, the runtime's)
// are ignored.
func rbLeakCheck(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// Upstream sessions of closed client sessions shut down in the
		// background (close stdin, wait, signal); give them time.
		deadline := time.Now().Add(10 * time.Second)
		for goleak.Find(ignore) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		goleak.VerifyNone(t, ignore)
	})
}

// rbBuild compiles a Go main package into the test's temporary directory
// and returns the path of the program.
func rbBuild(t *testing.T, pkg, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func rbMisbehave(t *testing.T) string {
	return rbBuild(t, "./testdata/misbehave", "misbehave")
}

func rbEverything(t *testing.T) string {
	return rbBuild(t, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server", "everything")
}

// rbEvents is the file a misbehave server appends its events to.
type rbEvents string

func rbNewEvents(t *testing.T) rbEvents {
	return rbEvents(filepath.Join(t.TempDir(), "events"))
}

func (ev rbEvents) lines() []string {
	b, err := os.ReadFile(string(ev))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// count returns how many events start with prefix.
func (ev rbEvents) count(prefix string) int {
	n := 0
	for _, l := range ev.lines() {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

// wait polls until an event starting with prefix has been recorded n times.
func (ev rbEvents) wait(t *testing.T, prefix string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for ev.count(prefix) < n {
		if time.Now().After(deadline) {
			t.Fatalf("upstream event %q seen %d times after %v, want %d; events: %q", prefix, ev.count(prefix), timeout, n, ev.lines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rbLog collects the gateway's log; a failing test prints its tail.
type rbLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *rbLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *rbLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// rbStartHTTP runs an upstream server program that serves Streamable HTTP
// and returns its URL. The process is stopped when the test ends.
//
// A misbehave server picks its own port and announces it; the
// everything-server is told one (listen flag given as the first of args).
func rbStartHTTP(t *testing.T, logs *rbLog, bin string, args ...string) string {
	t.Helper()
	var url string
	if filepath.Base(bin) == "everything" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		args = append([]string{"-http", addr}, args...)
		url = "http://" + addr + "/"
	} else {
		args = append([]string{"-http"}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if url == "" {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			t.Fatalf("%s did not announce its address: %v", bin, err)
		}
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
		if !ok {
			t.Fatalf("%s: unexpected first line %q", bin, line)
		}
		return addr + "/"
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(url, "http://"), "/"))
		if err == nil {
			c.Close()
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections: %v", bin, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rbEnv is a gateway served over HTTP, with a client to talk to it.
type rbEnv struct {
	g      *gateway.Gateway
	url    string
	tr     *http.Transport
	client *http.Client
	logs   *rbLog
}

// rbNewEnv builds a gateway from a YAML configuration and serves it the
// way the serve command does, at /mcp and /mcp/<profile>.
func rbNewEnv(t *testing.T, logs *rbLog, yamlText string) *rbEnv {
	t.Helper()
	cfg, err := config.Parse([]byte(yamlText), "test.yaml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yamlText)
	}
	if logs == nil {
		logs = &rbLog{}
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := gateway.New(cfg, gateway.Options{
		Logger:       log,
		BaseEnv:      gateway.MinimalEnv(),
		CloseTimeout: 500 * time.Millisecond,
		TermTimeout:  500 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	h := gateway.NewHTTPHandler(g, gateway.HTTPOptions{AllowedOrigins: cfg.HTTP.AllowedOrigins, AllowedHosts: cfg.HTTP.AllowedHosts})
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	mux.Handle("/mcp/", h)
	url := serveFront(t, mux)
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}
	e := &rbEnv{g: g, url: url, tr: tr, client: &http.Client{Transport: tr}, logs: logs}
	t.Cleanup(func() {
		g.BeginShutdown()
		tr.CloseIdleConnections()
		if err := g.Close(); err != nil {
			t.Errorf("gateway close: %v", err)
		}
		tr.CloseIdleConnections()
		if t.Failed() {
			t.Logf("gateway log (tail):\n%s", logs.tail(16<<10))
		}
	})
	return e
}

// rbResp is what the gateway answered to one POST.
type rbResp struct {
	Status int
	Header http.Header
	Body   []byte
	// Msg is the JSON-RPC response (the last one on an SSE stream); nil
	// when the body holds none.
	Msg *mcp.Message
	// Related are the messages an SSE stream carried before the response.
	Related []*mcp.Message
}

// rbOutcome is the part of an answer that tests compare.
type rbOutcome struct {
	Status int
	Code   int64  // JSON-RPC error code; 0 for a result or no message
	ID     string // the response's id, byte for byte; "" when no message
}

func (r *rbResp) outcome() rbOutcome {
	o := rbOutcome{Status: r.Status}
	if r.Msg != nil {
		o.ID = string(r.Msg.ID)
		if r.Msg.Error != nil {
			o.Code = r.Msg.Error.Code
		}
	}
	return o
}

func (r *rbResp) String() string {
	body := r.Body
	if len(body) > 600 {
		body = append(body[:600:600], "..."...)
	}
	return fmt.Sprintf("HTTP %d %s", r.Status, body)
}

// rbToolResult is the part of a tools/call result tests look at.
type rbToolResult struct {
	Text    string
	IsError bool
}

func (r *rbResp) toolResult() (rbToolResult, error) {
	if r.Msg == nil || r.Msg.Error != nil || r.Msg.Result == nil {
		return rbToolResult{}, fmt.Errorf("not a result: %s", r)
	}
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(r.Msg.Result, &res); err != nil {
		return rbToolResult{}, fmt.Errorf("result: %v", err)
	}
	var out rbToolResult
	out.IsError = res.IsError
	for _, c := range res.Content {
		if c.Type == "text" {
			out.Text += c.Text
		}
	}
	return out, nil
}

// rbMod adjusts a request before it is sent.
type rbMod func(*http.Request)

// rbHeader sets a request header, rbAddHeader adds one more value.
func rbHeader(k, v string) rbMod    { return func(r *http.Request) { r.Header.Set(k, v) } }
func rbAddHeader(k, v string) rbMod { return func(r *http.Request) { r.Header.Add(k, v) } }

func rbSession(id string) rbMod { return rbHeader("Mcp-Session-Id", id) }
func rbOrigin(o string) rbMod   { return rbHeader("Origin", o) }

// rbHost sends another Host header than the server's address.
func rbHost(h string) rbMod { return func(r *http.Request) { r.Host = h } }

// rbMethod turns the POST into another HTTP method (without a body).
func rbMethod(m string) rbMod { return func(r *http.Request) { r.Method = m } }

// rbLegacyHeaders are what a legacy client sends in an open session.
func rbLegacyHeaders(sid string) []rbMod {
	return []rbMod{rbSession(sid), rbHeader("Mcp-Protocol-Version", rbLegacyVersion)}
}

// do sends body to path and reads the whole answer. It is safe to call from
// any goroutine.
func (e *rbEnv) do(ctx context.Context, path string, body []byte, mods ...rbMod) (*rbResp, error) {
	ctx, cancel := context.WithTimeout(ctx, rbDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for _, m := range mods {
		m(req)
	}
	if req.Method != http.MethodPost {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &rbResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if len(bytes.TrimSpace(b)) == 0 {
		return r, nil
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		m, err := mcp.Decode(b, mcp.Limits{MaxBytes: 64 << 20})
		if err != nil {
			return nil, fmt.Errorf("answer is not a JSON-RPC message (%v): %s", err, r)
		}
		r.Msg = m
	case "text/event-stream":
		msgs, err := rbParseSSE(b)
		if err != nil {
			return nil, fmt.Errorf("%v: %s", err, r)
		}
		for _, m := range msgs {
			if m.IsResponse() {
				r.Msg = m
			} else {
				r.Related = append(r.Related, m)
			}
		}
	}
	return r, nil
}

// post is do for the test's own goroutine: a transport failure is fatal.
func (e *rbEnv) post(t *testing.T, path string, body string, mods ...rbMod) *rbResp {
	t.Helper()
	r, err := e.do(context.Background(), path, []byte(body), mods...)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	return r
}

func rbParseSSE(b []byte) ([]*mcp.Message, error) {
	var out []*mcp.Message
	for _, ev := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		var data []string
		for _, line := range strings.Split(ev, "\n") {
			if v, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(v, " "))
			}
		}
		if len(data) == 0 {
			continue
		}
		m, err := mcp.Decode([]byte(strings.Join(data, "\n")), mcp.Limits{MaxBytes: 64 << 20})
		if err != nil {
			return nil, fmt.Errorf("SSE event is not a JSON-RPC message: %v", err)
		}
		out = append(out, m)
	}
	return out, nil
}

// rbInitBody is a legacy client's initialize request.
const rbInitBody = `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + rbLegacyVersion + `","capabilities":{},"clientInfo":{"name":"robust-test","version":"1.0.0"}}}`

// initLegacy opens a legacy session at path and returns its id.
func (e *rbEnv) initLegacy(ctx context.Context, path string) (string, error) {
	r, err := e.do(ctx, path, []byte(rbInitBody))
	if err != nil {
		return "", err
	}
	if r.Status != http.StatusOK || r.Msg == nil || r.Msg.Error != nil {
		return "", fmt.Errorf("initialize: %s", r)
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		return "", fmt.Errorf("initialize: no Mcp-Session-Id in %v", r.Header)
	}
	n, err := e.do(ctx, path, []byte(`{"jsonrpc":"2.0","method":"notifications/initialized"}`), rbLegacyHeaders(sid)...)
	if err != nil {
		return "", err
	}
	if n.Status != http.StatusAccepted {
		return "", fmt.Errorf("notifications/initialized: %s", n)
	}
	return sid, nil
}

func (e *rbEnv) mustInitLegacy(t *testing.T, path string) string {
	t.Helper()
	sid, err := e.initLegacy(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

// deleteSession ends a legacy session and returns the HTTP status.
func (e *rbEnv) deleteSession(ctx context.Context, path, sid string, mods ...rbMod) (int, error) {
	mods = append([]rbMod{rbMethod(http.MethodDelete)}, mods...)
	mods = append(mods, rbSession(sid))
	r, err := e.do(ctx, path, nil, mods...)
	if err != nil {
		return 0, err
	}
	return r.Status, nil
}

// rbCall is the body of a tools/call request.
func rbCall(id, tool, args string) string {
	if args == "" {
		args = "{}"
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":"tools/call","params":{"name":%q,"arguments":%s}}`, id, tool, args)
}

// rbModernMeta is the per-request metadata of a modern client.
const rbModernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"` + rbModernVersion + `","io.modelcontextprotocol/clientInfo":{"name":"robust-test","version":"1.0.0"},"io.modelcontextprotocol/clientCapabilities":{}}`

// rbModern is the body of a modern request; fields are the members of
// params besides _meta (may be empty).
func rbModern(id, method, fields string) string {
	params := "{" + rbModernMeta + "}"
	if fields != "" {
		params = "{" + fields + "," + rbModernMeta + "}"
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%s,"method":%q,"params":%s}`, id, method, params)
}

// rbModernCall is a modern tools/call body.
func rbModernCall(id, tool, args string) string {
	if args == "" {
		args = "{}"
	}
	return rbModern(id, "tools/call", fmt.Sprintf(`"name":%q,"arguments":%s`, tool, args))
}

// rbModernHeaders are the headers a modern client sends with a request;
// name is the Mcp-Name value ("" for none).
func rbModernHeaders(method, name string) []rbMod {
	mods := []rbMod{rbHeader("Mcp-Protocol-Version", rbModernVersion), rbHeader("Mcp-Method", method)}
	if name != "" {
		mods = append(mods, rbHeader("Mcp-Name", name))
	}
	return mods
}

// rbWantEcho checks that r is the result of echo returning text.
func rbWantEcho(t *testing.T, r *rbResp, text string) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("echo: %s", r)
	}
	got, err := r.toolResult()
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if want := (rbToolResult{Text: text}); got != want {
		t.Fatalf("echo result = %+v, want %+v", got, want)
	}
}

// echoLegacy calls the echo tool in a legacy session and checks the answer.
func (e *rbEnv) echoLegacy(t *testing.T, path, sid, text string) {
	t.Helper()
	r := e.post(t, path, rbCall(`"echo-check"`, "echo", fmt.Sprintf(`{"text":%q}`, text)), rbLegacyHeaders(sid)...)
	rbWantEcho(t, r, text)
}

// echoModern calls the echo tool as a modern client and checks the answer.
func (e *rbEnv) echoModern(t *testing.T, path, text string) {
	t.Helper()
	r := e.post(t, path, rbModernCall(`"echo-check"`, "echo", fmt.Sprintf(`{"text":%q}`, text)), rbModernHeaders("tools/call", "echo")...)
	rbWantEcho(t, r, text)
}

// rbIsTimeout reports whether err is a client-side deadline or
// cancellation, which a test provoked on purpose.
func rbIsTimeout(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
