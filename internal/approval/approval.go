// Package approval is the guard that holds a call a policy marked
// require-approval until a human approves it, and the approvals endpoint
// through which approvers outside the agent decide.
//
// An approval is bound to the exact call (see [Binding]): the caller's
// subject, the server, the method and name, a digest of the canonical
// arguments, the policy version and rule, and an expiry. A granted approval
// lets the same exact call through until it expires; a changed argument is
// a different call and needs a new approval. Denials and timeouts are
// decisions like any other, with stable reason codes.
//
// Who is asked depends on [Config.Via] and on what the client declared:
//
//   - the client, when it declared form elicitation: a legacy client
//     (2025-11-25 and before) gets an elicitation/create request while the
//     call waits (through the [guard.Asker] the gateway puts in the
//     context); a modern client (2026-07-28) gets an input_required result
//     with an elicitation/create input request and a requestState the
//     guard mints and verifies (an HMAC over the approval ID, the expiry
//     and the binding), and retries the call with its answer;
//   - an approver: the call is listed on the approvals endpoint
//     ([Manager.Handler], used by `sluice approve`) and waits for a
//     configured approver's decision. An approver may deny their own call
//     but not approve it. The endpoint authenticates through an
//     [Authenticator] the gateway supplies; without one it refuses every
//     request, since anyone who can reach it could approve calls.
//
// Approval through the client trusts the client application to show the
// form to its human: the agent's own software answers it. Where that is
// not enough, configure via "approver". A request towards the client (a
// server's sampling, say) that needs approval goes to an approver only.
//
// The guard acts only on calls carrying an enforce-mode decision with
// effect [guard.RequireApproval] (recorded by the policy guard outside it);
// an observe-mode one is recorded as "approval-would-be-required" and the
// call passes. Lists pass: they show what may possibly be used, and the
// use itself is held. Every other call passes untouched.
//
// State lives in this process: granted approvals in a [Store] (by default
// a bounded [MemoryStore]), held calls in the [Manager], and the key that
// signs requestState values is drawn at start-up. A restart forgets
// granted approvals and invalidates outstanding requestStates; replicas
// would need a shared Store, a shared signing key and a shared table of
// held calls.
package approval

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "approval"

// Reason codes of the decisions the guard records.
const (
	// ReasonGranted: an approval matching the exact call let it through;
	// the decision's Rule is the approval ID.
	ReasonGranted = "approval-granted"
	// ReasonDenied: the human declined (or answered anything but an
	// explicit approval).
	ReasonDenied = "approval-denied"
	// ReasonTimeout: no decision within the configured timeout.
	ReasonTimeout = "approval-timeout"
	// ReasonUnavailable: no one could be asked (the client cannot be asked
	// and no approver is configured, too many calls wait, the arguments
	// cannot be bound, or Sluice is shutting down).
	ReasonUnavailable = "approval-unavailable"
	// ReasonWouldBeRequired: an observe-mode rule would have required
	// approval; the call passed.
	ReasonWouldBeRequired = "approval-would-be-required"
	// ReasonRequested: a modern client was asked with an input_required
	// result; the call runs when the client retries with its answer.
	ReasonRequested = "approval-requested"
	// ReasonInvalidState: a requestState with the guard's prefix that it
	// did not mint (or that was altered, or minted before a restart).
	ReasonInvalidState = "approval-invalid-state"
	// ReasonMismatch: a requestState minted for another call (changed
	// arguments, another caller, server, tool or policy version) came back
	// with this one. The call does not run; calling again without the
	// state asks about the call as it now is.
	ReasonMismatch = "approval-mismatch"
	// ReasonExpired: the answer to a modern client's approval request came
	// back after the request expired.
	ReasonExpired = "approval-expired"
)

// InputKey is the key of the guard's input request in an input_required
// result, and of the answer in the retried call's inputResponses.
const InputKey = "sluice-approval"

// Via says who is asked to approve.
type Via string

// Ways of asking.
const (
	ViaClient           Via = "client"
	ViaApprover         Via = "approver"
	ViaClientOrApprover Via = "client-or-approver"
)

// Defaults for zero values in [Config].
const (
	DefaultTimeout    = 5 * time.Minute
	DefaultTTL        = 10 * time.Minute
	DefaultMaxPending = 1000
)

// Config configures the guard.
type Config struct {
	// Via is who is asked; empty means [ViaClientOrApprover].
	Via Via
	// Timeout is how long a held call waits for a decision.
	Timeout time.Duration
	// TTL is how long a granted approval stays valid for the same call.
	TTL time.Duration
	// Approvers may decide through the approvals endpoint: subjects, or
	// "group:NAME" for every member of a group.
	Approvers []string
	// MaxPending bounds the calls waiting for an approver at once.
	MaxPending int
}

// FromConfig converts the YAML configuration; a nil a means the defaults.
func FromConfig(a *config.Approval) Config {
	if a == nil {
		return Config{}
	}
	return Config{
		Via:       Via(a.Via),
		Timeout:   time.Duration(a.Timeout),
		TTL:       time.Duration(a.TTL),
		Approvers: slices.Clone(a.Approvers),
	}
}

