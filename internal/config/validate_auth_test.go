package config

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateAuth checks each rule of the auth and tls sections, with the
// exact message, path and line of each problem.
func TestValidateAuth(t *testing.T) {
	const servers = "servers:\n  fs: {command: [x]}\n"
	const hash = "sha256:87cbebfeebc05f7c54ac9336c4b4bbec831227a641951a4bde7edd56020f8590"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "absent", yaml: servers},
		{
			name: "every method valid",
			yaml: servers + `tls: {cert_file: c.pem, key_file: k.pem, min_version: "1.3"}
auth:
  resource: https://mcp.example.com/mcp
  oauth:
    - issuer: https://login.example.com
      jwks_url: https://login.example.com/keys?v=2
      audiences: [api://sluice]
      scopes: [mcp:tools]
      algorithms: [RS256, ES384, EdDSA]
      skew: 10s
      claims: {subject: oid, groups: roles, attributes: {dept: org.department}}
    - issuer: http://127.0.0.1:9000
  api_key_header: X-Api-Key
  api_keys:
    - id: ci
      hash: ` + hash + `
      expires: "2030-01-01T00:00:00Z"
      principal: {subject: ci-bot, groups: [ci], attributes: {team: build}}
  mtls: {ca_file: ca.pem, subject: san-uri, groups: [machines]}
  stdio: {subject: me}
`,
		},
		{
			name: "empty auth",
			yaml: servers + "auth: {}\n",
			want: []string{"v.yaml:3: auth: configure at least one of oauth, api_keys, mtls or stdio"},
		},
		{
			name: "oauth without resource",
			yaml: servers + "auth:\n  oauth:\n    - issuer: https://login.example.com\n",
			want: []string{`v.yaml:3: auth.resource: is required with auth.oauth: Sluice's own URL as clients reach it (the tokens' audience), such as "https://mcp.example.com/mcp"`},
		},
		{
			name: "bad urls",
			yaml: servers + `auth:
  resource: http://mcp.example.com/mcp
  oauth:
    - issuer: login.example.com
    - issuer: https://login.example.com/?tenant=1
      jwks_url: ftp://login.example.com/keys
    - issuer: https://a.example
    - issuer: https://a.example
`,
			want: []string{
				"v.yaml:4: auth.resource: must use https (http only for loopback hosts)",
				`v.yaml:6: auth.oauth[0].issuer: must be an absolute URL such as "https://auth.example.com" (no user info or fragment, no query)`,
				`v.yaml:7: auth.oauth[1].issuer: must be an absolute URL such as "https://auth.example.com" (no user info or fragment, no query)`,
				`v.yaml:8: auth.oauth[1].jwks_url: must be an https URL, not "ftp"`,
				`v.yaml:10: auth.oauth[3].issuer: issuer "https://a.example" is already configured in auth.oauth[2]`,
			},
		},
		{
			name: "bad issuer settings",
			yaml: servers + `auth:
  resource: https://mcp.example.com/mcp
  oauth:
    - issuer: https://login.example.com
      audiences: [""]
      scopes: ["a b", ""]
      algorithms: [none, HS256, RS1]
      skew: 10m
      claims: {subject: " sub", attributes: {"bad-name": x, ok: "a..b"}}
`,
			want: []string{
				"v.yaml:7: auth.oauth[0].audiences[0]: must not be empty",
				"v.yaml:8: auth.oauth[0].scopes[0]: must be a scope token (no spaces, quotes or backslashes)",
				"v.yaml:8: auth.oauth[0].scopes[1]: must be a scope token (no spaces, quotes or backslashes)",
				`v.yaml:9: auth.oauth[0].algorithms[0]: "none" is never accepted: a token without a signature proves nothing`,
				`v.yaml:9: auth.oauth[0].algorithms[1]: "HS256" is refused: HMAC algorithms need a secret shared with the authorization server; use RS256, ES256, PS256, EdDSA`,
				`v.yaml:9: auth.oauth[0].algorithms[2]: must be one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA, not "RS1"`,
				"v.yaml:10: auth.oauth[0].skew: must be at most 5m0s",
				"v.yaml:11: auth.oauth[0].claims.subject: must be a claim name without surrounding spaces",
				`v.yaml:11: auth.oauth[0].claims.attributes.bad-name: attribute name must be a letter or '_' followed by up to 63 letters, digits or '_'`,
				`v.yaml:11: auth.oauth[0].claims.attributes.ok: must be a claim name or a dotted path such as "realm_access.roles"`,
			},
		},
		{
			name: "bad api keys",
			yaml: servers + `auth:
  api_key_header: Authorization
  api_keys:
    - id: ""
      hash: sha256:abc
      principal: {subject: ""}
    - id: ci
      hash: ` + hash + `
      expires: tomorrow
      principal: {subject: s, groups: [""]}
    - id: ci
      hash: ` + hash + `
      principal: {subject: s}
    - id: "bad id"
      hash: "87cbebfeebc05f7c54ac9336c4b4bbec831227a641951a4bde7edd56020f8590"
      principal: {subject: s}
`,
			want: []string{
				`v.yaml:4: auth.api_key_header: "Authorization" cannot carry API keys (keys also travel as "Authorization: Bearer" without this setting)`,
				"v.yaml:6: auth.api_keys[0].id: is required: it names the key in logs and audit",
				"v.yaml:7: auth.api_keys[0].hash: must be \"sha256:\" followed by 64 lowercase hex digits, as `sluice auth hash-key` prints",
				"v.yaml:8: auth.api_keys[0].principal.subject: is required: who this principal is",
				`v.yaml:11: auth.api_keys[1].expires: must be an RFC 3339 time such as "2027-01-31T00:00:00Z"`,
				"v.yaml:12: auth.api_keys[1].principal.groups[0]: must be a non-empty name without surrounding spaces",
				`v.yaml:13: auth.api_keys[2].id: id "ci" is already used by auth.api_keys[1]`,
				"v.yaml:14: auth.api_keys[2].hash: is the same key as auth.api_keys[1]",
				"v.yaml:16: auth.api_keys[3].id: must be 1 to 64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit",
				"v.yaml:17: auth.api_keys[3].hash: must be \"sha256:\" followed by 64 lowercase hex digits, as `sluice auth hash-key` prints",
			},
		},
		{
			name: "mtls without tls",
			yaml: servers + "auth:\n  mtls: {subject: serial}\n",
			want: []string{
				"v.yaml:4: auth.mtls.ca_file: is required: the PEM CA certificates client certificates must chain to",
				"v.yaml:4: auth.mtls: needs tls: client certificates are only presented over HTTPS",
				`v.yaml:4: auth.mtls.subject: must be one of san-uri, san-email, san-dns, cn, not "serial"`,
			},
		},
		{
			name: "bad tls and stdio",
			yaml: servers + "tls: {min_version: \"1.1\"}\nauth:\n  stdio: {name: me}\n",
			want: []string{
				"v.yaml:3: tls.cert_file: is required: the PEM certificate (chain) of the listener",
				"v.yaml:3: tls.key_file: is required: the PEM private key of the certificate",
				`v.yaml:3: tls.min_version: must be "1.2" or "1.3", not "1.1"`,
				"v.yaml:5: auth.stdio.subject: is required: who this principal is",
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
