package policy_test

import (
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy"
)

// fuzzPolicy has conditions of every shape over arguments: prefixes,
// bounds, enums, nested members, lists and comprehensions.
const fuzzPolicy = `
rules:
  - id: read-data
    effect: allow
    target: {tools: [read_file, "read_*"]}
    when: args.path.startsWith("/data/") && !args.path.contains("..")
  - id: no-root
    effect: deny
    target: {tools: ["read_*"]}
    when: args.path.startsWith("/data/root")
  - id: query
    effect: allow
    target: {tools: [query]}
    when: args.?limit.orValue(10) <= 100 && args.format in ["csv", "json"] && size(args) < 10
  - id: nested
    effect: allow
    target: {tools: [nested]}
    when: args.filter.field == "id" && args.filter.values.all(v, type(v) == string && v.size() < 20)
  - id: big
    effect: require-approval
    target: {tools: [transfer]}
    when: double(args.amount) > 1000.0
  - id: transfer
    effect: allow
    target: {tools: [transfer]}
    when: args.currency.matches("^[A-Z]{3}$")
  - id: exists
    effect: deny
    target: {tools: ["*"]}
    when: args.exists(k, k.startsWith("__"))
  - id: everything
    effect: allow
    target: {tools: [open]}
`

var reasonRE = regexp.MustCompile(`^policy-[a-z0-9]+(-[a-z0-9]+)*$`)

// FuzzDecide evaluates the rules on arbitrary arguments and tool names. It
// checks that a decision is always made and well-formed, that it does not
// depend on anything but the call, and that whatever a call is allowed to
// do, a list shows the tool: list filtering never hides what may be used.
func FuzzDecide(f *testing.F) {
	for _, seed := range []struct{ args, tool string }{
		{`{"path":"/data/x"}`, "read_file"},
		{`{"path":"/data/../etc"}`, "read_file"},
		{`{"path":"/data/root/k"}`, "read_x"},
		{`{"path":42}`, "read_file"},
		{`{"limit":100,"format":"csv"}`, "query"},
		{`{"limit":1e400,"format":"csv"}`, "query"},
		{`{"limit":-9223372036854775809,"format":"json"}`, "query"},
		{`{"filter":{"field":"id","values":["a","b"]}}`, "nested"},
		{`{"filter":{"field":"id","values":[1,null,{}]}}`, "nested"},
		{`{"amount":1000.5,"currency":"EUR"}`, "transfer"},
		{`{"amount":"1",  "currency":"eur"}`, "transfer"},
		{`{"__proto__":1}`, "open"},
		{`{"a":1,"a":2}`, "open"},
		{`[1,2]`, "open"},
		{`"x"`, "open"},
		{`{"path":"/data/\ud800"}`, "read_file"},
		{`{"x":[[[[[[[[[[[[]]]]]]]]]]]]}`, "open"},
		{``, "open"},
		{`{`, "read_file"},
	} {
		f.Add([]byte(seed.args), seed.tool)
	}
	e := load(f, fuzzPolicy, policy.Options{Approval: true})
	f.Fuzz(func(t *testing.T, args []byte, tool string) {
		params := []byte(`{"name":`)
		params, _ = jsontext.AppendQuote(params, tool)
		if len(args) > 0 {
			params = append(params, `,"arguments":`...)
			params = append(params, args...)
		}
		params = append(params, '}')
		c := &guard.Call{ID: "f", Principal: alice, Server: "fs", Method: mcp.MethodToolsCall, Name: tool, Params: params}
		ds := e.Decide(c)
		if len(ds) == 0 || len(ds) > 2 {
			t.Fatalf("%d decisions for a tool call: %+v", len(ds), ds)
		}
		for _, d := range ds {
			if d.Guard != policy.Name || d.Version != e.Version() || !reasonRE.MatchString(d.Reason) || !d.Mode.Valid() || d.Rule == "" {
				t.Errorf("malformed decision %+v", d)
			}
			switch d.Effect {
			case guard.Allow, guard.Deny, guard.RequireApproval:
			default:
				t.Errorf("decision with effect %q", d.Effect)
			}
		}
		if again := e.Decide(&guard.Call{ID: "f", Principal: alice, Server: "fs", Method: mcp.MethodToolsCall, Name: tool, Params: slices.Clone(params)}); !cmp.Equal(ds, again) {
			t.Errorf("same call, different decisions:\n%+v\n%+v", ds, again)
		}
		enforced := ds[len(ds)-1]
		if enforced.Mode != guard.Enforce {
			t.Fatalf("the last decision is not the enforced one: %+v", ds)
		}
		if enforced.Effect != guard.Deny {
			list := &guard.Call{ID: "l", Principal: alice, Server: "fs", Method: mcp.MethodToolsList}
			if v := e.Visible(list, mcp.MethodToolsList, tool, nil); !v.Visible {
				t.Errorf("tool %s may be called (%+v) with %s but is hidden from lists (%+v)", strconv.Quote(tool), enforced, args, v)
			}
		}
	})
}
