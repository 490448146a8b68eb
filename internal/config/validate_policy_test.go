package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidatePolicy checks each rule of the policy section, with the exact
// message, path and line of each problem; a condition that does not compile
// is reported at its own line, inside a block scalar too, along with every
// other problem of the file.
func TestValidatePolicy(t *testing.T) {
	const servers = "servers:\n  fs: {command: [x]}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "absent", yaml: servers},
		{
			name: "valid",
			yaml: servers + `policy:
  mode: observe
  rules:
    - id: reads
      effect: allow
      mode: enforce
      target: {servers: [fs], tools: ["read_*"], methods: [tools/call]}
      when: args.path.startsWith("/data/") && "analysts" in principal.groups
      reason: policy-reads
      message: only reads
    - {id: approve, effect: require-approval, target: {resources: ["file:///*"], prompts: [p]}}
`,
		},
		{
			name: "no rules",
			yaml: servers + "policy: {mode: enforce}\n",
			want: []string{"v.yaml:3: policy.rules: at least one rule is required (a policy without rules denies every call; say so with a deny rule)"},
		},
		{
			name: "bad fields",
			yaml: servers + `policy:
  mode: strict
  rules:
    - id: "bad id"
      effect: permit
      mode: Observe
      reason: Not_Kebab
    - id: a
    - id: a
      effect: deny
      reason: no-policy-prefix
      message: "line\nbreak"
    -
`,
			want: []string{
				`v.yaml:4: policy.mode: must be observe or enforce, not "strict"`,
				`v.yaml:6: policy.rules[0].id: "bad id" must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`,
				`v.yaml:7: policy.rules[0].effect: must be allow, deny or require-approval, not "permit"`,
				`v.yaml:8: policy.rules[0].mode: must be observe or enforce, not "Observe"`,
				`v.yaml:9: policy.rules[0].reason: "Not_Kebab" must be a kebab-case code starting with "policy-", at most 64 characters, such as "policy-no-writes"`,
				`v.yaml:10: policy.rules[1].effect: is required: allow, deny or require-approval`,
				`v.yaml:11: policy.rules[2].id: "a" is also the id of policy.rules[1]`,
				`v.yaml:13: policy.rules[2].reason: "no-policy-prefix" must be a kebab-case code starting with "policy-", at most 64 characters, such as "policy-no-writes"`,
				`v.yaml:14: policy.rules[2].message: must not contain control characters`,
				`v.yaml:15: policy.rules[3]: rule is empty: set id and effect`,
			},
		},
		{
			name: "bad globs",
			yaml: servers + `policy:
  rules:
    - id: a
      effect: allow
      target:
        tools: ["", "[a-"]
        methods: ["tools/\\"]
`,
			want: []string{
				`v.yaml:8: policy.rules[0].target.tools[0]: glob must not be empty`,
				`v.yaml:8: policy.rules[0].target.tools[1]: invalid glob "[a-"`,
				`v.yaml:9: policy.rules[0].target.methods[0]: invalid glob "tools/\\"`,
			},
		},
		{
			name: "conditions that do not compile",
			yaml: servers + `policy:
  rules:
    - id: one-line
      effect: allow
      when: principal.subject == 
    - id: undeclared
      effect: allow
      when: princpal.subject == "bob"
    - id: not-bool
      effect: deny
      when: args.size + 1
    - id: block
      effect: allow
      when: |
        principal.authenticated &&
          args.limit <= 10 &&
          nosuch(args)
    - id: also-wrong-effect
      effect: nope
      when: 1 == "a"
`,
			want: []string{
				`v.yaml:7: policy.rules[0].when: condition does not compile: line 1, column 21 of the condition: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
				`v.yaml:10: policy.rules[1].when: condition does not compile: line 1, column 1 of the condition: undeclared reference to 'princpal' (did you mean 'principal'?)`,
				`v.yaml:13: policy.rules[2].when: condition does not compile: condition must be a boolean, not int`,
				`v.yaml:19: policy.rules[3].when: condition does not compile: line 3, column 9 of the condition: undeclared reference to 'nosuch'`,
				`v.yaml:21: policy.rules[4].effect: must be allow, deny or require-approval, not "nope"`,
				`v.yaml:22: policy.rules[4].when: condition does not compile: line 1, column 3 of the condition: found no matching overload for '_==_' applied to '(int, string)'`,
			},
		},
		{
			name: "with other problems",
			yaml: "listen: nowhere\nservers:\n  fs: {command: [x]}\npolicy:\n  rules:\n    - {id: a, effect: allow, when: 'x'}\n",
			want: []string{
				`v.yaml:1: listen: must be host:port, such as "127.0.0.1:8787"`,
				`v.yaml:6: policy.rules[0].when: condition does not compile: line 1, column 1 of the condition: undeclared reference to 'x'`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(tt.yaml), "v.yaml", noEnv)
			if diff := cmp.Diff(tt.want, problemStrings(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
