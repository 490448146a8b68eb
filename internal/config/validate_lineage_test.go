package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateLineage(t *testing.T) {
	const servers = "servers:\n  crm: {command: [x]}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "valid",
			yaml: servers + `lineage:
  mode: observe
  labels:
    - {target: {servers: [crm]}, labels: [pii, internal]}
    - {target: {tools: ["read_*"], resources: ["web://*"]}, labels: [untrusted-input]}
    - {target: {tools: [send_email]}, labels: [external-sink]}
  rules:
    - {id: trifecta, call: external-sink, after: [pii, untrusted-input], mode: enforce, message: no}
`,
		},
		{
			name: "problems",
			yaml: servers + `lineage:
  mode: loud
  labels:
    - {target: {}, labels: []}
    - {target: {servers: [nope]}, labels: [PII, ok]}
  rules:
    - {id: a, call: sink, after: [ok, ok, gone]}
    - {id: a, after: []}
`,
			want: []string{
				`v.yaml:4: lineage.mode: must be observe or enforce, not "loud"`,
				"v.yaml:6: lineage.labels[0].target: is required: which servers, tools, resources or prompts carry the labels",
				"v.yaml:6: lineage.labels[0].labels: is required",
				`v.yaml:7: lineage.labels[1].target.servers[0]: no server named "nope"`,
				`v.yaml:7: lineage.labels[1].labels[0]: must be 1 to 64 lower-case letters, digits or '-', not "PII"`,
				`v.yaml:9: lineage.rules[0].call: no target carries label "sink" (see lineage.labels), so the rule can never apply`,
				`v.yaml:9: lineage.rules[0].after[1]: label "ok" is listed twice`,
				`v.yaml:9: lineage.rules[0].after[2]: no target carries label "gone" (see lineage.labels), so the rule can never apply`,
				`v.yaml:10: lineage.rules[1].id: id "a" is already used by lineage.rules[0]`,
				"v.yaml:10: lineage.rules[1].call: is required: the label of the targets the rule refuses calls to",
				"v.yaml:10: lineage.rules[1].after: is required: the labels a session must have read for the call to be refused",
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
