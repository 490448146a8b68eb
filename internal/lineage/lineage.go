// Package lineage is the guard that follows labels on data as it flows
// through a session, and refuses toxic flows: a call to a target carrying
// one label (an "external-sink") from a session that has read data
// carrying others ("pii" and "untrusted-input": the lethal trifecta behind
// the public leaks through agents with a GitHub or a database server).
//
// Labels come from configuration ([config.Lineage]): each entry gives
// labels to the targets it selects, with the target globs of package
// [glob] (servers by name; tools, prompts and resource URIs by their
// upstream-local names; methods). A call that reads data (tools/call,
// prompts/get, resources/read) and succeeds adds its target's labels to
// its session's taint, each with the ID of the first call that brought
// it. A session is the legacy session, or, for clients of the 2026-07-28
// era, which have none, the principal (callers without a verified identity
// share one taint, so that taint never falls between them).
//
// Before a call goes upstream, every rule whose Call label its target
// carries checks the session's taint: when it holds every After label,
// the call is denied with reason "lineage-toxic-flow", naming the rule and,
// in the decision's message, where each label came from. In observe mode
// the decision is recorded and the call goes on. Every call that carries
// labels has them in [guard.Call.Labels], so that the audit log records
// them.
//
// With DLP (the guard just outside this one), values are followed too.
// The classes of data found in a result are labels of what was read, and
// the fingerprints of its values are kept with the call that returned
// them; a later call of the session that sends one of those values
// carries a [guard.Flow] from that call, recorded before the rules
// decide. What a result held is added once the chain is done
// ([guard.Call.AfterChain]), since DLP reads the result after this guard.
//
// Taint lives in a [Store] that outlives reloads, bounded in size and
// forgetting a session unused for a day.
package lineage

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "lineage"

// ReasonToxicFlow is the reason code of a refused flow.
const ReasonToxicFlow = "lineage-toxic-flow"

// Guard is the lineage guard. It is immutable after [New] and safe for
// concurrent use.
type Guard struct {
	labels []labeler
	rules  []rule
	store  *Store
}

var _ guard.Guard = (*Guard)(nil)

type labeler struct {
	target guard.Target
	labels []string
}

type rule struct {
	id      string
	call    string
	after   []string
	mode    guard.Mode
	message string
}

// New builds the guard for a validated configuration over store (a new
// one when nil).
func New(cfg *config.Lineage, store *Store) (*Guard, error) {
	if store == nil {
		store = NewStore(0, 0)
	}
	g := &Guard{store: store}
	defMode := guard.Enforce
	if cfg.Mode != "" {
		defMode = guard.Mode(cfg.Mode)
	}
	for i, l := range cfg.Labels {
		t, err := guard.CompileTarget(l.Target.Servers, l.Target.Tools, l.Target.Resources, l.Target.Prompts, l.Target.Methods)
		if err != nil {
			return nil, fmt.Errorf("lineage.labels[%d]: %w", i, err)
		}
		lb := labeler{target: t, labels: slices.Clone(l.Labels)}
		g.labels = append(g.labels, lb)
	}
	for _, r := range cfg.Rules {
		m := defMode
		if r.Mode != "" {
			m = guard.Mode(r.Mode)
		}
		msg := r.Message
		if msg == "" {
			msg = fmt.Sprintf("this call would send data out (%s) after the session read %s", r.Call, strings.Join(r.After, " and "))
		}
		g.rules = append(g.rules, rule{id: r.ID, call: r.Call, after: slices.Clone(r.After), mode: m, message: msg})
	}
	return g, nil
}

// Name implements [guard.Guard].
func (g *Guard) Name() string { return Name }

// Wrap implements [guard.Guard].
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Direction != guard.ToServer || !readsData(c.Method) {
			return next.Handle(ctx, c)
		}
		labels := g.labelsOf(c)
		c.Labels = append(c.Labels, labels...)
		key := sessionKey(c)
		// DLP, outside this guard, has read what the call sends: values
		// an earlier result held are flows, recorded whether or not the
		// call goes on (an attempt is evidence too).
		c.Flows = append(c.Flows, g.store.flows(key, c.Findings)...)
		for _, r := range g.rules {
			if !slices.Contains(labels, r.call) {
				continue
			}
			from, ok := g.store.covers(key, r.after)
			if !ok {
				continue
			}
			if err := c.Decide(guard.Decision{
				Guard:   Name,
				Rule:    r.id,
				Reason:  ReasonToxicFlow,
				Effect:  guard.Deny,
				Mode:    r.mode,
				Message: r.message + " (" + from + ")",
			}); err != nil {
				return nil, err
			}
		}
		res, err := next.Handle(ctx, c)
		if err != nil || res == nil || res.Error != nil {
			return res, err
		}
		// What the result holds is known once DLP, outside, has read it:
		// the session's taint is updated after the chain.
		c.AfterChain(func() { g.read(c, key) })
		return res, nil
	})
}

// read adds to a session what a successful call returned: its labels,
// the classes of data found in its result, and the fingerprints of the
// values found there.
func (g *Guard) read(c *guard.Call, key string) {
	for _, f := range c.Findings {
		if f.Location != "result" {
			continue
		}
		if class, _, ok := strings.Cut(f.Kind, "/"); ok && !slices.Contains(c.Labels, class) {
			c.Labels = append(c.Labels, class)
		}
	}
	if len(c.Labels) > 1 {
		sort.Strings(c.Labels)
		c.Labels = slices.Compact(c.Labels)
	}
	if len(c.Labels) > 0 || len(c.Findings) > 0 {
		g.store.add(key, slices.Clone(c.Labels), c.ID, c.Findings)
	}
}

