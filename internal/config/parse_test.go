package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// cmpConfig compares configurations by their exported fields, treating nil
// and empty collections alike.
var cmpConfig = cmp.Options{
	cmpopts.IgnoreUnexported(Config{}),
	cmpopts.IgnoreFields(Config{}, "Source"),
	cmpopts.EquateEmpty(),
}

func exampleConfig() *Config {
	return &Config{
		Listen: "127.0.0.1:8787",
		Log:    Log{Level: "info", Format: "text"},
		Limits: Limits{
			MaxMessageBytes: 4194304,
			MaxDepth:        64,
			CallTimeout:     Duration(60 * time.Second),
			ShutdownTimeout: Duration(10 * time.Second),
			SessionIdle:     Duration(15 * time.Minute),
		},
		HTTP: HTTP{
			AllowedOrigins: []string{"https://app.example.com"},
			AllowedHosts:   []string{"mcp.internal:8787"},
		},
		Namespace: Namespace{Separator: "__"},
		Servers: map[string]*Server{
			"fs": {
				Command:   []string{"npx", "-y", "@modelcontextprotocol/server-filesystem", "/tmp"},
				Env:       map[string]string{"API_KEY": "fs-secret-value"},
				Dir:       "/tmp",
				Transport: TransportStdio,
				Era:       EraAuto,
				Timeout:   Duration(30 * time.Second),
				Restart:   Restart{InitialBackoff: Duration(500 * time.Millisecond), MaxBackoff: Duration(30 * time.Second)},
				Tools:     ToolFilter{Allow: []string{"read_*", "list_*"}, Deny: []string{"*delete*"}},
			},
			"search": {
				URL:       "https://search.example.com/mcp",
				Transport: TransportStreamableHTTP,
				Era:       EraModern,
				Headers:   map[string]string{"Authorization": "Bearer search-secret-token"},
				Shared:    true,
				Timeout:   Duration(15 * time.Second),
			},
			"wiki": {
				URL:       "https://wiki.example.com/sse",
				Transport: TransportSSE,
				Era:       EraLegacy,
			},
		},
		Profiles: map[string]*Profile{
			"readonly": {
				Servers: []string{"fs"},
				Tools:   ToolFilter{Allow: []string{"read_*", "list_*"}, Deny: []string{}},
			},
			"research": {
				Servers: []string{"search", "wiki"},
				Tools:   ToolFilter{Deny: []string{"wiki__edit_*"}},
			},
		},
		TLS: &TLS{CertFile: "/etc/sluice/tls.crt", KeyFile: "/etc/sluice/tls.key", MinVersion: "1.3"},
		Auth: &Auth{
			Resource: "https://mcp.example.com/mcp",
			OAuth: []*OAuthIssuer{{
				Issuer:     "https://login.example.com",
				JWKSURL:    "https://login.example.com/keys",
				Audiences:  []string{"api://sluice"},
				Scopes:     []string{"mcp:tools"},
				Algorithms: []string{"RS256", "ES256"},
				Skew:       Duration(10 * time.Second),
				Claims: ClaimMapping{
					Subject: "sub", Name: "preferred_username", Groups: "groups", Scopes: "scope", ClientID: "azp",
					Attributes: map[string]string{"department": "org.department"},
				},
			}},
			APIKeyHeader: "X-Api-Key",
			APIKeys: []*APIKey{{
				ID:      "nightly-ci",
				Hash:    "sha256:87cbebfeebc05f7c54ac9336c4b4bbec831227a641951a4bde7edd56020f8590",
				Expires: "2030-01-01T00:00:00Z",
				Principal: PrincipalSpec{
					Subject: "ci-bot", Name: "Nightly CI", Groups: []string{"ci"}, Scopes: []string{"mcp:tools"},
					Attributes: map[string]string{"team": "build"},
				},
			}},
			MTLS:  &MTLS{CAFile: "/etc/sluice/clients-ca.pem", Subject: "san-uri", Groups: []string{"machines"}},
			Stdio: &PrincipalSpec{Subject: "desk-user"},
		},
	}
}

var exampleEnv = map[string]string{"FS_KEY": "fs-secret-value", "SEARCH_TOKEN": "search-secret-token"}

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := parse(data, "example.yaml", env(exampleEnv))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if diff := cmp.Diff(exampleConfig(), got, cmpConfig); diff != "" {
		t.Errorf("parsed example (-want +got):\n%s", diff)
	}
	if got.Source != "example.yaml" {
		t.Errorf("Source = %q, want %q", got.Source, "example.yaml")
	}
	if diff := cmp.Diff([]string{"fs", "search", "wiki"}, got.ServerNames()); diff != "" {
		t.Errorf("ServerNames (-want +got):\n%s", diff)
	}

	// Marshal, then parse again with no environment: the values that came
	// from variables are now literal, and the result is the same.
	out, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := parse(out, "marshaled.yaml", noEnv)
	if err != nil {
		t.Fatalf("parse of marshaled config: %v\n%s", err, out)
	}
	if diff := cmp.Diff(got, again, cmpConfig); diff != "" {
		t.Errorf("round trip (-first +second):\n%s", diff)
	}
}

