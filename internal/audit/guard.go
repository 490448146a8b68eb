package audit

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "audit"

// ReasonUnavailable is the reason code of calls refused because their
// record cannot be written.
const ReasonUnavailable = "audit-unavailable"

// GuardOptions configure [NewGuard].
type GuardOptions struct {
	Recorder *Recorder
	// Args and Results say what is recorded of a call's arguments and
	// result.
	Args, Results Mode
	// FailOpen lets calls through when the log cannot be written, and never
	// makes them wait for room in the backlog (events that find it full are
	// lost); by default such calls are refused.
	FailOpen bool
}

// Guard records every call that crosses the chain, with every decision
// the guards inside it made, as an [Event] in a [Log]. It is the
// outermost guard, so nothing another guard decides escapes it.
type Guard struct {
	log  *Log
	opts GuardOptions
}

var _ guard.Guard = (*Guard)(nil)

// NewGuard returns the guard writing to log.
func NewGuard(log *Log, opts GuardOptions) *Guard {
	if opts.Args == "" {
		opts.Args = RecordRedacted
	}
	if opts.Results == "" {
		opts.Results = RecordNone
	}
	return &Guard{log: log, opts: opts}
}

// Name implements [guard.Guard].
func (g *Guard) Name() string { return Name }

// Wrap implements [guard.Guard]. A call is answered only after its event
// is journaled (in fail-closed mode). Journaling happens on the caller's
// goroutine and does not look at its context, so that a client hanging up
// cannot suppress its own record.
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Method == mcp.MethodPing {
			// Liveness, not an action: neither recorded nor refused.
			return next.Handle(ctx, c)
		}
		start := time.Now()
		closed := !g.opts.FailOpen
		if closed && !g.log.Healthy() {
			// Refused without going upstream, and recorded if the
			// journal takes it.
			err := c.Decide(unavailable())
			_ = g.log.Append(g.event(c, start, nil, err).Body(), false)
			return nil, err
		}
		res, err := next.Handle(ctx, c)
		// What guards finish after the chain (lineage's labels of what was
		// read) belongs in the record.
		c.RunAfter()
		if aerr := g.log.Append(g.event(c, start, res, err).Body(), closed); aerr != nil && closed {
			// The call happened, but an answer whose record is not
			// written does not leave.
			return nil, c.Decide(unavailable())
		}
		return res, err
	})
}

func unavailable() guard.Decision {
	return guard.Decision{Guard: Name, Reason: ReasonUnavailable, Effect: guard.Deny, Mode: guard.Enforce,
		Message: "the call cannot be recorded in the audit log"}
}

// event builds the record of c.
func (g *Guard) event(c *guard.Call, start time.Time, res *guard.Result, err error) *Event {
	e := &Event{
		ID:        c.ID,
		Time:      start,
		Kind:      "call",
		Client:    Client{Name: c.Client.Name, Version: c.Client.Version},
		Session:   c.Session,
		Profile:   c.Profile,
		Server:    c.Server,
		Era:       c.Era.String(),
		Direction: c.Direction.String(),
		Method:    c.Method,
		Name:      c.Name,
		RequestID: c.RequestID,
		Transport: c.Transport.Kind,
		Remote:    c.Transport.RemoteAddr,
		Headers:   c.Transport.Headers,
		Labels:    c.Labels,
		ArgsBytes: len(c.Params),
		Latency:   time.Since(start),
		TraceID:   traceID(c.Transport.Headers["traceparent"]),
	}
	if p := c.Principal; p != nil {
		e.Principal = &Principal{Issuer: p.Issuer, Subject: p.Subject, Name: p.Name, Groups: p.Groups,
			Scopes: p.Scopes, Client: p.ClientID, Attributes: p.Attributes}
	}
	for _, d := range c.Decisions {
		e.Decisions = append(e.Decisions, Decision{Guard: d.Guard, Rule: d.Rule, Version: d.Version, Reason: d.Reason, Effect: string(d.Effect), Mode: string(d.Mode)})
	}
	for _, f := range c.Findings {
		i := slices.IndexFunc(e.Findings, func(fc FindingCount) bool { return fc.Kind == f.Kind && fc.Location == f.Location })
		if i < 0 {
			e.Findings = append(e.Findings, FindingCount{Kind: f.Kind, Location: f.Location})
			i = len(e.Findings) - 1
		}
		fc := &e.Findings[i]
		fc.Count++
		if f.Fingerprint != "" && len(fc.Fingerprints) < MaxFingerprints && !slices.Contains(fc.Fingerprints, f.Fingerprint) {
			fc.Fingerprints = append(fc.Fingerprints, f.Fingerprint)
		}
	}
	for _, f := range c.Flows {
		e.Flows = append(e.Flows, Flow{From: f.From, Kind: f.Kind, Fingerprint: f.Fingerprint, Labels: f.Labels})
	}
	var (
		denied *guard.DeniedError
		rpc    *mcp.Error
	)
	switch {
	case errors.As(err, &denied):
		e.Outcome, e.Reason, e.ErrorCode = "denied", denied.Decision.Reason, mcp.CodeDenied
	case errors.As(err, &rpc):
		e.Outcome, e.ErrorCode = "error", rpc.Code
	case err != nil:
		e.Outcome = "error"
	case res != nil && res.Error != nil:
		e.Outcome, e.ErrorCode = "error", res.Error.Code
	default:
		e.Outcome = "ok"
	}
	if e.Reason == "" {
		e.Reason = settlingReason(c.Decisions)
	}
	if g.opts.Recorder != nil {
		e.Args = g.opts.Recorder.Record(g.opts.Args, argsOf(c))
		if res != nil {
			e.ResultBytes = len(res.Result)
			if res.Error == nil {
				e.Result = g.opts.Recorder.Record(g.opts.Results, res.Result)
			}
		}
	} else if res != nil {
		e.ResultBytes = len(res.Result)
	}
	return e
}

// settlingReason is the reason of the last denial, observed or enforced,
// else of the last decision.
func settlingReason(ds []guard.Decision) string {
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Effect == guard.Deny {
			return ds[i].Reason
		}
	}
	if n := len(ds); n > 0 {
		return ds[n-1].Reason
	}
	return ""
}

// argsOf is what a call's arguments are: params.arguments for tools/call
// and prompts/get, the params otherwise.
func argsOf(c *guard.Call) jsontext.Value {
	if c.Method == mcp.MethodToolsCall || c.Method == mcp.MethodPromptsGet {
		v, ok, err := mcp.Lookup(c.Params, "arguments")
		if err != nil || !ok {
			return nil
		}
		return v
	}
	return c.Params
}

// traceID takes the trace ID from a W3C traceparent header
// ("00-<32 hex>-<16 hex>-<2 hex>").
func traceID(tp string) string {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	id := tp[3:35]
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ""
		}
	}
	return id
}
