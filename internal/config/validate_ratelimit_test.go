package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidateRateLimits(t *testing.T) {
	const servers = "servers:\n  fs: {command: [x]}\n"
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "valid",
			yaml: servers + `rate_limits:
  - {id: per-user, per: principal, rate: 10/s}
  - {id: tools.v2, per: principal+tool, rate: 600/m, burst: 20, mode: observe}
  - id: fs-writes
    per: server
    rate: 0.5/s
    burst: 0
    mode: enforce
    target: {servers: [fs, "f*"], tools: ["write_*"], resources: ["file:///*"], prompts: [p], methods: [tools/call, "resources/*"]}
  - {id: daily, per: tool+server+principal, rate: 5000/d}
`,
		},
		{
			name: "empty-entry",
			yaml: servers + "rate_limits:\n  - {id: a, per: principal, rate: 1/s}\n  -\n",
			want: []string{"v.yaml:5: rate_limits[1]: rate limit is empty: set id, per and rate"},
		},
		{
			name: "ids",
			yaml: servers + `rate_limits:
  - {per: principal, rate: 1/s}
  - {id: -x, per: principal, rate: 1/s}
  - {id: a, per: principal, rate: 1/s}
  - {id: a, per: server, rate: 1/s}
  - {id: "` + strings.Repeat("x", 65) + `", per: server, rate: 1/s}
`,
			want: []string{
				"v.yaml:4: rate_limits[0].id: is required",
				"v.yaml:5: rate_limits[1].id: must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
				`v.yaml:7: rate_limits[3].id: id "a" is already used by rate_limits[2]`,
				"v.yaml:8: rate_limits[4].id: must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit",
			},
		},
		{
			name: "per",
			yaml: servers + `rate_limits:
  - {id: a, rate: 1/s}
  - {id: b, per: user, rate: 1/s}
  - {id: c, per: tool+tool, rate: 1/s}
  - {id: d, per: "principal+", rate: 1/s}
  - {id: e, per: Principal, rate: 1/s}
`,
			want: []string{
				`v.yaml:4: rate_limits[0].per: must name what a bucket is kept for: principal, server, tool or a combination such as "principal+tool"`,
				`v.yaml:5: rate_limits[1].per: "user" is not principal, server or tool`,
				`v.yaml:6: rate_limits[2].per: "tool" is listed twice`,
				`v.yaml:7: rate_limits[3].per: "" is not principal, server or tool`,
				`v.yaml:8: rate_limits[4].per: "Principal" is not principal, server or tool`,
			},
		},
		{
			name: "rates",
			yaml: servers + `rate_limits:
  - {id: a, per: server}
  - {id: b, per: server, rate: "10"}
  - {id: c, per: server, rate: 10/w}
  - {id: d, per: server, rate: 0/s}
  - {id: e, per: server, rate: -1/s}
  - {id: f, per: server, rate: 1e3/s}
  - {id: g, per: server, rate: 2000000/s}
  - {id: h, per: server, rate: ./s}
  - {id: i, per: server, rate: 1./s}
  - {id: j, per: server, rate: 10/S}
  - {id: k, per: server, rate: 0x10/s}
`,
			want: []string{
				`v.yaml:4: rate_limits[0].rate: is required, such as "10/s" or "600/m"`,
				`v.yaml:5: rate_limits[1].rate: must be a count per unit such as "10/s", "600/m" or "5000/h"`,
				`v.yaml:6: rate_limits[2].rate: unit "w" must be s, m, h or d`,
				`v.yaml:7: rate_limits[3].rate: count must be more than zero`,
				`v.yaml:8: rate_limits[4].rate: count "-1" must be a positive decimal number`,
				`v.yaml:9: rate_limits[5].rate: count "1e3" must be a positive decimal number`,
				`v.yaml:10: rate_limits[6].rate: must be at most 1e+06 calls per second`,
				`v.yaml:11: rate_limits[7].rate: count "." must be a positive decimal number`,
				`v.yaml:12: rate_limits[8].rate: count "1." must be a positive decimal number`,
				`v.yaml:13: rate_limits[9].rate: unit "S" must be s, m, h or d`,
				`v.yaml:14: rate_limits[10].rate: count "0x10" must be a positive decimal number`,
			},
		},
		{
			name: "burst-and-mode",
			yaml: servers + `rate_limits:
  - {id: a, per: server, rate: 1/s, burst: -1}
  - {id: b, per: server, rate: 1/s, burst: 2000000000}
  - {id: c, per: server, rate: 1/s, mode: Enforce}
`,
			want: []string{
				"v.yaml:4: rate_limits[0].burst: must not be negative",
				"v.yaml:5: rate_limits[1].burst: must be at most 1000000000",
				`v.yaml:6: rate_limits[2].mode: must be observe or enforce, not "Enforce"`,
			},
		},
		{
			name: "target",
			yaml: servers + `rate_limits:
  - id: a
    per: server
    rate: 1/s
    target:
      servers: [fs, gh, "g*", ""]
      tools: ["[bad"]
      resources: ["ok", "x\\"]
      prompts: ["[]"]
      methods: ["tools/call", "tools call", "résumé", "[x"]
`,
			want: []string{
				`v.yaml:8: rate_limits[0].target.servers[1]: no server named "gh"`,
				`v.yaml:8: rate_limits[0].target.servers[3]: glob must not be empty`,
				`v.yaml:9: rate_limits[0].target.tools[0]: invalid glob "[bad"`,
				`v.yaml:10: rate_limits[0].target.resources[1]: invalid glob "x\\"`,
				`v.yaml:11: rate_limits[0].target.prompts[0]: invalid glob "[]"`,
				`v.yaml:12: rate_limits[0].target.methods[1]: "tools call" is not a method name: use printable ASCII without spaces, such as "tools/call" or "resources/*"`,
				`v.yaml:12: rate_limits[0].target.methods[2]: "résumé" is not a method name: use printable ASCII without spaces, such as "tools/call" or "resources/*"`,
				`v.yaml:12: rate_limits[0].target.methods[3]: invalid glob "[x"`,
			},
		},
	}
	runValidate(t, tests)
}

