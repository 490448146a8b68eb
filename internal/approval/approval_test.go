package approval

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
)

// upstream is the terminal handler of the tests: it counts calls and
// records the params it was given.
type upstream struct {
	calls  atomic.Int32
	params atomic.Value // jsontext.Value
}

func (u *upstream) Handle(_ context.Context, c *guard.Call) (*guard.Result, error) {
	u.calls.Add(1)
	u.params.Store(c.Params)
	return &guard.Result{Result: jsontext.Value(`{"content":[]}`)}, nil
}

func newManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Shutdown)
	return m
}

// held returns a call needing approval (enforced require-approval).
func heldCall(era mcp.Era, params string, caps string) *guard.Call {
	c := toolCall(params)
	c.Era = era
	if caps != "" {
		c.Client.Capabilities = jsontext.Value(caps)
	}
	c.Decisions = []guard.Decision{requireRule}
	return c
}

// lastDecision returns the approval guard's last decision on c.
func lastDecision(c *guard.Call) guard.Decision {
	for i := len(c.Decisions) - 1; i >= 0; i-- {
		if c.Decisions[i].Guard == Name {
			return c.Decisions[i]
		}
	}
	return guard.Decision{}
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	var de *guard.DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want a denial", err)
	}
	return de.Decision.Reason
}

