package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/ratelimit"
)

// TestMemoryBucket follows one bucket through time: the burst is spent,
// a denial says how long to wait, and the bucket refills at its rate.
func TestMemoryBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := ratelimit.NewMemory(ratelimit.MemoryOptions{})
		l := ratelimit.Limit{Rate: 2, Burst: 3} // a token every 500ms
		allow := func() ratelimit.Verdict {
			t.Helper()
			v, err := m.Allow(context.Background(), "k", l, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		var got []ratelimit.Verdict
		for range 4 {
			got = append(got, allow())
		}
		time.Sleep(200 * time.Millisecond)
		got = append(got, allow()) // 300ms to go
		time.Sleep(300 * time.Millisecond)
		got = append(got, allow(), allow()) // one token refilled, then empty again
		time.Sleep(10 * time.Second)
		for range 3 { // refilled to the burst, not beyond
			got = append(got, allow())
		}
		got = append(got, allow())
		want := []ratelimit.Verdict{
			{OK: true}, {OK: true}, {OK: true}, {RetryAfter: 500 * time.Millisecond},
			{RetryAfter: 300 * time.Millisecond},
			{OK: true}, {RetryAfter: 500 * time.Millisecond},
			{OK: true}, {OK: true}, {OK: true}, {RetryAfter: 500 * time.Millisecond},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("verdicts (-want +got):\n%s", diff)
		}
		if _, err := m.Allow(context.Background(), "k", ratelimit.Limit{Rate: 0, Burst: 1}, time.Now()); err == nil {
			t.Error("a zero rate was accepted")
		}
	})
}

// TestMemoryBounded checks that the number of buckets stays bounded and
// that refilled buckets go first.
func TestMemoryBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := ratelimit.NewMemory(ratelimit.MemoryOptions{MaxKeys: 64 * 4, SweepEvery: time.Second})
		l := ratelimit.Limit{Rate: 1, Burst: 1}
		for i := range 10_000 {
			if _, err := m.Allow(context.Background(), fmt.Sprint("k", i), l, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		if n := m.Len(); n > 64*4 {
			t.Errorf("Len() = %d, want at most %d", n, 64*4)
		}
		if m.Evicted() == 0 {
			t.Error("no eviction counted for 10000 keys in room for 256")
		}
		// Keys that come while the others have refilled take the place of
		// refilled buckets and evict nothing.
		time.Sleep(2 * time.Second)
		before := m.Evicted()
		for i := range 200 {
			if _, err := m.Allow(context.Background(), fmt.Sprint("new", i), l, time.Now()); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond)
		}
		if after := m.Evicted(); after != before {
			t.Errorf("%d evictions of buckets that were not full, want 0", after-before)
		}
	})
}

func alice() *guard.Principal { return &guard.Principal{Subject: "alice"} }
func bob() *guard.Principal   { return &guard.Principal{Subject: "bob"} }

func toolsCall(p *guard.Principal, server, tool string) *guard.Call {
	return &guard.Call{ID: "c", Principal: p, Server: server, Method: mcp.MethodToolsCall, Name: tool, Params: jsontext.Value(`{}`)}
}

