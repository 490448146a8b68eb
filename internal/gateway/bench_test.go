package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// echoUpstream serves a stateful MCP server whose echo tool returns a text of
// the requested size.
func echoUpstream(b *testing.B) string {
	s := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
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
	url, sid string
	client   *http.Client
}

func newRawSession(b *testing.B, url string) *rawSession {
	rs := &rawSession{url: url, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
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

// BenchmarkToolsCall measures a tools/call through Sluice and against the
// same upstream directly, in the same run: compare the sub-benchmarks'
// ns/op for the ratio and the added latency (Sluice's own CPU per call is
// measured end to end by bench/run.sh).
func BenchmarkToolsCall(b *testing.B) {
	up := echoUpstream(b)
	_, base := startB(b, "servers:\n  echo: {url: \""+up+"\", era: legacy}\n")
	for _, size := range []int{0, 64 << 10} {
		body := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"size":%d}}}`, size)
		for _, target := range []struct{ name, url string }{{"direct", up}, {"sluice", base + "/mcp"}} {
			b.Run(fmt.Sprintf("size=%d/%s", size, target.name), func(b *testing.B) {
				rs := newRawSession(b, target.url)
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
