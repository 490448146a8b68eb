package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateApproval checks each rule of the approval section, with the
// exact message, path and line of each problem.
func TestValidateApproval(t *testing.T) {
	const servers = "servers:\n  fs: {command: [x]}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "absent", yaml: servers},
		{name: "empty", yaml: servers + "approval: {}\n"},
		{
			name: "every field valid",
			yaml: servers + "approval:\n  via: approver\n  timeout: 2m\n  ttl: 1h\n  approvers: [alice, \"group:secops\"]\n",
		},
		{name: "client needs no approvers", yaml: servers + "approval: {via: client}\n"},
		{name: "client-or-approver", yaml: servers + "approval: {via: client-or-approver, approvers: [bob]}\n"},
		{
			name: "unknown via",
			yaml: servers + "approval:\n  via: email\n",
			want: []string{`v.yaml:4: approval.via: must be client, approver or client-or-approver, not "email"`},
		},
		{
			name: "via is case-sensitive",
			yaml: servers + "approval:\n  via: Approver\n  approvers: [a]\n",
			want: []string{`v.yaml:4: approval.via: must be client, approver or client-or-approver, not "Approver"`},
		},
		{
			name: "approver without approvers",
			yaml: servers + "approval:\n  via: approver\n",
			want: []string{"v.yaml:4: approval.via: via approver needs at least one entry in approval.approvers"},
		},
		{
			name: "negative and too long durations",
			yaml: servers + "approval:\n  timeout: -1s\n  ttl: 25h\n",
			want: []string{
				"v.yaml:4: approval.timeout: must not be negative",
				"v.yaml:5: approval.ttl: must be at most 24h0m0s",
			},
		},
		{
			name: "bad approvers",
			yaml: servers + "approval:\n  approvers:\n    - \"\"\n    - \"group:\"\n    - \" alice\"\n    - bob\n    - bob\n    - \"group:ops\"\n",
			want: []string{
				"v.yaml:5: approval.approvers[0]: must not be empty",
				"v.yaml:6: approval.approvers[1]: names no group: write group:NAME",
				"v.yaml:7: approval.approvers[2]: must not have surrounding white space or control characters",
				`v.yaml:9: approval.approvers[4]: "bob" is listed twice`,
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

// TestValidateApprovalHandBuilt checks the rules on a Config built in
// code, where problems have paths but no lines.
func TestValidateApprovalHandBuilt(t *testing.T) {
	c := &Config{
		Servers:  map[string]*Server{"fs": {Command: []string{"x"}}},
		Approval: &Approval{Via: ApprovalViaApprover, TTL: -1},
	}
	want := []string{
		"approval.ttl: must not be negative",
		"approval.via: via approver needs at least one entry in approval.approvers",
	}
	if diff := cmp.Diff(want, problemStrings(c.Validate())); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
