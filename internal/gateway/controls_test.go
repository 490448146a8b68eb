package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/config"
	wire "github.com/sluicehq/sluice/internal/mcp"
)

// controlsUpstream serves a legacy-era MCP server (go-sdk, stateful) with
// the tools the strict-controls tests need. writes counts the calls of
// "write" that reached it; "write" does not validate its arguments itself,
// so only Sluice stands between a bad call and the tool.
func controlsUpstream(t *testing.T, writes *atomic.Int32) string {
	t.Helper()
	return controlsUpstreamSampling(t, writes, nil)
}

// controlsUpstreamSampling is controlsUpstream that also reports, on
// sampled when it is not nil, how each sampling request of "summarize"
// ended: nil, or the error it was answered with.
func controlsUpstreamSampling(t *testing.T, writes *atomic.Int32, sampled chan<- error) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{
		Name: "write",
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"path":{"type":"string","minLength":1},"count":{"type":"integer","maximum":3},` +
			`"opts":{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string"}}}}},` +
			`"required":["path"],"additionalProperties":false}`),
	}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		writes.Add(1)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "wrote " + string(req.Params.Arguments)}}}, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Arg string `json:"arg"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Arg}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "summarize"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
			MaxTokens: 10,
			Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "summarize"}}},
		})
		if sampled != nil {
			sampled <- err
		}
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{res.Content}}, nil, nil
	})
	s.AddPrompt(&mcp.Prompt{Name: "brief"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "be brief"}}}}, nil
	})
	return serveHTTP(t, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: true}))
}

// controlsConfig puts the upstream behind Sluice with a server method filter
// (no sampling), a profile that may not use prompts or set the log level,
// and a per-principal rate limit on echo.
func controlsConfig(url string) string {
	return `servers:
  up:
    url: "` + url + `"
    era: legacy
    methods: {deny: ["sampling/*"]}
profiles:
  ro:
    methods: {deny: ["prompts/*", logging/setLevel]}
rate_limits:
  - {id: echo-calls, per: principal, rate: 5/s, burst: 2, target: {tools: [echo]}}
