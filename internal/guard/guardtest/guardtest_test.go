package guardtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// sample is a small guard that follows the house rules unless told to break
// one of them with defect. It denies tools/call of the tool "bad" and
// replaces tools/list results with an empty list.
type sample struct {
	mode    guard.Mode
	defect  string
	names   atomic.Int32
	release chan struct{} // closed at the end of a test to free a hung guard
}

var _ guard.Guard = (*sample)(nil)

func (s *sample) Name() string {
	switch s.defect {
	case "name-unknown":
		return "firewall"
	case "name-unstable":
		if s.names.Add(1)%2 == 0 {
			return "dlp"
		}
	}
	return "policy"
}

func (s *sample) decide(c *guard.Call, reason string, effect guard.Effect) error {
	d := guard.Decision{Guard: "policy", Reason: reason, Effect: effect, Mode: s.mode}
	switch s.defect {
	case "bad-reason":
		d.Reason = "policy_Tool-Denied"
	case "wrong-prefix":
		d.Reason = "dlp-tool-denied"
	case "bad-mode":
		d.Mode = "warn"
	case "bad-effect":
		d.Effect = "block"
	case "other-guard":
		d.Guard = "audit"
	}
	return c.Decide(d)
}

func (s *sample) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if s.defect == "hang" && ctx.Err() != nil {
			<-s.release
		}
		if c.Method == mcp.MethodToolsCall && c.Name == "bad" {
			err := s.decide(c, "policy-tool-denied", guard.Deny)
			switch s.defect {
			case "deny-in-observe":
				if err == nil {
					err = &guard.DeniedError{CallID: c.ID, Decision: c.Decisions[len(c.Decisions)-1]}
				}
			case "deny-ignored":
				err = nil
			}
			if err != nil {
				return nil, err
			}
		}
		switch s.defect {
		case "write-params":
			if len(c.Params) > 0 {
				c.Params[0] = ' '
			}
		case "replace-params":
			c.Params = jsontext.Value(`{"replaced":true}`)
		case "background-ctx":
			ctx = context.Background()
		case "nil-result":
			if c.Method == mcp.MethodPing {
				return nil, nil
			}
		}
		res, err := next.Handle(ctx, c)
		if s.defect == "next-twice" {
			res, err = next.Handle(ctx, c)
		}
		if s.defect == "hang" && ctx.Err() != nil {
			<-s.release
		}
		if err != nil {
			switch s.defect {
			case "swallow-error":
				return &guard.Result{Result: jsontext.Value(`{}`)}, nil
			case "wrap-error":
				return nil, fmt.Errorf("policy: %w", err)
			}
			return nil, err
		}
		switch s.defect {
		case "write-result":
			if res.Result != nil {
				res.Result[0] = ' '
			}
		case "change-ping":
			if c.Method == mcp.MethodPing {
				return &guard.Result{Result: jsontext.Value(`{"changed":true}`)}, nil
			}
		case "allow-on-ping-modify":
			if c.Method == mcp.MethodPing {
				_ = s.decide(c, "policy-ping-touched", guard.Modify)
			}
		}
		if c.Method == mcp.MethodToolsList && res.Error == nil {
			if err := s.decide(c, "policy-list-replaced", guard.Modify); err != nil {
				return nil, err
			}
			if s.mode == guard.Enforce || s.defect == "observe-modifies" {
				return &guard.Result{Result: jsontext.Value(`{"tools":[]}`)}, nil
			}
		}
		return res, nil
	})
}

