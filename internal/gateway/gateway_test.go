package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/gateway"
	"github.com/sluicehq/sluice/internal/http1"
	wire "github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/rawio"
)

// upstreamServer serves an MCP server with the given tools over Streamable
// HTTP on 127.0.0.1. Each tool answers "<server>:<tool>:<arg>".
func upstreamServer(t *testing.T, name string, stateless bool, tools ...string) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	for _, tool := range tools {
		mcp.AddTool(s, &mcp.Tool{Name: tool, Description: "tool " + tool}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
			Arg string `json:"arg"`
		}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + ":" + tool + ":" + in.Arg}}}, nil, nil
		})
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: stateless, JSONResponse: true})
	return serveHTTP(t, h)
}

func serveHTTP(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// start runs a gateway for cfg behind an httptest server and returns its
// base URL.
func start(t *testing.T, yaml string) (*gateway.Gateway, string) { return startB(t, yaml) }

func startB(t testing.TB, yaml string) (*gateway.Gateway, string) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(cfg, gateway.Options{Logger: log, BaseEnv: gateway.MinimalEnv()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h := gateway.NewHTTPHandler(g, gateway.HTTPOptions{})
	mux.Handle("/mcp", h)
	mux.Handle("/mcp/", h)
	url := serveFront(t, mux)
	t.Cleanup(func() { g.Close() })
	return g, url
}

// serveFront serves h as `sluice serve` serves a plain listener: requests
// on the hot path read and answered by http1, the rest by net/http behind
// it. Cleanups run in reverse, so the servers close before the gateway.
func serveFront(t testing.TB, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := &http1.Server{Handler: h}
	srv := &http.Server{Handler: h}
	go front.Serve(rawio.Listener{Listener: ln})
	go srv.Serve(front.Fallback())
	t.Cleanup(func() {
		front.Close()
		srv.Close()
	})
	return "http://" + ln.Addr().String()
}

var eras = []struct {
	name    string
	version string
}{
	{"legacy", wire.Version20251125},
	{"modern", wire.Version20260728},
}

func connect(t *testing.T, url, version string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	if got := cs.InitializeResult().ProtocolVersion; got != version {
		t.Fatalf("negotiated %s, want %s", got, version)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func callText(ctx context.Context, cs *mcp.ClientSession, tool, arg string) (string, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{"arg": arg}})
	if err != nil {
		return "", err
	}
	if res.IsError || len(res.Content) == 0 {
		return "", errors.New("tool error")
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

// TestAggregation puts two upstreams, one of each era, behind one endpoint
// and checks namespacing, routing, the allow-list guard and profiles, for
// clients of both eras.
func TestAggregation(t *testing.T) {
	alpha := upstreamServer(t, "alpha", false, "read", "write")
	beta := upstreamServer(t, "beta", true, "search", "delete_all")
	_, base := start(t, `
servers:
  alpha: {url: "`+alpha+`", era: legacy}
  beta:
    url: "`+beta+`"
    era: modern
    tools: {deny: ["delete_*"]}
profiles:
  readonly:
    servers: [alpha]
    tools: {allow: ["read"]}
`)
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cs := connect(t, base+"/mcp", era.version)
			if diff := cmp.Diff([]string{"alpha__read", "alpha__write", "beta__search"}, toolNames(t, cs)); diff != "" {
				t.Errorf("tools (-want +got):\n%s", diff)
			}
			for tool, want := range map[string]string{"alpha__read": "alpha:read:x", "beta__search": "beta:search:x"} {
				got, err := callText(ctx, cs, tool, "x")
				if err != nil || got != want {
					t.Errorf("call %s = %q, %v; want %q", tool, got, err, want)
				}
			}
			_, err := callText(ctx, cs, "beta__delete_all", "x")
			var rpc *jsonrpc.Error
			if !errors.As(err, &rpc) || rpc.Code != wire.CodeDenied || !strings.Contains(string(rpc.Data), "allowlist-tool-denied") {
				t.Errorf("denied call: err = %v, want code %d with reason allowlist-tool-denied", err, wire.CodeDenied)
			}
			_, err = callText(ctx, cs, "gamma__read", "x")
			if !errors.As(err, &rpc) || rpc.Code != wire.CodeInvalidParams {
				t.Errorf("unknown server: err = %v, want invalid params", err)
			}

			ro := connect(t, base+"/mcp/readonly", era.version)
			if diff := cmp.Diff([]string{"read"}, toolNames(t, ro)); diff != "" {
				t.Errorf("readonly profile tools (-want +got):\n%s", diff)
			}
			if got, err := callText(ctx, ro, "read", "y"); err != nil || got != "alpha:read:y" {
				t.Errorf("readonly read = %q, %v", got, err)
			}
			if _, err := callText(ctx, ro, "write", "y"); !errors.As(err, &rpc) || rpc.Code != wire.CodeDenied {
				t.Errorf("readonly write: err = %v, want denied", err)
			}
		})
	}
}

// TestReloadKeepsSessions changes the allow-list under a live session.
func TestReloadKeepsSessions(t *testing.T) {
	alpha := upstreamServer(t, "alpha", false, "read", "write")
	g, base := start(t, `
servers:
  alpha: {url: "`+alpha+`", era: legacy}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cs := connect(t, base+"/mcp", wire.Version20251125)
	if got, err := callText(ctx, cs, "write", "1"); err != nil || got != "alpha:write:1" {
		t.Fatalf("before reload: %q, %v", got, err)
	}
	next, err := config.Parse([]byte(`
servers:
  alpha:
    url: "`+alpha+`"
    era: legacy
    tools: {deny: [write]}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(next); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"read"}, toolNames(t, cs)); diff != "" {
		t.Errorf("tools after reload (-want +got):\n%s", diff)
	}
	if got, err := callText(ctx, cs, "read", "2"); err != nil || got != "alpha:read:2" {
		t.Errorf("same session after reload: %q, %v", got, err)
	}
	if _, err := callText(ctx, cs, "write", "3"); err == nil {
		t.Error("write still allowed after reload")
	}
	if g.SessionCount() != 1 {
		t.Errorf("sessions = %d, want 1", g.SessionCount())
	}
}

