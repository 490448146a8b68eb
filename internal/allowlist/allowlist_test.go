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

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     allowlist.Config
		wantErr []string // each must appear in the error; nil means success
	}{
		{name: "empty", cfg: allowlist.Config{}},
		{name: "observe", cfg: allowlist.Config{Mode: guard.Observe}},
		{
			name: "valid-globs",
			cfg: allowlist.Config{
				Servers:  map[string]allowlist.Filter{"fs": {Allow: []string{"read_*", "list_?ir", "[a-z]*"}, Deny: []string{`\*`}}},
				Profiles: map[string]allowlist.Filter{"ro": {Deny: []string{"*__write*"}}},
			},
		},
		{name: "unknown-mode", cfg: allowlist.Config{Mode: "warn"}, wantErr: []string{`mode: unknown mode "warn"`}},
		{
			name: "every-bad-glob-with-its-path",
			cfg: allowlist.Config{
				Servers: map[string]allowlist.Filter{
					"fs": {Allow: []string{"ok", "[bad"}, Deny: []string{"fine", "", `trailing\`}},
					"gh": {Deny: []string{"x\xff"}},
				},
				Profiles: map[string]allowlist.Filter{"dev": {Allow: []string{"[]"}}},
				Mode:     "Enforce",
			},
			wantErr: []string{
				`servers.fs.allow[1]: invalid pattern "[bad": syntax error in pattern`,
				`servers.fs.deny[1]: empty pattern`,
				`servers.fs.deny[2]: invalid pattern "trailing\\"`,
				`servers.gh.deny[0]: pattern is not valid UTF-8`,
				`profiles.dev.allow[0]: invalid pattern "[]"`,
				`mode: unknown mode "Enforce"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := allowlist.New(tt.cfg)
			if tt.wantErr == nil {
				if err != nil || g == nil {
					t.Fatalf("New: %v", err)
				}
				if g.Name() != "allowlist" || guard.Rank(g.Name()) < 0 {
					t.Errorf("Name() = %q", g.Name())
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want errors %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tt.wantErr) {
				t.Errorf("got %d problems, want %d:\n%v", n, len(tt.wantErr), err)
			}
		})
	}
}

// call is a tools/call for the local tool name on server fs in profile p,
// whose clients see "fs__<name>".
func call(server, profile, prefix, name string) *guard.Call {
	return &guard.Call{
		ID: "c1", Method: mcp.MethodToolsCall, Server: server, Profile: profile, Prefix: prefix, Name: name,
		Params: jsontext.Value(`{"name":"` + prefix + name + `","arguments":{}}`),
		Tool:   anyTool(name),
	}
}

// anyTool is a listed tool that takes any arguments.
func anyTool(name string) *guard.Tool {
	raw, _ := jsontext.AppendQuote([]byte(`{"name":`), name)
	return &guard.Tool{Name: name, Raw: append(raw, `,"inputSchema":{"type":"object"}}`...)}
}

func TestToolsCall(t *testing.T) {
	cfg := allowlist.Config{
		Servers: map[string]allowlist.Filter{
			"fs":     {Allow: []string{"read_*", "list_dir", "stat"}, Deny: []string{"*secret*"}},
			"gh":     {Deny: []string{"delete_*", "*admin*"}},
			"all":    {Allow: []string{"*"}, Deny: []string{"write_?", "rm"}},
			"shell":  {Allow: []string{"[a-c]?"}},
			"wiki":   {Allow: []string{`what\?`}},
			"unicod": {Deny: []string{"é*"}},
		},
		Profiles: map[string]allowlist.Filter{
			"readonly": {Deny: []string{"*__write*", "*__delete*"}},
			"fs-only":  {Allow: []string{"fs__*"}},
			"":         {Deny: []string{"gh__delete_repo"}},
			"noprefix": {Allow: []string{"read_*"}},
		},
	}
	tests := []struct {
		name                          string
		server, profile, prefix, tool string
		wantReason                    string // "" means allowed
		wantRule                      string
	}{
		{name: "server-allow-glob", server: "fs", tool: "read_file"},
		{name: "server-allow-literal", server: "fs", tool: "stat"},
		{name: "server-not-allowed", server: "fs", tool: "write_file", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.fs.allow"},
		{name: "literal-needs-whole-name", server: "fs", tool: "stats", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.fs.allow"},
		{name: "case-sensitive", server: "fs", tool: "Read_file", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.fs.allow"},
		{name: "deny-beats-allow", server: "fs", tool: "read_secret_key", wantReason: allowlist.ReasonToolDenied, wantRule: "*secret*"},
		{name: "deny-only-list-allows-rest", server: "gh", tool: "create_issue"},
		{name: "deny-glob", server: "gh", tool: "delete_repo", wantReason: allowlist.ReasonToolDenied, wantRule: "delete_*"},
		{name: "second-deny-glob", server: "gh", tool: "site_admin_add", wantReason: allowlist.ReasonToolDenied, wantRule: "*admin*"},
		{name: "star-matches-slash", server: "gh", tool: "repo/delete_x/admin", wantReason: allowlist.ReasonToolDenied, wantRule: "*admin*"},
		{name: "question-mark", server: "all", tool: "write_x", wantReason: allowlist.ReasonToolDenied, wantRule: "write_?"},
		{name: "question-mark-one-char-only", server: "all", tool: "write_xy"},
		{name: "allow-star-deny-literal", server: "all", tool: "rm", wantReason: allowlist.ReasonToolDenied, wantRule: "rm"},
		{name: "class-match", server: "shell", tool: "bz"},
		{name: "class-miss", server: "shell", tool: "dz", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.shell.allow"},
		{name: "escaped-metachar", server: "wiki", tool: "what?"},
		{name: "escaped-metachar-is-literal", server: "wiki", tool: "whatx", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.wiki.allow"},
		{name: "unicode", server: "unicod", tool: "été", wantReason: allowlist.ReasonToolDenied, wantRule: "é*"},
		{name: "server-without-filter", server: "other", tool: "anything"},
		{name: "empty-tool-name-with-allow-list", server: "fs", tool: "", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.fs.allow"},

		// Profiles match the exposed name, prefix included.
		{name: "profile-deny-exposed", server: "gh", profile: "readonly", prefix: "gh__", tool: "write_file", wantReason: allowlist.ReasonToolDenied, wantRule: "*__write*"},
		{name: "profile-deny-needs-prefix", server: "gh", profile: "readonly", prefix: "", tool: "write_file"},
		{name: "profile-allow-exposed", server: "gh", profile: "fs-only", prefix: "gh__", tool: "create_issue", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "profiles.fs-only.allow"},
		{name: "profile-allow-passes", server: "other", profile: "fs-only", prefix: "fs__", tool: "anything"},
		{name: "profile-without-prefix", server: "other", profile: "noprefix", tool: "read_x"},
		{name: "default-profile", server: "gh", profile: "", prefix: "gh__", tool: "delete_repo", wantReason: allowlist.ReasonToolDenied, wantRule: "delete_*"},
		{name: "default-profile-own-rule", server: "other", profile: "", prefix: "gh__", tool: "delete_repo", wantReason: allowlist.ReasonToolDenied, wantRule: "gh__delete_repo"},
		{name: "unknown-profile", server: "other", profile: "nope", prefix: "x__", tool: "write"},

		// Server and profile together: a tool must pass both.
		{name: "both-pass", server: "fs", profile: "fs-only", prefix: "fs__", tool: "read_file"},
		{name: "server-allows-profile-silent", server: "fs", profile: "readonly", prefix: "fs__", tool: "read_file"},
		{name: "server-allows-profile-denies", server: "all", profile: "readonly", prefix: "all__", tool: "write_file", wantReason: allowlist.ReasonToolDenied, wantRule: "*__write*"},
		{name: "server-denies-profile-allows", server: "gh", profile: "fs-only", prefix: "fs__", tool: "delete_x", wantReason: allowlist.ReasonToolDenied, wantRule: "delete_*"},
		{name: "profile-deny-reported-over-server-not-allowed", server: "fs", profile: "readonly", prefix: "fs__", tool: "delete_all", wantReason: allowlist.ReasonToolDenied, wantRule: "*__delete*"},
		{name: "server-not-allowed-profile-allows", server: "fs", profile: "fs-only", prefix: "fs__", tool: "chmod", wantReason: allowlist.ReasonToolNotAllowed, wantRule: "servers.fs.allow"},
	}
	for _, mode := range []guard.Mode{guard.Enforce, guard.Observe} {
		cfg := cfg
		cfg.Mode = mode
		g, err := allowlist.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				nextCalls := 0
				h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
					nextCalls++
					return &guard.Result{Result: jsontext.Value(`{"content":[]}`)}, nil
				}))
				c := call(tt.server, tt.profile, tt.prefix, tt.tool)
				res, err := h.Handle(context.Background(), c)

				var want []guard.Decision
				if tt.wantReason != "" {
					want = []guard.Decision{{
						Guard: "allowlist", Rule: tt.wantRule, Reason: tt.wantReason, Effect: guard.Deny, Mode: mode,
						Message: `tool "` + tt.prefix + tt.tool + `" is not available`,
					}}
				}
				if diff := cmp.Diff(want, c.Decisions); diff != "" {
					t.Errorf("decisions (-want +got):\n%s", diff)
				}
				blocked := tt.wantReason != "" && mode == guard.Enforce
				var de *guard.DeniedError
				if errors.As(err, &de) != blocked {
					t.Fatalf("Handle error = %v, want blocked %v", err, blocked)
				}
				if blocked {
					if nextCalls != 0 || res != nil {
						t.Errorf("blocked call reached next (%d calls) or returned %v", nextCalls, res)
					}
					rpc := de.RPCError()
					if rpc.Code != mcp.CodeDenied || !strings.Contains(string(rpc.Data), `"reason":"`+tt.wantReason+`"`) {
						t.Errorf("RPCError = %+v %s", rpc, rpc.Data)
					}
					if strings.Contains(rpc.Message, tt.wantRule) && tt.wantRule != tt.prefix+tt.tool {
						t.Errorf("the agent's error reveals the rule: %q", rpc.Message)
					}
					return
				}
				if err != nil || nextCalls != 1 || string(res.Result) != `{"content":[]}` {
					t.Errorf("Handle = %v, %v after %d calls to next", res, err, nextCalls)
				}
			})
		}
	}
}

// listCfg is the configuration the tools/list tests use: server fs hides
// write and delete tools, profile ro hides anything with "admin".
var listCfg = allowlist.Config{
	Servers:  map[string]allowlist.Filter{"fs": {Deny: []string{"write_*", "delete_*"}}},
	Profiles: map[string]allowlist.Filter{"ro": {Deny: []string{"*admin*"}}, "only-read": {Allow: []string{"fs__read_*"}}},
}

func TestToolsList(t *testing.T) {
	const readTool = `{"name":"read_file","description":"Reads a file: {\"path\"}","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}`
	tests := []struct {
		name         string
		server       string
		profile      string
		result       string
		want         string // "" means unchanged
		wantDecision *guard.Decision
	}{
		{
			name:   "drops-denied-keeps-bytes",
			server: "fs",
			result: `{"tools":[` + readTool + `,{"name":"write_file","inputSchema":{}},{"name":"stat", "title" : "Stat" }],"nextCursor":"abc","_meta":{"k":[1,2]}}`,
			want:   `{"tools":[` + readTool + `,{"name":"stat", "title" : "Stat" }],"nextCursor":"abc","_meta":{"k":[1,2]}}`,
			wantDecision: &guard.Decision{
				Guard: "allowlist", Rule: "write_*", Reason: allowlist.ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
				Message: "1 of the server's tools are not available",
			},
		},
		{
			name:   "pretty-printed",
			server: "fs",
			result: "{\n  \"_meta\": {},\n  \"tools\": [\n    {\"name\": \"delete_file\"},\n    {\n      \"name\": \"read_file\"\n    }\n  ],\n  \"nextCursor\": null\n}",
			want:   "{\n  \"_meta\": {},\n  \"tools\": [{\n      \"name\": \"read_file\"\n    }],\n  \"nextCursor\": null\n}",
			wantDecision: &guard.Decision{
				Guard: "allowlist", Rule: "delete_*", Reason: allowlist.ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
				Message: "1 of the server's tools are not available",
			},
		},
		{
			name:   "escaped-names-are-matched-unescaped",
			server: "fs",
			result: `{"tools":[{"name":"\u0077rite_file"},{"n\u0061me":"delete_x"},{"name":"ok"}]}`,
			want:   `{"tools":[{"name":"ok"}]}`,
			wantDecision: &guard.Decision{
				Guard: "allowlist", Rule: "delete_* write_*", Reason: allowlist.ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
				Message: "2 of the server's tools are not available",
			},
		},
		{
			name:    "server-and-profile",
			server:  "fs",
			profile: "ro",
			result:  `{"tools":[{"name":"admin_panel"},{"name":"write_x"},{"name":"read"},{"name":"x","annotations":{"admin":true}}]}`,
			want:    `{"tools":[{"name":"read"},{"name":"x","annotations":{"admin":true}}]}`,
			wantDecision: &guard.Decision{
				Guard: "allowlist", Rule: "*admin* write_*", Reason: allowlist.ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
				Message: "2 of the server's tools are not available",
			},
		},
		{
			name:    "profile-matches-exposed-names",
			server:  "other",
			profile: "only-read",
			result:  `{"tools":[{"name":"read_a"},{"name":"write_a"}]}`,
			want:    `{"tools":[{"name":"read_a"}]}`,
			wantDecision: &guard.Decision{
				Guard: "allowlist", Rule: "profiles.only-read.allow", Reason: allowlist.ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
				Message: "1 of the server's tools are not available",
			},
		},
		{
			name:   "all-dropped",
			server: "fs",
			result: `{"tools":[{"name":"write_a"},{"name":"delete_b"}],"nextCursor":"n"}`,
			want:   `{"tools":[],"nextCursor":"n"}`,
			wantDecision: &guard.Decision{
				Guard: "allowlist", Rule: "delete_* write_*", Reason: allowlist.ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
				Message: "2 of the server's tools are not available",
			},
		},
		{name: "nothing-dropped", server: "fs", result: `{"tools":[{"name":"read"} , {"name":"stat"}]}`},
		{name: "empty-list", server: "fs", result: `{"tools":[]}`},
		{name: "no-filter-no-parse", server: "other", result: `not even json`},

		// Results that are not a valid tool list pass through unchanged.
		{name: "not-an-object", server: "fs", result: `[{"name":"write_a"}]`, wantDecision: unparsed()},
		{name: "no-tools", server: "fs", result: `{"prompts":[]}`, wantDecision: unparsed()},
		{name: "tools-not-array", server: "fs", result: `{"tools":{"name":"write_a"}}`, wantDecision: unparsed()},
		{name: "tool-not-object", server: "fs", result: `{"tools":[{"name":"write_a"},"write_b"]}`, wantDecision: unparsed()},
		{name: "tool-without-name", server: "fs", result: `{"tools":[{"name":"write_a"},{"title":"x"}]}`, wantDecision: unparsed()},
		{name: "tool-name-not-string", server: "fs", result: `{"tools":[{"name":"write_a"},{"name":7}]}`, wantDecision: unparsed()},
		{name: "case-variant-tools", server: "fs", result: `{"tools":[],"Tools":[{"name":"write_a"}]}`, wantDecision: unparsed()},
		{name: "case-variant-name", server: "fs", result: `{"tools":[{"name":"read","Name":"write_a"}]}`, wantDecision: unparsed()},
		{name: "duplicate-name", server: "fs", result: `{"tools":[{"name":"read","name":"write_a"}]}`, wantDecision: unparsed()},
		{name: "truncated", server: "fs", result: `{"tools":[{"name":"write_a"}`, wantDecision: unparsed()},
	}
	for _, mode := range []guard.Mode{guard.Enforce, guard.Observe} {
		cfg := listCfg
		cfg.Mode = mode
		g, err := allowlist.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range tests {
			t.Run(string(mode)+"/"+tt.name, func(t *testing.T) {
				next := &guard.Result{Result: jsontext.Value(tt.result)}
				orig := strings.Clone(tt.result)
				h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) { return next, nil }))
				c := &guard.Call{ID: "l1", Method: mcp.MethodToolsList, Server: tt.server, Profile: tt.profile, Prefix: "fs__", Params: jsontext.Value(`{}`)}
				res, err := h.Handle(context.Background(), c)
				if err != nil {
					t.Fatalf("Handle: %v", err)
				}
				want := tt.want
				if want == "" || mode == guard.Observe {
					want = tt.result
				}
				if string(res.Result) != want {
					t.Errorf("result:\n got %s\nwant %s", res.Result, want)
				}
				if want != tt.result && !jsontext.Value(res.Result).IsValid() {
					t.Errorf("filtered result is not valid JSON: %s", res.Result)
				}
				if string(next.Result) != orig {
					t.Errorf("the guard wrote into the result it was given: %s", next.Result)
				}
				var wantDecisions []guard.Decision
				if tt.wantDecision != nil {
					d := *tt.wantDecision
					d.Mode = mode
					wantDecisions = []guard.Decision{d}
				}
				if diff := cmp.Diff(wantDecisions, c.Decisions, cmp.Comparer(messagePrefix)); diff != "" {
					t.Errorf("decisions (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// unparsed is the decision recorded for a result that is not a tool list.
func unparsed() *guard.Decision {
	return &guard.Decision{
		Guard: "allowlist", Reason: allowlist.ReasonListUnparsed, Effect: guard.Allow, Mode: guard.Enforce,
		Message: "the tools/list result is not a valid tool list and was not filtered",
	}
}

// messagePrefix compares decisions, allowing the got Message to extend the
// wanted one (the unparsed decision appends the cause).
func messagePrefix(a, b guard.Decision) bool {
	am, bm := a.Message, b.Message
	a.Message, b.Message = "", ""
	return a == b && (strings.HasPrefix(am, bm) || strings.HasPrefix(bm, am))
}

func TestToolsListPassesErrors(t *testing.T) {
	g, err := allowlist.New(listCfg)
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("upstream gone")
	rpcErr := &guard.Result{Error: &mcp.Error{Code: mcp.CodeInternalError, Message: "x"}}
	tests := []struct {
		name    string
		res     *guard.Result
		err     error
		wantRes *guard.Result
	}{
		{name: "error", err: boom},
		{name: "json-rpc-error", res: rpcErr, wantRes: rpcErr},
		{name: "nil-result-bytes", res: &guard.Result{}, wantRes: &guard.Result{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) { return tt.res, tt.err }))
			c := &guard.Call{Method: mcp.MethodToolsList, Server: "fs"}
			res, err := h.Handle(context.Background(), c)
			if err != tt.err || res != tt.res {
				t.Errorf("Handle = %v, %v; want %v, %v", res, err, tt.res, tt.err)
			}
			if len(c.Decisions) != 0 {
				t.Errorf("decisions recorded: %+v", c.Decisions)
			}
		})
	}
}

func TestOtherMethodsPassThrough(t *testing.T) {
	g, err := allowlist.New(allowlist.Config{Servers: map[string]allowlist.Filter{"fs": {Allow: []string{"nothing"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{mcp.MethodPing, mcp.MethodPromptsGet, mcp.MethodResourcesRead, mcp.MethodInitialize, "tools/call/x", "Tools/call", mcp.NotifToolsListChanged} {
		t.Run(method, func(t *testing.T) {
			called := false
			h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
				called = true
				return &guard.Result{Result: jsontext.Value(`{"tools":[{"name":"write"}]}`)}, nil
			}))
			c := &guard.Call{Method: method, Server: "fs", Name: "write"}
			res, err := h.Handle(context.Background(), c)
			if err != nil || !called || string(res.Result) != `{"tools":[{"name":"write"}]}` || len(c.Decisions) != 0 {
				t.Errorf("Handle = %v, %v, called %v, decisions %+v", res, err, called, c.Decisions)
			}
		})
	}
}

func TestConformance(t *testing.T) {
	cfg := allowlist.Config{
		Servers:  map[string]allowlist.Filter{"fs": {Allow: []string{"read_*", "write_*"}, Deny: []string{"write_secret"}}},
		Profiles: map[string]allowlist.Filter{"ro": {Deny: []string{"fs__write_*"}}},
	}
	list := jsontext.Value(`{"tools":[{"name":"read_a"},{"name":"write_a"},{"name":"write_secret"},{"name":"chmod"}],"nextCursor":"c"}`)
	for _, mode := range []guard.Mode{guard.Enforce, guard.Observe} {
		t.Run(string(mode), func(t *testing.T) {
			cfg := cfg
			cfg.Mode = mode
			cfg.StrictMode = mode
			enforce := mode == guard.Enforce
			pick := func(enforced, observed string) jsontext.Value {
				if enforce {
					return jsontext.Value(enforced)
				}
				return jsontext.Value(observed)
			}
			guardtest.Run(t, func(t *testing.T) guard.Guard {
				g, err := allowlist.New(cfg)
				if err != nil {
					t.Fatal(err)
				}
				return g
			},
				guardtest.Case{
					Name: "call-allowed",
					Call: guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "read_a", Params: jsontext.Value(`{"name":"fs__read_a"}`), Tool: anyTool("read_a")},
				},
				guardtest.Case{
					Name:       "call-denied",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "write_secret", Params: jsontext.Value(`{"name":"fs__write_secret"}`), Tool: anyTool("write_secret")},
					WantReason: allowlist.ReasonToolDenied, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "call-not-allowed",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Prefix: "fs__", Name: "chmod", Params: jsontext.Value(`{"name":"fs__chmod"}`), Tool: anyTool("chmod")},
					WantReason: allowlist.ReasonToolNotAllowed, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "call-denied-by-profile",
					Call:       guard.Call{Method: mcp.MethodToolsCall, Server: "fs", Profile: "ro", Prefix: "fs__", Name: "write_a", Params: jsontext.Value(`{"name":"fs__write_a"}`), Tool: anyTool("write_a")},
					WantReason: allowlist.ReasonToolDenied, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{
					Name:       "list-filtered",
					Call:       guard.Call{Method: mcp.MethodToolsList, Server: "fs", Prefix: "fs__", Params: jsontext.Value(`{}`)},
					Next:       &guard.Result{Result: list},
					WantReason: allowlist.ReasonListFiltered, WantEffect: guard.Modify,
					WantResult: pick(`{"tools":[{"name":"read_a"},{"name":"write_a"}],"nextCursor":"c"}`, string(list)),
				},
				guardtest.Case{
					Name:       "list-filtered-by-profile",
					Call:       guard.Call{Method: mcp.MethodToolsList, Server: "fs", Profile: "ro", Prefix: "fs__", Params: jsontext.Value(`{}`)},
					Next:       &guard.Result{Result: list},
					WantReason: allowlist.ReasonListFiltered, WantEffect: guard.Modify,
					WantResult: pick(`{"tools":[{"name":"read_a"}],"nextCursor":"c"}`, string(list)),
				},
				guardtest.Case{
					Name:       "list-unparsed",
					Call:       guard.Call{Method: mcp.MethodToolsList, Server: "fs", Params: jsontext.Value(`{}`)},
					Next:       &guard.Result{Result: jsontext.Value(`{"tools":"none"}`)},
					WantReason: allowlist.ReasonListUnparsed, WantEffect: guard.Allow,
					WantResult: jsontext.Value(`{"tools":"none"}`),
				},
				guardtest.Case{
					Name:       "list-unfiltered-server",
					Call:       guard.Call{Method: mcp.MethodToolsList, Server: "gh", Params: jsontext.Value(`{}`)},
					Next:       &guard.Result{Result: list},
					WantResult: list,
				},
			)
		})
	}
}