func sampleCases(mode guard.Mode) []Case {
	list := jsontext.Value(`{"tools":[{"name":"a"}]}`)
	wantList := jsontext.Value(`{"tools":[]}`)
	if mode == guard.Observe {
		wantList = list
	}
	return []Case{
		{
			Name:       "bad-tool",
			Call:       guard.Call{Method: mcp.MethodToolsCall, Name: "bad", Server: "fs", Params: jsontext.Value(`{"name":"bad"}`)},
			WantReason: "policy-tool-denied", WantEffect: guard.Deny,
			WantDenied: mode == guard.Enforce, WantNextSkipped: mode == guard.Enforce,
		},
		{
			Name:       "good-tool",
			Call:       guard.Call{Method: mcp.MethodToolsCall, Name: "good", Server: "fs", Params: jsontext.Value(`{"name":"good","arguments":{}}`)},
			Next:       &guard.Result{Result: jsontext.Value(`{"content":[]}`)},
			WantResult: jsontext.Value(`{"content":[]}`),
		},
		{
			Name:       "list",
			Call:       guard.Call{Method: mcp.MethodToolsList, Server: "fs", Params: jsontext.Value(`{}`)},
			Next:       &guard.Result{Result: list},
			WantReason: "policy-list-replaced", WantEffect: guard.Modify,
			WantResult: wantList,
		},
	}
}

func newSample(mode guard.Mode, defect string) func(*testing.T) guard.Guard {
	return func(t *testing.T) guard.Guard {
		s := &sample{mode: mode, defect: defect, release: make(chan struct{})}
		t.Cleanup(func() { close(s.release) })
		return s
	}
}

func TestRunOnConformingGuard(t *testing.T) {
	for _, mode := range []guard.Mode{guard.Enforce, guard.Observe} {
		t.Run(string(mode), func(t *testing.T) {
			Run(t, newSample(mode, ""), sampleCases(mode)...)
		})
	}
}

// TestChecksCatchDefects runs each check on a guard that breaks one house
// rule and expects the check to say so.
func TestChecksCatchDefects(t *testing.T) {
	defer func(d time.Duration) { waitTimeout = d }(waitTimeout)
	waitTimeout = 300 * time.Millisecond

	type check func(g guard.Guard, cases []Case) []string
	name := func(g guard.Guard, _ []Case) []string { return checkName(g, g) }
	ping := func(g guard.Guard, _ []Case) []string { return checkPing(g) }
	cases := func(g guard.Guard, cs []Case) []string {
		h := g.Wrap(guard.HandlerFunc(terminal))
		var probs []string
		for _, tc := range cs {
			probs = append(probs, checkCase(g.Name(), h, tc)...)
		}
		return probs
	}
	tests := []struct {
		defect string
		mode   guard.Mode
		check  check
		want   string
	}{
		{"name-unknown", guard.Enforce, name, "is not in guard.Order"},
		{"name-unstable", guard.Enforce, name, "Name() changed"},
		{"next-twice", guard.Enforce, ping, "next called 2 times"},
		{"write-params", guard.Enforce, ping, "wrote into the params"},
		{"write-result", guard.Enforce, ping, "wrote into the result"},
		{"replace-params", guard.Enforce, ping, "params were changed without a Modify decision"},
		{"change-ping", guard.Enforce, ping, "result was changed without a Modify decision"},
		{"allow-on-ping-modify", guard.Enforce, ping, `decision "policy-ping-touched" with effect "modify"`},
		{"nil-result", guard.Enforce, ping, "neither a result nor an error"},
		{"background-ctx", guard.Enforce, ping, "context not derived from the caller's"},
		{"bad-reason", guard.Enforce, cases, "is not kebab-case"},
		{"wrong-prefix", guard.Enforce, cases, `is not prefixed with "policy-"`},
		{"bad-mode", guard.Enforce, cases, "invalid mode"},
		{"bad-effect", guard.Enforce, cases, "invalid effect"},
		{"other-guard", guard.Enforce, cases, "under another guard's name"},
		{"deny-in-observe", guard.Observe, cases, "DeniedError for a decision that is not an enforced denial"},
		{"deny-ignored", guard.Enforce, cases, "no DeniedError returned"},
		{"observe-modifies", guard.Observe, cases, "result was changed in observe mode"},
		{"swallow-error", guard.Enforce, checkNextError, "next failed"},
		{"wrap-error", guard.Enforce, checkNextError, "next failed"},
		{"hang", guard.Enforce, checkCancel, "hangs with a cancelled context"},
		{"hang", guard.Enforce, checkCancel, "ping: does not return when the context is cancelled while next runs"},
	}
	for _, tt := range tests {
		t.Run(tt.defect+"/"+tt.want, func(t *testing.T) {
			g := newSample(tt.mode, tt.defect)(t)
			probs := tt.check(g, sampleCases(tt.mode))
			if !strings.Contains(strings.Join(probs, "\n"), tt.want) {
				t.Errorf("problems do not mention %q:\n%s", tt.want, strings.Join(probs, "\n"))
			}
		})
	}

	// A conforming guard has no problems under the same checks.
	t.Run("conforming", func(t *testing.T) {
		for _, mode := range []guard.Mode{guard.Enforce, guard.Observe} {
			g := newSample(mode, "")(t)
			cs := sampleCases(mode)
			for _, probs := range [][]string{
				checkName(g, g), checkPing(g), checkNextError(g, cs), checkCancel(g, cs), checkConcurrent(g, cs),
			} {
				if len(probs) > 0 {
					t.Errorf("%s: %s", mode, strings.Join(probs, "\n"))
				}
			}
		}
	})
}

