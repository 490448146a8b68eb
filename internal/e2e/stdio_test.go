package e2e

import (
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestStdio launches sluice stdio the way a desktop MCP client does, in front
// of the same three reference servers, and lists and calls their tools in
// each era.
func TestStdio(t *testing.T) {
	bin := testenv.Sluice(t)
	u := newUpstreams(t, "")
	for _, e := range eras {
		t.Run(e.name, func(t *testing.T) {
			stderr := &lockedBuffer{}
			watchStderr(t, "sluice stdio", stderr)
			cmd := exec.Command(bin, "stdio", "--config", u.config)
			cmd.Stderr = stderr
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			tr := &mcp.CommandTransport{Command: cmd, TerminateDuration: 5 * time.Second}
			cs, err := newClient(newEvents()).Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: e.version})
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = cs.Close()
				}
			})
			if got := cs.InitializeResult().ProtocolVersion; got != e.version {
				t.Fatalf("negotiated protocol version %q, want %q", got, e.version)
			}

			ctx = subtestContext(t)
			checkWantTools(t, toolNames(ctx, t, cs))

			entity := "stdio-" + e.name
			calls := []struct {
				tool string
				args map[string]any
				want string
			}{
				{"everything__echo", map[string]any{"message": "over stdio"}, "Echo: over stdio"},
				{"filesystem__read_text_file", map[string]any{"path": u.seed}, u.seedTxt},
				{"memory__create_entities", map[string]any{"entities": []map[string]any{
					{"name": entity, "entityType": "test", "observations": []string{"via sluice stdio"}},
				}}, ""},
			}
			for _, c := range calls {
				res := call(ctx, t, cs, c.tool, c.args)
				if c.want != "" {
					if diff := cmp.Diff(c.want, text(res)); diff != "" {
						t.Errorf("%s (-want +got):\n%s", c.tool, diff)
					}
				}
			}
			var g graph
			res := call(ctx, t, cs, "memory__open_nodes", map[string]any{"names": []string{entity}})
			if err := json.Unmarshal([]byte(text(res)), &g); err != nil || len(g.Entities) != 1 || g.Entities[0].Name != entity {
				t.Errorf("memory__open_nodes %s = %s (%v), want the entity", entity, text(res), err)
			}

			// Closing the client's end ends sluice stdio and the servers it
			// launched.
			launched := descendants(cmd.Process.Pid)
			closed = true
			if err := cs.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			checkGone(t, launched)
		})
	}
}
