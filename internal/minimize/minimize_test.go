package minimize

import (
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
)

func TestWalker(t *testing.T) {
	in := `{"customers":[{"id":"C-1","name":"Ada","card":"4111","tags":["a","b","c"]},{"id":"C-2","name":"Bo","card":"5555","tags":[]}],"total":2,"next":{"cursor":"x"}}`
	ptrs := func(ss ...string) (out []pointer) {
		for _, s := range ss {
			p, err := parsePointer(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		allow, deny []string
		maxItems    int
		want        string
	}{
		{name: "deny a member of every item", deny: []string{"/customers/*/card"},
			want: `{"customers":[{"id":"C-1","name":"Ada","tags":["a","b","c"]},{"id":"C-2","name":"Bo","tags":[]}],"total":2,"next":{"cursor":"x"}}`},
		{name: "allow some members", allow: []string{"/customers/*/name", "/total"},
			want: `{"customers":[{"name":"Ada"},{"name":"Bo"}],"total":2}`},
		{name: "allow a subtree, deny inside it", allow: []string{"/customers"}, deny: []string{"/customers/*/tags", "/customers/1"},
			want: `{"customers":[{"id":"C-1","name":"Ada","card":"4111"}]}`},
		{name: "cap every array", maxItems: 1,
			want: `{"customers":[{"id":"C-1","name":"Ada","card":"4111","tags":["a"]}],"total":2,"next":{"cursor":"x"}}`},
		{name: "escaped pointer", deny: []string{"/next/cursor"},
			want: `{"customers":[{"id":"C-1","name":"Ada","card":"4111","tags":["a","b","c"]},{"id":"C-2","name":"Bo","card":"5555","tags":[]}],"total":2,"next":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &walker{allow: ptrs(tc.allow...), deny: ptrs(tc.deny...), maxItems: tc.maxItems}
			got, err := w.rewrite(jsontext.Value(in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if p, _ := parsePointer("/a~1b/c~0d"); len(p) != 2 || p[0] != "a/b" || p[1] != "c~d" {
		t.Errorf("parsePointer: %q", p)
	}
}

func minimizeConfig(t testing.TB, mode string) *config.Minimize {
	t.Helper()
	cfg, err := config.Parse([]byte(`
servers:
  crm: {command: [crm]}
minimize:
  mode: `+mode+`
  rules:
    - id: customers
      target: {tools: [find_customers]}
      max_items: 2
      fields: {deny: [/customers/*/card]}
    - id: small
      target: {tools: [export]}
      max_result_bytes: 300
    - id: strict
      target: {tools: [dump]}
      max_result_bytes: 300
      oversize: refuse
    - id: resources
      target: {resources: ["demo://*"]}
      max_resource_bytes: 10
`), "minimize.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Minimize
}

func call(tool string) guard.Call {
	return guard.Call{Server: "crm", Method: mcp.MethodToolsCall, Name: tool, Params: jsontext.Value(`{"name":"` + tool + `","arguments":{}}`)}
}

func TestGuard(t *testing.T) {
	structured := `{"customers":[{"id":"C-1","card":"4111"},{"id":"C-2","card":"5555"},{"id":"C-3","card":"3782"}]}`
	text, _ := jsontext.AppendQuote(nil, structured)
	found := jsontext.Value(`{"content":[{"type":"text","text":` + string(text) + `}],"structuredContent":` + structured + `}`)
	projected := `{"customers":[{"id":"C-1"},{"id":"C-2"}]}`
	ptext, _ := jsontext.AppendQuote(nil, projected)
	long := jsontext.Value(`{"content":[{"type":"text","text":"` + strings.Repeat("word ", 200) + `"}],"isError":false}`)
	many := jsontext.Value(`{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"text","text":"c"}]}`)
	read := guard.Call{Server: "crm", Method: mcp.MethodResourcesRead, Name: "demo://doc", Params: jsontext.Value(`{"uri":"demo://doc"}`)}
	list := guard.Call{Server: "crm", Method: mcp.MethodToolsList, Params: jsontext.Value(`{}`)}
	tools := jsontext.Value(`{"tools":[{"name":"find_customers","inputSchema":{"type":"object"},"outputSchema":{"type":"object"}},{"name":"other","inputSchema":{"type":"object"},"outputSchema":{"type":"object"}}]}`)
	for _, mode := range []string{"enforce", "observe"} {
		enforce := mode == "enforce"
		t.Run(mode, func(t *testing.T) {
			guardtest.Run(t, func(t *testing.T) guard.Guard {
				g, err := New(minimizeConfig(t, mode))
				if err != nil {
					t.Fatal(err)
				}
				return g
			},
				guardtest.Case{Name: "projected-and-capped-text-follows", Call: call("find_customers"), Next: &guard.Result{Result: found},
					WantReason: ReasonFieldsProjected, WantEffect: guard.Modify,
					WantResult: pick(enforce, jsontext.Value(`{"content":[{"type":"text","text":`+string(ptext)+`}],"structuredContent":`+projected+`}`), found)},
				guardtest.Case{Name: "content-blocks-capped", Call: call("find_customers"), Next: &guard.Result{Result: many},
					WantReason: ReasonItemsCapped, WantEffect: guard.Modify,
					WantResult: pick(enforce, jsontext.Value(`{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"},{"type":"text","text":"[sluice: 1 more content blocks omitted]"}]}`), many)},
				guardtest.Case{Name: "truncated", Call: call("export"), Next: &guard.Result{Result: long},
					WantReason: ReasonTruncated, WantEffect: guard.Modify},
				guardtest.Case{Name: "refused", Call: call("dump"), Next: &guard.Result{Result: long},
					WantReason: ReasonTooLarge, WantEffect: guard.Deny, WantDenied: enforce},
				guardtest.Case{Name: "small-enough", Call: call("dump"), Next: &guard.Result{Result: many}},
				guardtest.Case{Name: "resource-cut", Call: read, Next: &guard.Result{Result: jsontext.Value(`{"contents":[{"uri":"demo://doc","text":"0123456789abcdef"}]}`)},
					WantReason: ReasonResourceCut, WantEffect: guard.Modify,
					WantResult: pick(enforce, jsontext.Value(`{"contents":[{"uri":"demo://doc","text":"0123456789\n[sluice: truncated from 16 bytes]"}]}`),
						jsontext.Value(`{"contents":[{"uri":"demo://doc","text":"0123456789abcdef"}]}`))},
				guardtest.Case{Name: "binary-resource-refused", Call: read, Next: &guard.Result{Result: jsontext.Value(`{"contents":[{"uri":"demo://doc","blob":"AAAAAAAAAAAAAAAA"}]}`)},
					WantReason: ReasonResourceTooLarge, WantEffect: guard.Deny, WantDenied: enforce},
				guardtest.Case{Name: "output-schema-of-projected-tools-removed", Call: list, Next: &guard.Result{Result: tools},
					WantReason: pick(enforce, ReasonSchemaRemoved, ""), WantEffect: pick(enforce, guard.Modify, ""),
					WantResult: pick(enforce, jsontext.Value(`{"tools":[{"name":"find_customers","inputSchema":{"type":"object"}},{"name":"other","inputSchema":{"type":"object"},"outputSchema":{"type":"object"}}]}`), tools)},
				guardtest.Case{Name: "untargeted", Call: call("other"), Next: &guard.Result{Result: long}},
			)
		})
	}
}

// TestTruncatedFits: a truncated result is valid JSON within the cap, and
// says what was cut.
func TestTruncatedFits(t *testing.T) {
	for _, text := range []string{strings.Repeat("é\\\"x", 500), strings.Repeat("plain ", 1000)} {
		q, _ := jsontext.AppendQuote(nil, text)
		in := jsontext.Value(`{"content":[{"type":"text","text":` + string(q) + `}],"structuredContent":{"a":1}}`)
		out := truncated(in, 400)
		if len(out) > 400 || !out.IsValid() || !strings.Contains(string(out), "result truncated from") || !strings.Contains(string(out), "structured content omitted") {
			t.Errorf("%d bytes, valid %v: %s", len(out), out.IsValid(), out)
		}
	}
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}
