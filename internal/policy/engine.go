// Package policy is the guard that decides who may call what, down to the
// argument: an ordered list of rules, each with an effect (allow, deny,
// require-approval), a target (globs over servers, tools, resources, prompts
// and methods) and a condition written in CEL (see package expr for the
// variables a condition sees).
//
// Semantics, in the order they apply:
//
//   - A rule applies to a call when its target matches and its condition is
//     true. Deny overrides require-approval, which overrides allow; among
//     rules of the same effect the first one names the decision.
//   - Calls of tools (tools/call), resources (resources/read and
//     resources/subscribe) and prompts (prompts/get) are denied when no rule
//     applies ("policy-no-matching-rule", rule "(default)"): once a policy
//     exists, what it does not allow is refused. Calls of other methods
//     (sampling, elicitation, completion, logging, ...) are decided only by
//     rules that name their method in target.methods; when none applies,
//     the policy has nothing to say and the call passes.
//   - A resource URI with dot segments ("..", also percent-encoded) or a
//     backslash is refused before any rule ("policy-uri-not-canonical"):
//     globs match strings, servers resolve paths.
//   - A condition that cannot be evaluated (a missing argument, a value of
//     the wrong type, arguments that are not a JSON object) fails closed: a
//     deny or require-approval rule applies ("policy-condition-error"), an
//     allow rule does not.
//   - Each rule runs in the mode it names, or else the policy's. An observe
//     rule never changes what happens: the guard records what the policy
//     would decide if every rule were enforced (with mode observe when that
//     differs from what is enforced) and lets the call through unless an
//     enforced rule (or the enforced default) refuses it.
//   - require-approval is recorded as a decision with effect
//     [guard.RequireApproval]; the approval guard, inside this one, holds
//     the call. When no approval guard is installed (see [Options]), an
//     enforced require-approval denies instead ("policy-approval-unavailable").
//
// List results (tools/list, prompts/list, resources/list and
// resources/templates/list) show only what the caller may possibly use: each
// item is judged as if it were called, with the arguments (and a template's
// URI) unknown, so that a condition on them counts as possibly true. The
// call itself is then checked with its arguments.
//
// Every decision names the rule, a stable kebab-case reason code and the
// policy's version, a content hash of the rule set, so an audit record (or an
// approval) can be traced to the exact policy in force.
package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy/expr"
)

// Name is the guard's name in [guard.Order].
const Name = "policy"

// Reason codes of the decisions the guard records. A rule may name its own
// reason code instead of the default for its effect.
const (
	ReasonAllowed             = "policy-allowed-by-rule"
	ReasonDenied              = "policy-denied-by-rule"
	ReasonApprovalRequired    = "policy-approval-required"
	ReasonNoMatchingRule      = "policy-no-matching-rule"
	ReasonConditionError      = "policy-condition-error"
	ReasonApprovalUnavailable = "policy-approval-unavailable"
	ReasonListFiltered        = "policy-list-filtered"
	ReasonListUnparsed        = "policy-list-unparsed"
	ReasonURINotCanonical     = "policy-uri-not-canonical"
	// ReasonCompletionNotAllowed: completion/complete for a prompt or
	// resource template the caller may not use at all; completions would
	// otherwise reveal what list filtering hides (argument values, ids).
	ReasonCompletionNotAllowed = "policy-completion-not-allowed"
)

// canonicalURI reports whether a resource URI has no dot segments ("..",
// "."), raw or percent-encoded, and no backslash, anywhere (a server may
// not know a query from a path): a glob such as
// "file:///data/*" matches "file:///data/../etc/passwd" as a string, while
// a server may resolve it to a path outside /data. Such URIs are refused
// rather than judged.
//
// Likewise a URI spelled otherwise than in its normal form (RFC 3986,
// section 6.2.2) is refused: a percent-encoded letter, digit or "-._~"
// ("file:///%65tc" is "file:///etc" to a server, not to a glob), and a
// scheme with capitals ("FILE:").
func canonicalURI(u string) bool {
	if strings.ContainsRune(u, '\\') {
		return false
	}
	if scheme, _, ok := strings.Cut(u, ":"); ok && strings.ToLower(scheme) != scheme && !strings.ContainsAny(scheme, "/?#%") {
		return false
	}
	for rest := u; ; {
		i := strings.IndexByte(rest, '%')
		if i < 0 {
			break
		}
		if i+2 < len(rest) {
			if c, ok := unhex2(rest[i+1], rest[i+2]); ok && unreserved(c) {
				return false
			}
		}
		rest = rest[i+1:]
	}
	for seg := range strings.SplitSeq(u, "/") {
		if seg == "." || seg == ".." {
			return false
		}
		if strings.IndexByte(seg, '%') < 0 {
			continue
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return false
		}
		for part := range strings.FieldsFuncSeq(dec, func(r rune) bool { return r == '/' || r == '\\' }) {
			if part == "." || part == ".." {
				return false
			}
		}
		if dec == "." || dec == ".." || strings.ContainsRune(dec, '\\') {
			return false
		}
	}
	return true
}

