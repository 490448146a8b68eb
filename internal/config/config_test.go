package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	envSecret    = "env-secret-1"
	headerSecret = "header-secret-2"
	urlSecret    = "url-secret-3"
	querySecret  = "query-secret-4"
)

func secretConfig(t *testing.T) *Config {
	t.Helper()
	c, err := parse([]byte(`servers:
  local:
    command: [srv]
    env: {API_KEY: `+envSecret+`}
  remote:
    url: https://user:`+urlSecret+`@h.example/mcp?key=`+querySecret+`
    headers: {Authorization: Bearer `+headerSecret+`}
`), "s.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNoSecretsInOutput prints a configuration every way a log line might
// and checks that no secret shows.
func TestNoSecretsInOutput(t *testing.T) {
	c := secretConfig(t)
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("loaded", "config", c, "server", c.Servers["remote"])
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("loaded", "config", c, "server", c.Servers["local"])
	outputs := map[string]string{
		"String":          c.String(),
		"%v":              fmt.Sprintf("%v", c),
		"%+v":             fmt.Sprintf("%+v", c),
		"%#v":             fmt.Sprintf("%#v", c),
		"%s":              fmt.Sprintf("%s", c),
		"servers map %v":  fmt.Sprintf("%v", c.Servers),
		"servers map %+v": fmt.Sprintf("%+v", c.Servers),
		"server %v":       fmt.Sprintf("%v", c.Servers["remote"]),
		"server %#v":      fmt.Sprintf("%#v", c.Servers["local"]),
		"slog json":       jsonLog.String(),
		"slog text":       textLog.String(),
		"marshal of Redacted": func() string {
			b, err := c.Redacted().Marshal()
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}(),
	}
	for name, out := range outputs {
		for _, secret := range []string{envSecret, headerSecret, urlSecret, querySecret} {
			if strings.Contains(out, secret) {
				t.Errorf("%s reveals %q:\n%s", name, secret, out)
			}
		}
	}
	if !strings.Contains(outputs["String"], "https://user:REDACTED@h.example/mcp?key=REDACTED") {
		t.Errorf("String does not show the redacted URL:\n%s", outputs["String"])
	}
	// Redacted leaves the original alone.
	if c.Servers["local"].Env["API_KEY"] != envSecret {
		t.Errorf("Redacted changed the original config")
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"https://h.example/mcp", "https://h.example/mcp"},
		{"https://user@h.example/mcp", "https://user@h.example/mcp"},
		{"https://user:pw@h.example/mcp", "https://user:REDACTED@h.example/mcp"},
		{"https://h.example/mcp?a=1&b=2&b=3", "https://h.example/mcp?a=REDACTED&b=REDACTED"},
		{"https://h\x7f/", RedactedValue},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := redactURL(tt.in); got != tt.want {
				t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestClone(t *testing.T) {
	c := secretConfig(t)
	d := c.Clone()
	if diff := cmp.Diff(c, d, cmpConfig); diff != "" {
		t.Fatalf("Clone differs (-orig +clone):\n%s", diff)
	}
	d.Servers["local"].Env["API_KEY"] = "changed"
	d.Servers["local"].Command[0] = "changed"
	d.Servers["remote"].Headers["Authorization"] = "changed"
	delete(d.Servers, "remote")
	if c.Servers["local"].Env["API_KEY"] != envSecret || c.Servers["local"].Command[0] != "srv" ||
		c.Servers["remote"] == nil || c.Servers["remote"].Headers["Authorization"] != "Bearer "+headerSecret {
		t.Errorf("changing the clone changed the original")
	}
}

func TestNames(t *testing.T) {
	c := &Config{
		Servers:  map[string]*Server{"b": {}, "a": {}, "C": {}},
		Profiles: map[string]*Profile{"z": {}, "y": nil},
	}
	if diff := cmp.Diff([]string{"C", "a", "b"}, c.ServerNames()); diff != "" {
		t.Errorf("ServerNames (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"y", "z"}, c.ProfileNames()); diff != "" {
		t.Errorf("ProfileNames (-want +got):\n%s", diff)
	}
}

func TestParentPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"servers", ""},
		{"servers.fs", "servers"},
		{"servers.fs.command[2]", "servers.fs.command"},
		{`servers["a.b"]`, "servers"},
		{`servers["a[1"].url`, `servers["a[1"]`},
		{`servers["a[1"]`, "servers"},
		{`servers.x.env["K]"]`, "servers.x.env"},
	}
	for _, tt := range tests {
		if got := parentPath(tt.in); got != tt.want {
			t.Errorf("parentPath(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "s.yaml", Line: 3, Path: "servers.fs", Msg: "m"}, "s.yaml:3: servers.fs: m"},
		{Problem{File: "s.yaml", Path: "servers", Msg: "m"}, "s.yaml: servers: m"},
		{Problem{Line: 3, Path: "listen", Msg: "m"}, "line 3: listen: m"},
		{Problem{Path: "listen", Msg: "m"}, "listen: m"},
		{Problem{File: "s.yaml", Line: 1, Msg: "m"}, "s.yaml:1: m"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.p.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}
