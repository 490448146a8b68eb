package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExpandRefs(t *testing.T) {
	vars := env(map[string]string{"A": "alpha", "B_2": "beta", "EMPTY": "", "DOLLAR": "${A}"})
	tests := []struct {
		name, in, want, err string
	}{
		{name: "no reference", in: "plain $A text", want: "plain $A text"},
		{name: "whole value", in: "${A}", want: "alpha"},
		{name: "embedded", in: "Bearer ${A}-${B_2}!", want: "Bearer alpha-beta!"},
		{name: "empty but set", in: "x${EMPTY}y", want: "xy"},
		{name: "value is not expanded again", in: "${DOLLAR}", want: "${A}"},
		{name: "escape", in: "$${A}", want: "${A}"},
		{name: "escape then reference", in: "$${A}${A}", want: "${A}alpha"},
		{name: "dollars before escape", in: "$$${A}", want: "$${A}"},
		{name: "lone dollars", in: "$$ $ $}", want: "$$ $ $}"},
		{name: "unset", in: "x${NOPE}", err: "environment variable NOPE is not set"},
		{name: "unterminated", in: "${A", err: `unterminated "${" (write "$${" for a literal "${")`},
		{name: "empty name", in: "${}", err: `invalid environment variable name "" in ${...}`},
		{name: "bad name", in: "${A-B}", err: `invalid environment variable name "A-B" in ${...}`},
		{name: "digit first", in: "${1A}", err: `invalid environment variable name "1A" in ${...}`},
		{name: "default syntax is not supported", in: "${A:-x}", err: `invalid environment variable name "A:-x" in ${...}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := expandRefs(tt.in, vars)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("expandRefs(%q) error = %v, want %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("expandRefs(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("expandRefs(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Escaping a value and expanding it with no variables gives it back.
			back, err := expandRefs(escapeRefs(got), noEnv)
			if err != nil || back != got {
				t.Errorf("expandRefs(escapeRefs(%q)) = %q, %v", got, back, err)
			}
		})
	}
}

func TestParseExpansion(t *testing.T) {
	const file = `
listen: ${NOT_EXPANDED_HERE}:1
servers:
  local:
    command: ["${BIN}", "--token=${TOKEN}", "$${LITERAL}"]
    dir: ${HOME_DIR}/work
    env: {KEY: "${TOKEN}", PLAIN: "$$x", ESC: "$${TOKEN}"}
  remote:
    url: https://${HOST}/mcp
    headers: {Authorization: "Bearer ${TOKEN}"}
`
	vars := map[string]string{
		"BIN": "/bin/srv", "TOKEN": "s3cr3t-t0ken", "HOME_DIR": "/home/u", "HOST": "mcp.example.com",
		"NOT_EXPANDED_HERE": "oops",
	}
	_, err := parse([]byte(file), "e.yaml", env(vars))
	// listen is not expanded, so its literal text is validated.
	wantListen := []string{`e.yaml:2: listen: host "${NOT_EXPANDED_HERE}" is neither an IP address nor a host name`}
	if diff := cmp.Diff(wantListen, problemStrings(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	c, err := parse([]byte(strings.Replace(file, "${NOT_EXPANDED_HERE}:1", "127.0.0.1:1", 1)), "e.yaml", env(vars))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*Server{
		"local": {
			Command:   []string{"/bin/srv", "--token=s3cr3t-t0ken", "${LITERAL}"},
			Dir:       "/home/u/work",
			Env:       map[string]string{"KEY": "s3cr3t-t0ken", "PLAIN": "$$x", "ESC": "${TOKEN}"},
			Transport: TransportStdio, Era: EraAuto,
			Restart: Restart{InitialBackoff: DefaultInitialBackoff, MaxBackoff: DefaultMaxBackoff},
		},
		"remote": {
			URL:       "https://mcp.example.com/mcp",
			Headers:   map[string]string{"Authorization": "Bearer s3cr3t-t0ken"},
			Transport: TransportStreamableHTTP, Era: EraAuto,
		},
	}
	if diff := cmp.Diff(want, c.Servers); diff != "" {
		t.Errorf("expanded servers (-want +got):\n%s", diff)
	}

	// The redacted form shows where each value came from, never the value.
	s := c.String()
	if strings.Contains(s, "s3cr3t") {
		t.Errorf("String reveals a secret:\n%s", s)
	}
	for _, want := range []string{"--token=${TOKEN}", "${HOME_DIR}/work", "https://${HOST}/mcp", "KEY: REDACTED", "Authorization: REDACTED"} {
		if !strings.Contains(s, want) {
			t.Errorf("String lacks %q:\n%s", want, s)
		}
	}

	// Marshal keeps literal ${ escaped so that parsing again gives the same.
	out, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := parse(out, "again.yaml", noEnv)
	if err != nil {
		t.Fatalf("parse of marshaled config: %v\n%s", err, out)
	}
	if diff := cmp.Diff(c, again, cmpConfig); diff != "" {
		t.Errorf("round trip (-first +second):\n%s", diff)
	}
}

func TestParseExpansionErrors(t *testing.T) {
	const file = `servers:
  a:
    command: [x, "${UNSET_ARG}"]
    env:
      GOOD: ${SECRET}
      BAD: ${UNSET_ENV}
      WORSE: "${oops"
  b:
    url: ${UNSET_URL}
    headers: {Authorization: "Bearer ${SECRET}", X-Other: "${UNSET_HEADER}"}
`
	vars := map[string]string{"SECRET": "hunter2-very-secret"}
	_, err := parse([]byte(file), "x.yaml", env(vars))
	want := []string{
		"x.yaml:3: servers.a.command[1]: environment variable UNSET_ARG is not set",
		"x.yaml:6: servers.a.env.BAD: environment variable UNSET_ENV is not set",
		`x.yaml:7: servers.a.env.WORSE: unterminated "${" (write "$${" for a literal "${")`,
		"x.yaml:9: servers.b.url: environment variable UNSET_URL is not set",
		"x.yaml:10: servers.b.headers.X-Other: environment variable UNSET_HEADER is not set",
	}
	if diff := cmp.Diff(want, problemStrings(err)); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error reveals the value of another variable: %v", err)
	}
}