// unhex2 decodes two hex digits.
func unhex2(a, b byte) (byte, bool) {
	h, ok1 := unhex(a)
	l, ok2 := unhex(b)
	return h<<4 | l, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unreserved reports whether c is an unreserved character of RFC 3986,
// which a URI in normal form never percent-encodes.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// DefaultRule is the Rule of a decision no rule made: the default denial.
const DefaultRule = "(default)"

// maxCost bounds the evaluation of one condition (in CEL cost units, about
// one per operation), so that a condition iterating over arguments an agent
// controls cannot be made to run for long.
const maxCost = 1_000_000

// Options configure an [Engine].
type Options struct {
	// Approval says whether an approval guard is installed inside the
	// policy guard to hold calls that require approval. Without one, an
	// enforced require-approval denies the call: approval never silently
	// becomes permission.
	Approval bool
	// Now returns the time conditions see; default time.Now.
	Now func() time.Time
	// Logger receives a debug line when a condition fails to evaluate
	// (rule id only: the error could quote an argument).
	Logger *slog.Logger
}

// Engine is a compiled policy and the guard that applies it. It is
// immutable after [New] (its caches aside) and safe for concurrent use.
type Engine struct {
	version string
	mode    guard.Mode
	rules   []*rule
	opts    Options

	tools      toolCache
	principals principalCache
	candidates candidateCache
}

var _ guard.Guard = (*Engine)(nil)

// rule is a compiled [config.PolicyRule].
type rule struct {
	id      string
	index   int
	effect  guard.Effect
	mode    guard.Mode
	reason  string
	message string
	target  target
	// prog evaluates the condition on a call; partial evaluates it with
	// some variables unknown (list filtering). Both nil when the rule has
	// no condition.
	prog, partial cel.Program
	// fast evaluates the condition on a call without CEL's interpreter,
	// when the condition is of a shape it covers (see native.go); nil
	// otherwise.
	fast native
	// principalOnly are the conjuncts of the condition (the terms of its
	// top-level &&) that read nothing but the principal, compiled natively:
	// when one of them is false, so is the condition, for every call of
	// that principal, which the engine then remembers per principal.
	principalOnly []native
}

// New compiles a policy. Every problem is reported, each prefixed with the
// rule's path ("rules[2].when: ..."); a configuration that passed
// [config.Config.Validate] always compiles.
func New(p *config.Policy, opts Options) (*Engine, error) {
	if p == nil {
		return nil, errors.New("no policy")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{version: Version(p), opts: opts}
	e.tools.build = func(t *guard.Tool) ref.Val { return parseTool(t.Name, t.Raw) }
	nrules := len(p.Rules)
	e.principals.build = func(pr *guard.Principal) *principalEntry { return newPrincipalEntry(pr, nrules) }
	e.principals.anonymous = newPrincipalEntry(nil, nrules)
	var errs []error
	switch p.Mode {
	case "", config.ModeEnforce:
		e.mode = guard.Enforce
	case config.ModeObserve:
		e.mode = guard.Observe
	default:
		errs = append(errs, fmt.Errorf("mode: unknown mode %q", p.Mode))
	}
	env, err := expr.Env()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, rc := range p.Rules {
		path := "rules[" + strconv.Itoa(i) + "]"
		if rc == nil {
			errs = append(errs, fmt.Errorf("%s: empty rule", path))
			continue
		}
		r, err := compileRule(env, rc, i, e.mode)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		if seen[r.id] {
			errs = append(errs, fmt.Errorf("%s: duplicate id %q", path, r.id))
		}
		seen[r.id] = true
		e.rules = append(e.rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

var (
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	reasonRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// ValidID reports whether s is acceptable as a rule id.
func ValidID(s string) bool { return idRE.MatchString(s) }

// ValidReason reports whether s is a reason code a rule may carry: kebab
// case, starting with "policy-" like every code of this guard.
func ValidReason(s string) bool {
	return len(s) <= 64 && reasonRE.MatchString(s) && strings.HasPrefix(s, "policy-")
}

func compileRule(env *cel.Env, rc *config.PolicyRule, i int, policyMode guard.Mode) (*rule, error) {
	r := &rule{id: rc.ID, index: i, reason: rc.Reason, message: rc.Message}
	var errs []error
	if !ValidID(rc.ID) {
		errs = append(errs, fmt.Errorf("id: %q is not 1 to 64 letters, digits, '.', '_' or '-'", rc.ID))
	}
	switch rc.Effect {
	case config.EffectAllow:
		r.effect = guard.Allow
	case config.EffectDeny:
		r.effect = guard.Deny
	case config.EffectRequireApproval:
		r.effect = guard.RequireApproval
	default:
		errs = append(errs, fmt.Errorf("effect: unknown effect %q", rc.Effect))
	}
	switch rc.Mode {
	case "":
		r.mode = policyMode
	case config.ModeEnforce:
		r.mode = guard.Enforce
	case config.ModeObserve:
		r.mode = guard.Observe
	default:
		errs = append(errs, fmt.Errorf("mode: unknown mode %q", rc.Mode))
	}
	if r.reason == "" {
		switch r.effect {
		case guard.Allow:
			r.reason = ReasonAllowed
		case guard.Deny:
			r.reason = ReasonDenied
		case guard.RequireApproval:
			r.reason = ReasonApprovalRequired
		}
	} else if !ValidReason(r.reason) {
		errs = append(errs, fmt.Errorf("reason: %q is not a kebab-case code", r.reason))
	}
	t, err := compileTarget(rc.Target)
	if err != nil {
		errs = append(errs, err)
	}
	r.target = t
	if rc.When != "" {
		ast, err := expr.Compile(rc.When)
		if err != nil {
			errs = append(errs, fmt.Errorf("when: %w", err))
		} else if r.prog, r.partial, err = programs(env, ast); err != nil {
			errs = append(errs, fmt.Errorf("when: %w", err))
		} else {
			metered := hasComprehension(ast)
			r.fast, _ = compileNative(ast, metered)
			if !metered {
				// A condition that iterates runs under a cost limit as a
				// whole, which a term remembered per principal would not
				// keep.
				r.principalOnly = principalConjuncts(ast)
			}
		}
	}
	return r, errors.Join(errs...)
}

// programs plans a condition twice: for calls, and with partial evaluation
// for list filtering. The cost of a condition is bounded only when it
// iterates (a comprehension): without one its cost is linear in the size of
// the call, which the gateway bounds, and tracking costs everywhere would
// slow every decision down.
func programs(env *cel.Env, ast *cel.Ast) (cel.Program, cel.Program, error) {
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if hasComprehension(ast) {
		opts = append(opts, cel.CostLimit(maxCost))
	}
	prog, err := env.Program(ast, opts...)
	if err != nil {
		return nil, nil, err
	}
	partial, err := env.Program(ast, append(opts, cel.EvalOptions(cel.OptPartialEval))...)
	if err != nil {
		return nil, nil, err
	}
	return prog, partial, nil
}

func hasComprehension(a *cel.Ast) bool {
	found := false
	celast.PreOrderVisit(a.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			found = true
		}
	}))
	return found
}

// Version returns the content hash of a policy: the same rules give the
// same version on every replica and after every restart.
func Version(p *config.Policy) string {
	b, _ := json.Marshal(p) // a struct of strings and slices: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Version returns the policy's content hash.
func (e *Engine) Version() string { return e.version }

// Name returns "policy".
func (e *Engine) Name() string { return Name }

// verdict is whether a rule applies.
type verdict uint8

const (
	vNo verdict = iota
	vYes
	vError // the condition could not be evaluated
)

// eval evaluates r's condition for a call.
func (r *rule) eval(a *activation) verdict {
	if r.prog == nil {
		return vYes
	}
	if r.fast != nil {
		if out := r.fast(a); out != declined {
			return toVerdict(out, nil)
		}
	}
	out, _, err := r.prog.Eval(a)
	return toVerdict(out, err)
}

func toVerdict(out ref.Val, err error) verdict {
	if err != nil {
		return vError
	}
	switch v := out.(type) {
	case types.Bool:
		if v {
			return vYes
		}
		return vNo
	}
	return vError
}

// slot is what decides one effect: the first rule of that effect that
// applies (or nil), and whether it applied through an error.
type slot struct {
	r       *rule
	errored bool
}

// outcome collects, for one call, the first applying rule of each effect,
// both over every rule (what the policy would decide were every rule
// enforced) and over enforced rules only (what is enforced).
type outcome struct {
	all, enforced [3]slot // indexed by effectIndex
	// allowErr is the first allow rule whose condition failed.
	allowErr *rule
}

func effectIndex(e guard.Effect) int {
	switch e {
	case guard.Deny:
		return 0
	case guard.RequireApproval:
		return 1
	}
	return 2
}

// needs reports whether r could change the outcome: a slot it would fill
// is still empty.
func (o *outcome) needs(r *rule) bool {
	i := effectIndex(r.effect)
	return o.all[i].r == nil || (r.mode == guard.Enforce && o.enforced[i].r == nil)
}

func (o *outcome) add(r *rule, errored bool) {
	i := effectIndex(r.effect)
	if o.all[i].r == nil {
		o.all[i] = slot{r, errored}
	}
	if r.mode == guard.Enforce && o.enforced[i].r == nil {
		o.enforced[i] = slot{r, errored}
	}
}

// done reports whether no later rule can change the outcome: an enforced
// denial has been found (and with it the first denial overall).
func (o *outcome) done() bool { return o.enforced[0].r != nil }

// first returns the deciding slot of a set: deny, else approval, else allow.
func first(s *[3]slot) (slot, bool) {
	for _, x := range s {
		if x.r != nil {
			return x, true
		}
	}
	return slot{}, false
}

// Decide returns the decisions the policy makes on c, in the order they
// are recorded: what the policy would decide with every rule enforced
// (mode observe when that is not what is enforced), then, if different,
// what is enforced. It returns none for a call the policy does not govern.
// List methods are decided here as calls (a rule may name tools/list);
// filtering their results is [Engine.Wrap]'s work.
func (e *Engine) Decide(c *guard.Call) []guard.Decision { return e.decide(c, e.opts.Now()) }

func (e *Engine) decide(c *guard.Call, now time.Time) []guard.Decision {
	k := subjectKind(c.Method)
	if c.Direction == guard.ToClient {
		k = kindOther
	}
	if k == kindResource && !canonicalURI(c.Name) {
		d := guard.Decision{
			Guard: Name, Version: e.version, Rule: DefaultRule, Reason: ReasonURINotCanonical,
			Effect: guard.Deny, Mode: e.mode, Message: denyMessage(c, k, guard.Deny),
		}
		return []guard.Decision{d}
	}
	a := activations.Get().(*activation)
	*a = activation{e: e, c: c, k: k, name: c.Name, now: now}
	var o outcome
	cands, cached := e.candidates.get(e, c.Server, c.Method, k, c.Name)
	e.evaluate(a, a.plan(cands, cached), &o)
	*a = activation{} // the pool must not keep the call alive
	activations.Put(a)
	return e.decisions(c, k, &o)
}

// activations are reused from one decision to the next: an activation is
// only used while its decision is made.
var activations = sync.Pool{New: func() any { return new(activation) }}

// evaluate runs the candidate rules that the call's principal has not
// ruled out.
func (e *Engine) evaluate(a *activation, rules []*rule, o *outcome) {
	for _, r := range rules {
		if !o.needs(r) {
			continue
		}
		switch r.eval(a) {
		case vYes:
			o.add(r, false)
		case vError:
			e.opts.Logger.Debug("policy condition failed to evaluate", "rule", r.id, "call", a.c.ID)
			if r.effect == guard.Allow {
				if o.allowErr == nil {
					o.allowErr = r
				}
			} else {
				o.add(r, true)
			}
		}
		if o.done() {
			break
		}
	}
}

// decisions turns an outcome into decisions.
func (e *Engine) decisions(c *guard.Call, k kind, o *outcome) []guard.Decision {
	all, okAll := first(&o.all)
	enf, okEnf := first(&o.enforced)
	if k == kindOther && !okAll {
		return nil // not governed
	}
	// The would-be decision: every rule enforced, and the default denial.
	would := e.decision(c, k, all, okAll, o.allowErr, guard.Enforce)
	// The enforced decision: enforced rules, and the default in the
	// policy's mode.
	var actual guard.Decision
	hasActual := true
	switch {
	case okEnf:
		actual = e.decision(c, k, enf, true, nil, guard.Enforce)
	case k == kindOther:
		hasActual = false // an observe rule named the method: nothing enforced
	case e.mode == guard.Enforce:
		actual = e.decision(c, k, slot{}, false, o.allowErr, guard.Enforce)
	default:
		hasActual = false
	}
	if hasActual && actual.Rule == would.Rule && actual.Effect == would.Effect && actual.Reason == would.Reason {
		return []guard.Decision{actual}
	}
	would.Mode = guard.Observe
	if !hasActual {
		return []guard.Decision{would}
	}
	return []guard.Decision{would, actual}
}

func (e *Engine) decision(c *guard.Call, k kind, s slot, ok bool, allowErr *rule, mode guard.Mode) guard.Decision {
	d := guard.Decision{Guard: Name, Version: e.version, Mode: mode}
	switch {
	case ok:
		r := s.r
		d.Rule, d.Effect, d.Reason = r.id, r.effect, r.reason
		if s.errored {
			d.Reason = ReasonConditionError
		}
		if r.effect != guard.Allow {
			d.Message = r.message
			if d.Message == "" {
				d.Message = denyMessage(c, k, r.effect)
			}
		}
		if r.effect == guard.RequireApproval && mode == guard.Enforce && r.mode == guard.Enforce && !e.opts.Approval {
			d.Effect, d.Reason = guard.Deny, ReasonApprovalUnavailable
			d.Message = denyMessage(c, k, guard.Deny) + ": it needs a human's approval, and no approval is configured"
		}
	case allowErr != nil:
		d.Rule, d.Effect, d.Reason = allowErr.id, guard.Deny, ReasonConditionError
		d.Message = denyMessage(c, k, guard.Deny)
	default:
		d.Rule, d.Effect, d.Reason = DefaultRule, guard.Deny, ReasonNoMatchingRule
		d.Message = denyMessage(c, k, guard.Deny)
	}
	return d
}

// denyMessage says what was refused, in words safe to show the agent: the
// name it used, never the rule or its condition.
func denyMessage(c *guard.Call, k kind, eff guard.Effect) string {
	var what string
	switch k {
	case kindTool:
		what = "calling tool " + strconv.Quote(c.ExposedName(c.Name))
	case kindPrompt:
		what = "getting prompt " + strconv.Quote(c.ExposedName(c.Name))
	case kindResource:
		what = "reading resource " + strconv.Quote(truncate(c.Name, 200))
	default:
		what = strconv.Quote(c.Method)
	}
	if eff == guard.RequireApproval {
		return what + " needs a human's approval"
	}
	return what + " is not allowed by policy"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// candidateCache remembers, per server, method and name, which rules'
// targets match, so a decision evaluates globs once per distinct call
// shape. Names come from clients, so the cache stops growing at a bound;
// past it, targets are matched on every call.
type candidateCache struct {
	m sync.Map // candidateKey -> []int32
	n atomic.Int32
}

const maxCandidates = 8192

type candidateKey struct {
	server, method, name string
	k                    kind
}

// get returns the indexes of the rules whose targets match, and whether
// the slice is the one the cache keeps (the same for every call of that
// shape).
func (cc *candidateCache) get(e *Engine, server, method string, k kind, name string) ([]int32, bool) {
	key := candidateKey{server, method, name, k}
	if v, ok := cc.m.Load(key); ok {
		return v.([]int32), true
	}
	var out []int32
	for i, r := range e.rules {
		if r.target.match(server, method, k, name, true) != no {
			out = append(out, int32(i))
		}
	}
	if cc.n.Load() < maxCandidates {
		v, loaded := cc.m.LoadOrStore(key, out)
		if !loaded {
			cc.n.Add(1)
		}
		return v.([]int32), true
	}
	return out, false
}

// methodOf returns the method a list item is judged as: the call that
// would use it.
func methodOf(list string) (string, kind) {
	switch list {
	case mcp.MethodToolsList:
		return mcp.MethodToolsCall, kindTool
	case mcp.MethodPromptsList:
		return mcp.MethodPromptsGet, kindPrompt
	case mcp.MethodResourcesList, mcp.MethodResourceTemplatesList:
		return mcp.MethodResourcesRead, kindResource
	}
	return "", kindOther
}