// settings is a compiled Config.
type settings struct {
	via        Via
	timeout    time.Duration
	ttl        time.Duration
	maxPending int
	subjects   map[string]bool
	groups     map[string]bool
}

func compile(cfg Config) (*settings, error) {
	s := &settings{
		via: cfg.Via, timeout: cfg.Timeout, ttl: cfg.TTL, maxPending: cfg.MaxPending,
		subjects: map[string]bool{}, groups: map[string]bool{},
	}
	var errs []error
	switch s.via {
	case "":
		s.via = ViaClientOrApprover
	case ViaClient, ViaApprover, ViaClientOrApprover:
	default:
		errs = append(errs, fmt.Errorf("via: unknown value %q (want client, approver or client-or-approver)", cfg.Via))
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.maxPending == 0 {
		s.maxPending = DefaultMaxPending
	}
	if s.timeout < 0 || s.ttl < 0 || s.maxPending < 0 {
		errs = append(errs, errors.New("timeout, ttl and max pending must not be negative"))
	}
	for i, a := range cfg.Approvers {
		if g, ok := strings.CutPrefix(a, "group:"); ok && g != "" {
			s.groups[g] = true
		} else if !ok && a != "" {
			s.subjects[a] = true
		} else {
			errs = append(errs, fmt.Errorf("approvers[%d]: %q is neither a subject nor group:NAME", i, a))
		}
	}
	if s.via == ViaApprover && len(s.subjects)+len(s.groups) == 0 {
		errs = append(errs, errors.New("approvers: via approver needs at least one approver"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// isApprover reports whether p may decide through the approvals endpoint.
func (s *settings) isApprover(p *guard.Principal) bool {
	if p == nil || p.Subject == "" {
		return false
	}
	if s.subjects[p.Subject] {
		return true
	}
	for _, g := range p.Groups {
		if s.groups[g] {
			return true
		}
	}
	return false
}

func (s *settings) hasApprovers() bool { return len(s.subjects)+len(s.groups) > 0 }

// Manager is the approval guard and the table of calls waiting for an
// approver. It lives as long as the process: when the configuration is
// reloaded, [Manager.Configure] changes its settings and the new chain
// wraps the same Manager, so held calls, granted approvals and minted
// requestStates survive the reload. It is safe for concurrent use.
type Manager struct {
	set    atomic.Pointer[settings]
	store  Store
	sealer *sealer

	mu      sync.Mutex
	pending map[string]*pending // by ID
	byKey   map[string]*pending // by Binding.Key, so a repeated call joins the wait
	closed  bool
}

var _ guard.Guard = (*Manager)(nil)

// New returns a Manager. store keeps granted approvals; nil means a
// [MemoryStore] of [DefaultMaxGrants].
func New(cfg Config, store Store) (*Manager, error) {
	s, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	if store == nil {
		store = NewMemoryStore(0)
	}
	m := &Manager{
		store:   store,
		sealer:  newSealer(),
		pending: map[string]*pending{},
		byKey:   map[string]*pending{},
	}
	m.set.Store(s)
	return m, nil
}

// Configure replaces the settings. Calls already waiting keep their
// deadline; the new approvers decide from now on.
func (m *Manager) Configure(cfg Config) error {
	s, err := compile(cfg)
	if err != nil {
		return err
	}
	m.set.Store(s)
	return nil
}

// Shutdown releases every held call with "approval-unavailable" and makes
// new ones fail the same way. (It is not named Close: the gateway closes a
// chain's guards on reload, and the Manager outlives chains.)
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.closed = true
	ps := make([]*pending, 0, len(m.pending))
	for _, p := range m.pending {
		ps = append(ps, p)
	}
	m.mu.Unlock()
	for _, p := range ps {
		m.resolve(p, outcome{unavailable: true})
	}
}

// Name returns "approval".
func (m *Manager) Name() string { return Name }

// required finds the require-approval decisions on c: the first enforced
// one, and whether any observed one exists.
func required(ds []guard.Decision) (d guard.Decision, enforce bool, observe *guard.Decision) {
	for i := range ds {
		if ds[i].Effect != guard.RequireApproval {
			continue
		}
		if ds[i].Mode == guard.Enforce {
			return ds[i], true, nil
		}
		if observe == nil {
			observe = &ds[i]
		}
	}
	return guard.Decision{}, false, observe
}

// Wrap returns the handler that holds calls needing approval.
func (m *Manager) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if len(c.Decisions) == 0 || listMethod(c.Method) {
			// A list shows what the caller may possibly use; approval is
			// asked when one of the listed things is called.
			return next.Handle(ctx, c)
		}
		d, enforce, observed := required(c.Decisions)
		if !enforce {
			if observed != nil {
				_ = c.Decide(guard.Decision{
					Guard:   Name,
					Rule:    observed.Rule,
					Version: observed.Version,
					Reason:  ReasonWouldBeRequired,
					Effect:  guard.Allow,
					Mode:    guard.Observe,
					Message: "this call would need a human's approval",
				})
			}
			return next.Handle(ctx, c)
		}
		return m.hold(ctx, c, d, next)
	})
}

// multiRound reports whether a modern client's request of method may be
// answered with input_required (tools/call, prompts/get, resources/read).
func multiRound(method string) bool {
	switch method {
	case mcp.MethodToolsCall, mcp.MethodPromptsGet, mcp.MethodResourcesRead:
		return true
	}
	return false
}

// listMethod reports whether method lists things rather than using one.
func listMethod(method string) bool {
	switch method {
	case mcp.MethodToolsList, mcp.MethodPromptsList, mcp.MethodResourcesList, mcp.MethodResourceTemplatesList:
		return true
	}
	return false
}

// held is one call being held, with what every route needs.
type held struct {
	c       *guard.Call
	d       guard.Decision // the require-approval decision
	b       Binding
	key     string
	summary string
	s       *settings
	next    guard.Handler
}

func (m *Manager) hold(ctx context.Context, c *guard.Call, d guard.Decision, next guard.Handler) (*guard.Result, error) {
	h := &held{c: c, d: d, s: m.set.Load(), next: next}
	b, canon, err := bind(c, d)
	if err != nil {
		return nil, h.deny(ReasonUnavailable, "", "the call's arguments cannot be approved")
	}
	h.b, h.key, h.summary = b, b.Key(), summarize(canon)

	// A state minted while the client could answer does not let it answer
	// once only approvers decide (the configuration was reloaded).
	if c.Era == mcp.EraModern && c.Direction == guard.ToServer && h.s.via != ViaApprover {
		if st, ok, _ := mcp.LookupString(c.Params, "requestState"); ok && strings.HasPrefix(st, StatePrefix) {
			return m.resume(ctx, h, st)
		}
	}
	// A store that fails cannot confirm a grant: ask instead.
	if g, ok, err := m.store.Get(ctx, h.key, time.Now()); err == nil && ok {
		if g.Denied {
			return nil, h.deny(ReasonDenied, g.ID, deniedMessage(g.Reason)+" (a moment ago; change the call or wait before asking again)")
		}
		return h.proceed(ctx, g, c.Params)
	}

	// A request towards the client (a server's sampling or elicitation)
	// is not put to that same client for approval: only an approver can
	// approve it.
	clientOK := c.Direction == guard.ToServer && canElicit(c.Client.Capabilities)
	asker := guard.AskerFrom(ctx)
	switch {
	case c.Era != mcp.EraModern && asker == nil:
		clientOK = false
	case c.Era == mcp.EraModern && !multiRound(c.Method):
		// Only these requests may be answered input_required.
		clientOK = false
	}
	useClient := clientOK && h.s.via != ViaApprover
	useApprover := !useClient && h.s.via != ViaClient && h.s.hasApprovers()
	switch {
	case useClient && c.Era == mcp.EraModern:
		return m.askModern(h)
	case useClient:
		return m.askLegacy(ctx, h, asker)
	case useApprover:
		return m.waitApprover(ctx, h)
	}
	return nil, h.deny(ReasonUnavailable, "", "this call needs a human's approval and no one can be asked")
}

// deny records an enforced denial and returns its error.
func (h *held) deny(reason, rule, msg string) error {
	return h.c.Decide(guard.Decision{
		Guard:   Name,
		Rule:    rule,
		Version: h.d.Version,
		Reason:  reason,
		Effect:  guard.Deny,
		Mode:    guard.Enforce,
		Message: msg,
	})
}

// proceed lets the call through under grant g, with params (the call's
// own, or a copy without the guard's requestState and inputResponses, in
// which case the decision says the guard modified the call).
func (h *held) proceed(ctx context.Context, g Grant, params jsontext.Value) (*guard.Result, error) {
	effect := guard.Allow
	if !bytes.Equal(params, h.c.Params) {
		effect = guard.Modify
	}
	h.c.Params = params
	_ = h.c.Decide(guard.Decision{
		Guard:   Name,
		Rule:    g.ID,
		Version: h.d.Version,
		Reason:  ReasonGranted,
		Effect:  effect,
		Mode:    guard.Enforce,
		Message: "approved by " + g.Approver,
	})
	return h.next.Handle(ctx, h.c)
}

// grant records an approval given now and lets the call through.
func (m *Manager) grant(ctx context.Context, h *held, id, approver string, params jsontext.Value) (*guard.Result, error) {
	g := Grant{ID: id, Approver: approver, Expires: time.Now().Add(h.s.ttl)}
	// The approval was given for this very call, which proceeds even if
	// the store cannot keep it for the next one.
	_ = m.store.Put(ctx, h.key, g)
	return h.proceed(ctx, g, params)
}

// canElicit reports whether declared client capabilities include form
// elicitation: an "elicitation" object that is empty (form only, before
// 2025-11-25), or names "form", or at least does not name only "url".
func canElicit(caps jsontext.Value) bool {
	if caps.Kind() != '{' {
		return false
	}
	e, ok, err := mcp.Lookup(caps, "elicitation")
	if err != nil || !ok || e.Kind() != '{' {
		return false
	}
	if _, ok, _ := mcp.Lookup(e, "form"); ok {
		return true
	}
	_, url, _ := mcp.Lookup(e, "url")
	return !url
}
