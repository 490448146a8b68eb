package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/demo"
	wire "github.com/sluicehq/sluice/internal/mcp"
)

// statusRecorder remembers the HTTP status of every POST response.
type statusRecorder struct {
	mu       sync.Mutex
	statuses []int
}

func (s *statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.Method == http.MethodPost {
		s.mu.Lock()
		s.statuses = append(s.statuses, resp.StatusCode)
		s.mu.Unlock()
	}
	return resp, err
}

func (s *statusRecorder) last() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.statuses) == 0 {
		return 0
	}
	return s.statuses[len(s.statuses)-1]
}

// TestPolicy runs the policy guard in the real gateway with go-sdk
// clients of both eras: a filtered tools/list hides what the caller may
// not use, a call is checked with its arguments, and a denied call reaches
// the agent as a JSON-RPC error with the policy's message through an HTTP
// 403, after which the session goes on. Without authentication the
// principal is nil, which conditions see as authenticated == false.
func TestPolicy(t *testing.T) {
	alpha := upstreamServer(t, "alpha", false, "read", "write", "delete")
	beta := upstreamServer(t, "beta", true, "search", "export")
	_, base := start(t, `
servers:
  alpha: {url: "`+alpha+`", era: legacy}
  beta: {url: "`+beta+`", era: modern}
policy:
  rules:
    - id: reads
      effect: allow
      target: {servers: [alpha], tools: [read]}
      when: '!args.arg.startsWith("secret")'
    - id: anonymous-no-write
      effect: deny
      target: {tools: [write]}
      when: '!principal.authenticated'
      message: writing needs a signed-in user
    - id: writes
      effect: allow
      target: {tools: [write]}
    - id: search
      effect: allow
      target: {servers: [beta], tools: [search]}
      when: int(args.arg) <= 10
`)
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rec := &statusRecorder{}
			c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: rec}}, &mcp.ClientSessionOptions{ProtocolVersion: era.version})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			if diff := cmp.Diff([]string{"alpha__read", "beta__search"}, toolNames(t, cs)); diff != "" {
				t.Errorf("tools (-want +got):\n%s", diff)
			}
			for tool, arg := range map[string]string{"alpha__read": "x", "beta__search": "7"} {
				if _, err := callText(ctx, cs, tool, arg); err != nil {
					t.Errorf("call %s(%s): %v", tool, arg, err)
				}
			}
			denials := []struct {
				tool, arg, reason, msg string
			}{
				{"alpha__read", "secret-plans", "policy-no-matching-rule", `sluice: calling tool "alpha__read" is not allowed by policy`},
				{"alpha__write", "x", "policy-denied-by-rule", "sluice: writing needs a signed-in user"},
				{"alpha__delete", "x", "policy-no-matching-rule", `sluice: calling tool "alpha__delete" is not allowed by policy`},
				{"beta__search", "11", "policy-no-matching-rule", `sluice: calling tool "beta__search" is not allowed by policy`},
				{"beta__search", "eleven", "policy-condition-error", `sluice: calling tool "beta__search" is not allowed by policy`},
			}
			for _, d := range denials {
				_, err := callText(ctx, cs, d.tool, d.arg)
				var rpc *jsonrpc.Error
				if !errors.As(err, &rpc) {
					t.Errorf("%s(%s): err = %v, want a JSON-RPC error", d.tool, d.arg, err)
					continue
				}
				if rpc.Code != wire.CodeDenied || rpc.Message != d.msg || !strings.Contains(string(rpc.Data), `"reason":"`+d.reason+`"`) {
					t.Errorf("%s(%s): error %d %q %s, want %d %q with reason %s", d.tool, d.arg, rpc.Code, rpc.Message, rpc.Data, wire.CodeDenied, d.msg, d.reason)
				}
				if strings.Contains(string(rpc.Data), "anonymous-no-write") || strings.Contains(rpc.Message, "principal") {
					t.Errorf("%s: the agent sees policy internals: %s %s", d.tool, rpc.Message, rpc.Data)
				}
				if got := rec.last(); got != http.StatusForbidden {
					t.Errorf("%s(%s): HTTP status %d, want 403", d.tool, d.arg, got)
				}
				// The session survives the denial.
				if got, err := callText(ctx, cs, "alpha__read", "ok"); err != nil || got != "alpha:read:ok" {
					t.Errorf("after denying %s: read = %q, %v", d.tool, got, err)
				}
			}
		})
	}
}