`
}

// denial returns the JSON-RPC error of a call Sluice denied, failing the
// test when err is something else.
func denial(t *testing.T, err error, wantReason string) *jsonrpc.Error {
	t.Helper()
	var we *jsonrpc.Error
	if !errors.As(err, &we) {
		t.Fatalf("got %v, want a JSON-RPC error", err)
	}
	var data struct {
		Reason       string `json:"reason"`
		RetryAfterMs int64  `json:"retryAfterMs"`
	}
	_ = json.Unmarshal(we.Data, &data)
	if we.Code != wire.CodeDenied || data.Reason != wantReason {
		t.Fatalf("got error %d %q data %s, want code %d reason %q", we.Code, we.Message, we.Data, wire.CodeDenied, wantReason)
	}
	return we
}

// TestStrictControls runs the strict API controls end to end, with a
// go-sdk client of each era: arguments validated against the tool's input
// schema with errors naming the field, unknown tools refused (before the
// session ever listed tools), a profile's method filter, and a server's
// sampling request refused by its method filter.
func TestStrictControls(t *testing.T) {
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			var writes atomic.Int32
			_, base := start(t, controlsConfig(controlsUpstream(t, &writes)))
			var sampled atomic.Int32
			c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
				CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
					sampled.Add(1)
					return &mcp.CreateMessageResult{Role: "assistant", Model: "m", Content: &mcp.TextContent{Text: "short"}}, nil
				},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: era.version})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()

			// No tools/list first: Sluice fetches the list itself.
			_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "hidden", Arguments: map[string]any{}})
			if we := denial(t, err, "allowlist-tool-unknown"); !strings.Contains(we.Message, `unknown tool "hidden"`) {
				t.Errorf("unknown tool message %q", we.Message)
			}

			bad := []struct {
				name string
				args map[string]any
				want string
			}{
				{"wrong-type", map[string]any{"path": 7}, `arguments.path: got number, want string`},
				{"missing", map[string]any{"count": 1}, `arguments.path: is required`},
				{"bound", map[string]any{"path": "/a", "count": 9}, `arguments.count: must be at most 3`},
				{"nested", map[string]any{"path": "/a", "opts": map[string]any{"tags": []any{"x", 2}}}, `arguments.opts.tags[1]: got number, want string`},
				{"extra", map[string]any{"path": "/a", "force": true}, `arguments.force: is not allowed`},
			}
			for _, b := range bad {
				_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: b.args})
				we := denial(t, err, "allowlist-arguments-invalid")
				if !strings.Contains(we.Message, b.want) {
					t.Errorf("%s: message %q, want it to name the field: %q", b.name, we.Message, b.want)
				}
			}
			if n := writes.Load(); n != 0 {
				t.Errorf("%d refused calls reached the server", n)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{"path": "/a", "count": 2}})
			if err != nil || res.IsError || writes.Load() != 1 {
				t.Fatalf("valid call: %v %+v (server saw %d calls)", err, res, writes.Load())
			}

			// The server may not ask for sampling: a legacy client's request
			// is refused on its way (the server's tool fails with the
			// reason), a modern client's input_required is refused whole.
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "summarize", Arguments: map[string]any{}})
			switch era.name {
			case "legacy":
				if err != nil || !res.IsError || len(res.Content) == 0 || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `server "up" may not send "sampling/createMessage"`) {
					t.Errorf("summarize: %v %+v, want the tool's error carrying Sluice's refusal", err, res)
				}
			default:
				denial(t, err, "allowlist-method-denied")
			}
			if n := sampled.Load(); n != 0 {
				t.Errorf("the client was asked to sample %d times", n)
			}

			// The default profile may use prompts; profile ro may not.
			if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "brief"}); err != nil {
				t.Errorf("prompt on the default profile: %v", err)
			}
			ro, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp/ro"}, &mcp.ClientSessionOptions{ProtocolVersion: era.version})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			_, err = ro.GetPrompt(ctx, &mcp.GetPromptParams{Name: "brief"})
			if we := denial(t, err, "allowlist-method-denied"); !strings.Contains(we.Message, `method "prompts/get" is not available`) {
				t.Errorf("prompts/get message %q", we.Message)
			}
			_, err = ro.ListPrompts(ctx, nil)
			denial(t, err, "allowlist-method-denied")
			if era.name == "legacy" {
				// Answered by Sluice without the chain, filtered all the same.
				err = ro.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"})
				denial(t, err, "allowlist-method-denied")
			}
			if _, err := ro.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{"path": "/b"}}); err != nil {
				t.Errorf("tools/call on profile ro: %v", err)
			}
		})
	}
}

// retryAfterRecorder records the status and Retry-After header of the
// gateway's answers to tools/call, so the test sees the HTTP side too.
type retryAfterRecorder struct {
	mu      sync.Mutex
	headers []string
}

func (r *retryAfterRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && req.Header.Get("Mcp-Method") != "ping" {
		r.mu.Lock()
		r.headers = append(r.headers, strconv.Itoa(resp.StatusCode)+" "+resp.Header.Get("Retry-After"))
		r.mu.Unlock()
	}
	return resp, err
}

func (r *retryAfterRecorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.headers) == 0 {
		return ""
	}
	return r.headers[len(r.headers)-1]
}

// TestRateLimit hits a per-principal limit through the gateway with go-sdk
// clients of each era: the agent gets Sluice's error with retryAfterMs, the
// HTTP answer carries Retry-After, callers without authentication share one
// bucket, and the call succeeds again after the wait.
func TestRateLimit(t *testing.T) {
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			var writes atomic.Int32
			_, base := start(t, controlsConfig(controlsUpstream(t, &writes)))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rec := &retryAfterRecorder{}
			connect := func() *mcp.ClientSession {
				cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx,
					&mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: rec}},
					&mcp.ClientSessionOptions{ProtocolVersion: era.version})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cs.Close() })
				return cs
			}
			a, b := connect(), connect()
			echo := func(cs *mcp.ClientSession) error {
				res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"arg": "x"}})
				if err == nil && res.IsError {
					err = errors.New("tool error")
				}
				return err
			}
			// Limits that do not count this tool leave other calls alone.
			for range 5 {
				if _, err := a.CallTool(ctx, &mcp.CallToolParams{Name: "write", Arguments: map[string]any{"path": "/a"}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := echo(a); err != nil {
				t.Fatal(err)
			}
			if err := echo(a); err != nil {
				t.Fatal(err)
			}
			// The burst is spent; b is anonymous too and shares the bucket.
			err := echo(b)
			we := denial(t, err, "ratelimit-exceeded")
			var data struct {
				RetryAfterMs int64 `json:"retryAfterMs"`
			}
			if err := json.Unmarshal(we.Data, &data); err != nil || data.RetryAfterMs <= 0 || data.RetryAfterMs > 200 {
				t.Fatalf("retryAfterMs %d in %s, want 1..200 (a token every 200ms)", data.RetryAfterMs, we.Data)
			}
			if !strings.Contains(we.Message, "rate limit exceeded; retry in") {
				t.Errorf("message %q", we.Message)
			}
			if got := rec.last(); got != "200 1" {
				t.Errorf("HTTP status and Retry-After %q, want \"200 1\"", got)
			}
			time.Sleep(time.Duration(data.RetryAfterMs)*time.Millisecond + 20*time.Millisecond)
			if err := echo(b); err != nil {
				t.Errorf("after waiting retryAfterMs: %v", err)
			}
		})
	}
}

// TestRateLimitSurvivesReload checks that a reload keeps the buckets: a
// caller who spent the burst cannot get a fresh one by waiting for the
// configuration to change.
func TestRateLimitSurvivesReload(t *testing.T) {
	var writes atomic.Int32
	yaml := controlsConfig(controlsUpstream(t, &writes))
	yaml = strings.Replace(yaml, "rate: 5/s", "rate: 1/h", 1)
	g, base := start(t, yaml)
	cs := connect(t, base+"/mcp", wire.Version20251125)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		_, err := callText(ctx, cs, "echo", "x")
		if i < 2 && err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if i == 2 {
			denial(t, err, "ratelimit-exceeded")
		}
	}
	cfg, err := config.Parse([]byte(yaml), "reload.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	_, err = callText(ctx, cs, "echo", "x")
	denial(t, err, "ratelimit-exceeded")
}
