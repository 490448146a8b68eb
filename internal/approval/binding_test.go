package approval

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// toolCall is a tools/call of "delete" on server "fs" by alice with params.
func toolCall(params string) *guard.Call {
	return &guard.Call{
		ID:        "c1",
		Principal: &guard.Principal{Subject: "alice", Name: "Alice"},
		Direction: guard.ToServer,
		Era:       mcp.EraLegacy,
		Server:    "fs",
		Method:    mcp.MethodToolsCall,
		Name:      "delete",
		Params:    jsontext.Value(params),
	}
}

var requireRule = guard.Decision{Guard: "policy", Rule: "r-delete", Version: "v1", Reason: "policy-approval-required", Effect: guard.RequireApproval, Mode: guard.Enforce}

// TestDigest checks that the digest identifies the exact arguments: equal
// for the same JSON written differently, different for any change of value.
func TestDigest(t *testing.T) {
	base := `{"name":"delete","arguments":{"path":"/tmp/a","recursive":true,"n":10}}`
	tests := []struct {
		name   string
		params string
		same   bool
	}{
		{"identical", base, true},
		{"members reordered, white space", `{ "arguments" : { "n":10, "recursive" : true, "path":"/tmp/a" }, "name":"delete" }`, true},
		{"escaped string spelling", `{"name":"delete","arguments":{"path":"\u002ftmp\/a","recursive":true,"n":10}}`, true},
		{"_meta and requestState do not count", `{"name":"delete","_meta":{"progressToken":7},"requestState":"x","arguments":{"path":"/tmp/a","recursive":true,"n":10}}`, true},
		{"changed string", `{"name":"delete","arguments":{"path":"/tmp/b","recursive":true,"n":10}}`, false},
		{"changed bool", `{"name":"delete","arguments":{"path":"/tmp/a","recursive":false,"n":10}}`, false},
		{"changed number", `{"name":"delete","arguments":{"path":"/tmp/a","recursive":true,"n":11}}`, false},
		{"number spelled differently", `{"name":"delete","arguments":{"path":"/tmp/a","recursive":true,"n":1e1}}`, false},
		{"added member", `{"name":"delete","arguments":{"path":"/tmp/a","recursive":true,"n":10,"force":true}}`, false},
		{"removed member", `{"name":"delete","arguments":{"path":"/tmp/a","n":10}}`, false},
		{"case of a key", `{"name":"delete","arguments":{"Path":"/tmp/a","recursive":true,"n":10}}`, false},
		{"trailing space in a value", `{"name":"delete","arguments":{"path":"/tmp/a ","recursive":true,"n":10}}`, false},
	}
	want, _, err := bind(toolCall(base), requireRule)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := bind(toolCall(tt.params), requireRule)
			if err != nil {
				t.Fatal(err)
			}
			if (got.Digest == want.Digest) != tt.same || (got.Key() == want.Key()) != tt.same {
				t.Errorf("digest %s vs %s: same = %v, want %v", got.Digest, want.Digest, !tt.same, tt.same)
			}
		})
	}
	// Large integers keep their exact text: no rounding through float64.
	a, _, _ := bind(toolCall(`{"arguments":{"n":9007199254740993}}`), requireRule)
	b, _, _ := bind(toolCall(`{"arguments":{"n":9007199254740992}}`), requireRule)
	if a.Digest == b.Digest {
		t.Error("9007199254740993 and 9007199254740992 have the same digest")
	}
	// Absent arguments differ from empty ones.
	a, _, _ = bind(toolCall(`{"name":"delete"}`), requireRule)
	b, _, _ = bind(toolCall(`{"name":"delete","arguments":{}}`), requireRule)
	if a.Digest == b.Digest {
		t.Error("absent and empty arguments have the same digest")
	}
}

