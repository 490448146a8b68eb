package allowlist_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/allowlist"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
)

// tool returns a listed tool with the given input schema (raw JSON; ""
// leaves inputSchema out).
func tool(name, schema string) *guard.Tool {
	raw := `{"name":"` + name + `"`
	if schema != "" {
		raw += `,"inputSchema":` + schema
	}
	return &guard.Tool{Name: name, Raw: jsontext.Value(raw + "}")}
}

const fileSchema = `{"type":"object","properties":{` +
	`"path":{"type":"string","minLength":1},` +
	`"mode":{"enum":["r","w"]},` +
	`"opts":{"type":"object","properties":{"depth":{"type":"integer","maximum":5},"tags":{"type":"array","items":{"type":"string"}}}},` +
	`"big":{"type":"integer","maximum":9007199254740993}},` +
	`"required":["path"],"additionalProperties":false}`

func toolCall(t *guard.Tool, args string) *guard.Call {
	params := `{"name":"fs__read"`
	if args != "" {
		params += `,"arguments":` + args
	}
	return &guard.Call{
		ID: "c1", Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "read",
		Params: jsontext.Value(params + "}"), Tool: t,
	}
}

// TestArguments checks argument validation against input schemas: what
// passes, and that every failure names the field.
func TestArguments(t *testing.T) {
	g, err := allowlist.New(allowlist.Config{})
	if err != nil {
		t.Fatal(err)
	}
	read := tool("read", fileSchema)
	tests := []struct {
		name, args string
		tool       *guard.Tool
		want       string // "" when the call passes; else the message
	}{
		{name: "valid", args: `{"path":"/a","mode":"r","opts":{"depth":2,"tags":["x"]}}`},
		{name: "big-integer-exact", args: `{"path":"/a","big":9007199254740993}`},
		{name: "big-integer-over", args: `{"path":"/a","big":9007199254740994}`, want: `arguments.big: must be at most 9007199254740993`},
		{name: "wrong-type", args: `{"path":5}`, want: `arguments.path: got number, want string`},
		{name: "missing-required", args: `{}`, want: `arguments.path: is required`},
		{name: "absent-arguments", args: ``, want: `arguments.path: is required`},
		{name: "null-arguments", args: `null`, want: `arguments: got null, want object`},
		{name: "extra-property", args: `{"path":"/a","recursive":true}`, want: `arguments.recursive: is not allowed`},
		{name: "enum", args: `{"path":"/a","mode":"x"}`, want: `arguments.mode: value must be one of 'r', 'w'`},
		{name: "nested", args: `{"path":"/a","opts":{"depth":9}}`, want: `arguments.opts.depth: must be at most 5`},
		{name: "array-item", args: `{"path":"/a","opts":{"tags":["x",3]}}`, want: `arguments.opts.tags[1]: got number, want string`},
		{name: "several", args: `{"path":"","mode":"x","opts":{"depth":"deep"},"z":1,"y":2}`, want: `(and 2 more)`},
		{name: "quoted-name", args: `{"path":"/a","a b":1}`, want: `arguments["a b"]: is not allowed`},
		{name: "draft-07", tool: tool("read", `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"n":{"type":"integer"}}}`), args: `{"n":"1"}`, want: `arguments.n: got string, want integer`},
		{name: "defs-ref", tool: tool("read", `{"type":"object","properties":{"n":{"$ref":"#/$defs/pos"}},"$defs":{"pos":{"type":"integer","minimum":1}}}`), args: `{"n":0}`, want: `arguments.n: must be at least 1`},
		{name: "empty-schema-object", tool: tool("read", `{"type":"object"}`), args: `{"anything":[1,2]}`},
		// A schema that allows any member still sees only one of two names
		// a case-insensitive server may confuse: refused.
		{name: "case-variant-names", tool: tool("read", `{"type":"object","properties":{"path":{"type":"string","pattern":"^/data/"}}}`),
			args: `{"path":"/data/x","PATH":"/etc/passwd"}`, want: `arguments: member names "path" and "PATH" differ only by case`},
		{name: "integer-zero-fraction", args: `{"path":"/a","opts":{"depth":5.0}}`},
		{name: "integer-fraction", args: `{"path":"/a","opts":{"depth":4.5}}`, want: `arguments.opts.depth: got number, want integer`},
		{name: "big-integer-zero-fraction", args: `{"path":"/a","big":9007199254740993.000}`},
		{name: "big-integer-exponent-over", args: `{"path":"/a","big":9.007199254740994e15}`, want: `arguments.big: must be at most 9007199254740993`},
		{name: "escaped-names", args: `{"p\u0061th":"/a","\u0078":1}`, want: `arguments.x: is not allowed`},
		{name: "duplicate-member", args: `{"path":"/a","path":5}`, want: `arguments.path: got number, want string`},
		{name: "invalid-utf8", args: "{\"path\":\"/a\",\"mode\":\"\xff\"}", want: `arguments.mode: value must be one of 'r', 'w'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl := tt.tool
			if tl == nil {
				tl = read
			}
			c := toolCall(tl, tt.args)
			next := 0
			_, err := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
				next++
				return &guard.Result{Result: jsontext.Value(`{}`)}, nil
			})).Handle(context.Background(), c)
			if tt.want == "" {
				if err != nil || next != 1 {
					t.Fatalf("got %v (next called %d times), want the call through", err, next)
				}
				return
			}
			var de *guard.DeniedError
			if !errors.As(err, &de) || next != 0 {
				t.Fatalf("got %v (next called %d times), want a denial", err, next)
			}
			if de.Decision.Reason != allowlist.ReasonArgumentsInvalid {
				t.Errorf("reason %q, want %q", de.Decision.Reason, allowlist.ReasonArgumentsInvalid)
			}
			msg := de.RPCError().Message
			if !strings.HasPrefix(msg, `sluice: invalid arguments for tool "fs__read": `) || !strings.Contains(msg, tt.want) {
				t.Errorf("message %q, want it to contain %q", msg, tt.want)
			}
		})
	}
}

// TestUnknownAndInvalidSchemas checks the calls that cannot be validated:
// a tool its server does not list, and a tool whose schema does not
// compile, in both settings of AllowInvalidSchemas.
func TestUnknownAndInvalidSchemas(t *testing.T) {
	bad := map[string]*guard.Tool{
		"no-input-schema":   tool("read", ""),
		"not-meta-valid":    tool("read", `{"type":"objectx"}`),
		"remote-ref":        tool("read", `{"type":"object","properties":{"a":{"$ref":"https://example.com/s.json"}}}`),
		"file-ref":          tool("read", `{"type":"object","properties":{"a":{"$ref":"file:///etc/passwd"}}}`),
		"unknown-dialect":   tool("read", `{"$schema":"https://example.com/my-dialect","type":"object"}`),
		"ecma-only-regexp":  tool("read", `{"type":"object","properties":{"a":{"type":"string","pattern":"(?<=x)y"}}}`),
		"schema-not-object": tool("read", `true`),
	}
	for _, allowInvalid := range []bool{false, true} {
		g, err := allowlist.New(allowlist.Config{AllowInvalidSchemas: allowInvalid})
		if err != nil {
			t.Fatal(err)
		}
		for name, tl := range bad {
			t.Run(name, func(t *testing.T) {
				c := toolCall(tl, `{"a":"y"}`)
				_, err := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
					return &guard.Result{Result: jsontext.Value(`{}`)}, nil
				})).Handle(context.Background(), c)
				want := guard.Deny
				if allowInvalid {
					want = guard.Allow
				}
				if len(c.Decisions) != 1 || c.Decisions[0].Reason != allowlist.ReasonSchemaInvalid || c.Decisions[0].Effect != want {
					t.Fatalf("decisions %+v, want one %s with effect %s", c.Decisions, allowlist.ReasonSchemaInvalid, want)
				}
				if (err != nil) != !allowInvalid {
					t.Errorf("err = %v with AllowInvalidSchemas %v", err, allowInvalid)
				}
			})
		}
		t.Run("unknown-tool", func(t *testing.T) {
			c := toolCall(nil, `{}`)
			_, err := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
				t.Error("an unknown tool reached next")
				return nil, nil
			})).Handle(context.Background(), c)
			var de *guard.DeniedError
			if !errors.As(err, &de) || de.Decision.Reason != allowlist.ReasonToolUnknown {
				t.Fatalf("got %v, want a denial %s", err, allowlist.ReasonToolUnknown)
			}
			if got := de.RPCError().Message; got != `sluice: unknown tool "fs__read": its server does not list it` {
				t.Errorf("message %q", got)
			}
		})
	}
}

// TestMethods checks method filters of profiles (calls of their clients,
// requests towards them) and servers (requests they send towards clients,
// as requests or as input requests of a result).
func TestMethods(t *testing.T) {
	g, err := allowlist.New(allowlist.Config{
		ServerMethods: map[string]allowlist.Filter{
			"fs":  {Deny: []string{"sampling/*"}},
			"ask": {Allow: []string{"elicitation/create"}},
		},
		ProfileMethods: map[string]allowlist.Filter{
			"ro":   {Deny: []string{"completion/complete", "resources/subscribe"}},
			"only": {Allow: []string{"tools/*"}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	inputRequired := `{"resultType":"input_required","inputRequests":{"a":{"method":"elicitation/create","params":{}},"b":{"method":"sampling/createMessage","params":{}}},"requestState":"s"}`
	tests := []struct {
		name                    string
		dir                     guard.Direction
		server, profile, method string
		result                  string
		wantReason, wantRule    string
		wantMessage             string
	}{
		{name: "profile-deny", server: "fs", profile: "ro", method: "completion/complete", wantReason: allowlist.ReasonMethodDenied, wantRule: "completion/complete", wantMessage: `method "completion/complete" is not available`},
		{name: "profile-other-method", server: "fs", profile: "ro", method: "resources/read"},
		{name: "profile-allow-list", server: "fs", profile: "only", method: "prompts/get", wantReason: allowlist.ReasonMethodNotAllowed, wantRule: "profiles.only.methods.allow"},
		{name: "profile-allow-list-passes", server: "fs", profile: "only", method: "tools/list"},
		{name: "always-allowed", server: "fs", profile: "only", method: "ping"},
		{name: "always-allowed-notification", server: "fs", profile: "only", method: "notifications/cancelled"},
		{name: "server-filter-not-for-client-calls", server: "fs", method: "sampling/createMessage"},
		{name: "server-deny-to-client", dir: guard.ToClient, server: "fs", method: "sampling/createMessage", wantReason: allowlist.ReasonMethodDenied, wantRule: "sampling/*", wantMessage: `server "fs" may not send "sampling/createMessage" requests to this client`},
		{name: "server-allow-to-client", dir: guard.ToClient, server: "ask", method: "elicitation/create"},
		{name: "server-not-allowed-to-client", dir: guard.ToClient, server: "ask", method: "roots/list", wantReason: allowlist.ReasonMethodNotAllowed, wantRule: "servers.ask.methods.allow"},
		{name: "profile-filter-to-client", dir: guard.ToClient, server: "other", profile: "only", method: "roots/list", wantReason: allowlist.ReasonMethodNotAllowed, wantRule: "profiles.only.methods.allow"},
		{name: "input-request-denied", server: "fs", method: "resources/read", result: inputRequired, wantReason: allowlist.ReasonMethodDenied, wantRule: "sampling/*"},
		{name: "input-request-allowed", server: "other", method: "resources/read", result: inputRequired},
		{name: "input-requests-other-server", server: "ask", method: "resources/read", result: `{"resultType":"input_required","inputRequests":{"a":{"method":"elicitation/create"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &guard.Call{ID: "c1", Direction: tt.dir, Server: tt.server, Profile: tt.profile, Method: tt.method, Params: jsontext.Value(`{}`)}
			result := tt.result
			if result == "" {
				result = `{}`
			}
			_, err := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
				return &guard.Result{Result: jsontext.Value(result)}, nil
			})).Handle(context.Background(), c)
			if tt.wantReason == "" {
				if err != nil || len(c.Decisions) != 0 {
					t.Fatalf("got %v, decisions %+v; want the call through", err, c.Decisions)
				}
				return
			}
			var de *guard.DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a denial", err)
			}
			got := de.Decision
			if diff := cmp.Diff([]string{tt.wantReason, tt.wantRule}, []string{got.Reason, got.Rule}); diff != "" {
				t.Errorf("reason and rule (-want +got):\n%s", diff)
			}
			if tt.wantMessage != "" && got.Message != tt.wantMessage {
				t.Errorf("message %q, want %q", got.Message, tt.wantMessage)
			}
		})
	}
}

