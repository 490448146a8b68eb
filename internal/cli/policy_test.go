package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPolicyDemoExample checks examples/policy-demo.yaml: it validates,
// lints clean, and its cases pass, showing the analyst and the support
// agent seeing different tools and argument limits.
func TestPolicyDemoExample(t *testing.T) {
	ctx := context.Background()
	cfg := filepath.Join("..", "..", "examples", "policy-demo.yaml")
	cases := filepath.Join("..", "..", "examples", "policy-demo.test.yaml")
	if r := runMain(t, ctx, nil, "validate", cfg); r.Code != 0 {
		t.Fatalf("validate: %+v", r)
	}
	if r := runMain(t, ctx, nil, "policy", "lint", "--config", cfg); r.Code != 0 || !strings.HasSuffix(r.Stdout, "policy ok\n") {
		t.Errorf("lint: %+v", r)
	}
	r := runMain(t, ctx, nil, "policy", "test", "--config", cfg, cases)
	if r.Code != 0 || !strings.Contains(r.Stdout, "27 case(s), 27 passed, 0 failed") {
		t.Errorf("test: %+v", r)
	}
}

const policyConfig = `servers:
  fs:
    command: [fs-server]
    tools: {allow: [read_file, list_dir, write_file], deny: [write_file]}
  crm: {command: [crm-server]}
policy:
  rules:
    - id: reads
      effect: allow
      target: {servers: [fs], tools: [read_file]}
      when: args.path.startsWith("/data/") && "analysts" in principal.groups
    - id: crm
      effect: allow
      target: {servers: [crm]}
      when: principal.subject == "bob"
`

// TestPolicyTest runs `sluice policy test` with passing and failing cases
// and checks the report and the exit status.
func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "sluice.yaml", policyConfig)
	tests := []struct {
		name     string
		cases    string
		code     int
		stdout   string
		stderrIn string
	}{
		{
			name: "pass",
			cases: `principals:
  alice: {subject: alice, groups: [analysts]}
  bob: {subject: bob}
cases:
  - name: alice reads data
    principal: alice
    call: {server: fs, tool: read_file, args: {path: /data/x}}
    expect: {effect: allow, rule: reads, reason: policy-allowed-by-rule, mode: enforce}
  - name: bob on crm
    principal: bob
    call: {server: crm, tool: anything}
    expect: {effect: allow, rule: crm}
  - name: anonymous
    call: {server: crm, tool: anything}
    expect: {effect: deny, rule: (default), reason: policy-no-matching-rule}
  - name: list
    principal: alice
    call: {server: fs, method: tools/list, tool: read_file}
    expect: {effect: allow}
  - name: sampling is not governed
    call: {server: fs, method: sampling/createMessage}
    expect: {effect: allow}
`,
			stdout: "5 case(s), 5 passed, 0 failed",
		},
		{
			name: "mismatch",
			cases: `principals:
  alice: {subject: alice, groups: [analysts]}
cases:
  - name: alice reads etc
    principal: alice
    call: {server: fs, tool: read_file, args: {path: /etc/passwd}}
    expect: {effect: allow, rule: reads}
  - name: fine
    principal: alice
    call: {server: fs, tool: read_file, args: {path: /data/x}}
    expect: {effect: allow}
`,
			code: 1,
			stdout: `FAIL alice reads etc (CASES:4)
     effect: want allow, got deny
     rule: want reads, got (default)
2 case(s), 1 passed, 1 failed`,
		},
		{
			name:     "invalid file",
			cases:    "cases:\n  - name: x\n    call: {server: fs, tool: a, prompt: b}\n    expect: {effect: maybe}\n    extra: 1\n",
			code:     1,
			stderrIn: `field extra not found`,
		},
		{
			name:     "invalid case",
			cases:    "cases:\n  - name: x\n    principal: nobody\n    call: {server: fs, tool: a, prompt: b}\n    expect: {effect: maybe}\n",
			code:     1,
			stderrIn: `CASES:2: cases[0]: principal "nobody" is not in principals`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cases := writeFile(t, dir, tt.name+".yaml", tt.cases)
			r := runMain(t, context.Background(), nil, "policy", "test", "--config", cfg, cases)
			if r.Code != tt.code {
				t.Errorf("exit code %d, want %d; stdout:\n%s\nstderr:\n%s", r.Code, tt.code, r.Stdout, r.Stderr)
			}
			want := strings.ReplaceAll(tt.stdout, "CASES", cases)
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("stdout:\n%s\nwant it to contain:\n%s", r.Stdout, want)
			}
			if in := strings.ReplaceAll(tt.stderrIn, "CASES", cases); !strings.Contains(r.Stderr, in) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", r.Stderr, in)
			}
		})
	}
}