// TestPolicyLists runs the policy over the demo server's tools, resources,
// resource templates and prompts, enforced and observed.
func TestPolicyLists(t *testing.T) {
	up := serveHTTP(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return demo.NewServer() }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
	const rules = `
  rules:
    - id: find
      effect: allow
      target: {tools: [find_customers]}
      when: args.?limit.orValue(10) <= 5
    - id: documents
      effect: allow
      target: {resources: ["demo://documents/*"]}
    - id: restricted
      effect: deny
      target: {resources: ["demo://documents/board-minutes"]}
`
	for _, mode := range []string{"enforce", "observe"} {
		t.Run(mode, func(t *testing.T) {
			_, base := start(t, "servers:\n  demo: {url: \""+up+"\", era: legacy}\npolicy:\n  mode: "+mode+rules)
			for _, era := range eras {
				t.Run(era.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					cs := connect(t, base+"/mcp", era.version)
					tools := toolNames(t, cs)
					res, err := cs.ListResources(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					var uris []string
					for _, r := range res.Resources {
						uris = append(uris, r.URI)
					}
					tres, err := cs.ListResourceTemplates(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					prompts, err := cs.ListPrompts(ctx, nil)
					if err != nil {
						t.Fatal(err)
					}
					_, readErr := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "demo://documents/board-minutes"})
					_, bigErr := cs.CallTool(ctx, &mcp.CallToolParams{Name: "find_customers", Arguments: map[string]any{"query": "", "limit": 6}})
					_, okErr := cs.CallTool(ctx, &mcp.CallToolParams{Name: "find_customers", Arguments: map[string]any{"query": "", "limit": 5}})
					if okErr != nil {
						t.Errorf("find_customers(limit 5): %v", okErr)
					}
					if mode == "observe" {
						if len(tools) != 5 || len(prompts.Prompts) != 1 || !slices.Contains(uris, "demo://documents/board-minutes") || readErr != nil || bigErr != nil {
							t.Errorf("observe mode changed something: tools %v, prompts %d, resources %v, read %v, call %v", tools, len(prompts.Prompts), uris, readErr, bigErr)
						}
						return
					}
					if diff := cmp.Diff([]string{"find_customers"}, tools); diff != "" {
						t.Errorf("tools (-want +got):\n%s", diff)
					}
					if slices.Contains(uris, "demo://documents/board-minutes") || slices.Contains(uris, demo.OutboxURI) || !slices.Contains(uris, "demo://documents/handbook") {
						t.Errorf("resources %v: want documents without board-minutes, no outbox", uris)
					}
					if len(tres.ResourceTemplates) != 1 || tres.ResourceTemplates[0].URITemplate != demo.DocumentURITemplate {
						t.Errorf("templates %+v, want the document template", tres.ResourceTemplates)
					}
					if len(prompts.Prompts) != 0 {
						t.Errorf("prompts %+v, want none", prompts.Prompts)
					}
					var rpc *jsonrpc.Error
					if !errors.As(readErr, &rpc) || rpc.Code != wire.CodeDenied || !strings.Contains(string(rpc.Data), "policy-denied-by-rule") {
						t.Errorf("read board-minutes: %v, want denied by rule", readErr)
					}
					if !errors.As(bigErr, &rpc) || rpc.Code != wire.CodeDenied || !strings.Contains(string(rpc.Data), "policy-no-matching-rule") {
						t.Errorf("find_customers(limit 6): %v, want denied", bigErr)
					}
				})
			}
		})
	}
}