// TestControlsConformance runs the shared guard suite over the strict
// controls in both modes.
func TestControlsConformance(t *testing.T) {
	read := tool("read", fileSchema)
	for _, mode := range []guard.Mode{guard.Enforce, guard.Observe} {
		t.Run(string(mode), func(t *testing.T) {
			enforce := mode == guard.Enforce
			guardtest.Run(t, func(t *testing.T) guard.Guard {
				g, err := allowlist.New(allowlist.Config{
					StrictMode:     mode,
					ServerMethods:  map[string]allowlist.Filter{"fs": {Deny: []string{"sampling/createMessage"}}},
					ProfileMethods: map[string]allowlist.Filter{"ro": {Deny: []string{"prompts/*"}}},
				})
				if err != nil {
					t.Fatal(err)
				}
				return g
			},
				guardtest.Case{
					Name: "valid-arguments",
					Call: guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "read", Tool: read, Params: jsontext.Value(`{"name":"fs__read","arguments":{"path":"/a"}}`)},
				},
				guardtest.Case{
					Name:       "invalid-arguments",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "read", Tool: read, Params: jsontext.Value(`{"name":"fs__read","arguments":{"path":1}}`)},
					WantReason: allowlist.ReasonArgumentsInvalid, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "unknown-tool",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "nope", Params: jsontext.Value(`{"name":"fs__nope"}`)},
					WantReason: allowlist.ReasonToolUnknown, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "invalid-schema",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "bad", Tool: tool("bad", `{"type":7}`), Params: jsontext.Value(`{"name":"fs__bad"}`)},
					WantReason: allowlist.ReasonSchemaInvalid, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "profile-method",
					Call:       guard.Call{Method: mcp.MethodPromptsGet, Server: "fs", Profile: "ro", Name: "p", Params: jsontext.Value(`{"name":"p"}`)},
					WantReason: allowlist.ReasonMethodDenied, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "server-sampling",
					Call:       guard.Call{Method: mcp.MethodSamplingCreateMessage, Direction: guard.ToClient, Server: "fs", Params: jsontext.Value(`{"messages":[]}`)},
					WantReason: allowlist.ReasonMethodDenied, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "input-request-sampling",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "read", Tool: read, Params: jsontext.Value(`{"name":"fs__read","arguments":{"path":"/a"}}`)},
					Next:       &guard.Result{Result: jsontext.Value(`{"resultType":"input_required","inputRequests":{"k":{"method":"sampling/createMessage","params":{}}}}`)},
					WantReason: allowlist.ReasonMethodDenied, WantEffect: guard.Deny, WantDenied: enforce,
				},
			)
		})
	}
}
