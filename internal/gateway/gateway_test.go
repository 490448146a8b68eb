package gateway_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/gateway"
	wire "github.com/sluicehq/sluice/internal/mcp"
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
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		g.Close()
	})
	return g, srv.URL
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
