// Package guardtest is the conformance suite that every guard's tests run,
// so that the house rules of [guard] hold for all of them:
//
//   - Name() is listed in [guard.Order] and does not change;
//   - the handler from Wrap(next) calls next at most once per call, and passes
//     it a context derived from the caller's;
//   - it never writes into the bytes of c.Params or of the result next
//     returned (a guard that changes them builds new slices);
//   - it passes calls it has no opinion on ("ping") through unchanged, with at
//     most Allow decisions;
//   - every decision it records carries its own name as Guard, a kebab-case
//     Reason prefixed with that name, a valid Mode and a valid Effect;
//   - it returns a [*guard.DeniedError] exactly when it records a Deny decision
//     in Enforce mode, so in Observe mode it never blocks, and what it records
//     in Observe mode changes neither the params nor the result;
//   - without a Modify decision, the result next returned reaches the caller
//     unchanged;
//   - errors from next reach the caller unchanged;
//   - a cancelled context makes it return instead of hanging;
//   - it is safe for concurrent use (run the suite with -race).
//
// A guard's test calls [Run] with a constructor and its own table of
// [Case] values. Run the suite once per configuration that matters (for
// example once in Enforce and once in Observe mode).
package guardtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Case is one call of a guard's own table, with what the guard must do.
type Case struct {
	// Name names the subtest.
	Name string
	// Call is the call to make. Each run works on a copy with its own Params
	// bytes and no earlier Decisions but Prior; an empty ID becomes
	// "guardtest-<Name>".
	Call guard.Call
	// Prior are decisions that guards outside this one recorded before it
	// runs (a policy's require-approval, for the approval guard). They are
	// on the call when it reaches the guard and are exempt from the house
	// rules, which apply to what the guard itself records.
	Prior []guard.Decision
	// Next is what the next handler returns if the guard calls it; nil means
	// a successful empty result ({}).
	Next *guard.Result
	// WantReason is the reason code the guard must record; empty means the
	// guard must record no decision at all.
	WantReason string
	// WantEffect is the effect of the decision with WantReason (checked when
	// not empty).
	WantEffect guard.Effect
	// WantDenied means the call must fail with a *guard.DeniedError for
	// WantReason. Without it the call must succeed.
	WantDenied bool
	// WantNextSkipped means next must not be called. When neither it nor
	// WantDenied is set, next must be called exactly once.
	WantNextSkipped bool
	// WantResult, when not nil, is the exact result bytes the caller must get.
	WantResult jsontext.Value
}

// waitTimeout bounds how long the suite waits for a handler that should
// return because its context was cancelled.
var waitTimeout = 5 * time.Second

// goroutines is how many goroutines share one handler in the concurrency
// check.
const goroutines = 32

var reasonRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// errNext is what next returns in the error-propagation checks.
var errNext = errors.New("guardtest: error from next")

// errNoProbe is what next returns when the guard did not pass it the
// caller's context or one derived from it.
var errNoProbe = errors.New("guardtest: next was called with a context not derived from the caller's")

