package guard_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// traceGuard appends its name to the call's Labels on the way in and to the
// result on the way out, so a test can read the order of the chain.
type traceGuard struct{ name string }

func (g traceGuard) Name() string { return g.name }

func (g traceGuard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		c.Labels = append(c.Labels, "in:"+g.name)
		res, err := next.Handle(ctx, c)
		c.Labels = append(c.Labels, "out:"+g.name)
		return res, err
	})
}

func TestChainOrder(t *testing.T) {
	terminal := guard.HandlerFunc(func(_ context.Context, c *guard.Call) (*guard.Result, error) {
		c.Labels = append(c.Labels, "terminal")
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	})
	tests := []struct {
		name   string
		guards []string
		want   []string
	}{
		{name: "none", guards: nil, want: []string{"terminal"}},
		{name: "one", guards: []string{"dlp"}, want: []string{"in:dlp", "terminal", "out:dlp"}},
		{
			name:   "already-in-order",
			guards: []string{"audit", "allowlist", "dlp"},
			want:   []string{"in:audit", "in:allowlist", "in:dlp", "terminal", "out:dlp", "out:allowlist", "out:audit"},
		},
		{
			name:   "reversed",
			guards: []string{"minimize", "dlp", "policy", "authn"},
			want:   []string{"in:authn", "in:policy", "in:dlp", "in:minimize", "terminal", "out:minimize", "out:dlp", "out:policy", "out:authn"},
		},
		{
			name:   "shuffled",
			guards: []string{"lineage", "audit", "scan", "ratelimit", "approval"},
			want:   []string{"in:audit", "in:ratelimit", "in:approval", "in:scan", "in:lineage", "terminal", "out:lineage", "out:scan", "out:approval", "out:ratelimit", "out:audit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gs []guard.Guard
			for _, n := range tt.guards {
				gs = append(gs, traceGuard{n})
			}
			before := slices.Clone(gs)
			h, err := guard.Chain(terminal, gs...)
			if err != nil {
				t.Fatalf("Chain: %v", err)
			}
			if diff := cmp.Diff(before, gs, cmp.AllowUnexported(traceGuard{})); diff != "" {
				t.Errorf("Chain reordered the caller's slice (-before +after):\n%s", diff)
			}
			c := &guard.Call{Method: "ping"}
			if _, err := h.Handle(context.Background(), c); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if diff := cmp.Diff(tt.want, []string(c.Labels)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("every-permutation-of-four", func(t *testing.T) {
		names := []string{"scan", "audit", "dlp", "policy"}
		want := []string{"in:audit", "in:policy", "in:scan", "in:dlp", "terminal", "out:dlp", "out:scan", "out:policy", "out:audit"}
		for _, perm := range permutations(names) {
			var gs []guard.Guard
			for _, n := range perm {
				gs = append(gs, traceGuard{n})
			}
			h, err := guard.Chain(terminal, gs...)
			if err != nil {
				t.Fatal(err)
			}
			c := &guard.Call{}
			if _, err := h.Handle(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, []string(c.Labels)); diff != "" {
				t.Errorf("order for %v (-want +got):\n%s", perm, diff)
			}
		}
	})
}

func TestChainRejects(t *testing.T) {
	terminal := guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) { return nil, nil })
	tests := []struct {
		name    string
		guards  []string
		wantErr string
	}{
		{name: "unknown", guards: []string{"audit", "firewall"}, wantErr: `guard "firewall" is not in the chain order`},
		{name: "empty-name", guards: []string{""}, wantErr: `guard "" is not in the chain order`},
		{name: "case-differs", guards: []string{"DLP"}, wantErr: `guard "DLP" is not in the chain order`},
		{name: "duplicate", guards: []string{"dlp", "audit", "dlp"}, wantErr: `guard "dlp" installed twice`},
		{name: "duplicate-adjacent", guards: []string{"policy", "policy"}, wantErr: `guard "policy" installed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gs []guard.Guard
			for _, n := range tt.guards {
				gs = append(gs, traceGuard{n})
			}
			h, err := guard.Chain(terminal, gs...)
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Chain error = %v, want %q", err, tt.wantErr)
			}
			if h != nil {
				t.Errorf("Chain returned a handler with an error")
			}
		})
	}
}

func TestOrderAndRank(t *testing.T) {
	seen := map[string]bool{}
	for i, n := range guard.Order {
		if seen[n] {
			t.Errorf("%q listed twice in Order", n)
		}
		seen[n] = true
		if guard.Rank(n) != i {
			t.Errorf("Rank(%q) = %d, want %d", n, guard.Rank(n), i)
		}
	}
	if guard.Rank("nope") != -1 || guard.Rank("") != -1 {
		t.Errorf("Rank of an unknown name is not -1")
	}
	// Guards that must see everything come before those that act on it.
	for _, pair := range [][2]string{{"audit", "authn"}, {"authn", "allowlist"}, {"allowlist", "policy"}, {"policy", "dlp"}, {"dlp", "minimize"}} {
		if guard.Rank(pair[0]) >= guard.Rank(pair[1]) {
			t.Errorf("%s must come before %s", pair[0], pair[1])
		}
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name       string
		d          guard.Decision
		wantDenied bool
	}{
		{name: "deny-enforce", d: guard.Decision{Guard: "allowlist", Reason: "allowlist-tool-denied", Effect: guard.Deny, Mode: guard.Enforce}, wantDenied: true},
		{name: "deny-observe", d: guard.Decision{Guard: "allowlist", Reason: "allowlist-tool-denied", Effect: guard.Deny, Mode: guard.Observe}},
		{name: "allow-enforce", d: guard.Decision{Guard: "policy", Reason: "policy-rule-allowed", Effect: guard.Allow, Mode: guard.Enforce}},
		{name: "modify-enforce", d: guard.Decision{Guard: "dlp", Reason: "dlp-secret-redacted", Effect: guard.Modify, Mode: guard.Enforce}},
		{name: "deny-no-mode", d: guard.Decision{Guard: "policy", Reason: "policy-x", Effect: guard.Deny}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			earlier := guard.Decision{Guard: "audit", Reason: "audit-recorded", Effect: guard.Allow, Mode: guard.Enforce}
			c := &guard.Call{ID: "call-1", Decisions: []guard.Decision{earlier}}
			err := c.Decide(tt.d)
			if diff := cmp.Diff([]guard.Decision{earlier, tt.d}, c.Decisions); diff != "" {
				t.Errorf("Decisions (-want +got):\n%s", diff)
			}
			var de *guard.DeniedError
			if got := errors.As(err, &de); got != tt.wantDenied {
				t.Fatalf("Decide error = %v, want denied %v", err, tt.wantDenied)
			}
			if !tt.wantDenied {
				if err != nil {
					t.Errorf("Decide error = %v, want nil", err)
				}
				return
			}
			if de.CallID != "call-1" || de.Decision != tt.d {
				t.Errorf("DeniedError = %+v, want call-1 and %+v", de, tt.d)
			}
			if want := "denied by " + tt.d.Guard + ": " + tt.d.Reason; err.Error() != want {
				t.Errorf("Error() = %q, want %q", err.Error(), want)
			}
		})
	}
}

func TestDeniedErrorRPCError(t *testing.T) {
	type data struct {
		Reason string `json:"reason"`
		Guard  string `json:"guard"`
		ID     string `json:"id,omitempty"`
	}
	tests := []struct {
		name        string
		err         guard.DeniedError
		wantMessage string
		wantData    data
	}{
		{
			name:        "with-message-and-id",
			err:         guard.DeniedError{CallID: "c-42", Decision: guard.Decision{Guard: "allowlist", Reason: "allowlist-tool-denied", Message: "tool delete_file is not allowed"}},
			wantMessage: "sluice: tool delete_file is not allowed",
			wantData:    data{Reason: "allowlist-tool-denied", Guard: "allowlist", ID: "c-42"},
		},
		{
			name:        "default-message-no-id",
			err:         guard.DeniedError{Decision: guard.Decision{Guard: "policy", Reason: "policy-no-matching-rule"}},
			wantMessage: "sluice: request denied",
			wantData:    data{Reason: "policy-no-matching-rule", Guard: "policy"},
		},
		{
			name:        "values-needing-escapes",
			err:         guard.DeniedError{CallID: "id\"with\\quotes\n", Decision: guard.Decision{Guard: "dlp", Reason: "dlp-\"x\"", Message: "a \"quoted\" <b>"}},
			wantMessage: "sluice: a \"quoted\" <b>",
			wantData:    data{Reason: "dlp-\"x\"", Guard: "dlp", ID: "id\"with\\quotes\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.err.RPCError()
			if e.Code != mcp.CodeDenied {
				t.Errorf("Code = %d, want %d", e.Code, mcp.CodeDenied)
			}
			if e.Message != tt.wantMessage {
				t.Errorf("Message = %q, want %q", e.Message, tt.wantMessage)
			}
			if !e.Data.IsValid() {
				t.Fatalf("Data is not valid JSON: %s", e.Data)
			}
			var got data
			if err := json.Unmarshal(e.Data, &got, json.RejectUnknownMembers(true)); err != nil {
				t.Fatalf("Data %s: %v", e.Data, err)
			}
			if diff := cmp.Diff(tt.wantData, got); diff != "" {
				t.Errorf("Data (-want +got):\n%s", diff)
			}
			// The whole error response is a valid JSON-RPC message.
			enc := mcp.NewErrorResponse(jsontext.Value(`1`), e).Encode()
			m, err := mcp.Decode(enc, mcp.Limits{})
			if err != nil {
				t.Fatalf("error response does not decode: %v\n%s", err, enc)
			}
			if m.Error.Code != mcp.CodeDenied || !strings.HasPrefix(m.Error.Message, "sluice: ") {
				t.Errorf("decoded error = %+v", m.Error)
			}
		})
	}
	t.Run("invalid-utf8-stays-valid-json", func(t *testing.T) {
		e := (&guard.DeniedError{CallID: "\xff", Decision: guard.Decision{Guard: "g\xfe", Reason: "r\xc3"}}).RPCError()
		if !e.Data.IsValid() {
			t.Errorf("Data is not valid JSON: %q", e.Data)
		}
	})
}

func TestSmallTypes(t *testing.T) {
	if guard.ToServer.String() != "to-server" || guard.ToClient.String() != "to-client" {
		t.Errorf("Direction strings: %s, %s", guard.ToServer, guard.ToClient)
	}
	for m, want := range map[guard.Mode]bool{guard.Observe: true, guard.Enforce: true, "": false, "Enforce": false, "warn": false} {
		if m.Valid() != want {
			t.Errorf("Mode(%q).Valid() = %v, want %v", m, m.Valid(), want)
		}
	}
	c := &guard.Call{Prefix: "fs__"}
	if got := c.ExposedName("read"); got != "fs__read" {
		t.Errorf("ExposedName = %q", got)
	}
	if got := (&guard.Call{}).ExposedName("read"); got != "read" {
		t.Errorf("ExposedName without prefix = %q", got)
	}
	called := false
	h := guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) { called = true; return nil, nil })
	if _, err := h.Handle(context.Background(), &guard.Call{}); err != nil || !called {
		t.Errorf("HandlerFunc did not call the function")
	}
}

func permutations(s []string) [][]string {
	if len(s) <= 1 {
		return [][]string{slices.Clone(s)}
	}
	var out [][]string
	for i := range s {
		rest := append(slices.Clone(s[:i]), s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{s[i]}, p...))
		}
	}
	return out
}