// TestUpstreamCredentials checks that the client's own credentials never
// reach an upstream and that configured ones do, on both HTTP transports.
func TestUpstreamCredentials(t *testing.T) {
	for _, transport := range []string{"streamable-http", "sse"} {
		t.Run(transport, func(t *testing.T) {
			s := mcp.NewServer(&mcp.Implementation{Name: "creds", Version: "1"}, nil)
			mcp.AddTool(s, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
			})
			var (
				mu   sync.Mutex
				seen []http.Header
			)
			var h http.Handler
			if transport == "sse" {
				h = mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil)
			} else {
				h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
			}
			up := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, r.Header.Clone())
				mu.Unlock()
				h.ServeHTTP(w, r)
			}))
			t.Setenv("SLUICE_TEST_TOKEN", "upstream-secret")
			_, base := start(t, `
servers:
  creds:
    url: "`+up+`"
    transport: `+transport+`
    headers: {Authorization: "Bearer ${SLUICE_TEST_TOKEN}"}
`)
			for _, era := range eras {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
				hc := &http.Client{Transport: headerRT{"Authorization": "Bearer client-token", "Cookie": "session=client"}}
				cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: hc}, &mcp.ClientSessionOptions{ProtocolVersion: era.version})
				if err != nil {
					t.Fatal(err)
				}
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
				if err != nil || res.IsError {
					t.Fatalf("%s: call: %v %v", era.name, err, res)
				}
				cs.Close()
				cancel()
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 {
				t.Fatal("upstream saw no requests")
			}
			for _, hd := range seen {
				if got := hd.Get("Authorization"); got != "Bearer upstream-secret" {
					t.Errorf("upstream got Authorization %q, want the configured credential", got)
				}
				if hd.Get("Cookie") != "" {
					t.Errorf("client cookie reached the upstream: %q", hd.Get("Cookie"))
				}
			}
		})
	}
}

// headerRT adds headers to every request, as a client with its own
// credentials would.
type headerRT map[string]string

