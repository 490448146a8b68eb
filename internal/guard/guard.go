// Package guard is Sluice's extension point: every guardrail (allow-lists,
// policy, DLP, audit, lineage, ...) is a [Guard] that wraps the next
// [Handler] in a chain, so it sees a [Call] on the way in and its [Result] on
// the way out.
//
// The order of the chain is a property of the program, fixed in [Order],
// never of the order of keys in a configuration file. Every guard reports
// what it decided as a [Decision] with a stable kebab-case reason code that
// appears the same in logs, metrics, audit and the error the agent sees.
// A guard in [Observe] mode records what it would have done and lets the
// call through; in [Enforce] mode a denial stops the call with a
// [*DeniedError], which the gateway turns into a JSON-RPC error carrying the
// reason code and a correlation ID, never internals.
package guard

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/mcp"
)

// Handler handles a call. The last handler of a chain forwards the call to
// its upstream server (or to the client, for calls going that way).
type Handler interface {
	Handle(ctx context.Context, c *Call) (*Result, error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, c *Call) (*Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, c *Call) (*Result, error) { return f(ctx, c) }

// Guard is one guardrail. Wrap returns a handler that does the guard's work
// around next; it is called once per chain build (at start-up and reload),
// not per call.
type Guard interface {
	Name() string
	Wrap(next Handler) Handler
}

// Closer is implemented by guards that hold resources; the gateway closes
// them in reverse order when a chain is replaced or Sluice stops.
type Closer interface{ Close() error }

// Order is the fixed order of the chain, outermost first. A guard whose
// name is not listed here cannot be installed.
var Order = []string{
	"audit",     // records every decision, including those of guards inside it
	"authn",     // who is calling
	"ratelimit", // how often
	"allowlist", // which servers and tools are reachable at all
	"policy",    // who may call what, with which arguments
	"approval",  // human approval bound to the exact call
	"scan",      // tool poisoning and rug pulls on list results
	"dlp",       // secrets and PII in arguments and results
	"lineage",   // labels on data as it flows (after DLP has read what a call sends)
	"minimize",  // caps and projections on results
}

// Rank returns the position of a guard name in [Order], or -1.
func Rank(name string) int { return slices.Index(Order, name) }

// Chain builds the handler that runs guards in [Order] around terminal.
// It fails on a guard whose name is not in Order or that appears twice.
func Chain(terminal Handler, guards ...Guard) (Handler, error) {
	sorted := slices.Clone(guards)
	seen := map[string]bool{}
	for _, g := range sorted {
		if Rank(g.Name()) < 0 {
			return nil, fmt.Errorf("guard %q is not in the chain order", g.Name())
		}
		if seen[g.Name()] {
			return nil, fmt.Errorf("guard %q installed twice", g.Name())
		}
		seen[g.Name()] = true
	}
	slices.SortStableFunc(sorted, func(a, b Guard) int { return Rank(a.Name()) - Rank(b.Name()) })
	h := terminal
	for i := len(sorted) - 1; i >= 0; i-- {
		h = sorted[i].Wrap(h)
	}
	// What guards asked to run after the chain runs once it returns (the
	// audit guard, outermost, runs it before it records the call).
	return HandlerFunc(func(ctx context.Context, c *Call) (*Result, error) {
		res, err := h.Handle(ctx, c)
		c.RunAfter()
		return res, err
	}), nil
}

// Direction tells which way a call flows.
type Direction uint8

const (
	// ToServer: a client's request to an upstream server.
	ToServer Direction = iota
	// ToClient: a server's request or notification to the client
	// (elicitation, sampling, roots, bridged input requests).
	ToClient
)

func (d Direction) String() string {
	if d == ToClient {
		return "to-client"
	}
	return "to-server"
}

// Principal is a verified identity. The client's self-description is not
// identity; see [ClientInfo].
type Principal struct {
	// Issuer is who vouched for Subject: the token's "iss" for OAuth,
	// "api-key", "mtls" or "stdio" otherwise. Two principals are the same
	// caller only when both Issuer and Subject match: two authorization
	// servers may hand out the same "sub" to different people.
	Issuer     string
	Subject    string
	Name       string
	Groups     []string
	Scopes     []string
	ClientID   string
	Attributes map[string]string
}

// ClientInfo is what the client declared about itself (untrusted).
type ClientInfo struct {
	Name    string
	Version string
	// Capabilities is the client's capabilities object as declared (at
	// initialize for legacy clients, in the request's _meta for modern
	// ones); nil when it declared none.
	Capabilities jsontext.Value
}

// Tool is an upstream tool's definition as its server last listed it.
// The gateway hands guards the same *Tool until the server's tool list
// changes, so a guard may cache what it derives from one (a compiled
// schema, parsed annotations) keyed by the pointer.
type Tool struct {
	// Name is the upstream-local name.
	Name string
	// Raw is the tool object as listed, upstream-local name included.
	Raw jsontext.Value
}

// Call is one message crossing the gateway, with what guards learned about
// it. A guard that changes Params replaces the slice; it never writes into
// the bytes it was given (they may alias a buffer shared with others).
type Call struct {
	// ID correlates the call across logs, audit and the agent's error.
	ID        string
	Principal *Principal
	Client    ClientInfo
	Era       mcp.Era
	Direction Direction
	// Profile and Server after routing. Server is empty for calls the
	// gateway answers itself.
	Profile, Server string
	// Prefix is what the gateway puts before upstream-local names to form
	// the names the client sees ("fs__" when namespacing, else "").
	Prefix string
	// Method is the JSON-RPC method; Name the tool or prompt name
	// (upstream-local, namespace stripped) or the resource URI.
	Method, Name string
	// Params is the params object as received (or as a guard changed it).
	Params jsontext.Value
	// Tool is the definition of the tool a tools/call names, when its
	// server listed it; nil for other methods and for unlisted tools.
	Tool *Tool
	// Transport is the HTTP request metadata of the call ("" over stdio).
	Transport Transport
	// Session is the legacy session the call belongs to ("" for modern
	// clients, which have none).
	Session string
	// RequestID is the JSON-RPC id of the client's request, as sent.
	RequestID jsontext.Value

	Findings []Finding
	Labels   Labels
	// Flows are the values this call carried that earlier results held.
	Flows     []Flow
	Decisions []Decision

	// after are the functions guards asked to run once every guard has
	// seen the result (see [Call.AfterChain]).
	after []func()
}

// AfterChain asks for f to run once the whole chain has handled the
// call, before it is recorded: a guard that needs what guards outside it
// learn of the result (DLP's findings, for lineage) reads them there.
func (c *Call) AfterChain(f func()) { c.after = append(c.after, f) }

// RunAfter runs, once, the functions [Call.AfterChain] was given. The
// handler [Chain] builds calls it when the chain returns; the audit guard,
// outermost, calls it before that, to record what they add.
func (c *Call) RunAfter() {
	for len(c.after) > 0 {
		f := c.after[0]
		c.after = c.after[1:]
		f()
	}
}

// ExposedName is the name the client sees for an upstream-local name.
func (c *Call) ExposedName(local string) string { return c.Prefix + local }

// Result is the outcome of a call: a raw result or a JSON-RPC error.
type Result struct {
	Result jsontext.Value
	Error  *mcp.Error
}

// Finding is something a guard found in the call's data (a secret, PII, a
// poisoned description), computed once and shared with later guards.
type Finding struct {
	Guard    string
	Kind     string // e.g. "secret/aws-access-key", "pii/email"
	Location string // "arguments" (what the caller sent) or "result"
	// Confidence is low, medium or high.
	Confidence string
	// Fingerprint is a keyed token of the value found (never the value):
	// the same value gives the same fingerprint in every call.
	Fingerprint string
}

// Flow is data that a call carried and an earlier call's result held,
// matched by fingerprint: an edge of the lineage graph.
type Flow struct {
	// From is the ID of the call whose result held the value.
	From string
	// Kind is the finding's kind; Fingerprint the value's token.
	Kind, Fingerprint string
	// Labels are the labels of the earlier call's data.
	Labels []string
}

// Labels are lineage labels attached to the data of a call.
type Labels []string

// Mode says whether a decision takes effect.
type Mode string

const (
	// Observe records what would have happened and lets the call through.
	Observe Mode = "observe"
	// Enforce makes the decision take effect.
	Enforce Mode = "enforce"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool { return m == Observe || m == Enforce }

// Effect is what a decision does.
type Effect string

const (
	Allow  Effect = "allow"
	Deny   Effect = "deny"
	Modify Effect = "modify" // the guard changed the params or the result
	// RequireApproval holds the call until a human approves it; the
	// approval guard acts on it.
	RequireApproval Effect = "require-approval"
)

// Transport is what the gateway knows about how a call arrived.
type Transport struct {
	// Kind is "http" or "stdio".
	Kind string
	// RemoteAddr is the peer's address for HTTP ("ip:port").
	RemoteAddr string
	// Headers the policy may read: a copy of selected request headers,
	// lower-cased names. Authorization and cookies are never included.
	Headers map[string]string
}

// Decision is one guard's verdict on a call.
type Decision struct {
	Guard string
	// Rule names the configuration element that decided (a glob, a rule id).
	Rule string
	// Version identifies the rule set that decided (the policy's content
	// hash), so a decision can be traced to the exact policy in force.
	Version string
	// Reason is a stable kebab-case code, e.g. "allowlist-tool-denied".
	Reason string
	Effect Effect
	Mode   Mode
	// Message is a short human explanation safe to show the agent.
	Message string
	// RetryAfter, on a denial, says when the same call may succeed (rate
	// limits); zero otherwise.
	RetryAfter time.Duration
}

// Decide records d on the call and returns a [*DeniedError] when d denies in
// enforce mode, nil otherwise.
func (c *Call) Decide(d Decision) error {
	c.Decisions = append(c.Decisions, d)
	if d.Effect == Deny && d.Mode == Enforce {
		return &DeniedError{CallID: c.ID, Decision: d}
	}
	return nil
}

// DeniedError stops a call. The gateway turns it into a JSON-RPC error with
// code [mcp.CodeDenied] and the reason code in its data.
type DeniedError struct {
	CallID   string
	Decision Decision
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("denied by %s: %s", e.Decision.Guard, e.Decision.Reason)
}

// RPCError is the error the agent sees for a denial.
func (e *DeniedError) RPCError() *mcp.Error {
	msg := e.Decision.Message
	if msg == "" {
		msg = "request denied"
	}
	data, _ := jsontext.AppendQuote([]byte(`{"reason":`), e.Decision.Reason)
	data = append(data, `,"guard":`...)
	data, _ = jsontext.AppendQuote(data, e.Decision.Guard)
	if e.CallID != "" {
		data = append(data, `,"id":`...)
		data, _ = jsontext.AppendQuote(data, e.CallID)
	}
	if ms := e.Decision.RetryAfter.Milliseconds(); ms > 0 {
		data = append(data, `,"retryAfterMs":`...)
		data = strconv.AppendInt(data, ms, 10)
	}
	data = append(data, '}')
	return &mcp.Error{Code: mcp.CodeDenied, Message: "sluice: " + msg, Data: data}
}

// Asker sends a request towards the client of a call (elicitation/create,
// for instance) and waits for the client's result. The gateway puts one in
// the context of calls whose client can be asked while the call waits
// (legacy clients that declared the capability the method needs).
type Asker interface {
	Ask(ctx context.Context, method string, params jsontext.Value) (jsontext.Value, error)
}

type askerKey struct{}

// WithAsker returns a context carrying a.
func WithAsker(ctx context.Context, a Asker) context.Context {
	return context.WithValue(ctx, askerKey{}, a)
}

// AskerFrom returns the [Asker] of ctx, or nil.
func AskerFrom(ctx context.Context) Asker {
	a, _ := ctx.Value(askerKey{}).(Asker)
	return a
}