// Run runs the conformance suite on the guards newGuard returns, plus the
// guard's own cases. newGuard is called several times and must return
// equivalent guards each time.
func Run(t *testing.T, newGuard func(t *testing.T) guard.Guard, cases ...Case) {
	t.Helper()
	names := map[string]bool{}
	for _, tc := range cases {
		if tc.Name == "" || names[tc.Name] {
			t.Fatalf("guardtest: case names must be unique and not empty: %q", tc.Name)
		}
		names[tc.Name] = true
	}
	report := func(t *testing.T, problems []string) {
		t.Helper()
		for _, p := range problems {
			t.Error(p)
		}
	}
	t.Run("name", func(t *testing.T) {
		report(t, checkName(newGuard(t), newGuard(t)))
	})
	t.Run("ping-passes-through", func(t *testing.T) {
		report(t, checkPing(newGuard(t)))
	})
	t.Run("next-error-propagates", func(t *testing.T) {
		report(t, checkNextError(newGuard(t), cases))
	})
	t.Run("context-cancelled", func(t *testing.T) {
		report(t, checkCancel(newGuard(t), cases))
	})
	t.Run("cases", func(t *testing.T) {
		g := newGuard(t)
		h := g.Wrap(guard.HandlerFunc(terminal))
		for _, tc := range cases {
			t.Run(tc.Name, func(t *testing.T) {
				report(t, checkCase(g.Name(), h, tc))
			})
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		report(t, checkConcurrent(newGuard(t), cases))
	})
}

// probe is the state of one call as the terminal handler sees it. It
// travels in the context, so a guard that does not pass the caller's context
// (or one derived from it) to next is caught.
type probe struct {
	result *guard.Result // returned to the guard; its bytes must not change
	orig   *guard.Result // a private copy of result
	err    error         // returned instead of result when set
	block  bool          // wait for the context to be done

	calls   atomic.Int32
	entered chan struct{} // closed when next is first entered
	once    sync.Once
	mu      sync.Mutex
	params  jsontext.Value // a copy of the params next was given
	method  string
}

type probeKey struct{}

func newProbe(res *guard.Result) *probe {
	if res == nil {
		res = &guard.Result{Result: jsontext.Value(`{}`)}
	}
	return &probe{result: cloneResult(res), orig: cloneResult(res), entered: make(chan struct{})}
}

func terminal(ctx context.Context, c *guard.Call) (*guard.Result, error) {
	p, _ := ctx.Value(probeKey{}).(*probe)
	if p == nil {
		return nil, errNoProbe
	}
	p.calls.Add(1)
	p.mu.Lock()
	p.params = bytes.Clone(c.Params)
	p.method = c.Method
	p.mu.Unlock()
	p.once.Do(func() { close(p.entered) })
	if p.block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.err != nil {
		return nil, p.err
	}
	return p.result, nil
}

// outcome is what one call through a guard produced.
type outcome struct {
	call     *guard.Call    // the call after the guard ran
	prior    int            // how many decisions the call had before
	params   jsontext.Value // the Params slice the guard was given
	origPar  jsontext.Value // a private copy of it
	p        *probe
	res      *guard.Result
	err      error
	finished bool
}

// do runs one call through h and waits for it at most waitTimeout.
func do(ctx context.Context, h guard.Handler, c *guard.Call, p *probe) outcome {
	o := outcome{call: c, prior: len(c.Decisions), params: c.Params, origPar: bytes.Clone(c.Params), p: p}
	ctx = context.WithValue(ctx, probeKey{}, p)
	type ret struct {
		res *guard.Result
		err error
	}
	done := make(chan ret, 1)
	go func() {
		res, err := h.Handle(ctx, c)
		done <- ret{res, err}
	}()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		o.res, o.err, o.finished = r.res, r.err, true
	case <-timer.C:
		// The goroutine is left behind: the guard hangs. Nothing it may
		// still write is read (houseRules stops at !finished).
	}
	return o
}