func (h headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h {
		r.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestIdleSessionsClosed checks that a legacy session a client abandoned
// (no DELETE, no GET stream) is closed after limits.session_idle, while one
// whose client keeps its GET stream open stays.
func TestIdleSessionsClosed(t *testing.T) {
	alpha := upstreamServer(t, "alpha", false, "read")
	g, base := start(t, `
limits: {session_idle: 200ms}
servers:
  alpha: {url: "`+alpha+`", era: legacy}
`)
	live := connect(t, base+"/mcp", wire.Version20251125) // holds a GET stream
	post := func(sid, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`)
	sid := resp.Header.Get("Mcp-Session-Id")
	post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if resp := post(sid, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list: %d", resp.StatusCode)
	}
	if g.SessionCount() != 2 {
		t.Fatalf("sessions = %d, want 2", g.SessionCount())
	}
	deadline := time.Now().Add(5 * time.Second)
	for g.Session(sid) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("abandoned session still open after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp := post(sid, `{"jsonrpc":"2.0","id":3,"method":"tools/list"}`); resp.StatusCode != http.StatusNotFound {
		t.Errorf("expired session answered %d, want 404", resp.StatusCode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := callText(ctx, live, "read", "x"); err != nil || got != "alpha:read:x" {
		t.Errorf("session with a GET stream was closed: %q, %v", got, err)
	}
}

// TestListChanged checks that an upstream's tools/list_changed reaches
// clients of both eras: legacy ones on their GET stream, modern ones on
// subscriptions/listen.
func TestListChanged(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "dyn", Version: "1"}, nil)
	add := func(name string) {
		mcp.AddTool(s, &mcp.Tool{Name: name}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
		})
	}
	add("first")
	up := serveHTTP(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			upEra := "legacy"
			if era.name == "modern" {
				upEra = "auto"
			}
			_, base := start(t, "servers:\n  dyn: {url: \""+up+"\", era: "+upEra+"}\n")
			changed := make(chan struct{}, 8)
			c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
				ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
			})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: era.version})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			before := toolNames(t, cs) // opens the upstream session
			name := "added_" + era.name
			// Give the client's notification stream a moment to be in place.
			deadline := time.Now().Add(10 * time.Second)
			add(name)
			for {
				select {
				case <-changed:
				case <-time.After(200 * time.Millisecond):
					if time.Now().After(deadline) {
						t.Fatalf("no tools/list_changed within 10s (tools before: %v)", before)
					}
					add(name) // re-adding notifies again
					continue
				}
				break
			}
			if got := toolNames(t, cs); !slices.Contains(got, name) {
				t.Errorf("tools after change = %v, want %s among them", got, name)
			}
		})
	}
}

// TestPagination puts more tools behind Sluice than fit one of its pages:
// the upstream's own pages are followed, Sluice pages the merged list with
// opaque cursors, and a forged cursor is refused.
func TestPagination(t *testing.T) {
	const n = 1234
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("tool_%04d", i)
	}
	many := upstreamServer(t, "many", false, names...)
	few := upstreamServer(t, "few", false, "one")
	_, base := start(t, `
servers:
  many: {url: "`+many+`", era: legacy}
  few: {url: "`+few+`", era: legacy}
`)
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			cs := connect(t, base+"/mcp", era.version)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var got []string
			pages := 0
			cursor := ""
			for {
				res, err := cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				pages++
				for _, tool := range res.Tools {
					got = append(got, tool.Name)
				}
				if res.NextCursor == "" {
					break
				}
				cursor = res.NextCursor
			}
			if len(got) != n+1 || pages < 3 {
				t.Fatalf("got %d tools in %d pages, want %d in at least 3", len(got), pages, n+1)
			}
			seen := map[string]bool{}
			for _, name := range got {
				if seen[name] {
					t.Fatalf("tool %s listed twice", name)
				}
				seen[name] = true
			}
			if !seen["few__one"] || !seen["many__tool_1233"] {
				t.Errorf("missing tools from one of the servers")
			}
			_, err := cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: "500.AAAAAAAAAAAAAAAAAAAAAA"})
			var rpc *jsonrpc.Error
			if !errors.As(err, &rpc) || rpc.Code != wire.CodeInvalidParams {
				t.Errorf("forged cursor: err = %v, want invalid params", err)
			}
		})
	}
}

// TestBridgeInputRequests checks elicitation across eras in both
// directions: a modern server's input_required result asked of a legacy
// client as elicitation/create, and a legacy server's elicitation/create
// returned to a modern client as input_required.
func TestBridgeInputRequests(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "asker", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "greet"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if r, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult); ok {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("hello %v", r.Content["name"])}}}, nil, nil
		}
		return &mcp.CallToolResult{
			InputRequests: mcp.InputRequestMap{"name": &mcp.ElicitParams{
				Message:         "Your name?",
				RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
			}},
			RequestState: "step-1",
		}, nil, nil
	})
	stateless := serveHTTP(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{Stateless: true}))
	stateful := serveHTTP(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	cases := []struct {
		name, url, upEra, clientVersion string
	}{
		{"legacy client, modern server", stateless, "modern", wire.Version20251125},
		{"modern client, legacy server", stateful, "legacy", wire.Version20260728},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, base := start(t, "servers:\n  asker: {url: \""+tc.url+"\", era: "+tc.upEra+"}\n")
			asked := 0
			c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
				ElicitationHandler: func(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					asked++
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
				},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: tc.clientVersion})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "greet"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Content) == 0 || res.Content[0].(*mcp.TextContent).Text != "hello Ada" || asked != 1 {
				t.Errorf("result %+v after %d elicitations, want \"hello Ada\" after 1", res.Content, asked)
			}
		})
	}
}