func TestLoad(t *testing.T) {
	for k, v := range exampleEnv {
		t.Setenv(k, v)
	}
	c, err := Load("testdata/example.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(exampleConfig(), c, cmpConfig); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
	if c.Source != "testdata/example.yaml" {
		t.Errorf("Source = %q", c.Source)
	}

	_, err = Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: got %v, want an error wrapping os.ErrNotExist", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Errorf("Load of a missing file: %v should not be ErrInvalid", err)
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := parse([]byte("servers:\n  a: {command: [x]}\n  b: {url: 'http://127.0.0.1:9/mcp'}\nprofiles:\n  p:\n"), "s.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Listen:    DefaultListen,
		Log:       Log{Level: "info", Format: "text"},
		Limits:    Limits{MaxMessageBytes: 4 << 20, MaxDepth: 64, CallTimeout: Duration(time.Minute), ShutdownTimeout: Duration(10 * time.Second), SessionIdle: DefaultSessionIdle},
		Namespace: Namespace{Separator: "__"},
		Servers: map[string]*Server{
			"a": {Command: []string{"x"}, Transport: TransportStdio, Era: EraAuto,
				Restart: Restart{InitialBackoff: Duration(500 * time.Millisecond), MaxBackoff: Duration(30 * time.Second)}},
			"b": {URL: "http://127.0.0.1:9/mcp", Transport: TransportStreamableHTTP, Era: EraAuto},
		},
		Profiles: map[string]*Profile{"p": {}},
	}
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

// TestParseErrors covers what the decoder rejects before validation, each
// error with the file name and line.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "unknown key in a server",
			yaml: "servers:\n  fs:\n    comand: [a]\n",
			want: []string{`sluice.yaml:3: servers.fs: unknown key "comand" (did you mean "command"?)`},
		},
		{
			name: "unknown top-level key",
			yaml: "servers: {a: {command: [x]}}\ndashboard: {}\n",
			want: []string{`sluice.yaml:2: unknown key "dashboard"`},
		},
		{
			name: "keys are case-sensitive",
			yaml: "Listen: 127.0.0.1:1\nservers:\n  a:\n    Command: [x]\n",
			want: []string{
				`sluice.yaml:1: unknown key "Listen" (did you mean "listen"?)`,
				`sluice.yaml:4: servers.a: unknown key "Command" (did you mean "command"?)`,
			},
		},
		{
			name: "every unknown key is reported",
			yaml: "servers:\n  a:\n    command: [x]\n    tools: {alow: [a], deny: [b], extra: 1}\nlimits: {max_bytes: 3}\n",
			want: []string{
				`sluice.yaml:4: servers.a.tools: unknown key "alow" (did you mean "allow"?)`,
				`sluice.yaml:4: servers.a.tools: unknown key "extra"`,
				`sluice.yaml:5: limits: unknown key "max_bytes"`,
			},
		},
		{
			name: "duplicate key",
			yaml: "listen: a:1\nservers: {a: {command: [x]}}\nlisten: b:2\n",
			want: []string{`sluice.yaml:3: duplicate key "listen" (first at line 1)`},
		},
		{
			name: "duplicate server",
			yaml: "servers:\n  a: {command: [x]}\n  a: {command: [y]}\n",
			want: []string{`sluice.yaml:3: servers: duplicate key "a" (first at line 2)`},
		},
		{
			name: "duplicate env key",
			yaml: "servers:\n  a:\n    command: [x]\n    env:\n      K: 1\n      K: 2\n",
			want: []string{`sluice.yaml:6: servers.a.env: duplicate key "K" (first at line 5)`},
		},
		{
			name: "wrong types",
			yaml: "listen: [a]\nlimits:\n  max_depth: deep\n  call_timeout: 30\nservers:\n  a:\n    command: x\n    shared: maybe\n    env: [A]\n",
			want: []string{
				`sluice.yaml:1: listen: expected a string, got a list`,
				`sluice.yaml:3: limits.max_depth: expected an integer, got "deep"`,
				`sluice.yaml:4: limits.call_timeout: expected a duration such as "30s", got "30"`,
				`sluice.yaml:7: servers.a.command: expected a list, got a scalar`,
				`sluice.yaml:8: servers.a.shared: expected true or false, got "maybe"`,
				`sluice.yaml:9: servers.a.env: expected a mapping, got a list`,
			},
		},
		{
			name: "integers must be integers",
			yaml: "limits:\n  max_depth: 4.5\n  max_message_bytes: 1e3\nservers: {a: {command: [x]}}\n",
			want: []string{
				`sluice.yaml:2: limits.max_depth: expected an integer, got "4.5"`,
				`sluice.yaml:3: limits.max_message_bytes: expected an integer, got "1e3"`,
			},
		},
		{
			name: "servers must be a mapping",
			yaml: "servers: [a, b]\n",
			want: []string{`sluice.yaml:1: servers: expected a mapping, got a list`},
		},
		{
			name: "merge keys",
			yaml: "servers:\n  a: &a {command: [x]}\n  b:\n    <<: *a\n",
			want: []string{`sluice.yaml:4: servers.b: merge keys (<<) are not supported`},
		},
		{
			name: "non-scalar key",
			yaml: "servers:\n  ? [a]\n  : {command: [x]}\n",
			want: []string{`sluice.yaml:2: servers: keys must be plain strings, got a list`},
		},
		{
			name: "two documents",
			yaml: "servers: {a: {command: [x]}}\n---\nservers: {b: {command: [y]}}\n",
			want: []string{`sluice.yaml:2: more than one YAML document (remove the second "---")`},
		},
		{
			name: "top level is a list",
			yaml: "- servers\n",
			want: []string{`sluice.yaml:1: top level must be a mapping, got a list`},
		},
		{
			name: "top level is a scalar",
			yaml: "hello\n",
			want: []string{`sluice.yaml:1: top level must be a mapping, got a scalar`},
		},
		{
			name: "empty",
			yaml: "# nothing here\n",
			want: []string{`sluice.yaml: configuration is empty`},
		},
		{
			name: "syntax error",
			yaml: "servers:\n  a: {command: [x]\n",
			want: []string{`sluice.yaml:2: did not find expected ',' or '}'`},
		},
		{
			name: "syntax error later in the file",
			yaml: "listen: 127.0.0.1:1\nservers:\n  a: {command: [x]}\n  b: [y\n",
			want: []string{`sluice.yaml:4: did not find expected ',' or ']'`},
		},
		{
			name: "unclosed list on the first line reported where input ends",
			yaml: "[a\n",
			want: []string{`sluice.yaml:2: did not find expected ',' or ']'`},
		},
		{
			name: "mapping value in a plain scalar",
			yaml: "servers:\n  a: b: c\n",
			want: []string{`sluice.yaml:2: mapping values are not allowed in this context`},
		},
		{
			name: "tab indentation",
			yaml: "servers:\n\ta: {}\n",
			want: []string{`sluice.yaml:2: found character that cannot start any token`},
		},
		{
			name: "unknown anchor",
			yaml: "servers: *nope\n",
			want: []string{`sluice.yaml: unknown anchor 'nope' referenced`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse([]byte(tt.yaml), "sluice.yaml", noEnv)
			if err == nil {
				t.Fatalf("parse succeeded, want errors; got config:\n%s", c)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if diff := cmp.Diff(tt.want, problemStrings(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Error() = %q, want %q", got, want)
			}
		})
	}
}

func TestParseAliases(t *testing.T) {
	// Anchors and aliases are plain YAML and allowed; the aliased values are
	// checked where they are used.
	c, err := parse([]byte(`
common: &tools {allow: ["read_*"]}
servers:
  a: {command: [x], tools: *tools}
`), "s.yaml", noEnv)
	if err == nil {
		t.Fatalf("unknown key common accepted: %s", c)
	}
	c, err = parse([]byte(`
servers:
  a: {command: [x], tools: &tools {allow: ["read_*"]}}
  b: {command: [y], tools: *tools}
  c: {command: [z], tools: {deny: &x [a]}, env: {K: *x}}
`), "s.yaml", noEnv)
	want := []string{`s.yaml:5: servers.c.env.K: expected a string, got a list`}
	if diff := cmp.Diff(want, problemStrings(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	c, err = parse([]byte(`
servers:
  a: {command: [x], tools: &tools {allow: ["read_*"]}}
  b: {command: [y], tools: *tools}
`), "s.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"read_*"}, c.Servers["b"].Tools.Allow); diff != "" {
		t.Errorf("aliased tools (-want +got):\n%s", diff)
	}
}

// TestParseAliasBomb checks that a document whose aliases expand to a huge
// tree is refused quickly rather than expanded.
func TestParseAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("servers:\n  s0: {command: [x], tools: {allow: &l [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("a")
	}
	b.WriteString("]}}\n")
	for i := 1; i < 2000; i++ {
		b.WriteString("  s" + strconv.Itoa(i) + ": {command: [x], tools: {allow: *l}}\n")
	}
	start := time.Now()
	_, err := parse([]byte(b.String()), "bomb.yaml", noEnv)
	if err == nil || !strings.Contains(err.Error(), "document too large once aliases are expanded") {
		t.Fatalf("alias bomb: got error %v, want one about the expanded size", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("alias bomb took %v", d)
	}
}
