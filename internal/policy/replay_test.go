package policy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy"
)

// placeholder marks what these tests record in place of values: tokens,
// and "<+N more>" for the rest of a cut array.
func placeholder(s string) (unknown, rest bool) {
	if strings.HasPrefix(s, "<+") {
		return true, true
	}
	return strings.HasPrefix(s, "hmac:"), false
}

const replayPolicy = `
rules:
  - id: no-etc
    effect: deny
    target: {servers: [fs], tools: [read_file]}
    when: 'args.path.startsWith("/etc")'
  - id: small-reads
    effect: deny
    target: {servers: [fs], tools: [read_file]}
    when: 'has(args.limit) && args.limit > 100'
  - id: tagged
    effect: deny
    target: {servers: [crm], tools: [find]}
    when: '"secret" in args.tags'
  - id: exact-tags
    effect: deny
    target: {servers: [crm], tools: [exact]}
    when: '["a", "b"] == args.tags || args.tags == ["a", "b"]'
  - id: few-tags
    effect: deny
    target: {servers: [crm], tools: [count]}
    when: 'size(args.tags) > 3'
  - id: read-only
    effect: allow
    target: {servers: [crm], tools: [annotated]}
    when: 'tool.annotations.?readOnlyHint.orValue(false)'
  - id: admins
    effect: allow
    when: '"admin" in principal.groups'
`

func TestReplayExactWhenRecordedInFull(t *testing.T) {
	e := load(t, replayPolicy, policy.Options{})
	admin := &guard.Principal{Issuer: "api-key", Subject: "root", Groups: []string{"admin"}}
	user := &guard.Principal{Issuer: "api-key", Subject: "ann"}
	calls := []*guard.Call{
		toolCall(admin, "fs", "read_file", `{"path":"/etc/passwd"}`),
		toolCall(admin, "fs", "read_file", `{"path":"/home/a","limit":500}`),
		toolCall(admin, "fs", "read_file", `{"path":"/home/a","limit":5}`),
		toolCall(user, "fs", "read_file", `{"path":"/home/a"}`),
		toolCall(admin, "crm", "find", `{"tags":["x","secret"]}`),
		toolCall(admin, "crm", "exact", `{"tags":["a","b"]}`),
		toolCall(admin, "crm", "count", `{"tags":["a","b","c","d"]}`),
		toolCall(admin, "fs", "read_file", `{"path":7}`), // a condition error: fails closed
	}
	for _, c := range calls {
		args, _, err := mcp.Lookup(c.Params, "arguments")
		if err != nil {
			t.Fatal(err)
		}
		got := e.Replay(policy.Recorded{Call: c, Time: fixedNow, Args: args, Placeholder: placeholder})
		want := e.Decide(c)
		if !got.Determined || !got.Effects || got.Unknown != nil {
			t.Errorf("%s: replay of a call recorded in full is not determined: %+v", c.Params, got)
		}
		if !policy.SameDecisions(got.Decisions, want) {
			t.Errorf("%s: replay decides %+v, the policy %+v", c.Params, got.Decisions, want)
		}
	}
}

func TestReplayWithValuesNotRecorded(t *testing.T) {
	e := load(t, replayPolicy, policy.Options{})
	admin := &guard.Principal{Issuer: "api-key", Subject: "root", Groups: []string{"admin"}}
	user := &guard.Principal{Issuer: "api-key", Subject: "ann"}
	tok := `"hmac:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`
	for _, tc := range []struct {
		name    string
		p       *guard.Principal
		server  string
		tool    string
		args    string // as recorded; "" for not recorded
		rule    string // the enforced decision's rule when determined
		effect  guard.Effect
		unknown []string // when not determined
		effects bool     // when not determined: whether the effects are
	}{
		{name: "hashed path", p: admin, server: "fs", tool: "read_file", args: `{"path":` + tok + `}`, unknown: []string{"args.path"}},
		{name: "numbers are kept", p: admin, server: "fs", tool: "read_file", args: `{"path":` + tok + `,"limit":500}`, unknown: []string{"args.path"}, effects: true},
		{name: "not recorded", p: admin, server: "fs", tool: "read_file", unknown: []string{"args"}},
		{name: "a user is not allowed, by one rule or another", p: user, server: "fs", tool: "read_file", args: `{"path":` + tok + `}`, unknown: []string{"args.path"}, effects: true},
		{name: "an item that is known", p: admin, server: "crm", tool: "find", args: `{"tags":[` + tok + `,"secret"]}`, rule: "tagged", effect: guard.Deny},
		{name: "an item that may be", p: admin, server: "crm", tool: "find", args: `{"tags":[` + tok + `,"public"]}`, unknown: []string{"args.tags[0]"}},
		{name: "lists compared both ways", p: admin, server: "crm", tool: "exact", args: `{"tags":["a",` + tok + `]}`, unknown: []string{"args.tags[1]"}},
		{name: "lists of another size", p: admin, server: "crm", tool: "exact", args: `{"tags":["a",` + tok + `,"c"]}`, rule: "admins", effect: guard.Allow},
		{name: "size of hashed items", p: admin, server: "crm", tool: "count", args: `{"tags":[` + tok + `,` + tok + `]}`, rule: "admins", effect: guard.Allow},
		{name: "size of a cut list", p: admin, server: "crm", tool: "count", args: `{"tags":[` + tok + `,"<+30 more>"]}`, unknown: []string{"args.tags"}},
		{name: "tool definitions are not recorded", p: user, server: "crm", tool: "annotated", args: `{}`, unknown: []string{"tool.annotations"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := toolCall(tc.p, tc.server, tc.tool, "")
			got := e.Replay(policy.Recorded{Call: c, Time: fixedNow, Args: jsontext.Value(tc.args), Placeholder: placeholder})
			if tc.unknown != nil {
				if got.Determined || !slices.Equal(got.Unknown, tc.unknown) || got.Effects != tc.effects {
					t.Fatalf("got determined %v (effects %v), unknown %q; want undetermined (effects %v), depending on %q",
						got.Determined, got.Effects, got.Unknown, tc.effects, tc.unknown)
				}
				return
			}
			if !got.Determined || !got.Effects || got.Unknown != nil {
				t.Fatalf("not determined: %+v", got)
			}
			d := got.Decisions[len(got.Decisions)-1]
			if d.Rule != tc.rule || d.Effect != tc.effect {
				t.Fatalf("decided %s by %s, want %s by %s", d.Effect, d.Rule, tc.effect, tc.rule)
			}
		})
	}
}