// TestConfig checks compiling the configuration.
func TestConfig(t *testing.T) {
	if _, err := New(FromConfig(&config.Approval{Via: "approver"}), nil); err == nil {
		t.Error("via approver without approvers accepted")
	}
	if _, err := New(Config{Via: "email"}, nil); err == nil {
		t.Error("unknown via accepted")
	}
	if _, err := New(Config{Approvers: []string{"group:"}}, nil); err == nil {
		t.Error(`"group:" accepted`)
	}
	m, err := New(FromConfig(&config.Approval{Approvers: []string{"alice", "group:secops"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := m.set.Load()
	for _, tc := range []struct {
		p    *guard.Principal
		want bool
	}{
		{&guard.Principal{Subject: "alice"}, true},
		{&guard.Principal{Subject: "bob", Groups: []string{"dev", "secops"}}, true},
		{&guard.Principal{Subject: "bob", Groups: []string{"dev"}}, false},
		{&guard.Principal{Subject: "secops"}, false},
		{&guard.Principal{Subject: "group:secops"}, false},
		{&guard.Principal{Subject: ""}, false},
		{nil, false},
	} {
		if got := s.isApprover(tc.p); got != tc.want {
			t.Errorf("isApprover(%+v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if s.via != ViaClientOrApprover || s.timeout != DefaultTimeout || s.ttl != DefaultTTL {
		t.Errorf("defaults: %+v", s)
	}
}

// TestModernClient walks a modern client through input_required: the
// answer it brings back with the requestState decides, and the state only
// fits the exact call it was minted for.
func TestModernClient(t *testing.T) {
	const params = `{"name":"delete","arguments":{"path":"/tmp/a"}}`
	const caps = `{"elicitation":{}}`
	up := &upstream{}
	m := newManager(t, Config{Via: ViaClient, TTL: time.Hour})
	h := m.Wrap(up)
	ctx := context.Background()

	// First round: input_required with the guard's state.
	c := heldCall(mcp.EraModern, params, caps)
	res, err := h.Handle(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if rt, _, _ := mcp.LookupString(res.Result, "resultType"); rt != "input_required" {
		t.Fatalf("result %s, want input_required", res.Result)
	}
	state, _, _ := mcp.LookupString(res.Result, "requestState")
	method, _, _ := mcp.LookupString(mustLookup(t, res.Result, "inputRequests", InputKey), "method")
	msg, _, _ := mcp.LookupString(mustLookup(t, res.Result, "inputRequests", InputKey, "params"), "message")
	if !strings.HasPrefix(state, StatePrefix) || method != mcp.MethodElicitationCreate || !strings.Contains(msg, `{"path":"/tmp/a"}`) {
		t.Fatalf("state %q method %q message %q", state, method, msg)
	}
	if d := lastDecision(c); d.Reason != ReasonRequested || up.calls.Load() != 0 {
		t.Fatalf("decision %+v, upstream calls %d", d, up.calls.Load())
	}

	retry := func(params, state, answer string) (*guard.Call, error) {
		p := jsontext.Value(params)
		p, _ = mcp.SetMember(p, "requestState", mustQuote(state))
		if answer != "" {
			p, _ = mcp.SetMember(p, "inputResponses", jsontext.Value(`{"`+InputKey+`":`+answer+`}`))
		}
		c := heldCall(mcp.EraModern, string(p), caps)
		_, err := h.Handle(ctx, c)
		return c, err
	}
	accept := `{"action":"accept","content":{"approve":true}}`

	t.Run("declined", func(t *testing.T) {
		for _, answer := range []string{
			`{"action":"decline"}`,
			`{"action":"cancel"}`,
			`{"action":"accept","content":{"approve":false}}`,
			`{"action":"accept","content":{"approve":"true"}}`,
			`{"action":"accept"}`,
			`"accept"`,
		} {
			_, err := retry(params, state, answer)
			if got := reasonOf(t, err); got != ReasonDenied {
				t.Errorf("answer %s: reason %q, want %q", answer, got, ReasonDenied)
			}
		}
	})
	t.Run("changed arguments", func(t *testing.T) {
		_, err := retry(`{"name":"delete","arguments":{"path":"/"}}`, state, accept)
		if got := reasonOf(t, err); got != ReasonMismatch {
			t.Errorf("reason %q, want %q", got, ReasonMismatch)
		}
	})
	t.Run("tampered state", func(t *testing.T) {
		b := []byte(state)
		b[len(StatePrefix)+2] ^= 1
		_, err := retry(params, string(b), accept)
		if got := reasonOf(t, err); got != ReasonInvalidState {
			t.Errorf("reason %q, want %q", got, ReasonInvalidState)
		}
	})
	t.Run("another caller", func(t *testing.T) {
		p, _ := mcp.SetMember(jsontext.Value(params), "requestState", mustQuote(state))
		p, _ = mcp.SetMember(p, "inputResponses", jsontext.Value(`{"`+InputKey+`":`+accept+`}`))
		c := heldCall(mcp.EraModern, string(p), caps)
		c.Principal = &guard.Principal{Subject: "mallory"}
		_, err := h.Handle(ctx, c)
		if got := reasonOf(t, err); got != ReasonMismatch {
			t.Errorf("reason %q, want %q", got, ReasonMismatch)
		}
	})
	if n := up.calls.Load(); n != 0 {
		t.Fatalf("upstream called %d times before an approval", n)
	}
	t.Run("no answer asks again", func(t *testing.T) {
		c, err := retry(params, state, "")
		if err != nil || lastDecision(c).Reason != ReasonRequested {
			t.Errorf("err %v, decision %+v", err, lastDecision(c))
		}
	})
	t.Run("approved", func(t *testing.T) {
		c, err := retry(params, state, accept)
		if err != nil {
			t.Fatal(err)
		}
		if d := lastDecision(c); d.Reason != ReasonGranted || d.Effect != guard.Modify {
			t.Errorf("decision %+v", d)
		}
		if got := string(up.params.Load().(jsontext.Value)); got != params {
			t.Errorf("upstream got %s, want %s (state and answer removed)", got, params)
		}
	})
	t.Run("same call passes while the approval lasts", func(t *testing.T) {
		c := heldCall(mcp.EraModern, params, caps)
		if _, err := h.Handle(ctx, c); err != nil || lastDecision(c).Reason != ReasonGranted {
			t.Errorf("err %v, decision %+v", err, lastDecision(c))
		}
		c = heldCall(mcp.EraModern, `{"name":"delete","arguments":{"path":"/tmp/b"}}`, caps)
		if _, err := h.Handle(ctx, c); err != nil || lastDecision(c).Reason != ReasonRequested {
			t.Errorf("other arguments: err %v, decision %+v, want a new request", err, lastDecision(c))
		}
	})
	if n := up.calls.Load(); n != 2 {
		t.Errorf("upstream called %d times, want 2", n)
	}
}

// TestModernOtherMethods checks that a modern client is not answered
// input_required for a request that cannot take it: it goes to an
// approver, or is refused when there is none.
func TestModernOtherMethods(t *testing.T) {
	m := newManager(t, Config{Timeout: 20 * time.Millisecond})
	c := heldCall(mcp.EraModern, `{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":"x"}}`, `{"elicitation":{}}`)
	c.Method = mcp.MethodCompletionComplete
	_, err := m.Wrap(&upstream{}).Handle(context.Background(), c)
	if got := reasonOf(t, err); got != ReasonUnavailable {
		t.Errorf("reason %q, want %q", got, ReasonUnavailable)
	}
	c = heldCall(mcp.EraModern, `{"uri":"file:///a"}`, `{"elicitation":{}}`)
	c.Method, c.Name = mcp.MethodResourcesRead, "file:///a"
	if _, err := m.Wrap(&upstream{}).Handle(context.Background(), c); err != nil || lastDecision(c).Reason != ReasonRequested {
		t.Errorf("resources/read: %v %+v, want input_required", err, lastDecision(c))
	}
}

// TestModernExpired checks that an answer after the request expired is
// refused.
func TestModernExpired(t *testing.T) {
	const params = `{"name":"delete","arguments":{"path":"/tmp/a"}}`
	m := newManager(t, Config{Via: ViaClient, Timeout: 50 * time.Millisecond})
	up := &upstream{}
	h := m.Wrap(up)
	res, err := h.Handle(context.Background(), heldCall(mcp.EraModern, params, `{"elicitation":{"form":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	state, _ := mustLookup(t, res.Result, "requestState"), 0
	time.Sleep(80 * time.Millisecond)
	p, _ := mcp.SetMember(jsontext.Value(params), "requestState", state)
	p, _ = mcp.SetMember(p, "inputResponses", jsontext.Value(`{"`+InputKey+`":{"action":"accept","content":{"approve":true}}}`))
	_, err = h.Handle(context.Background(), heldCall(mcp.EraModern, string(p), `{"elicitation":{}}`))
	if got := reasonOf(t, err); got != ReasonExpired || up.calls.Load() != 0 {
		t.Errorf("reason %q (upstream calls %d), want %q", got, up.calls.Load(), ReasonExpired)
	}
}

// asker answers elicitations the way a legacy client's handler would.
type asker struct {
	answer string
	err    error
	block  bool
	asked  atomic.Int32
	last   atomic.Value // jsontext.Value
}

func (a *asker) Ask(ctx context.Context, method string, params jsontext.Value) (jsontext.Value, error) {
	a.asked.Add(1)
	a.last.Store(params)
	if method != mcp.MethodElicitationCreate {
		return nil, errors.New("unexpected method " + method)
	}
	if a.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if a.err != nil {
		return nil, a.err
	}
	return jsontext.Value(a.answer), nil
}

// TestLegacyClient checks asking a legacy client while the call waits.
func TestLegacyClient(t *testing.T) {
	const params = `{"name":"delete","arguments":{"path":"/tmp/a"}}`
	tests := []struct {
		name       string
		cfg        Config
		ask        *asker
		caps       string
		wantReason string
		wantDenied bool
	}{
		{name: "accepted", ask: &asker{answer: `{"action":"accept","content":{"approve":true}}`}, caps: `{"elicitation":{}}`, wantReason: ReasonGranted},
		{name: "declined", ask: &asker{answer: `{"action":"decline"}`}, caps: `{"elicitation":{}}`, wantReason: ReasonDenied, wantDenied: true},
		{name: "not approved", ask: &asker{answer: `{"action":"accept","content":{"approve":false}}`}, caps: `{"elicitation":{}}`, wantReason: ReasonDenied, wantDenied: true},
		{name: "timeout", cfg: Config{Timeout: 30 * time.Millisecond}, ask: &asker{block: true}, caps: `{"elicitation":{}}`, wantReason: ReasonTimeout, wantDenied: true},
		{name: "client error", ask: &asker{err: errors.New("boom")}, caps: `{"elicitation":{}}`, wantReason: ReasonUnavailable, wantDenied: true},
		{name: "url-only elicitation", ask: &asker{}, caps: `{"elicitation":{"url":{}}}`, wantReason: ReasonUnavailable, wantDenied: true},
		{name: "no elicitation", ask: &asker{}, caps: `{"sampling":{}}`, wantReason: ReasonUnavailable, wantDenied: true},
		{name: "via approver does not ask the client", cfg: Config{Via: ViaApprover, Approvers: []string{"sec"}, Timeout: 30 * time.Millisecond}, ask: &asker{}, caps: `{"elicitation":{}}`, wantReason: ReasonTimeout, wantDenied: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, tt.cfg)
			up := &upstream{}
			c := heldCall(mcp.EraLegacy, params, tt.caps)
			_, err := m.Wrap(up).Handle(guard.WithAsker(context.Background(), tt.ask), c)
			if tt.wantDenied {
				if got := reasonOf(t, err); got != tt.wantReason {
					t.Errorf("reason %q, want %q", got, tt.wantReason)
				}
				if up.calls.Load() != 0 {
					t.Error("the call went upstream")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := lastDecision(c); d.Reason != tt.wantReason || d.Effect != guard.Allow || up.calls.Load() != 1 {
				t.Errorf("decision %+v, upstream calls %d", d, up.calls.Load())
			}
		})
	}
	t.Run("what the human sees", func(t *testing.T) {
		a := &asker{answer: `{"action":"decline"}`}
		m := newManager(t, Config{})
		c := heldCall(mcp.EraLegacy, `{"name":"fs__delete","arguments":{"path":"/tmp/\u202ea"}}`, `{"elicitation":{}}`)
		c.Prefix = "fs__"
		_, _ = m.Wrap(&upstream{}).Handle(guard.WithAsker(context.Background(), a), c)
		p, _ := a.last.Load().(jsontext.Value)
		msg, _, _ := mcp.LookupString(p, "message")
		for _, want := range []string{"tools/call fs__delete (server fs)", `{"path":"/tmp/\u202ea"}`, "Caller: alice", "Rule: r-delete", "Approval: apr_"} {
			if !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}
		schema := mustLookup(t, p, "requestedSchema", "required")
		if string(schema) != `["approve"]` {
			t.Errorf("required %s", schema)
		}
	})
}

// TestApprover checks the approver route: listing, deciding, self
// approval, timeout, the caller leaving, and approvals kept for the TTL.
func TestApprover(t *testing.T) {
	const params = `{"name":"delete","arguments":{"path":"/tmp/a"}}`
	sec := &guard.Principal{Subject: "sam", Groups: []string{"secops"}}
	alice := &guard.Principal{Subject: "alice", Groups: []string{"secops"}}
	ctx := context.Background()

	start := func(m *Manager, up *upstream, c *guard.Call) chan error {
		done := make(chan error, 1)
		go func() {
			_, err := m.Wrap(up).Handle(ctx, c)
			done <- err
		}()
		return done
	}
	waitPending := func(t *testing.T, m *Manager) Pending {
		t.Helper()
		for range 500 {
			if ps := m.List(); len(ps) > 0 {
				return ps[0]
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Fatal("no call waits")
		return Pending{}
	}

	t.Run("same-subject-other-issuer", func(t *testing.T) {
		// The caller's subject from another authorization server is
		// another person: approving is not self-approval.
		m := newManager(t, Config{Via: ViaApprover, Approvers: []string{"group:secops"}})
		up := &upstream{}
		done := start(m, up, heldCall(mcp.EraLegacy, params, `{"elicitation":{}}`))
		p := waitPending(t, m)
		self := &guard.Principal{Subject: alice.Subject, Groups: []string{"secops"}}
		if err := m.Decide(ctx, p.ID, self, true, ""); !errors.Is(err, ErrSelfApproval) {
			t.Errorf("same issuer and subject: %v, want self-approval refused", err)
		}
		other := &guard.Principal{Issuer: "https://other.example", Subject: alice.Subject, Groups: []string{"secops"}}
		if err := m.Decide(ctx, p.ID, other, true, ""); err != nil {
			t.Errorf("same subject, other issuer: %v", err)
		}
		<-done
	})

	t.Run("approved", func(t *testing.T) {
		m := newManager(t, Config{Via: ViaApprover, Approvers: []string{"group:secops"}, TTL: 500 * time.Millisecond})
		up := &upstream{}
		c := heldCall(mcp.EraLegacy, params, `{"elicitation":{}}`)
		done := start(m, up, c)
		p := waitPending(t, m)
		want := Pending{ID: p.ID, Principal: "alice", PrincipalName: "Alice", Server: "fs", Method: "tools/call", Tool: "delete",
			Arguments: `{"path":"/tmp/a"}`, Digest: p.Digest, Rule: "r-delete", PolicyVersion: "v1", Created: p.Created, Expires: p.Expires}
		if diff := cmp.Diff(want, p); diff != "" {
			t.Errorf("pending (-want +got):\n%s", diff)
		}
		if err := m.Decide(ctx, p.ID, &guard.Principal{Subject: "eve"}, true, ""); !errors.Is(err, ErrNotApprover) {
			t.Errorf("non-approver: %v", err)
		}
		if err := m.Decide(ctx, p.ID, alice, true, ""); !errors.Is(err, ErrSelfApproval) {
			t.Errorf("self approval: %v", err)
		}

		if err := m.Decide(ctx, p.ID, sec, true, ""); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d := lastDecision(c); d.Reason != ReasonGranted || d.Rule != p.ID || d.Message != "approved by sam" {
			t.Errorf("decision %+v", d)
		}
		if err := m.Decide(ctx, p.ID, sec, false, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("second decision: %v", err)
		}
		// The same call passes while the approval lasts, then waits again.
		c2 := heldCall(mcp.EraLegacy, params, "")
		if _, err := m.Wrap(up).Handle(ctx, c2); err != nil || lastDecision(c2).Reason != ReasonGranted {
			t.Errorf("repeat: %v %+v", err, lastDecision(c2))
		}
		time.Sleep(600 * time.Millisecond)
		c3 := heldCall(mcp.EraLegacy, params, "")
		done = start(m, up, c3)
		p3 := waitPending(t, m)
		if p3.ID == p.ID {
			t.Error("an expired approval was reused")
		}
		_ = m.Decide(ctx, p3.ID, sec, false, "")
		<-done
		if up.calls.Load() != 2 {
			t.Errorf("upstream calls %d, want 2", up.calls.Load())
		}
	})
	t.Run("denied with a reason, self denial allowed", func(t *testing.T) {
		m := newManager(t, Config{Approvers: []string{"alice"}})
		c := heldCall(mcp.EraLegacy, params, "")
		done := start(m, &upstream{}, c)
		p := waitPending(t, m)
		if err := m.Decide(ctx, p.ID, alice, false, "not\x1b today"); err != nil {
			t.Fatal(err)
		}
		err := <-done
		var de *guard.DeniedError
		if !errors.As(err, &de) || de.Decision.Reason != ReasonDenied || de.Decision.Message != "the call was denied by an approver: not today" {
			t.Errorf("err %v", err)
		}

		// The same exact call again (an agent retrying, a client repeating
		// a request answered 403) is refused at once under the same
		// denial, without listing it for the approvers again.
		up := &upstream{}
		_, err = m.Wrap(up).Handle(ctx, heldCall(mcp.EraLegacy, params, ""))
		if !errors.As(err, &de) || de.Decision.Reason != ReasonDenied || de.Decision.Rule != p.ID ||
			!strings.HasPrefix(de.Decision.Message, "the call was denied by an approver: not today") {
			t.Errorf("repeat: %v (rule %q)", err, de.Decision.Rule)
		}
		if n := len(m.List()); n != 0 || up.calls.Load() != 0 {
			t.Errorf("repeat listed %d calls and reached the server %d times", n, up.calls.Load())
		}
		// Other arguments are another call: the approvers are asked.
		done = start(m, &upstream{}, heldCall(mcp.EraLegacy, `{"name":"delete","arguments":{"path":"/tmp/b"}}`, ""))
		p2 := waitPending(t, m)
		if p2.ID == p.ID {
			t.Error("a call with other arguments reused the denial")
		}
		if err := m.Decide(ctx, p2.ID, alice, false, ""); err != nil {
			t.Fatal(err)
		}
		<-done
	})
	t.Run("timeout", func(t *testing.T) {
		m := newManager(t, Config{Approvers: []string{"sam"}, Timeout: 30 * time.Millisecond})
		c := heldCall(mcp.EraLegacy, params, "")
		_, err := m.Wrap(&upstream{}).Handle(ctx, c)
		if got := reasonOf(t, err); got != ReasonTimeout {
			t.Errorf("reason %q", got)
		}
		if n := len(m.List()); n != 0 {
			t.Errorf("%d calls still listed", n)
		}
	})
	t.Run("caller leaves", func(t *testing.T) {
		m := newManager(t, Config{Approvers: []string{"sam"}})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			_, err := m.Wrap(&upstream{}).Handle(cctx, heldCall(mcp.EraLegacy, params, ""))
			done <- err
		}()
		waitPending(t, m)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("err %v", err)
		}
		if n := len(m.List()); n != 0 {
			t.Errorf("%d calls still listed", n)
		}
	})
	t.Run("identical calls share one approval", func(t *testing.T) {
		m := newManager(t, Config{Approvers: []string{"sam"}})
		up := &upstream{}
		d1 := start(m, up, heldCall(mcp.EraLegacy, params, ""))
		p := waitPending(t, m)
		d2 := start(m, up, heldCall(mcp.EraLegacy, params, ""))
		time.Sleep(20 * time.Millisecond)
		if n := len(m.List()); n != 1 {
			t.Fatalf("%d entries, want 1", n)
		}
		_ = m.Decide(ctx, p.ID, sec, true, "")
		if err1, err2 := <-d1, <-d2; err1 != nil || err2 != nil || up.calls.Load() != 2 {
			t.Errorf("errs %v %v, upstream calls %d", err1, err2, up.calls.Load())
		}
	})
	t.Run("shutdown releases held calls", func(t *testing.T) {
		m := newManager(t, Config{Approvers: []string{"sam"}})
		done := start(m, &upstream{}, heldCall(mcp.EraLegacy, params, ""))
		waitPending(t, m)
		m.Shutdown()
		if got := reasonOf(t, <-done); got != ReasonUnavailable {
			t.Errorf("reason %q", got)
		}
	})
	t.Run("nobody to ask", func(t *testing.T) {
		m := newManager(t, Config{})
		_, err := m.Wrap(&upstream{}).Handle(ctx, heldCall(mcp.EraLegacy, params, ""))
		if got := reasonOf(t, err); got != ReasonUnavailable {
			t.Errorf("reason %q", got)
		}
	})
	t.Run("full table", func(t *testing.T) {
		m := newManager(t, Config{Approvers: []string{"sam"}, MaxPending: 1})
		done := start(m, &upstream{}, heldCall(mcp.EraLegacy, params, ""))
		p := waitPending(t, m)
		_, err := m.Wrap(&upstream{}).Handle(ctx, heldCall(mcp.EraLegacy, `{"name":"delete","arguments":{"path":"/b"}}`, ""))
		if got := reasonOf(t, err); got != ReasonUnavailable {
			t.Errorf("reason %q", got)
		}
		_ = m.Decide(ctx, p.ID, sec, false, "")
		<-done
	})
}

// TestObserveAndPassThrough checks calls the guard only records or
// ignores.
func TestObserveAndPassThrough(t *testing.T) {
	m := newManager(t, Config{})
	up := &upstream{}
	h := m.Wrap(up)
	observe := requireRule
	observe.Mode = guard.Observe
	c := heldCall(mcp.EraLegacy, `{"name":"delete"}`, "")
	c.Decisions = []guard.Decision{observe}
	if _, err := h.Handle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if d := lastDecision(c); d.Reason != ReasonWouldBeRequired || d.Mode != guard.Observe || d.Rule != "r-delete" {
		t.Errorf("decision %+v", d)
	}
	list := heldCall(mcp.EraLegacy, `{}`, "")
	list.Method = mcp.MethodToolsList
	if _, err := h.Handle(context.Background(), list); err != nil || len(list.Decisions) != 1 {
		t.Errorf("list: %v, %+v", err, list.Decisions)
	}
	if up.calls.Load() != 2 {
		t.Errorf("upstream calls %d, want 2", up.calls.Load())
	}
}

// TestGuardSuite runs the shared guard suite on the approval guard.
func TestGuardSuite(t *testing.T) {
	observe := requireRule
	observe.Mode = guard.Observe
	prior := []guard.Decision{requireRule}
	call := func(era mcp.Era, params, caps string) guard.Call {
		c := heldCall(era, params, caps)
		c.Decisions = nil
		return *c
	}
	list := call(mcp.EraLegacy, `{}`, "")
	list.Method = mcp.MethodToolsList
	cases := []guardtest.Case{
		{Name: "no-decision", Call: call(mcp.EraLegacy, `{"name":"read"}`, "")},
		{Name: "allowed-by-policy", Call: call(mcp.EraLegacy, `{"name":"read"}`, ""), Prior: []guard.Decision{{Guard: "policy", Reason: "policy-allowed", Effect: guard.Allow, Mode: guard.Enforce}}},
		{Name: "observe", Call: call(mcp.EraLegacy, `{"name":"delete"}`, ""), Prior: []guard.Decision{observe}, WantReason: ReasonWouldBeRequired, WantEffect: guard.Allow},
		{Name: "list", Call: list, Prior: prior},
		{Name: "modern-asks", Call: call(mcp.EraModern, `{"name":"delete","arguments":{"a":1}}`, `{"elicitation":{}}`), Prior: prior,
			WantReason: ReasonRequested, WantEffect: guard.Modify, WantNextSkipped: true},
		{Name: "forged-state", Call: call(mcp.EraModern, `{"name":"delete","requestState":"sluice-approval1.AAAA.BBBB"}`, `{"elicitation":{}}`), Prior: prior,
			WantReason: ReasonInvalidState, WantDenied: true},
		{Name: "approver-timeout", Call: call(mcp.EraLegacy, `{"name":"delete","arguments":{"a":2}}`, ""), Prior: prior,
			WantReason: ReasonTimeout, WantDenied: true},
		{Name: "unbindable", Call: call(mcp.EraLegacy, `{"name":"delete","arguments":{"a":1,"a":2}}`, ""), Prior: prior,
			WantReason: ReasonUnavailable, WantDenied: true},
	}
	guardtest.Run(t, func(t *testing.T) guard.Guard {
		return newManager(t, Config{Approvers: []string{"sam"}, Timeout: 20 * time.Millisecond})
	}, cases...)
}

func mustLookup(t *testing.T, v jsontext.Value, path ...string) jsontext.Value {
	t.Helper()
	out, ok, err := mcp.LookupPath(v, path...)
	if err != nil || !ok {
		t.Fatalf("%v not in %s", path, v)
	}
	return out
}

func mustQuote(s string) jsontext.Value {
	b, _ := jsontext.AppendQuote(nil, s)
	return b
}

// TestModernStateAfterViaApprover: once the configuration says only
// approvers decide, a requestState minted before the reload (when the
// client could answer) no longer lets the client approve: the call waits
// for an approver instead.
func TestModernStateAfterViaApprover(t *testing.T) {
	const params = `{"name":"delete","arguments":{"path":"/tmp/a"}}`
	const caps = `{"elicitation":{}}`
	m := newManager(t, Config{Via: ViaClient})
	up := &upstream{}
	h := m.Wrap(up)
	res, err := h.Handle(context.Background(), heldCall(mcp.EraModern, params, caps))
	if err != nil {
		t.Fatal(err)
	}
	state := mustLookup(t, res.Result, "requestState")
	if err := m.Configure(Config{Via: ViaApprover, Approvers: []string{"sam"}, Timeout: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	p, _ := mcp.SetMember(jsontext.Value(params), "requestState", state)
	p, _ = mcp.SetMember(p, "inputResponses", jsontext.Value(`{"`+InputKey+`":{"action":"accept","content":{"approve":true}}}`))
	_, err = h.Handle(context.Background(), heldCall(mcp.EraModern, string(p), caps))
	if got := reasonOf(t, err); got != ReasonTimeout || up.calls.Load() != 0 {
		t.Errorf("reason %q (upstream calls %d), want %q: only an approver may decide", got, up.calls.Load(), ReasonTimeout)
	}
}
