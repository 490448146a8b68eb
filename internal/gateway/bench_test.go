package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/authn"
)

// echoUpstream serves a stateful MCP server whose echo tool returns a text of
// the requested size.
func echoUpstream(b *testing.B) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true}}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Size int `json:"size"`
	}) (*mcp.CallToolResult, any, error) {
		text := "hello"
		if in.Size > 0 {
			text = strings.Repeat("x", in.Size)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	return serveHTTP(b, h)
}

// rawSession is a minimal legacy client: it initializes once and then posts
// tools/call bodies, so that the client's own cost is the same whether it
// talks to the upstream or to Sluice.
type rawSession struct {
	url, sid, authz string
	client          *http.Client
}

// newRawSession opens a session; authz, when set, is sent as the
// Authorization header of every request.
func newRawSession(b *testing.B, url, authz string) *rawSession {
	rs := &rawSession{url: url, authz: authz, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	resp := rs.post(b, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}`)
	rs.sid = resp.Header.Get("Mcp-Session-Id")
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp = rs.post(b, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return rs
}

func (rs *rawSession) post(b *testing.B, body string) *http.Response {
	req, _ := http.NewRequest(http.MethodPost, rs.url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if rs.authz != "" {
		req.Header.Set("Authorization", rs.authz)
	}
	if rs.sid != "" {
		req.Header.Set("Mcp-Session-Id", rs.sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-11-25")
	}
	resp, err := rs.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		b.Fatalf("status %d", resp.StatusCode)
	}
	return resp
}

// guardedYAML is the guarded configuration of bench/run.sh in front of up:
// an API key, a rate limit that never refuses, and the 100 rules of
// bench/guarded-rules.yaml.
func guardedYAML(b *testing.B, up, key string) string {
	rules, err := os.ReadFile("../../bench/guarded-rules.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var y strings.Builder
	fmt.Fprintf(&y, "servers:\n  upstream: {url: %q, era: legacy}\n", up)
	fmt.Fprintf(&y, "auth:\n  api_keys:\n    - {id: bench-load, hash: %q, principal: {subject: bench-agent, groups: [agents, bench-agents]}}\n", authn.HashKey(key))
	y.WriteString("rate_limits:\n  - {id: per-caller, per: principal, rate: 100000/s, burst: 100000}\n")
	y.WriteString("policy:\n  mode: enforce\n  rules:\n")
	for line := range strings.Lines(string(rules)) {
		y.WriteString("    " + line)
	}
	return y.String()
}

// BenchmarkToolsCall measures a tools/call through Sluice and against the
// same upstream directly, in the same run: compare the sub-benchmarks'
// ns/op for the ratio and the added latency (Sluice's own CPU per call is
// measured end to end by bench/run.sh). The "guarded" runs go through a
// second Sluice with bench/run.sh's guarded configuration (authentication,
// 100 policy rules, a rate limit): their difference from "sluice" is what
// authentication and policy add.
func BenchmarkToolsCall(b *testing.B) {
	const key = "bench-key-0123456789abcdef0123456789"
	up := echoUpstream(b)
	_, base := startB(b, "servers:\n  upstream: {url: \""+up+"\", era: legacy}\n")
	_, guarded := startB(b, guardedYAML(b, up, key))
	for _, size := range []int{0, 64 << 10} {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"size":%d}}}`, size)
		for _, target := range []struct{ name, url, authz string }{
			{"direct", up, ""},
			{"sluice", base + "/mcp", ""},
			{"guarded", guarded + "/mcp", "Bearer " + key},
		} {
			b.Run(fmt.Sprintf("size=%d/%s", size, target.name), func(b *testing.B) {
				rs := newRawSession(b, target.url, target.authz)
				var buf bytes.Buffer
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					resp := rs.post(b, body)
					buf.Reset()
					buf.ReadFrom(resp.Body)
					resp.Body.Close()
					if !bytes.Contains(buf.Bytes(), []byte(`"result"`)) {
						b.Fatalf("no result: %.200s", buf.String())
					}
				}
			})
		}
	}
}
