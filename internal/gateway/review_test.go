package gateway_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestPolicyServerRequests: a policy rule that stops a server from asking
// the client for sampling holds in both eras. A legacy client gets the
// server's request as a request of its own; a modern client gets it inside
// an input_required result (bridged from the legacy server), which the
// policy must judge just the same.
func TestPolicyServerRequests(t *testing.T) {
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			var writes atomic.Int32
			_, base := start(t, `servers:
  up: {url: "`+controlsUpstream(t, &writes)+`", era: legacy}
policy:
  rules:
    - {id: tools, effect: allow, target: {tools: ["*"]}}
    - id: no-sampling
      effect: deny
      target: {methods: ["sampling/*"]}
      when: 'server == "up"'
`)
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
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "summarize", Arguments: map[string]any{}})
			switch era.name {
			case "legacy":
				if err != nil || !res.IsError || len(res.Content) == 0 || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "not allowed by policy") {
					t.Errorf("summarize: %v %+v, want the tool's error carrying the policy's refusal", err, res)
				}
			default:
				denial(t, err, "policy-denied-by-rule")
			}
			if n := sampled.Load(); n != 0 {
				t.Errorf("the client was asked to sample %d times", n)
			}
		})
	}
}