// TestBindingFields checks that every field of a binding changes its key.
func TestBindingFields(t *testing.T) {
	params := `{"name":"delete","arguments":{"path":"/x"}}`
	base, _, err := bind(toolCall(params), requireRule)
	if err != nil {
		t.Fatal(err)
	}
	change := map[string]func(c *guard.Call, d *guard.Decision){
		"subject":   func(c *guard.Call, _ *guard.Decision) { c.Principal = &guard.Principal{Subject: "bob"} },
		"no caller": func(c *guard.Call, _ *guard.Decision) { c.Principal = nil },
		// The same subject from another authorization server is another
		// person.
		"issuer": func(c *guard.Call, _ *guard.Decision) {
			c.Principal = &guard.Principal{Issuer: "https://other.example", Subject: "alice", Name: "Alice"}
		},
		// The same person through another client (agent) is another
		// caller, as for sessions and rate limits.
		"client id": func(c *guard.Call, _ *guard.Decision) {
			c.Principal = &guard.Principal{Subject: "alice", Name: "Alice", ClientID: "other-agent"}
		},
		"server":  func(c *guard.Call, _ *guard.Decision) { c.Server = "fs2" },
		"method":  func(c *guard.Call, _ *guard.Decision) { c.Method = mcp.MethodPromptsGet },
		"name":    func(c *guard.Call, _ *guard.Decision) { c.Name = "delete2" },
		"version": func(_ *guard.Call, d *guard.Decision) { d.Version = "v2" },
		"rule":    func(_ *guard.Call, d *guard.Decision) { d.Rule = "other" },
	}
	for name, f := range change {
		t.Run(name, func(t *testing.T) {
			c, d := toolCall(params), requireRule
			f(c, &d)
			b, _, err := bind(c, d)
			if err != nil {
				t.Fatal(err)
			}
			if b.Key() == base.Key() {
				t.Errorf("changing the %s kept the key", name)
			}
		})
	}
	// Length prefixes keep field boundaries: ("ab","c") is not ("a","bc").
	x := Binding{Server: "ab", Method: "c"}
	y := Binding{Server: "a", Method: "bc"}
	if x.Key() == y.Key() {
		t.Error("field boundaries are not part of the key")
	}
}

// TestBindRefuses checks that arguments that are not canonical JSON are
// never bound, so they can never be approved.
func TestBindRefuses(t *testing.T) {
	for name, params := range map[string]string{
		"duplicate member": `{"arguments":{"path":"/a","path":"/b"}}`,
		"invalid UTF-8":    "{\"arguments\":{\"path\":\"\xff\"}}",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := bind(toolCall(params), requireRule); !errors.Is(err, errArguments) {
				t.Errorf("err = %v, want errArguments", err)
			}
		})
	}
}

// TestResourceBinding checks methods other than tools/call and prompts/get:
// the whole params count, without _meta.
func TestResourceBinding(t *testing.T) {
	c := toolCall(`{"uri":"file:///a","_meta":{"k":1}}`)
	c.Method, c.Name = mcp.MethodResourcesRead, "file:///a"
	a, canon, err := bind(c, requireRule)
	if err != nil {
		t.Fatal(err)
	}
	if string(canon) != `{"uri":"file:///a"}` {
		t.Errorf("canonical params %s", canon)
	}
	c.Params = jsontext.Value(`{"uri":"file:///b"}`)
	b, _, _ := bind(c, requireRule)
	if a.Digest == b.Digest {
		t.Error("different params, same digest")
	}
}

// TestEscapeText checks what humans are shown: format and control
// characters escaped, long text cut.
func TestEscapeText(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{`{"path":"/tmp"}`, 100, `{"path":"/tmp"}`},
		{"a\u202eb", 100, `a\u202eb`},
		{"zero\u200bwidth", 100, `zero\u200bwidth`},
		{"esc\x1b[31m", 100, `esc\u001b[31m`},
		{"tab\there", 100, `tab\u0009here`},
		{"bad \xff byte", 100, `bad \ufffd byte`},
		{"héllo ✓", 100, "héllo ✓"},
		{strings.Repeat("x", 20), 10, strings.Repeat("x", 10) + "… (10 more bytes)"},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, escapeText(tt.in, tt.max)); diff != "" {
			t.Errorf("escapeText(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

// TestState checks requestState values: they open only unchanged, with
// the key that minted them.
func TestState(t *testing.T) {
	s := newSealer()
	id := newID()
	key := Binding{Subject: "alice", Digest: "sha256:00"}.Key()
	exp := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	st := s.seal(id, key, exp)
	got, err := s.open(st)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(claims{id: id, expires: exp, key: key}, got, cmp.AllowUnexported(claims{})); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}

	flip := func(i int) string {
		b := []byte(st)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	body := len(StatePrefix)
	dot := strings.LastIndexByte(st, '.')
	bad := map[string]string{
		"payload byte":     flip(body + 3),
		"expiry byte":      flip(body + 14),
		"mac byte":         flip(dot + 5),
		"no mac":           st[:dot],
		"empty mac":        st[:dot+1],
		"truncated":        st[:len(st)-2],
		"prefix":           "sluice-approval2." + st[body:],
		"too long":         st + strings.Repeat("A", maxStateLen),
		"other key":        newSealer().seal(id, key, exp),
		"padded base64":    st + "=",
		"empty":            "",
		"prefix only":      StatePrefix,
		"swapped segments": StatePrefix + st[dot+1:] + "." + st[body:dot],
	}
	for name, v := range bad {
		t.Run(name, func(t *testing.T) {
			if v == st {
				t.Fatal("the test did not change the state")
			}
			if _, err := s.open(v); !errors.Is(err, errState) {
				t.Errorf("open(%q) = %v, want errState", v, err)
			}
		})
	}
}