func newGuard(t *testing.T, yaml string) *ratelimit.Guard {
	t.Helper()
	cfg, err := config.Parse([]byte("servers:\n  fs: {command: [x]}\n  gh: {command: [x]}\n"+yaml), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := ratelimit.New(cfg.RateLimits, ratelimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// run sends calls through g in order and returns, for each, "ok" or the
// rule of the denial.
func run(t *testing.T, g *ratelimit.Guard, calls ...*guard.Call) []string {
	t.Helper()
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	var out []string
	for _, c := range calls {
		_, err := h.Handle(context.Background(), c)
		var de *guard.DeniedError
		switch {
		case err == nil:
			out = append(out, "ok")
		case errors.As(err, &de):
			out = append(out, de.Decision.Rule)
		default:
			t.Fatal(err)
		}
	}
	return out
}

// TestKeys checks what a bucket is kept for, per the limit's per.
func TestKeys(t *testing.T) {
	tests := []struct {
		name  string
		per   string
		calls []*guard.Call
		want  []string
	}{
		{
			name:  "principal",
			per:   "principal",
			calls: []*guard.Call{toolsCall(alice(), "fs", "a"), toolsCall(alice(), "gh", "b"), toolsCall(bob(), "fs", "a")},
			want:  []string{"ok", "l", "ok"},
		},
		{
			name:  "anonymous-callers-share-a-bucket",
			per:   "principal",
			calls: []*guard.Call{toolsCall(nil, "fs", "a"), toolsCall(nil, "gh", "b"), toolsCall(&guard.Principal{}, "fs", "a"), toolsCall(alice(), "fs", "a")},
			want:  []string{"ok", "l", "ok", "ok"},
		},
		{
			name:  "tool",
			per:   "tool",
			calls: []*guard.Call{toolsCall(alice(), "fs", "a"), toolsCall(bob(), "fs", "a"), toolsCall(alice(), "gh", "a"), toolsCall(alice(), "fs", "b")},
			want:  []string{"ok", "l", "ok", "ok"},
		},
		{
			name:  "server",
			per:   "server",
			calls: []*guard.Call{toolsCall(alice(), "fs", "a"), toolsCall(bob(), "fs", "b"), toolsCall(alice(), "gh", "a")},
			want:  []string{"ok", "l", "ok"},
		},
		{
			name:  "principal+tool",
			per:   "principal+tool",
			calls: []*guard.Call{toolsCall(alice(), "fs", "a"), toolsCall(bob(), "fs", "a"), toolsCall(alice(), "fs", "a"), toolsCall(alice(), "fs", "b")},
			want:  []string{"ok", "ok", "l", "ok"},
		},
		{
			name:  "principal+server",
			per:   "server+principal",
			calls: []*guard.Call{toolsCall(alice(), "fs", "a"), toolsCall(alice(), "fs", "b"), toolsCall(alice(), "gh", "a"), toolsCall(bob(), "fs", "a")},
			want:  []string{"ok", "l", "ok", "ok"},
		},
		{
			name: "prompts-and-resources-by-name",
			per:  "tool",
			calls: []*guard.Call{
				{Server: "fs", Method: mcp.MethodPromptsGet, Name: "p"},
				{Server: "fs", Method: mcp.MethodResourcesRead, Name: "p"},
				{Server: "fs", Method: mcp.MethodPromptsGet, Name: "p"},
			},
			want: []string{"ok", "ok", "l"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuard(t, "rate_limits:\n  - {id: l, per: \""+tt.per+"\", rate: 1/h, burst: 1}\n")
			if diff := cmp.Diff(tt.want, run(t, g, tt.calls...)); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTargets checks which calls a limit counts.
func TestTargets(t *testing.T) {
	tests := []struct {
		name   string
		target string
		call   *guard.Call
		counts bool
	}{
		{name: "tools-call-by-default", call: toolsCall(alice(), "fs", "a"), counts: true},
		{name: "resources-read-by-default", call: &guard.Call{Server: "fs", Method: mcp.MethodResourcesRead, Name: "file:///a"}, counts: true},
		{name: "lists-not-by-default", call: &guard.Call{Server: "fs", Method: mcp.MethodToolsList}},
		{name: "ping-not-by-default", call: &guard.Call{Method: mcp.MethodPing}},
		{name: "initialize-not-by-default", call: &guard.Call{Method: mcp.MethodInitialize}},
		{name: "to-client-not-by-default", call: &guard.Call{Server: "fs", Method: mcp.MethodSamplingCreateMessage, Direction: guard.ToClient}},
		{name: "methods-select-to-client", target: "{methods: [sampling/*]}", call: &guard.Call{Server: "fs", Method: mcp.MethodSamplingCreateMessage, Direction: guard.ToClient}, counts: true},
		{name: "methods-select-lists", target: "{methods: [\"*/list\"]}", call: &guard.Call{Server: "fs", Method: mcp.MethodToolsList}, counts: true},
		{name: "methods-exclude", target: "{methods: [resources/*]}", call: toolsCall(alice(), "fs", "a")},
		{name: "server-glob", target: "{servers: [\"f*\"]}", call: toolsCall(alice(), "fs", "a"), counts: true},
		{name: "server-glob-misses", target: "{servers: [gh]}", call: toolsCall(alice(), "fs", "a")},
		{name: "tool-glob", target: "{tools: [\"write_*\"]}", call: toolsCall(alice(), "fs", "write_file"), counts: true},
		{name: "tool-glob-misses", target: "{tools: [\"write_*\"]}", call: toolsCall(alice(), "fs", "read_file")},
		{name: "tool-target-excludes-resources", target: "{tools: [\"*\"]}", call: &guard.Call{Server: "fs", Method: mcp.MethodResourcesRead, Name: "x"}},
		{name: "resource-glob-spans-slashes", target: "{resources: [\"file:///*\"]}", call: &guard.Call{Server: "fs", Method: mcp.MethodResourcesRead, Name: "file:///a/b/c"}, counts: true},
		{name: "prompt-glob", target: "{prompts: [\"sum*\"]}", call: &guard.Call{Server: "fs", Method: mcp.MethodPromptsGet, Name: "summary"}, counts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yaml := "rate_limits:\n  - {id: l, per: server, rate: 1/h, burst: 1"
			if tt.target != "" {
				yaml += ", target: " + tt.target
			}
			g := newGuard(t, yaml+"}\n")
			c1, c2 := *tt.call, *tt.call
			got := run(t, g, &c1, &c2)
			want := []string{"ok", "ok"}
			if tt.counts {
				want[1] = "l"
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDenial checks what a denial carries, the order in which limits are
// charged, observe mode, and that a failing limiter denies.
func TestDenial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := newGuard(t, `rate_limits:
  - {id: watch, per: principal, rate: 1/h, burst: 1, mode: observe}
  - {id: user, per: principal, rate: 2/s, burst: 2}
  - {id: never, per: principal, rate: 1/h, burst: 1, target: {servers: [gh]}}
`)
		h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
			return &guard.Result{Result: jsontext.Value(`{}`)}, nil
		}))
		var last *guard.Call
		call := func() error {
			last = toolsCall(alice(), "fs", "a")
			_, err := h.Handle(context.Background(), last)
			return err
		}
		if err := call(); err != nil || len(last.Decisions) != 0 {
			t.Fatalf("first call: %v %+v", err, last.Decisions)
		}
		if err := call(); err != nil {
			t.Fatalf("second call (observe denial only): %v", err)
		}
		if len(last.Decisions) != 1 || last.Decisions[0].Rule != "watch" || last.Decisions[0].Mode != guard.Observe {
			t.Errorf("second call decisions %+v, want the observed denial of watch", last.Decisions)
		}
		time.Sleep(100 * time.Millisecond)
		err := call()
		var de *guard.DeniedError
		if !errors.As(err, &de) {
			t.Fatalf("third call: %v, want a denial", err)
		}
		want := guard.Decision{
			Guard: "ratelimit", Rule: "user", Reason: ratelimit.ReasonExceeded, Effect: guard.Deny, Mode: guard.Enforce,
			Message: "rate limit exceeded; retry in 400ms", RetryAfter: 400 * time.Millisecond,
		}
		if diff := cmp.Diff(want, de.Decision); diff != "" {
			t.Errorf("denial (-want +got):\n%s", diff)
		}
		rpc := de.RPCError()
		if rpc.Code != mcp.CodeDenied || !strings.Contains(string(rpc.Data), `"retryAfterMs":400`) {
			t.Errorf("agent's error %+v %s, want code %d with retryAfterMs 400", rpc, rpc.Data, mcp.CodeDenied)
		}
		time.Sleep(400 * time.Millisecond)
		if err := call(); err != nil {
			t.Errorf("after the wait: %v", err)
		}
	})

	t.Run("limiter-failure-denies", func(t *testing.T) {
		cfg, err := config.Parse([]byte("servers:\n  fs: {command: [x]}\nrate_limits:\n  - {id: l, per: server, rate: 1/s}\n"), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		g, err := ratelimit.New(cfg.RateLimits, ratelimit.Options{Limiter: failing{}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
			t.Error("next called although the limiter failed")
			return nil, nil
		})).Handle(context.Background(), toolsCall(nil, "fs", "a"))
		var de *guard.DeniedError
		if !errors.As(err, &de) || de.Decision.Reason != ratelimit.ReasonUnavailable {
			t.Errorf("got %v, want a denial %s", err, ratelimit.ReasonUnavailable)
		}
	})
}

// failing is a Limiter whose store is down: a shared store that cannot be
// reached, which a test cannot otherwise produce on demand.
type failing struct{}

func (failing) Allow(context.Context, string, ratelimit.Limit, time.Time) (ratelimit.Verdict, error) {
	return ratelimit.Verdict{}, errors.New("store unreachable")
}

func TestConformance(t *testing.T) {
	for _, mode := range []string{config.ModeEnforce, config.ModeObserve} {
		t.Run(mode, func(t *testing.T) {
			enforce := mode == config.ModeEnforce
			guardtest.Run(t, func(t *testing.T) guard.Guard {
				return newGuard(t, "rate_limits:\n  - {id: once, per: principal+tool, rate: 1/h, burst: 1, mode: "+mode+", target: {tools: [limited]}}\n")
			},
				guardtest.Case{Name: "first", Call: *toolsCall(alice(), "fs", "limited")},
				guardtest.Case{
					Name: "second", Call: *toolsCall(alice(), "fs", "limited"),
					WantReason: ratelimit.ReasonExceeded, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce,
				},
				guardtest.Case{Name: "other-principal", Call: *toolsCall(bob(), "fs", "limited")},
				guardtest.Case{Name: "anonymous", Call: *toolsCall(nil, "fs", "limited")},
				guardtest.Case{Name: "other-tool", Call: *toolsCall(alice(), "fs", "free")},
				guardtest.Case{Name: "list", Call: guard.Call{Principal: alice(), Server: "fs", Method: mcp.MethodToolsList, Params: jsontext.Value(`{}`)}},
			)
		})
	}
}
