package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateDLPAndMinimize(t *testing.T) {
	const servers = "servers:\n  crm: {command: [x]}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "valid",
			yaml: servers + `dlp:
  mode: observe
  min_confidence: high
  disable: [ip-address]
  allow: {values: [AKIAIOSFODNN7EXAMPLE], patterns: ['.*@example\.com']}
  detectors:
    - {type: employee-id, class: pii, pattern: 'EMP-(\d{6})', keywords: [EMP-], validator: luhn, entropy: 1.5, confidence: high}
  rules:
    - {id: a, types: [secret], direction: results, action: block}
    - {id: b, types: [email, pii], target: {servers: [crm]}, action: redact, mode: enforce}
    - {id: c, action: mask}
    - {id: d, direction: arguments, action: hash}
    - {id: e, action: alert}
minimize:
  rules:
    - {id: m, target: {tools: [find]}, max_items: 3, fields: {deny: [/a/*/b]}, max_result_bytes: 4096, oversize: refuse, max_resource_bytes: 10}
`,
		},
		{
			name: "problems",
			yaml: servers + `dlp:
  mode: loud
  min_confidence: sure
  allow: {patterns: ['(']}
  detectors:
    - {type: Bad Type, class: money, pattern: '(', validator: crc, entropy: 9, confidence: total}
    - {type: empty, pattern: 'x*'}
  rules:
    - {id: a, types: [Secret], direction: sideways, target: {servers: [nope]}, action: shred}
    - {id: a}
minimize:
  rules:
    - {id: m, max_result_bytes: 100, oversize: explode, max_items: -1}
    - {id: n}
    - {id: o, fields: {allow: [a/b], deny: [""]}}
`,
			want: []string{
				`v.yaml:4: dlp.mode: must be observe or enforce, not "loud"`,
				`v.yaml:5: dlp.min_confidence: must be low, medium or high, not "sure"`,
				"v.yaml:6: dlp.allow.patterns[0]: is not a valid RE2 expression: error parsing regexp: missing closing ): `(`",
				"v.yaml:8: dlp.detectors[0].type: must be 1 to 64 lower-case letters, digits or '-', not \"Bad Type\"",
				`v.yaml:8: dlp.detectors[0].class: must be pii or secret, not "money"`,
				"v.yaml:8: dlp.detectors[0].pattern: is not a valid RE2 expression: error parsing regexp: missing closing ): `(`",
				`v.yaml:8: dlp.detectors[0].validator: must be luhn or mod97, not "crc"`,
				"v.yaml:8: dlp.detectors[0].entropy: must be between 0 and 8 bits per byte",
				`v.yaml:8: dlp.detectors[0].confidence: must be low, medium or high, not "total"`,
				"v.yaml:9: dlp.detectors[1].pattern: matches the empty string",
				`v.yaml:11: dlp.rules[0].types[0]: must be a finding type or class (pii, secret), not "Secret"`,
				`v.yaml:11: dlp.rules[0].direction: must be arguments, results or both, not "sideways"`,
				`v.yaml:11: dlp.rules[0].target.servers[0]: no server named "nope"`,
				`v.yaml:11: dlp.rules[0].action: must be block, redact, mask, hash or alert, not "shred"`,
				`v.yaml:12: dlp.rules[1].id: id "a" is already used by dlp.rules[0]`,
				"v.yaml:12: dlp.rules[1].action: is required: block, redact, mask, hash or alert",
				"v.yaml:15: minimize.rules[0].max_items: must not be negative",
				"v.yaml:15: minimize.rules[0].max_result_bytes: must be at least 256, room for the notice of what was cut",
				`v.yaml:15: minimize.rules[0].oversize: must be truncate or refuse, not "explode"`,
				"v.yaml:16: minimize.rules[1]: does nothing: set max_result_bytes, max_items, max_resource_bytes or fields",
				`v.yaml:17: minimize.rules[2].fields.allow[0]: must be a JSON pointer starting with '/', not "a/b"`,
				`v.yaml:17: minimize.rules[2].fields.deny[0]: must be a JSON pointer starting with '/', not ""`,
			},
		},
		{
			name: "entropy-not-a-number",
			yaml: servers + "dlp:\n  detectors:\n    - {type: t, pattern: x, entropy: \"3\"}\n",
			want: []string{`v.yaml:5: dlp.detectors[0].entropy: expected a number, got "3"`},
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