// TestCaseExpectations checks that the suite holds a guard to its own table.
func TestCaseExpectations(t *testing.T) {
	g := newSample(guard.Enforce, "")(t)
	h := g.Wrap(guard.HandlerFunc(terminal))
	tests := []struct {
		name string
		tc   Case
		want string
	}{
		{
			name: "wrong-reason",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsCall, Name: "bad"}, WantReason: "policy-other", WantDenied: true},
			want: `DeniedError for "policy-tool-denied", want "policy-other"`,
		},
		{
			name: "unexpected-denial",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsCall, Name: "bad"}, WantReason: "policy-tool-denied"},
			want: "unexpected error",
		},
		{
			name: "missing-denial",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsCall, Name: "good"}, WantReason: "policy-tool-denied", WantDenied: true},
			want: "want a DeniedError",
		},
		{
			name: "unexpected-decision",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsList}},
			want: "want no decision",
		},
		{
			name: "wrong-effect",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsList}, WantReason: "policy-list-replaced", WantEffect: guard.Deny},
			want: `want reason "policy-list-replaced" effect "deny"`,
		},
		{
			name: "next-expected-skipped",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsCall, Name: "good"}, WantNextSkipped: true},
			want: "want it skipped",
		},
		{
			name: "result-mismatch",
			tc:   Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsCall, Name: "good"}, WantResult: jsontext.Value(`{"other":1}`)},
			want: "result:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := checkCase(g.Name(), h, tt.tc)
			if !strings.Contains(strings.Join(probs, "\n"), tt.want) {
				t.Errorf("problems do not mention %q:\n%s", tt.want, strings.Join(probs, "\n"))
			}
		})
	}
}

// seer is a guard that remembers the decisions a call carried when it
// arrived, and otherwise passes it on.
type seer struct {
	mu  sync.Mutex
	saw []guard.Decision
}

func (s *seer) Name() string { return "approval" }

func (s *seer) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		s.mu.Lock()
		s.saw = slices.Clone(c.Decisions)
		s.mu.Unlock()
		return next.Handle(ctx, c)
	})
}

// TestPriorDecisions checks that a case's Prior decisions reach the guard
// on the call and are not held against it: they are other guards'.
func TestPriorDecisions(t *testing.T) {
	prior := []guard.Decision{{Guard: "policy", Rule: "r", Reason: "policy-approval-required", Effect: guard.RequireApproval, Mode: guard.Enforce}}
	s := &seer{}
	tc := Case{Name: "x", Call: guard.Call{Method: mcp.MethodToolsCall, Name: "t", Params: jsontext.Value(`{"name":"t"}`)}, Prior: prior}
	if probs := checkCase(s.Name(), s.Wrap(guard.HandlerFunc(terminal)), tc); len(probs) > 0 {
		t.Errorf("problems: %s", strings.Join(probs, "\n"))
	}
	if diff := cmp.Diff(prior, s.saw); diff != "" {
		t.Errorf("decisions the guard saw (-want +got):\n%s", diff)
	}
}