// readsData reports whether a method's result is data the caller reads.
func readsData(method string) bool {
	switch method {
	case mcp.MethodToolsCall, mcp.MethodPromptsGet, mcp.MethodResourcesRead:
		return true
	}
	return false
}

// labelsOf returns the labels of c's target, sorted, each once.
func (g *Guard) labelsOf(c *guard.Call) []string {
	var out []string
	for i := range g.labels {
		lb := &g.labels[i]
		if lb.target.Matches(c) {
			out = append(out, lb.labels...)
		}
	}
	if len(out) > 1 {
		sort.Strings(out)
		out = slices.Compact(out)
	}
	return out
}

// sessionKey is whose taint a call reads and adds to: its legacy session,
// else its principal, else the shared anonymous one.
func sessionKey(c *guard.Call) string {
	switch {
	case c.Session != "":
		return "s\x00" + c.Session
	case c.Principal != nil:
		return "p\x00" + c.Principal.Issuer + "\x00" + c.Principal.Subject
	}
	return "anonymous"
}

// Store keeps each session's taint: the labels it has read, each with the
// first call that brought it. It is bounded: past its size, the sessions
// unused longest are forgotten first.
type Store struct {
	mu   sync.Mutex
	m    map[string]*taint
	max  int
	idle time.Duration
	now  func() time.Time
}

type taint struct {
	labels map[string]string
	// values are the fingerprints of values results held, with where they
	// came from; order keeps them oldest first, to forget past a bound.
	values map[string]origin
	order  []string
	used   time.Time
}

// origin is the call whose result held a value, and its labels.
type origin struct {
	call, kind string
	labels     []string
}

// MaxValues bounds the fingerprints kept per session; past it the oldest
// are forgotten.
const MaxValues = 10_000

// Defaults of [NewStore].
const (
	DefaultMaxSessions = 100_000
	DefaultIdle        = 24 * time.Hour
)

// NewStore returns a store of at most max sessions (default
// [DefaultMaxSessions]) that forgets a session unused for idle (default
// [DefaultIdle]).
func NewStore(max int, idle time.Duration) *Store {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Store{m: map[string]*taint{}, max: max, idle: idle, now: time.Now}
}

// covers reports whether key's taint holds every label of after, and
// says where each came from ("pii read by call X, untrusted-input read by
// call Y").
func (s *Store) covers(key string, after []string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.m[key]
	if t == nil || s.now().Sub(t.used) > s.idle {
		return "", false
	}
	parts := make([]string, 0, len(after))
	for _, l := range after {
		from, ok := t.labels[l]
		if !ok {
			return "", false
		}
		parts = append(parts, l+" read by call "+from)
	}
	return strings.Join(parts, ", "), true
}

// flows returns the values among the findings of what a call sent that
// an earlier result of the session held.
func (s *Store) flows(key string, findings []guard.Finding) []guard.Flow {
	sent := false
	for _, f := range findings {
		sent = sent || f.Location == "arguments" && f.Fingerprint != ""
	}
	if !sent {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.m[key]
	if t == nil {
		return nil
	}
	var out []guard.Flow
	for _, f := range findings {
		if f.Location != "arguments" || f.Fingerprint == "" || slices.ContainsFunc(out, func(x guard.Flow) bool { return x.Fingerprint == f.Fingerprint }) {
			continue
		}
		if o, ok := t.values[f.Fingerprint]; ok {
			out = append(out, guard.Flow{From: o.call, Kind: o.kind, Fingerprint: f.Fingerprint, Labels: o.labels})
		}
	}
	return out
}

// add records that key read labels, and the values of the result's
// findings, in call callID.
func (s *Store) add(key string, labels []string, callID string, findings []guard.Finding) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	t := s.m[key]
	if t == nil || now.Sub(t.used) > s.idle {
		if t == nil && len(s.m) >= s.max {
			s.evict(now)
		}
		t = &taint{labels: map[string]string{}}
		s.m[key] = t
	}
	t.used = now
	for _, l := range labels {
		if _, ok := t.labels[l]; !ok {
			t.labels[l] = callID
		}
	}
	for _, f := range findings {
		if f.Location != "result" || f.Fingerprint == "" {
			continue
		}
		if t.values == nil {
			t.values = map[string]origin{}
		}
		if _, ok := t.values[f.Fingerprint]; ok {
			continue // the first call that brought a value is its source
		}
		if len(t.order) >= MaxValues {
			delete(t.values, t.order[0])
			t.order = t.order[1:]
		}
		t.values[f.Fingerprint] = origin{call: callID, kind: f.Kind, labels: labels}
		t.order = append(t.order, f.Fingerprint)
	}
}

// evict drops idle sessions, or when none is idle, the tenth of them
// unused longest.
func (s *Store) evict(now time.Time) {
	for k, t := range s.m {
		if now.Sub(t.used) > s.idle {
			delete(s.m, k)
		}
	}
	if len(s.m) < s.max {
		return
	}
	type kv struct {
		k string
		t time.Time
	}
	all := make([]kv, 0, len(s.m))
	for k, t := range s.m {
		all = append(all, kv{k, t.used})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].t.Before(all[j].t) })
	for _, e := range all[:max(1, len(all)/10)] {
		delete(s.m, e.k)
	}
}

// Forget drops a session's taint (when the session ends).
func (s *Store) Forget(session string) {
	s.mu.Lock()
	delete(s.m, "s\x00"+session)
	s.mu.Unlock()
}
