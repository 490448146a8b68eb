package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestValidateRules checks each validation rule on a small file, with the
// exact message, path and line of each problem.
func TestValidateRules(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // empty: valid
	}{
		{
			name: "minimal stdio server",
			yaml: "servers:\n  fs: {command: [x]}\n",
		},
		{
			name: "no servers",
			yaml: "listen: 127.0.0.1:1\n",
			want: []string{"v.yaml: servers: at least one server is required"},
		},
		{
			name: "empty servers mapping",
			yaml: "servers: {}\n",
			want: []string{"v.yaml:1: servers: at least one server is required"},
		},
		{
			name: "server names",
			yaml: "servers:\n  -bad: {command: [x]}\n  ok_Name-2: {command: [x]}\n  \"a b\": {command: [x]}\n  " + strings.Repeat("n", 65) + ": {command: [x]}\n",
			want: []string{
				"v.yaml:2: servers.-bad: server name must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit",
				`v.yaml:4: servers["a b"]: server name must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit`,
				"v.yaml:5: servers." + strings.Repeat("n", 65) + ": server name must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit",
			},
		},
		{
			name: "server name and the separator",
			yaml: "servers:\n  a__b: {command: [x]}\n  a_: {command: [x]}\n  a_b: {command: [x]}\n",
			want: []string{
				`v.yaml:2: servers.a__b: server name must not contain the namespace separator "__", nor end with part of it`,
				`v.yaml:3: servers.a_: server name must not contain the namespace separator "__", nor end with part of it`,
			},
		},
		{
			name: "server name and a custom separator",
			yaml: "namespace: {separator: '-'}\nservers:\n  a-b: {command: [x]}\n  a__b: {command: [x]}\n",
			want: []string{
				`v.yaml:3: servers.a-b: server name must not contain the namespace separator "-", nor end with part of it`,
			},
		},
		{
			name: "separator",
			yaml: "namespace: {separator: 'a b'}\nservers:\n  x: {command: [x]}\n",
			want: []string{"v.yaml:1: namespace.separator: must not contain white space or control characters"},
		},
		{
			name: "separator too long",
			yaml: "namespace: {separator: '123456789'}\nservers:\n  x: {command: [x]}\n",
			want: []string{"v.yaml:1: namespace.separator: must be at most 8 bytes"},
		},
		{
			name: "both command and url",
			yaml: "servers:\n  x:\n    command: [x]\n    url: https://a.example/mcp\n",
			want: []string{"v.yaml:2: servers.x: set either command or url, not both"},
		},
		{
			name: "neither command nor url",
			yaml: "servers:\n  x: {era: auto}\n  y:\n",
			want: []string{
				"v.yaml:2: servers.x: set command (a stdio server) or url (a remote server)",
				"v.yaml:3: servers.y: set command (a stdio server) or url (a remote server)",
			},
		},
		{
			name: "empty command",
			yaml: "servers:\n  x: {command: []}\n  y: {command: ['', a]}\n",
			want: []string{
				"v.yaml:2: servers.x: set command (a stdio server) or url (a remote server)",
				"v.yaml:3: servers.y.command[0]: program must not be empty",
			},
		},
		{
			name: "transport consistent with command and url",
			yaml: "servers:\n  a: {command: [x], transport: sse}\n  b: {url: 'https://h/mcp', transport: stdio}\n  c: {url: 'https://h/mcp', transport: websocket}\n  d: {url: 'https://h/sse', transport: sse}\n",
			want: []string{
				`v.yaml:2: servers.a.transport: transport "sse" needs url`,
				`v.yaml:3: servers.b.transport: transport "stdio" needs command`,
				`v.yaml:4: servers.c.transport: must be stdio, streamable-http or sse, not "websocket"`,
			},
		},
		{
			name: "url",
			yaml: "servers:\n  a: {url: 'ftp://h/x'}\n  b: {url: 'https:///mcp'}\n  c: {url: '/mcp'}\n  d: {url: 'http://[::1]:80/mcp'}\n  e: {url: 'https://h/mcp#frag'}\n  f: {url: \"https://h\\x7f/\"}\n",
			want: []string{
				"v.yaml:2: servers.a.url: must be an http or https URL",
				"v.yaml:3: servers.b.url: must have a host",
				"v.yaml:4: servers.c.url: must be an http or https URL",
				"v.yaml:6: servers.e.url: must not have a fragment",
				"v.yaml:7: servers.f.url: not a valid URL",
			},
		},
		{
			name: "headers only with url, env and dir only with command",
			yaml: "servers:\n  a: {command: [x], headers: {A: b}}\n  b: {url: 'https://h/', env: {A: b}, dir: /tmp}\n",
			want: []string{
				"v.yaml:2: servers.a.headers: headers are only for servers with a url",
				"v.yaml:3: servers.b.env: env is only for servers with a command",
				"v.yaml:3: servers.b.dir: dir is only for servers with a command",
			},
		},
		{
			name: "header names and values",
			yaml: "servers:\n  a:\n    url: https://h/\n    headers:\n      X-Ok: v\n      Bad Name: v\n      Mcp-Session-Id: s\n      x-ok: w\n      X-Split: \"a\\r\\nInjected: 1\"\n",
			want: []string{
				`v.yaml:6: servers.a.headers["Bad Name"]: not a valid HTTP header name`,
				"v.yaml:7: servers.a.headers.Mcp-Session-Id: header Mcp-Session-Id is set by the gateway and cannot be configured",
				`v.yaml:8: servers.a.headers.x-ok: same header as "X-Ok" (header names are case-insensitive)`,
				"v.yaml:9: servers.a.headers.X-Split: value must not contain line breaks or NUL bytes",
			},
		},
		{
			name: "env names",
			yaml: "servers:\n  a:\n    command: [x]\n    env: {'A=B': x, '': y, OK: \"\\0\"}\n",
			want: []string{
				`v.yaml:4: servers.a.env[""]: environment variable name must be non-empty without '=' or NUL`,
				`v.yaml:4: servers.a.env["A=B"]: environment variable name must be non-empty without '=' or NUL`,
				"v.yaml:4: servers.a.env.OK: value must not contain a NUL byte",
			},
		},
		{
			name: "era",
			yaml: "servers:\n  a: {command: [x], era: future}\n  b: {url: 'https://h/', transport: sse, era: modern}\n  c: {url: 'https://h/', era: modern}\n  d: {command: [x], era: legacy}\n",
			want: []string{
				`v.yaml:2: servers.a.era: must be auto, legacy or modern, not "future"`,
				"v.yaml:3: servers.b.era: the sse transport exists only in the legacy era",
			},
		},
		{
			name: "durations",
			yaml: "limits: {call_timeout: -1s, shutdown_timeout: -2s}\nservers:\n  a:\n    command: [x]\n    timeout: -5s\n    restart: {initial_backoff: -1s, max_backoff: -1ms}\n",
			want: []string{
				"v.yaml:1: limits.call_timeout: must not be negative",
				"v.yaml:1: limits.shutdown_timeout: must not be negative",
				"v.yaml:5: servers.a.timeout: must not be negative",
				"v.yaml:6: servers.a.restart.initial_backoff: must not be negative",
				"v.yaml:6: servers.a.restart.max_backoff: must not be negative",
			},
		},
		{
			name: "restart max below initial",
			yaml: "servers:\n  a:\n    command: [x]\n    restart:\n      initial_backoff: 10s\n      max_backoff: 1s\n",
			want: []string{"v.yaml:6: servers.a.restart.max_backoff: must be at least initial_backoff (10s)"},
		},
		{
			name: "restart initial above the default max",
			yaml: "servers:\n  a:\n    command: [x]\n    restart: {initial_backoff: 1m}\n",
		},
		{
			name: "limits",
			yaml: "limits: {max_message_bytes: -1, max_depth: 10001}\nservers:\n  a: {command: [x]}\n",
			want: []string{
				"v.yaml:1: limits.max_message_bytes: must be positive",
				"v.yaml:1: limits.max_depth: must be from 1 to 10000",
			},
		},
		{
			name: "globs",
			yaml: "servers:\n  a:\n    command: [x]\n    tools: {allow: ['read_*', '[a-'], deny: ['']}\nprofiles:\n  p: {tools: {deny: ['a\\']}}\n",
			want: []string{
				`v.yaml:4: servers.a.tools.allow[1]: invalid glob "[a-"`,
				"v.yaml:4: servers.a.tools.deny[0]: glob must not be empty",
				`v.yaml:6: profiles.p.tools.deny[0]: invalid glob "a\\"`,
			},
		},
		{
			name: "profiles",
			yaml: "servers:\n  fs: {command: [x]}\nprofiles:\n  ReadOnly: {servers: [fs]}\n  ok-1: {servers: [fs, nope, fs]}\n  all:\n",
			want: []string{
				"v.yaml:4: profiles.ReadOnly: profile name must be 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit",
				`v.yaml:5: profiles.ok-1.servers[1]: no server named "nope"`,
				`v.yaml:5: profiles.ok-1.servers[2]: server "fs" is listed twice`,
			},
		},
		{
			name: "listen",
			yaml: "listen: localhost\nservers:\n  a: {command: [x]}\n",
			want: []string{`v.yaml:1: listen: must be host:port, such as "127.0.0.1:8787"`},
		},
		{
			name: "listen port",
			yaml: "listen: 127.0.0.1:http\nservers:\n  a: {command: [x]}\n",
			want: []string{`v.yaml:1: listen: port "http" must be a number from 0 to 65535`},
		},
		{
			name: "listen host",
			yaml: "listen: 'bad host:80'\nservers:\n  a: {command: [x]}\n",
			want: []string{`v.yaml:1: listen: host "bad host" is neither an IP address nor a host name`},
		},
		{
			name: "listen forms",
			yaml: "listen: '[::1]:0'\nservers:\n  a: {command: [x]}\n",
		},
		{
			name: "log",
			yaml: "log: {level: trace, format: xml}\nservers:\n  a: {command: [x]}\n",
			want: []string{
				`v.yaml:1: log.level: must be debug, info, warn or error, not "trace"`,
				`v.yaml:1: log.format: must be text or json, not "xml"`,
			},
		},
		{
			name: "allowed origins and hosts",
			yaml: "http:\n  allowed_origins: ['https://a.example', 'http://b.example:8080', 'https://c.example/path', '*', 'c.example', '']\n  allowed_hosts: ['mcp.internal:8787', 'h', '[::1]:1', 'http://x', 'h:port', '']\nservers:\n  a: {command: [x]}\n",
			want: []string{
				`v.yaml:2: http.allowed_origins[2]: must be an origin such as "https://app.example.com" (scheme, host and optional port, no path)`,
				"v.yaml:2: http.allowed_origins[3]: wildcards are not supported; list each origin",
				`v.yaml:2: http.allowed_origins[4]: must be an origin such as "https://app.example.com" (scheme, host and optional port, no path)`,
				"v.yaml:2: http.allowed_origins[5]: must not be empty",
				`v.yaml:3: http.allowed_hosts[3]: must be a host name or IP address with an optional port, such as "mcp.internal:8787"`,
				`v.yaml:3: http.allowed_hosts[4]: port "port" must be a number from 0 to 65535`,
				"v.yaml:3: http.allowed_hosts[5]: must not be empty",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse([]byte(tt.yaml), "v.yaml", noEnv)
			if diff := cmp.Diff(tt.want, problemStrings(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if err != nil && len(Problems(err)) == 0 {
				t.Errorf("error is not made of problems: %v", err)
			}
			if err == nil {
				if verr := c.Validate(); verr != nil {
					t.Errorf("parsed config does not validate again: %v", verr)
				}
			}
		})
	}
}

// TestValidateReportsEverything checks that one file with many mistakes
// gets every one of them reported at once, in line order.
func TestValidateReportsEverything(t *testing.T) {
	const file = `listen: nowhere
log:
  level: loud
limits:
  max_depth: -3
namespace:
  separator: "::"
servers:
  "bad::name":
    command: [x]
  both:
    command: [x]
    url: https://h/mcp
  remote:
    url: gopher://h/
    env: {A: b}
    era: ancient
  local:
    command: [x]
    headers: {Authorization: secret-header-value}
    restart: {initial_backoff: 2s, max_backoff: 1s}
    tools: {allow: ["[z-a"]}
profiles:
  Main:
    servers: [missing]
`
	_, err := parse([]byte(file), "sluice.yaml", noEnv)
	want := []string{
		`sluice.yaml:1: listen: must be host:port, such as "127.0.0.1:8787"`,
		`sluice.yaml:3: log.level: must be debug, info, warn or error, not "loud"`,
		"sluice.yaml:5: limits.max_depth: must be from 1 to 10000",
		`sluice.yaml:9: servers["bad::name"]: server name must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit`,
		"sluice.yaml:11: servers.both: set either command or url, not both",
		"sluice.yaml:15: servers.remote.url: must be an http or https URL",
		"sluice.yaml:16: servers.remote.env: env is only for servers with a command",
		`sluice.yaml:17: servers.remote.era: must be auto, legacy or modern, not "ancient"`,
		"sluice.yaml:20: servers.local.headers: headers are only for servers with a url",
		"sluice.yaml:21: servers.local.restart.max_backoff: must be at least initial_backoff (2s)",
		`sluice.yaml:22: servers.local.tools.allow[0]: invalid glob "[z-a"`,
		"sluice.yaml:24: profiles.Main: profile name must be 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit",
		`sluice.yaml:25: profiles.Main.servers[0]: no server named "missing"`,
	}
	if diff := cmp.Diff(want, problemStrings(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "secret-header-value") {
		t.Errorf("error reveals a header value: %v", err)
	}
	ps := Problems(err)
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d", len(ps), len(want))
	}
	if got := ps[5]; got.Path != "servers.remote.url" || got.Line != 15 || got.File != "sluice.yaml" {
		t.Errorf("problem fields = %+v", *got)
	}
}

// TestValidateHandBuilt checks Validate on a Config built in code: it is
// pure, treats zero values as their defaults, and reports paths without
// lines.
func TestValidateHandBuilt(t *testing.T) {
	c := &Config{
		Servers: map[string]*Server{
			"ok":  {Command: []string{"x"}},
			"bad": {URL: "https://h/mcp", Timeout: Duration(-time.Second)},
			"nil": nil,
		},
		Profiles: map[string]*Profile{"p": nil},
	}
	before := c.Clone()
	err := c.Validate()
	want := []string{
		"servers.bad.timeout: must not be negative",
		"servers.nil: server is empty: set command or url",
	}
	if diff := cmp.Diff(want, problemStrings(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	if diff := cmp.Diff(before, c, cmpConfig); diff != "" {
		t.Errorf("Validate changed the config (-before +after):\n%s", diff)
	}

	if err := (&Config{}).Validate(); err == nil || err.Error() != "servers: at least one server is required" {
		t.Errorf("empty config: got %v", err)
	}
}

func TestDefault(t *testing.T) {
	c := Default("/usr/local/bin/sluice")
	if err := c.Validate(); err != nil {
		t.Fatalf("Default does not validate: %v", err)
	}
	want := &Config{
		Listen:    "127.0.0.1:8787",
		Log:       Log{Level: "info", Format: "text"},
		Limits:    Limits{MaxMessageBytes: 4 << 20, MaxDepth: 64, CallTimeout: Duration(time.Minute), ShutdownTimeout: Duration(10 * time.Second), SessionIdle: DefaultSessionIdle},
		Namespace: Namespace{Separator: "__"},
		Servers: map[string]*Server{
			"demo": {
				Command:   []string{"/usr/local/bin/sluice", "demo-server"},
				Transport: TransportStdio,
				Era:       EraAuto,
				Restart:   Restart{InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff},
			},
		},
	}
	if diff := cmp.Diff(want, c, cmpConfig); diff != "" {
		t.Errorf("Default (-want +got):\n%s", diff)
	}
	if c.Source != DefaultSource {
		t.Errorf("Source = %q, want %q", c.Source, DefaultSource)
	}

	// The embedded default may be emptied by a caller and still validate;
	// a file with no servers may not.
	delete(c.Servers, "demo")
	if err := c.Validate(); err != nil {
		t.Errorf("embedded default without servers: %v", err)
	}
	// Each call returns a fresh value.
	if d := Default("x"); len(d.Servers) != 1 {
		t.Errorf("second Default has %d servers", len(d.Servers))
	}
}
