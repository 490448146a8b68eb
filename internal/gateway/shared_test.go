package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/authn"
)

// bearer adds an API key to every request of a client.
type bearer struct {
	key string
	rt  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.rt.RoundTrip(r)
}

// TestSharedUpstreamKeepsPrincipalsApart puts two authenticated principals
// on one shared stdio server. A request the server sends outside any
// call's response stream (over stdio, every request) cannot be tied to the
// principal whose call caused it, so it must reach neither client: before,
// it went to the newest call in flight, which here is the other
// principal's.
func TestSharedUpstreamKeepsPrincipalsApart(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	for _, auth := range []bool{true, false} {
		t.Run(fmt.Sprintf("auth=%v", auth), func(t *testing.T) {
			yaml := fmt.Sprintf("servers:\n  mis:\n    command: [%q]\n    era: legacy\n    shared: true\n", misbehave)
			if auth {
				yaml += `auth:
  api_keys:
    - {id: alice, hash: "` + authn.HashKey("alice-key-0123456789") + `", principal: {subject: alice}}
    - {id: bob, hash: "` + authn.HashKey("bob-key-0123456789ab") + `", principal: {subject: bob}}
`
			}
			e := rbNewEnv(t, nil, yaml)
			var mu sync.Mutex
			asked := map[string]int{}
			connect := func(who, key string) *mcp.ClientSession {
				c := mcp.NewClient(&mcp.Implementation{Name: who, Version: "1"}, &mcp.ClientOptions{
					ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
						mu.Lock()
						asked[who]++
						mu.Unlock()
						return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": who}}, nil
					},
				})
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{
					Endpoint:   e.url + "/mcp",
					HTTPClient: &http.Client{Transport: bearer{key: key, rt: e.tr}},
				}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cs.Close() })
				return cs
			}
			alice := connect("alice", "alice-key-0123456789")
			bob := connect("bob", "bob-key-0123456789ab")

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			aliceDone := make(chan *mcp.CallToolResult, 1)
			go func() {
				res, err := alice.CallTool(ctx, &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{"ms": 400}})
				if err != nil {
					t.Errorf("alice's call: %v", err)
				}
				aliceDone <- res
			}()
			// Bob's call is the newest in flight when alice's server asks.
			time.Sleep(100 * time.Millisecond)
			if _, err := bob.CallTool(ctx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"ms": 1200}}); err != nil {
				t.Fatalf("bob's call: %v", err)
			}
			res := <-aliceDone
			got := ""
			if res != nil && len(res.Content) > 0 {
				got = res.Content[0].(*mcp.TextContent).Text
			}
			mu.Lock()
			defer mu.Unlock()
			if auth {
				if asked["bob"] != 0 || asked["alice"] != 0 || !strings.HasPrefix(got, "ask failed:") {
					t.Errorf("asked %v, alice's result %q; want nobody asked and the server refused", asked, got)
				}
				return
			}
			// Without authentication every caller is the same nobody: the
			// question reaches a client, as before.
			if asked["alice"]+asked["bob"] != 1 || got != "asked: accept" {
				t.Errorf("asked %v, alice's result %q; want one client asked", asked, got)
			}
		})
	}
}