// houseRules checks what must hold for every call.
func houseRules(name string, o outcome) []string {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if !o.finished {
		return []string{fmt.Sprintf("%s: the handler did not return within %v", o.call.Method, waitTimeout)}
	}
	if n := o.p.calls.Load(); n > 1 {
		add("next called %d times for one call", n)
	}
	if !bytes.Equal(o.params, o.origPar) {
		add("the guard wrote into the params bytes it was given:\n was %s\n now %s", o.origPar, o.params)
	}
	if o.p.calls.Load() > 0 && !resultEqual(o.p.result, o.p.orig) {
		add("the guard wrote into the result next returned:\n was %s\n now %s", resultString(o.p.orig), resultString(o.p.result))
	}
	if o.err == nil && o.res == nil {
		add("the handler returned neither a result nor an error")
	}
	if errors.Is(o.err, errNoProbe) {
		add("%v", o.err)
	}

	var mine []guard.Decision
	enforcedDeny, modified, allObserve := false, false, true
	for _, d := range o.call.Decisions[o.prior:] {
		if d.Guard != name {
			add("decision %+v recorded under another guard's name (want %q)", d, name)
			continue
		}
		mine = append(mine, d)
		if !reasonRE.MatchString(d.Reason) {
			add("reason %q is not kebab-case", d.Reason)
		}
		if !strings.HasPrefix(d.Reason, name+"-") {
			add("reason %q is not prefixed with %q", d.Reason, name+"-")
		}
		if !d.Mode.Valid() {
			add("decision %q has invalid mode %q", d.Reason, d.Mode)
		}
		switch d.Effect {
		case guard.Allow, guard.Deny, guard.Modify:
		default:
			add("decision %q has invalid effect %q", d.Reason, d.Effect)
		}
		if d.Effect == guard.Deny && d.Mode == guard.Enforce {
			enforcedDeny = true
		}
		if d.Effect == guard.Modify && d.Mode == guard.Enforce {
			modified = true
		}
		if d.Mode != guard.Observe {
			allObserve = false
		}
	}

	var de *guard.DeniedError
	denied := errors.As(o.err, &de)
	switch {
	case denied:
		if de.Decision.Effect != guard.Deny || de.Decision.Mode != guard.Enforce {
			add("DeniedError for a decision that is not an enforced denial: %+v", de.Decision)
		}
		if de.Decision.Guard != name {
			add("DeniedError carries guard %q, want %q", de.Decision.Guard, name)
		}
		if !slices.Contains(mine, de.Decision) {
			add("DeniedError for a decision that was not recorded on the call: %+v", de.Decision)
		}
		if de.CallID != o.call.ID {
			add("DeniedError.CallID = %q, want the call's ID %q", de.CallID, o.call.ID)
		}
	case enforcedDeny && o.err != errNext:
		add("an enforced Deny decision was recorded but no DeniedError returned (got %v)", o.err)
	}

	// What the guard changed must be announced by an enforced Modify.
	nextOK := o.p.calls.Load() > 0 && o.p.err == nil && !o.p.block
	if nextOK && o.err == nil && o.res != nil && !modified && !resultEqual(o.res, o.p.orig) {
		what := "without a Modify decision"
		if allObserve && len(mine) > 0 {
			what = "in observe mode"
		}
		add("the result was changed %s:\n next returned %s\n caller got    %s", what, resultString(o.p.orig), resultString(o.res))
	}
	if o.p.calls.Load() > 0 && !modified {
		o.p.mu.Lock()
		seen := o.p.params
		o.p.mu.Unlock()
		if !bytes.Equal(seen, o.origPar) {
			add("the params were changed without a Modify decision:\n given   %s\n to next %s", o.origPar, seen)
		}
	}
	return probs
}

func checkName(a, b guard.Guard) []string {
	var probs []string
	name := a.Name()
	if guard.Rank(name) < 0 {
		probs = append(probs, fmt.Sprintf("Name() %q is not in guard.Order %v", name, guard.Order))
	}
	for range 3 {
		if n := a.Name(); n != name {
			probs = append(probs, fmt.Sprintf("Name() changed from %q to %q", name, n))
			break
		}
	}
	if n := b.Name(); n != name {
		probs = append(probs, fmt.Sprintf("two guards from the constructor have names %q and %q", name, n))
	}
	return probs
}

// PingCall returns the call the suite uses for "a call the guard has no
// opinion on": a ping from an authenticated principal, answered by the
// gateway itself (no server).
func PingCall() *guard.Call {
	return &guard.Call{
		ID:        "guardtest-ping",
		Principal: &guard.Principal{Subject: "guardtest", Name: "guardtest"},
		Client:    guard.ClientInfo{Name: "guardtest", Version: "1"},
		Era:       mcp.EraLegacy,
		Direction: guard.ToServer,
		Method:    mcp.MethodPing,
		Params:    jsontext.Value(`{}`),
	}
}