func TestValidateMethods(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "valid",
			yaml: `servers:
  fs:
    command: [x]
    methods: {deny: [sampling/createMessage, "elicitation/*"], allow: ["*"]}
profiles:
  ro:
    methods: {allow: ["tools/*", "resources/read", "prompts/[gl]*"], deny: ["notifications/*", "*ping*"]}
`,
		},
		{
			name: "bad-globs",
			yaml: `servers:
  fs:
    command: [x]
    methods: {allow: ["", "[a"], deny: ["sampling create"]}
profiles:
  ro:
    methods: {allow: ["` + strings.Repeat("a", 129) + `"], deny: ["\t"]}
`,
			want: []string{
				"v.yaml:4: servers.fs.methods.allow[0]: glob must not be empty",
				`v.yaml:4: servers.fs.methods.allow[1]: invalid glob "[a"`,
				`v.yaml:4: servers.fs.methods.deny[0]: "sampling create" is not a method name: use printable ASCII without spaces, such as "tools/call" or "resources/*"`,
				"v.yaml:7: profiles.ro.methods.allow[0]: is longer than 128 bytes; not a method name",
				`v.yaml:7: profiles.ro.methods.deny[0]: "\t" is not a method name: use printable ASCII without spaces, such as "tools/call" or "resources/*"`,
			},
		},
		{
			name: "always-allowed",
			yaml: `servers:
  fs:
    command: [x]
    methods: {deny: [ping, notifications/message]}
profiles:
  ro:
    methods: {deny: [initialize, server/discover, tools/call], allow: [ping]}
`,
			want: []string{
				`v.yaml:4: servers.fs.methods.deny[0]: method "ping" is always allowed and cannot be denied`,
				`v.yaml:4: servers.fs.methods.deny[1]: method "notifications/message" is always allowed and cannot be denied`,
				`v.yaml:7: profiles.ro.methods.deny[0]: method "initialize" is always allowed and cannot be denied`,
				`v.yaml:7: profiles.ro.methods.deny[1]: method "server/discover" is always allowed and cannot be denied`,
			},
		},
	}
	runValidate(t, tests)
}

func runValidate(t *testing.T, tests []struct {
	name string
	yaml string
	want []string
},
) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse([]byte(tt.yaml), "v.yaml", noEnv)
			if diff := cmp.Diff(tt.want, problemStrings(err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want float64
	}{
		{"10/s", 10},
		{"600/m", 10},
		{"3600/h", 1},
		{"86400/d", 1},
		{"0.5/s", 0.5},
		{"1000000/s", 1e6},
		{"007/s", 7},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("ParseRate(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePer(t *testing.T) {
	got, err := ParsePer("tool+principal")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"tool", "principal"}, got); diff != "" {
		t.Errorf("ParsePer (-want +got):\n%s", diff)
	}
}

func TestMethodAlwaysAllowed(t *testing.T) {
	for m, want := range map[string]bool{
		"initialize": true, "ping": true, "server/discover": true, "notifications/initialized": true,
		"notifications/": true, "tools/call": false, "notifications": false, "Ping": false, "sampling/createMessage": false,
	} {
		if got := MethodAlwaysAllowed(m); got != want {
			t.Errorf("MethodAlwaysAllowed(%q) = %v, want %v", m, got, want)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/s", "0.5/m", "1e3/s", "/", "1/", "9999999999999999999999/s", "NaN/s", "Inf/s", "0.0000000001/d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if !(r > 0 && r <= MaxRate) {
			t.Errorf("ParseRate(%q) = %v, want a rate in (0, %g]", s, r, float64(MaxRate))
		}
	})
}

func TestValidateControls(t *testing.T) {
	const servers = "servers:\n  fs: {command: [x]}\n"
	runValidate(t, []struct {
		name string
		yaml string
		want []string
	}{
		{name: "defaults", yaml: servers},
		{name: "valid", yaml: servers + "controls: {mode: observe, arguments: off, invalid_schema: allow}\n"},
		{name: "valid-explicit-defaults", yaml: servers + "controls: {mode: enforce, arguments: validate, invalid_schema: deny}\n"},
		{
			name: "invalid",
			yaml: servers + "controls:\n  mode: audit\n  arguments: strict\n  invalid_schema: warn\n",
			want: []string{
				`v.yaml:4: controls.mode: must be observe or enforce, not "audit"`,
				`v.yaml:5: controls.arguments: must be validate or off, not "strict"`,
				`v.yaml:6: controls.invalid_schema: must be deny or allow, not "warn"`,
			},
		},
		{
			name: "unknown-key",
			yaml: servers + "controls: {unknown_tools: allow}\n",
			want: []string{`v.yaml:3: controls: unknown key "unknown_tools"`},
		},
	})
}
