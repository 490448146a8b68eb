package policy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy"
)

// fixedNow is the time conditions see in these tests: a Wednesday, 14:30 UTC.
var fixedNow = time.Date(2026, 12, 2, 14, 30, 0, 0, time.UTC)

// load parses a configuration with servers fs and crm around the policy
// given (the YAML under "policy:") and compiles it.
func load(t testing.TB, policyYAML string, opts policy.Options) *policy.Engine {
	t.Helper()
	cfg, err := config.Parse([]byte(`
servers:
  fs: {command: [fs-server]}
  crm: {command: [crm-server]}
policy:
`+indent(policyYAML)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if opts.Now == nil {
		opts.Now = func() time.Time { return fixedNow }
	}
	e, err := policy.New(cfg.Policy, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func indent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}

// toolCall builds a tools/call of server's tool with JSON arguments.
func toolCall(p *guard.Principal, server, tool, args string) *guard.Call {
	params := `{"name":"` + tool + `"`
	if args != "" {
		params += `,"arguments":` + args
	}
	params += "}"
	return &guard.Call{ID: "c1", Principal: p, Server: server, Method: mcp.MethodToolsCall, Name: tool, Params: jsontext.Value(params)}
}

// short is a decision without the parts every test would repeat.
type short struct {
	Rule, Reason string
	Effect       guard.Effect
	Mode         guard.Mode
}

func shorten(ds []guard.Decision, version string, t *testing.T) []short {
	t.Helper()
	var out []short
	for _, d := range ds {
		if d.Guard != policy.Name || d.Version != version {
			t.Errorf("decision %+v: want guard %q and version %q", d, policy.Name, version)
		}
		if d.Effect != guard.Allow && d.Message == "" {
			t.Errorf("decision %+v has no message for the agent", d)
		}
		out = append(out, short{d.Rule, d.Reason, d.Effect, d.Mode})
	}
	return out
}

var (
	alice   = &guard.Principal{Subject: "alice", Groups: []string{"analysts"}, Attributes: map[string]string{"region": "eu"}}
	bob     = &guard.Principal{Subject: "bob", Groups: []string{"support"}}
	mallory = &guard.Principal{Subject: "mallory"}
)

func allow(rule string) []short {
	return []short{{rule, policy.ReasonAllowed, guard.Allow, guard.Enforce}}
}

func deny(rule, reason string) []short {
	return []short{{rule, reason, guard.Deny, guard.Enforce}}
}

var defaultDeny = deny(policy.DefaultRule, policy.ReasonNoMatchingRule)

// TestSemantics covers the rule semantics: order, deny overrides allow,
// default deny, globs, methods, conditions over the principal, and what
// the policy does not govern.
func TestSemantics(t *testing.T) {
	e := load(t, `
rules:
  - id: analysts-read
    effect: allow
    target: {servers: [fs], tools: ["read_*", "list_*"]}
    when: '"analysts" in principal.groups'
  - id: support-crm
    effect: allow
    target: {servers: [crm]}
    when: '"support" in principal.groups'
  - id: no-secrets
    effect: deny
    target: {tools: ["*secret*"]}
    reason: policy-no-secrets
    message: secrets are off limits
  - id: everyone-lists
    effect: allow
    target: {tools: [list_dir]}
  - id: no-anonymous
    effect: deny
    when: '!principal.authenticated'
  - id: resources-eu
    effect: allow
    target: {resources: ["file:///data/*"]}
    when: principal.attributes.region == "eu"
  - id: prompts
    effect: allow
    target: {prompts: ["summarize"]}
  - id: no-sampling
    effect: deny
    target: {methods: ["sampling/*"]}
    when: server == "crm"
`, policy.Options{})
	res := func(p *guard.Principal, server, method, uri string) *guard.Call {
		return &guard.Call{Principal: p, Server: server, Method: method, Name: uri, Params: jsontext.Value(`{"uri":"` + uri + `"}`)}
	}
	tests := []struct {
		name string
		call *guard.Call
		want []short
	}{
		{"allowed-by-group", toolCall(alice, "fs", "read_file", `{}`), allow("analysts-read")},
		{"glob-second-pattern", toolCall(alice, "fs", "list_dir", `{}`), allow("analysts-read")},
		{"other-group-default-deny", toolCall(bob, "fs", "read_file", `{}`), defaultDeny},
		{"tool-not-targeted", toolCall(alice, "fs", "write_file", `{}`), defaultDeny},
		{"server-not-targeted", toolCall(alice, "crm", "read_file", `{}`), defaultDeny},
		{"whole-server", toolCall(bob, "crm", "anything", `{}`), allow("support-crm")},
		{"deny-overrides-earlier-allow", toolCall(alice, "fs", "read_secrets", `{}`), deny("no-secrets", "policy-no-secrets")},
		{"deny-overrides-later-allow", toolCall(bob, "crm", "get_secret", `{}`), deny("no-secrets", "policy-no-secrets")},
		{"everyone", toolCall(mallory, "fs", "list_dir", `{}`), allow("analysts-read")[:0:0]},
		{"nil-principal-is-unauthenticated", toolCall(nil, "fs", "list_dir", `{}`), deny("no-anonymous", policy.ReasonDenied)},
		{"resource-by-attribute", res(alice, "fs", mcp.MethodResourcesRead, "file:///data/a.csv"), allow("resources-eu")},
		{"resource-subscribe", res(alice, "fs", mcp.MethodResourcesSubscribe, "file:///data/a.csv"), allow("resources-eu")},
		{"resource-missing-attribute", res(bob, "fs", mcp.MethodResourcesRead, "file:///data/a.csv"), deny("resources-eu", policy.ReasonConditionError)},
		{"resource-outside-glob", res(alice, "fs", mcp.MethodResourcesRead, "file:///etc/passwd"), defaultDeny},
		{"resource-dot-segments", res(alice, "fs", mcp.MethodResourcesRead, "file:///data/../etc/passwd"), deny(policy.DefaultRule, policy.ReasonURINotCanonical)},
		{"resource-encoded-dot-segments", res(alice, "fs", mcp.MethodResourcesRead, "file:///data/%2E%2e/etc/passwd"), deny(policy.DefaultRule, policy.ReasonURINotCanonical)},
		{"resource-encoded-slash", res(alice, "fs", mcp.MethodResourcesRead, "file:///data/x%2f..%2fetc"), deny(policy.DefaultRule, policy.ReasonURINotCanonical)},
		{"resource-backslash", res(alice, "fs", mcp.MethodResourcesRead, `file:///data/..\etc`), deny(policy.DefaultRule, policy.ReasonURINotCanonical)},
		{"resource-dots-in-name", res(alice, "fs", mcp.MethodResourcesRead, "file:///data/a..b/.hidden"), allow("resources-eu")},
		{"resource-dots-in-query", res(alice, "fs", mcp.MethodResourcesRead, "file:///data/a?x=/../"), deny(policy.DefaultRule, policy.ReasonURINotCanonical)},
		{"unsubscribe-not-governed", res(alice, "fs", mcp.MethodResourcesUnsubscribe, "file:///etc/passwd"), nil},
		{"prompt", &guard.Call{Principal: bob, Server: "fs", Method: mcp.MethodPromptsGet, Name: "summarize", Params: jsontext.Value(`{"name":"summarize"}`)}, allow("prompts")},
		{"ping-not-governed", &guard.Call{Principal: bob, Method: mcp.MethodPing}, nil},
		{"list-not-governed", &guard.Call{Principal: bob, Server: "fs", Method: mcp.MethodToolsList}, nil},
		{"sampling-denied", &guard.Call{Principal: bob, Server: "crm", Method: mcp.MethodSamplingCreateMessage, Direction: guard.ToClient}, deny("no-sampling", policy.ReasonDenied)},
		{"sampling-other-server", &guard.Call{Principal: bob, Server: "fs", Method: mcp.MethodSamplingCreateMessage, Direction: guard.ToClient}, nil},
	}
	tests[8].want = allow("everyone-lists")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shorten(e.Decide(tt.call), e.Version(), t)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestArguments covers conditions on arguments: path prefixes, numeric
// bounds, enum values, missing and malformed arguments.
func TestArguments(t *testing.T) {
	e := load(t, `
rules:
  - id: read-data
    effect: allow
    target: {tools: [read_file]}
    when: args.path.startsWith("/data/") && !args.path.contains("..")
  - id: query-limit
    effect: allow
    target: {tools: [query]}
    when: args.?limit.orValue(10) <= 100 && args.format in ["csv", "json"]
  - id: big-transfers
    effect: require-approval
    target: {tools: [transfer]}
    when: args.amount > 1000.5
  - id: transfer
    effect: allow
    target: {tools: [transfer]}
  - id: no-root
    effect: deny
    target: {tools: [read_file]}
    when: args.path.startsWith("/data/root")
  - id: business-hours
    effect: allow
    target: {tools: [report]}
    when: time.getHours() >= 9 && time.getHours() < 17 && time.getDayOfWeek() in [1, 2, 3, 4, 5]
  - id: read-only
    effect: allow
    target: {tools: [annotated]}
    when: tool.annotations.?readOnlyHint.orValue(false) && "path" in tool.input_schema.properties
`, policy.Options{Approval: true})
	approval := func(rule string) []short {
		return []short{{rule, policy.ReasonApprovalRequired, guard.RequireApproval, guard.Enforce}}
	}
	annotated := &guard.Tool{Name: "annotated", Raw: jsontext.Value(`{"name":"annotated","annotations":{"readOnlyHint":true},"inputSchema":{"type":"object","properties":{"path":{"type":"string"}}}}`)}
	unannotated := &guard.Tool{Name: "annotated", Raw: jsontext.Value(`{"name":"annotated","inputSchema":{"type":"object","properties":{"path":{}}}}`)}
	withTool := func(c *guard.Call, t *guard.Tool) *guard.Call { c.Tool = t; return c }
	tests := []struct {
		name string
		call *guard.Call
		want []short
	}{
		{"path-prefix", toolCall(alice, "fs", "read_file", `{"path":"/data/x.csv"}`), allow("read-data")},
		{"path-outside", toolCall(alice, "fs", "read_file", `{"path":"/etc/passwd"}`), defaultDeny},
		{"path-traversal", toolCall(alice, "fs", "read_file", `{"path":"/data/../etc/passwd"}`), defaultDeny},
		{"path-prefix-not-a-dir", toolCall(alice, "fs", "read_file", `{"path":"/database"}`), defaultDeny},
		{"deny-inside-allowed-prefix", toolCall(alice, "fs", "read_file", `{"path":"/data/root/key"}`), deny("no-root", policy.ReasonDenied)},
		{"path-missing", toolCall(alice, "fs", "read_file", `{}`), deny("no-root", policy.ReasonConditionError)},
		{"path-wrong-type", toolCall(alice, "fs", "read_file", `{"path":42}`), deny("no-root", policy.ReasonConditionError)},
		{"args-not-object", toolCall(alice, "fs", "read_file", `["/data/x"]`), deny("no-root", policy.ReasonConditionError)},
		// A server matching names case-insensitively may read PATH.
		{"path-case-variant", toolCall(alice, "fs", "read_file", `{"path":"/data/x.csv","PATH":"/etc/passwd"}`), deny("no-root", policy.ReasonConditionError)},
		{"path-fold-variant", toolCall(alice, "fs", "read_file", `{"path":"/data/x.csv","opts":{"k":1,"\u212a":2}}`), deny("no-root", policy.ReasonConditionError)},
		{"nested-case-variant", toolCall(alice, "fs", "query", `{"format":"csv","opts":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"Limit":1,"LIMIT":2}}`), deny("query-limit", policy.ReasonConditionError)},
		{"limit-default", toolCall(alice, "fs", "query", `{"format":"csv"}`), allow("query-limit")},
		{"limit-at-bound", toolCall(alice, "fs", "query", `{"format":"csv","limit":100}`), allow("query-limit")},
		{"limit-over-bound", toolCall(alice, "fs", "query", `{"format":"csv","limit":101}`), defaultDeny},
		{"limit-float", toolCall(alice, "fs", "query", `{"format":"json","limit":99.5}`), allow("query-limit")},
		{"limit-huge", toolCall(alice, "fs", "query", `{"format":"json","limit":1e300}`), defaultDeny},
		{"enum-other", toolCall(alice, "fs", "query", `{"format":"xml"}`), defaultDeny},
		{"enum-case", toolCall(alice, "fs", "query", `{"format":"CSV"}`), defaultDeny},
		{"approval-over-bound", toolCall(alice, "fs", "transfer", `{"amount":1001}`), approval("big-transfers")},
		{"approval-under-bound", toolCall(alice, "fs", "transfer", `{"amount":1000}`), allow("transfer")},
		{"approval-condition-error", toolCall(alice, "fs", "transfer", `{"amount":"lots"}`), []short{{"big-transfers", policy.ReasonConditionError, guard.RequireApproval, guard.Enforce}}},
		{"time", toolCall(alice, "fs", "report", `{}`), allow("business-hours")},
		{"tool-annotations", withTool(toolCall(alice, "fs", "annotated", `{}`), annotated), allow("read-only")},
		{"tool-annotations-missing", withTool(toolCall(alice, "fs", "annotated", `{}`), unannotated), defaultDeny},
		{"tool-unlisted", toolCall(alice, "fs", "annotated", `{}`), defaultDeny},
		{"tool-schema-missing", withTool(toolCall(alice, "fs", "annotated", `{}`), &guard.Tool{Name: "annotated", Raw: jsontext.Value(`{"name":"annotated","annotations":{"readOnlyHint":true}}`)}), deny("read-only", policy.ReasonConditionError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shorten(e.Decide(tt.call), e.Version(), t)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestModes covers observe and enforce, per rule and for the policy.
func TestModes(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		call   *guard.Call
		want   []short
	}{
		{
			name: "observe-policy-would-deny",
			policy: `
mode: observe
rules:
  - {id: a, effect: allow, target: {tools: [read]}}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{{policy.DefaultRule, policy.ReasonNoMatchingRule, guard.Deny, guard.Observe}},
		},
		{
			name: "observe-policy-deny-rule",
			policy: `
mode: observe
rules:
  - {id: d, effect: deny, target: {tools: [write]}}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{{"d", policy.ReasonDenied, guard.Deny, guard.Observe}},
		},
		{
			name: "observe-policy-allow",
			policy: `
mode: observe
rules:
  - {id: a, effect: allow}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{{"a", policy.ReasonAllowed, guard.Allow, guard.Observe}},
		},
		{
			name: "observe-deny-rule-over-enforced-allow",
			policy: `
rules:
  - {id: a, effect: allow}
  - {id: d, effect: deny, mode: observe, target: {tools: [write]}}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{
				{"d", policy.ReasonDenied, guard.Deny, guard.Observe},
				{"a", policy.ReasonAllowed, guard.Allow, guard.Enforce},
			},
		},
		{
			name: "observe-allow-rule-does-not-allow",
			policy: `
rules:
  - {id: a, effect: allow, mode: observe}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{
				{"a", policy.ReasonAllowed, guard.Allow, guard.Observe},
				{policy.DefaultRule, policy.ReasonNoMatchingRule, guard.Deny, guard.Enforce},
			},
		},
		{
			name: "enforced-rule-in-observe-policy",
			policy: `
mode: observe
rules:
  - {id: d, effect: deny, mode: enforce, target: {tools: [write]}}
  - {id: a, effect: allow}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: deny("d", policy.ReasonDenied),
		},
		{
			name: "observe-approval",
			policy: `
rules:
  - {id: ap, effect: require-approval, mode: observe}
  - {id: a, effect: allow}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{
				{"ap", policy.ReasonApprovalRequired, guard.RequireApproval, guard.Observe},
				{"a", policy.ReasonAllowed, guard.Allow, guard.Enforce},
			},
		},
		{
			name: "approval-overrides-allow",
			policy: `
rules:
  - {id: a, effect: allow}
  - {id: ap, effect: require-approval, target: {tools: [write]}}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: []short{{"ap", policy.ReasonApprovalRequired, guard.RequireApproval, guard.Enforce}},
		},
		{
			name: "deny-overrides-approval",
			policy: `
rules:
  - {id: ap, effect: require-approval}
  - {id: d, effect: deny, target: {tools: [write]}}`,
			call: toolCall(alice, "fs", "write", `{}`),
			want: deny("d", policy.ReasonDenied),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := load(t, tt.policy, policy.Options{Approval: true})
			got := shorten(e.Decide(tt.call), e.Version(), t)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestApprovalUnavailable: without an approval guard, require-approval
// denies rather than lets the call through.
func TestApprovalUnavailable(t *testing.T) {
	e := load(t, `
rules:
  - {id: a, effect: allow}
  - {id: ap, effect: require-approval, target: {tools: [write]}}`, policy.Options{})
	got := shorten(e.Decide(toolCall(alice, "fs", "write", `{}`)), e.Version(), t)
	want := deny("ap", policy.ReasonApprovalUnavailable)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

// TestVersion: the version is a content hash.
func TestVersion(t *testing.T) {
	a := load(t, "rules: [{id: a, effect: allow}]", policy.Options{})
	b := load(t, "rules: [{id: a, effect: allow}]", policy.Options{})
	c := load(t, "rules: [{id: a, effect: deny}]", policy.Options{})
	if a.Version() != b.Version() || a.Version() == c.Version() || len(a.Version()) != 24 {
		t.Errorf("versions %q %q %q: want equal for equal policies, different otherwise", a.Version(), b.Version(), c.Version())
	}
}

// TestVisible covers list filtering: an item is shown when the caller may
// possibly use it, with conditions on arguments counting as possible.
func TestVisible(t *testing.T) {
	e := load(t, `
rules:
  - id: read-data
    effect: allow
    target: {servers: [fs], tools: [read_file]}
    when: args.path.startsWith("/data/")
  - id: analysts
    effect: allow
    target: {servers: [fs], tools: ["search", "list_*"]}
    when: '"analysts" in principal.groups'
  - id: approve-send
    effect: require-approval
    target: {tools: [send]}
  - id: no-delete
    effect: deny
    target: {tools: ["delete*"]}
  - id: allow-delete
    effect: allow
    target: {tools: ["delete*"]}
  - id: no-big
    effect: deny
    target: {tools: [search]}
    when: args.limit > 100
  - id: read-only-tools
    effect: allow
    target: {tools: ["ro_*"]}
    when: tool.annotations.?readOnlyHint.orValue(false)
  - id: docs
    effect: allow
    target: {resources: ["demo://documents/*"]}
    when: '!resource.uri.endsWith("/secret")'
  - id: prompt-bob
    effect: allow
    target: {prompts: [summarize]}
    when: principal.subject == "bob"
  - id: observed
    effect: allow
    mode: observe
    target: {tools: [observed]}
`, policy.Options{Approval: true})
	call := func(p *guard.Principal, server, method string) *guard.Call {
		return &guard.Call{Principal: p, Server: server, Method: method}
	}
	tests := []struct {
		name       string
		call       *guard.Call
		item       string
		raw        string
		want, wait bool
	}{
		{"args-condition-possible", call(bob, "fs", mcp.MethodToolsList), "read_file", "", true, true},
		{"principal-condition-true", call(alice, "fs", mcp.MethodToolsList), "search", "", true, true},
		{"principal-condition-false", call(bob, "fs", mcp.MethodToolsList), "search", "", false, false},
		{"maybe-deny-does-not-hide", call(alice, "fs", mcp.MethodToolsList), "search", "", true, true},
		{"approval-is-possible", call(bob, "crm", mcp.MethodToolsList), "send", "", true, true},
		{"certain-deny-hides", call(alice, "fs", mcp.MethodToolsList), "delete_all", "", false, false},
		{"no-rule-hides", call(alice, "fs", mcp.MethodToolsList), "write", "", false, false},
		{"server-glob", call(alice, "crm", mcp.MethodToolsList), "read_file", "", false, false},
		{"annotation-true", call(bob, "fs", mcp.MethodToolsList), "ro_x", `{"name":"ro_x","annotations":{"readOnlyHint":true}}`, true, true},
		{"annotation-false", call(bob, "fs", mcp.MethodToolsList), "ro_x", `{"name":"ro_x","annotations":{"readOnlyHint":false}}`, false, false},
		{"observe-rule-would-show", call(bob, "fs", mcp.MethodToolsList), "observed", "", false, true},
		{"resource", call(bob, "fs", mcp.MethodResourcesList), "demo://documents/a", "", true, true},
		{"resource-condition-false", call(bob, "fs", mcp.MethodResourcesList), "demo://documents/secret", "", false, false},
		{"resource-other", call(bob, "fs", mcp.MethodResourcesList), "demo://outbox", "", false, false},
		{"template-may-match", call(bob, "fs", mcp.MethodResourceTemplatesList), "demo://documents/{id}", "", true, true},
		{"template-prefix-mismatch", call(bob, "fs", mcp.MethodResourceTemplatesList), "file:///{path}", "", false, false},
		{"template-shorter-prefix", call(bob, "fs", mcp.MethodResourceTemplatesList), "demo://{kind}/{id}", "", true, true},
		{"prompt", call(bob, "fs", mcp.MethodPromptsList), "summarize", "", true, true},
		{"prompt-other-principal", call(alice, "fs", mcp.MethodPromptsList), "summarize", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := e.Visible(tt.call, tt.call.Method, tt.item, jsontext.Value(tt.raw))
			if v.Visible != tt.want || v.WouldBeVisible != tt.wait {
				t.Errorf("Visible = %+v, want visible %v, would be visible %v", v, tt.want, tt.wait)
			}
		})
	}
}

// TestWrapFiltersLists runs a list result through the guard.
func TestWrapFiltersLists(t *testing.T) {
	e := load(t, `
rules:
  - {id: reads, effect: allow, target: {tools: ["read_*"]}}
`, policy.Options{})
	h := e.Wrap(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{"tools":[{"name":"read_a","x":1},{"name":"write_b"},{"name":"read_c"}],"nextCursor":"n"}`)}, nil
	}))
	c := &guard.Call{Principal: alice, Server: "fs", Method: mcp.MethodToolsList, Params: jsontext.Value(`{}`)}
	res, err := h.Handle(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"tools":[{"name":"read_a","x":1},{"name":"read_c"}],"nextCursor":"n"}`; string(res.Result) != want {
		t.Errorf("result = %s, want %s", res.Result, want)
	}
	if len(c.Decisions) != 1 || c.Decisions[0].Reason != policy.ReasonListFiltered || c.Decisions[0].Rule != policy.DefaultRule {
		t.Errorf("decisions = %+v, want one %s by %s", c.Decisions, policy.ReasonListFiltered, policy.DefaultRule)
	}
}

// TestGuardSuite runs the shared guard conformance suite in both modes.
func TestGuardSuite(t *testing.T) {
	for _, mode := range []string{"enforce", "observe"} {
		t.Run(mode, func(t *testing.T) {
			newGuard := func(t *testing.T) guard.Guard {
				return load(t, `
mode: `+mode+`
rules:
  - {id: reads, effect: allow, target: {tools: ["read_*"]}}
  - {id: no-etc, effect: deny, target: {tools: ["read_*"]}, when: 'args.path.startsWith("/etc")', reason: policy-no-etc}
`, policy.Options{})
			}
			denied := mode == "enforce"
			guardtest.Run(t, newGuard,
				guardtest.Case{
					Name:       "allowed",
					Call:       *toolCall(alice, "fs", "read_file", `{"path":"/data"}`),
					WantReason: policy.ReasonAllowed, WantEffect: guard.Allow,
				},
				guardtest.Case{
					Name:       "denied-by-rule",
					Call:       *toolCall(alice, "fs", "read_file", `{"path":"/etc/passwd"}`),
					WantReason: "policy-no-etc", WantEffect: guard.Deny, WantDenied: denied,
				},
				guardtest.Case{
					Name:       "default-deny",
					Call:       *toolCall(alice, "fs", "write_file", `{}`),
					WantReason: policy.ReasonNoMatchingRule, WantEffect: guard.Deny, WantDenied: denied,
				},
				guardtest.Case{
					Name:       "list-filtered",
					Call:       guard.Call{Principal: alice, Server: "fs", Method: mcp.MethodToolsList, Params: jsontext.Value(`{}`)},
					Next:       &guard.Result{Result: jsontext.Value(`{"tools":[{"name":"read_a"},{"name":"write_b"}]}`)},
					WantReason: policy.ReasonListFiltered, WantEffect: guard.Modify,
				},
			)
		})
	}
}

// TestIssuer checks that conditions can tell principals apart by who
// vouched for them.
func TestIssuer(t *testing.T) {
	e := load(t, `
rules:
  - id: corp-only
    effect: allow
    target: {tools: [read_file]}
    when: principal.issuer == "https://login.example.com"
`, policy.Options{})
	corp := &guard.Principal{Issuer: "https://login.example.com", Subject: "ada", Name: "ada"}
	other := &guard.Principal{Issuer: "https://other.example", Subject: "ada", Name: "ada"}
	if diff := cmp.Diff(allow("corp-only"), shorten(e.Decide(toolCall(corp, "fs", "read_file", `{}`)), e.Version(), t)); diff != "" {
		t.Errorf("corporate issuer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(defaultDeny, shorten(e.Decide(toolCall(other, "fs", "read_file", `{}`)), e.Version(), t)); diff != "" {
		t.Errorf("other issuer (-want +got):\n%s", diff)
	}
}

// TestCompletion checks that completion/complete is judged by what it
// completes: a caller may complete a prompt's arguments or a resource
// template's variables only when it may possibly use them, as lists show.
func TestCompletion(t *testing.T) {
	const rules = `
rules:
  - id: analysts-prompts
    effect: allow
    target: {prompts: [summarize]}
    when: '"analysts" in principal.groups'
  - id: analysts-docs
    effect: allow
    target: {resources: ["demo://documents/*"]}
    when: '"analysts" in principal.groups && args.?x.orValue(0) == 0'
`
	complete := func(p *guard.Principal, ref string, name string) *guard.Call {
		return &guard.Call{
			Principal: p, Server: "demo", Method: mcp.MethodCompletionComplete, Name: name,
			Params: jsontext.Value(`{"ref":` + ref + `,"argument":{"name":"id","value":"C-"}}`),
		}
	}
	prompt := func(p *guard.Principal) *guard.Call {
		return complete(p, `{"type":"ref/prompt","name":"summarize"}`, "summarize")
	}
	template := func(p *guard.Principal) *guard.Call {
		return complete(p, `{"type":"ref/resource","uri":"demo://documents/{id}"}`, "demo://documents/{id}")
	}
	other := func(p *guard.Principal) *guard.Call {
		return complete(p, `{"type":"ref/prompt","name":"other"}`, "other")
	}
	for _, mode := range []string{"enforce", "observe"} {
		e := load(t, "mode: "+mode+rules, policy.Options{})
		h := e.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
			return &guard.Result{Result: jsontext.Value(`{"completion":{"values":["C-1001"]}}`)}, nil
		}))
		for _, tt := range []struct {
			name   string
			call   *guard.Call
			denied bool
		}{
			{"prompt-allowed", prompt(alice), false},
			{"prompt-denied", prompt(bob), true},
			{"template-allowed", template(alice), false},
			{"template-denied", template(bob), true},
			{"unknown-prompt-denied", other(alice), true},
			{"anonymous-denied", prompt(nil), true},
		} {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				_, err := h.Handle(context.Background(), tt.call)
				var de *guard.DeniedError
				gotDenied := errors.As(err, &de)
				if wantErr := tt.denied && mode == "enforce"; gotDenied != wantErr || (err != nil && !gotDenied) {
					t.Fatalf("err = %v, want denied %v", err, wantErr)
				}
				var found bool
				for _, d := range tt.call.Decisions {
					if d.Reason == policy.ReasonCompletionNotAllowed {
						found = true
						if d.Mode != guard.Mode(mode) {
							t.Errorf("decision mode %s, want %s", d.Mode, mode)
						}
					}
				}
				if found != tt.denied {
					t.Errorf("completion decision recorded %v, want %v: %+v", found, tt.denied, tt.call.Decisions)
				}
			})
		}
	}
}

// TestURISpelling: a deny rule on resources holds however the URI is
// spelled. Percent-encoded letters, digits and "-._~" mean the same URI
// as the characters themselves (RFC 3986, section 6.2.2.2) and schemes are
// case-insensitive, so a server reads "file:///%65tc/passwd" and
// "FILE:///etc/passwd" as /etc/passwd while a glob would not match them:
// such spellings are refused, not judged.
func TestURISpelling(t *testing.T) {
	e := load(t, `
rules:
  - {id: no-etc, effect: deny, target: {resources: ["file:///etc/*"]}}
  - {id: files, effect: allow, target: {resources: ["*"]}}
`, policy.Options{})
	notCanonical := deny(policy.DefaultRule, policy.ReasonURINotCanonical)
	for _, tt := range []struct {
		uri  string
		want []short
	}{
		{"file:///etc/passwd", deny("no-etc", policy.ReasonDenied)},
		{"file:///%65tc/passwd", notCanonical},
		{"file:///e%74c/passwd", notCanonical},
		{"file:///etc%2Dx/a", notCanonical},
		{"FILE:///etc/passwd", notCanonical},
		{"File:///etc/passwd", notCanonical},
		{"file:///data/a%20b.csv", allow("files")},
		{"file:///data/%C3%A9.csv", allow("files")},
		{"doc://Public/A", allow("files")},
	} {
		c := &guard.Call{Server: "fs", Method: mcp.MethodResourcesRead, Name: tt.uri, Params: jsontext.Value(`{"uri":"` + tt.uri + `"}`)}
		if diff := cmp.Diff(tt.want, shorten(e.Decide(c), e.Version(), t)); diff != "" {
			t.Errorf("%s: decisions (-want +got):\n%s", tt.uri, diff)
		}
	}
}