func checkPing(g guard.Guard) []string {
	h := g.Wrap(guard.HandlerFunc(terminal))
	var probs []string
	for _, next := range []*guard.Result{
		{Result: jsontext.Value(`{"_meta":{"k":"v"}}`)},
		{Error: &mcp.Error{Code: mcp.CodeInternalError, Message: "upstream failed", Data: jsontext.Value(`{"x":1}`)}},
	} {
		c := PingCall()
		p := newProbe(next)
		o := do(context.Background(), h, c, p)
		probs = append(probs, houseRules(g.Name(), o)...)
		if !o.finished {
			continue
		}
		if n := p.calls.Load(); n != 1 {
			probs = append(probs, fmt.Sprintf("ping: next called %d times, want 1", n))
		}
		if o.err != nil {
			probs = append(probs, fmt.Sprintf("ping: error %v", o.err))
			continue
		}
		if !resultEqual(o.res, p.orig) {
			probs = append(probs, fmt.Sprintf("ping: result changed from %s to %s", resultString(p.orig), resultString(o.res)))
		}
		p.mu.Lock()
		if !bytes.Equal(p.params, o.origPar) || p.method != mcp.MethodPing {
			probs = append(probs, fmt.Sprintf("ping: next saw %s %s, want ping %s", p.method, p.params, o.origPar))
		}
		p.mu.Unlock()
		for _, d := range c.Decisions {
			if d.Effect != guard.Allow {
				probs = append(probs, fmt.Sprintf("ping: decision %q with effect %q, want none or allow", d.Reason, d.Effect))
			}
		}
	}
	return probs
}

// caseCall makes the call for one run of a case.
func caseCall(tc Case) *guard.Call {
	c := tc.Call
	c.Params = bytes.Clone(tc.Call.Params)
	c.Decisions = slices.Clone(tc.Prior)
	c.Findings = slices.Clone(tc.Call.Findings)
	c.Labels = slices.Clone(tc.Call.Labels)
	if c.ID == "" {
		c.ID = "guardtest-" + tc.Name
	}
	return &c
}

func checkNextError(g guard.Guard, cases []Case) []string {
	h := g.Wrap(guard.HandlerFunc(terminal))
	calls := append([]*guard.Call{PingCall()}, callsOf(cases)...)
	var probs []string
	for _, c := range calls {
		p := newProbe(nil)
		p.err = errNext
		o := do(context.Background(), h, c, p)
		for _, pr := range houseRules(g.Name(), o) {
			probs = append(probs, c.ID+": "+pr)
		}
		if !o.finished {
			continue
		}
		if p.calls.Load() > 0 && o.err != errNext {
			probs = append(probs, fmt.Sprintf("%s: next failed with %q but the caller got (%s, %v)", c.ID, errNext, resultString(o.res), o.err))
		}
		if c.Method == mcp.MethodPing && p.calls.Load() == 0 {
			probs = append(probs, c.ID+": next was not called for ping")
		}
	}
	return probs
}

func checkCancel(g guard.Guard, cases []Case) []string {
	h := g.Wrap(guard.HandlerFunc(terminal))
	var probs []string

	// Already cancelled: every call returns.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range append([]*guard.Call{PingCall()}, callsOf(cases)...) {
		o := do(ctx, h, c, newProbe(nil))
		if !o.finished {
			probs = append(probs, fmt.Sprintf("%s: hangs with a cancelled context", c.ID))
			continue
		}
		if o.err == nil && o.res == nil {
			probs = append(probs, fmt.Sprintf("%s: returned neither a result nor an error with a cancelled context", c.ID))
		}
	}

	// Cancelled while next waits: the cancellation reaches next and the
	// caller gets context.Canceled.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	p := newProbe(nil)
	p.block = true
	c := PingCall()
	done := make(chan outcome, 1)
	go func() { done <- do(ctx, h, c, p) }()
	select {
	case <-p.entered:
	case <-time.After(waitTimeout):
		return append(probs, "ping: next was not called")
	}
	cancel()
	o := <-done
	switch {
	case !o.finished:
		probs = append(probs, "ping: does not return when the context is cancelled while next runs")
	case !errors.Is(o.err, context.Canceled):
		probs = append(probs, fmt.Sprintf("ping: cancelled while next ran, got (%s, %v), want context.Canceled", resultString(o.res), o.err))
	}
	return probs
}