// TestPolicyLint runs `sluice policy lint` on policies with each kind of
// problem it finds, and on one without.
func TestPolicyLint(t *testing.T) {
	dir := t.TempDir()
	const servers = `servers:
  fs:
    command: [fs-server]
    tools: {allow: [read_file, list_dir, write_file], deny: [write_file]}
  crm: {command: [crm-server]}
`
	tests := []struct {
		name  string
		rules string
		want  []string
	}{
		{
			name: "clean",
			rules: `    - {id: a, effect: allow, target: {servers: [fs], tools: [read_file]}}
    - {id: b, effect: allow, target: {servers: [crm], tools: [anything]}, when: 'principal.subject == "bob"'}
    - {id: c, effect: deny, target: {tools: ["read_*"]}, when: 'args.path.startsWith("/etc")'}
    - {id: d, effect: allow, target: {tools: [read_file]}, when: 'principal.attributes.team == "x" && tool.annotations.readOnlyHint'}`,
		},
		{
			name: "unknown fields",
			rules: `    - id: a
      effect: allow
      when: principal.subjekt == "bob" || has(tool.nmae) || resource.?url.hasValue() || request["header"] == "" || principal.attributes.anything == ""`,
			want: []string{
				`L:10: policy.rules[0].when: principal.subjekt (line 1, column 1 of the condition) does not exist: principal has issuer, subject, name, groups, scopes, client_id, attributes, authenticated`,
				`L:10: policy.rules[0].when: tool.nmae (line 1, column 35 of the condition) does not exist: tool has name, description, annotations, input_schema`,
				`L:10: policy.rules[0].when: resource.url (line 1, column 49 of the condition) does not exist: resource has uri`,
				`L:10: policy.rules[0].when: request.header (line 1, column 77 of the condition) does not exist: request has method, direction, transport, remote_addr, headers, profile`,
			},
		},
		{
			name:  "always false",
			rules: `    - {id: a, effect: allow, when: '1 > 2 && principal.authenticated'}`,
			want:  []string{`L:8: policy.rules[0].when: the condition is always false: the rule never applies`},
		},
		{
			name:  "target never matches",
			rules: `    - {id: a, effect: allow, target: {tools: [read_file], methods: [resources/read]}}`,
			want:  []string{`L:8: policy.rules[0].target.methods: no method listed calls the tools, resources or prompts of the target: the rule never applies`},
		},
		{
			name: "unknown servers and tools",
			rules: `    - {id: a, effect: allow, target: {servers: [fss, "c*"], tools: [anything]}}
    - {id: b, effect: allow, target: {servers: [fs], tools: [delete_all, write_file, "list_*", "read?file"]}}`,
			want: []string{
				`L:8: policy.rules[0].target.servers[0]: no configured server matches "fss" (servers: crm, fs)`,
				`L:9: policy.rules[1].target.tools[0]: no server in the rule's scope (fs) exposes a tool matching "delete_all", according to their tools.allow and tools.deny lists`,
				`L:9: policy.rules[1].target.tools[1]: no server in the rule's scope (fs) exposes a tool matching "write_file", according to their tools.allow and tools.deny lists`,
			},
		},
		{
			name: "shadowed",
			rules: `    - {id: broad, effect: allow, target: {tools: ["read_*"]}}
    - {id: narrow, effect: allow, target: {servers: [fs], tools: [read_file]}, when: 'principal.authenticated'}
    - {id: observed, effect: allow, mode: observe, target: {tools: [read_file]}}
    - {id: no-crm, effect: deny, target: {servers: [crm]}}
    - {id: crm-reads, effect: allow, target: {servers: [crm], tools: [get_x]}}
    - {id: crm-approval, effect: require-approval, target: {servers: [crm]}, when: 'principal.authenticated'}
    - {id: cond, effect: allow, target: {servers: [fs]}, when: 'principal.authenticated'}
    - {id: same-cond, effect: allow, target: {servers: [fs], tools: [list_dir]}, when: 'principal.authenticated'}`,
			want: []string{
				`L:9: policy.rules[1]: never decides: rule "broad" (policy.rules[0]) has the same effect and mode, a target at least as broad and no condition, and comes first`,
				`L:12: policy.rules[4]: never takes effect: rule "no-crm" (policy.rules[3]) denies every call this rule targets, and deny overrides allow`,
				`L:13: policy.rules[5]: never takes effect: rule "no-crm" (policy.rules[3]) denies every call this rule targets, and deny overrides require-approval`,
				`L:15: policy.rules[7]: never decides: rule "cond" (policy.rules[6]) has the same effect and mode, a target at least as broad and the same condition, and comes first`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := writeFile(t, dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml", servers+"policy:\n  rules:\n"+tt.rules+"\n")
			r := runMain(t, context.Background(), nil, "policy", "lint", "--config", cfg)
			var want []string
			for _, w := range tt.want {
				want = append(want, strings.Replace(w, "L:", cfg+":", 1))
			}
			var got []string
			if r.Code == 0 {
				if r.Stdout != cfg+": policy ok\n" {
					t.Errorf("stdout %q, want ok", r.Stdout)
				}
			} else {
				got = strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lint (-want +got):\n%s\nstderr: %s", diff, r.Stderr)
			}
		})
	}
	if r := runMain(t, context.Background(), nil, "policy", "lint"); r.Code != 2 || !strings.Contains(r.Stderr, "--config is required") {
		t.Errorf("lint without --config: %+v", r)
	}
}

// TestValidateReportsConditions: `sluice validate` reports a condition that
// does not compile at its line, along with every other problem.
func TestValidateReportsConditions(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "bad.yaml", `servers:
  fs: {command: [fs-server]}
policy:
  rules:
    - id: a
      effect: allow
      when: |
        principal.authenticated &&
          args.path.startsWith("/data/") &&
          princpal.subject == "x"
    - id: a
      effect: maybe
`)
	r := runMain(t, context.Background(), nil, "validate", cfg)
	want := []string{
		cfg + `:10: policy.rules[0].when: condition does not compile: line 3, column 3 of the condition: undeclared reference to 'princpal' (did you mean 'principal'?)`,
		cfg + `:11: policy.rules[1].id: "a" is also the id of policy.rules[0]`,
		cfg + `:12: policy.rules[1].effect: must be allow, deny or require-approval, not "maybe"`,
		"sluice: " + cfg + " is not valid",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(r.Stderr), "\n")); r.Code != 1 || diff != "" {
		t.Errorf("exit %d, stderr (-want +got):\n%s", r.Code, diff)
	}
}
