package allowlist_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/allowlist"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

func BenchmarkWrap(b *testing.B) {
	g, err := allowlist.New(allowlist.Config{
		Servers:  map[string]allowlist.Filter{"fs": {Allow: []string{"read_*", "list_*", "stat"}, Deny: []string{"*secret*", "*admin*"}}},
		Profiles: map[string]allowlist.Filter{"ro": {Deny: []string{"*__write*", "*__delete*"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	var tools strings.Builder
	tools.WriteString(`{"tools":[`)
	for i := range 100 {
		if i > 0 {
			tools.WriteByte(',')
		}
		verb := []string{"read", "write", "list", "delete"}[i%4]
		fmt.Fprintf(&tools, `{"name":"%s_%d","description":"Tool number %d does things.","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}`, verb, i, i)
	}
	tools.WriteString(`],"nextCursor":"next"}`)
	list := jsontext.Value(tools.String())
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: list}, nil
	}))
	ctx := context.Background()
	b.Run("tools-call-allowed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Profile: "ro", Prefix: "fs__", Name: "read_file"}
			if _, err := h.Handle(ctx, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tools-list-100", func(b *testing.B) {
		b.SetBytes(int64(len(list)))
		b.ReportAllocs()
		for b.Loop() {
			c := guard.Call{Method: mcp.MethodToolsList, Server: "fs", Profile: "ro", Prefix: "fs__"}
			if _, err := h.Handle(ctx, &c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