func checkCase(name string, h guard.Handler, tc Case) []string {
	c := caseCall(tc)
	p := newProbe(tc.Next)
	o := do(context.Background(), h, c, p)
	probs := houseRules(name, o)
	if !o.finished {
		return probs
	}
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	var mine []guard.Decision
	for _, d := range c.Decisions {
		if d.Guard == name {
			mine = append(mine, d)
		}
	}
	if tc.WantReason == "" {
		if len(mine) > 0 {
			add("recorded %+v, want no decision", mine)
		}
	} else if !slices.ContainsFunc(mine, func(d guard.Decision) bool {
		return d.Reason == tc.WantReason && (tc.WantEffect == "" || d.Effect == tc.WantEffect)
	}) {
		add("decisions %+v, want reason %q effect %q", mine, tc.WantReason, tc.WantEffect)
	}

	var de *guard.DeniedError
	switch denied := errors.As(o.err, &de); {
	case tc.WantDenied && !denied:
		add("got (%s, %v), want a DeniedError for %q", resultString(o.res), o.err, tc.WantReason)
	case tc.WantDenied && de.Decision.Reason != tc.WantReason:
		add("DeniedError for %q, want %q", de.Decision.Reason, tc.WantReason)
	case !tc.WantDenied && o.err != nil:
		add("unexpected error %v", o.err)
	}

	n := p.calls.Load()
	switch {
	case tc.WantNextSkipped && n != 0:
		add("next called %d times, want it skipped", n)
	case !tc.WantNextSkipped && !tc.WantDenied && n != 1:
		add("next called %d times, want once", n)
	}
	if tc.WantResult != nil && o.err == nil {
		if o.res == nil || !bytes.Equal(o.res.Result, tc.WantResult) {
			add("result:\n got %s\nwant %s", resultString(o.res), tc.WantResult)
		}
	}
	return probs
}

func checkConcurrent(g guard.Guard, cases []Case) []string {
	h := g.Wrap(guard.HandlerFunc(terminal))
	var (
		mu    sync.Mutex
		probs []string
		wg    sync.WaitGroup
	)
	for i := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 4 {
				runs := []Case{{Name: "ping", Call: *PingCall()}}
				runs = append(runs, cases...)
				for _, tc := range runs {
					c := caseCall(tc)
					c.ID = fmt.Sprintf("%s-%d", c.ID, i)
					o := do(context.Background(), h, c, newProbe(tc.Next))
					if pr := houseRules(g.Name(), o); len(pr) > 0 {
						mu.Lock()
						probs = append(probs, pr...)
						mu.Unlock()
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(probs) > 5 {
		probs = append(probs[:5], fmt.Sprintf("... and %d more", len(probs)-5))
	}
	return probs
}

func callsOf(cases []Case) []*guard.Call {
	out := make([]*guard.Call, 0, len(cases))
	for _, tc := range cases {
		out = append(out, caseCall(tc))
	}
	return out
}

func cloneResult(r *guard.Result) *guard.Result {
	if r == nil {
		return nil
	}
	out := &guard.Result{Result: bytes.Clone(r.Result)}
	if r.Error != nil {
		e := *r.Error
		e.Data = bytes.Clone(r.Error.Data)
		out.Error = &e
	}
	return out
}

func resultEqual(a, b *guard.Result) bool {
	if a == nil || b == nil {
		return a == b
	}
	if !bytes.Equal(a.Result, b.Result) || (a.Result == nil) != (b.Result == nil) {
		return false
	}
	if a.Error == nil || b.Error == nil {
		return a.Error == b.Error
	}
	return a.Error.Code == b.Error.Code && a.Error.Message == b.Error.Message && bytes.Equal(a.Error.Data, b.Error.Data)
}

func resultString(r *guard.Result) string {
	switch {
	case r == nil:
		return "<nil>"
	case r.Error != nil:
		return string(r.Error.Append([]byte("error ")))
	}
	return string(r.Result)
}
