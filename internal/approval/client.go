package approval

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Asking the calling client. The question is a form-mode elicitation
// (MCP 2025-11-25, client/elicitation): a message and a requestedSchema
// with one required boolean, "approve". Only
//
//	{"action":"accept","content":{"approve":true}}
//
// approves; "decline", "cancel", approve=false or anything malformed is a
// denial. The "mode" member is left out, which the specification allows for
// form mode, so clients of 2025-06-18 understand the request too.

// describe is the text a human sees about the call they are asked to
// approve: what will run, where, with which arguments, and why it is held.
func (h *held) describe(id string) string {
	c := h.c
	name := c.Name
	if c.Method == mcp.MethodToolsCall || c.Method == mcp.MethodPromptsGet {
		name = c.ExposedName(c.Name)
	}
	var b strings.Builder
	b.WriteString("Sluice holds this call until a human approves it.\n")
	b.WriteString("Call: " + escapeText(c.Method, 64) + " " + escapeText(name, 200))
	if c.Server != "" {
		b.WriteString(" (server " + escapeText(c.Server, 64) + ")")
	}
	b.WriteString("\nArguments: " + h.summary)
	if h.b.Subject != "" {
		b.WriteString("\nCaller: " + escapeText(h.b.Subject, 200))
	}
	if h.d.Rule != "" {
		b.WriteString("\nRule: " + escapeText(h.d.Rule, 200))
	}
	b.WriteString("\nApproval: " + id)
	return b.String()
}

// elicitParams builds the elicitation/create params for the call.
func (h *held) elicitParams(id string) jsontext.Value {
	out := []byte(`{"message":`)
	out, _ = jsontext.AppendQuote(out, h.describe(id))
	out = append(out, `,"requestedSchema":{"type":"object","properties":{"approve":{"type":"boolean","title":"Approve this call","description":"Run the call exactly as shown","default":false}},"required":["approve"]}}`...)
	return out
}

// accepted reports whether an elicitation result approves the call.
func accepted(res jsontext.Value) bool {
	if res.Kind() != '{' {
		return false
	}
	action, ok, err := mcp.LookupString(res, "action")
	if err != nil || !ok || action != "accept" {
		return false
	}
	v, ok, err := mcp.LookupPath(res, "content", "approve")
	return err == nil && ok && string(v) == "true"
}

// askLegacy asks a legacy client while the call waits.
func (m *Manager) askLegacy(ctx context.Context, h *held, asker guard.Asker) (*guard.Result, error) {
	id := newID()
	actx, cancel := context.WithTimeout(ctx, h.s.timeout)
	defer cancel()
	res, err := asker.Ask(actx, mcp.MethodElicitationCreate, h.elicitParams(id))
	switch {
	case ctx.Err() != nil:
		// The client went away: nothing was decided.
		return nil, ctx.Err()
	case err != nil && errors.Is(actx.Err(), context.DeadlineExceeded):
		return nil, h.deny(ReasonTimeout, id, "no one approved the call in time")
	case err != nil:
		// The client could not be asked (it answered with an error).
		if h.s.via != ViaClient && h.s.hasApprovers() {
			return m.waitApprover(ctx, h)
		}
		return nil, h.deny(ReasonUnavailable, id, "the client could not be asked to approve the call")
	case !accepted(res):
		return nil, h.deny(ReasonDenied, id, "the call was not approved")
	}
	return m.grant(ctx, h, id, "client", h.c.Params)
}

// askModern answers a modern client with an input_required result whose
// requestState names the approval; the client retries the call with it.
func (m *Manager) askModern(h *held) (*guard.Result, error) {
	id := newID()
	state := m.sealer.seal(id, h.key, time.Now().Add(h.s.timeout))
	out := []byte(`{"resultType":"input_required","inputRequests":{"` + InputKey + `":{"method":"` + mcp.MethodElicitationCreate + `","params":`)
	out = append(out, h.elicitParams(id)...)
	out = append(out, `}},"requestState":`...)
	out, _ = jsontext.AppendQuote(out, state)
	out = append(out, '}')
	_ = h.c.Decide(guard.Decision{
		Guard:   Name,
		Rule:    id,
		Version: h.d.Version,
		Reason:  ReasonRequested,
		Effect:  guard.Modify,
		Mode:    guard.Enforce,
		Message: "the call waits for a human's approval",
	})
	return &guard.Result{Result: out}, nil
}

// resume handles a modern client's retry that carries the guard's
// requestState.
func (m *Manager) resume(ctx context.Context, h *held, state string) (*guard.Result, error) {
	cl, err := m.sealer.open(state)
	if err != nil {
		return nil, h.deny(ReasonInvalidState, "", "the approval state of this call is not valid")
	}
	if cl.key != h.key {
		// The state was minted for another call: the arguments (or the
		// caller, server, tool or policy) changed after the human was
		// asked. What they answered does not apply to this call.
		return nil, h.deny(ReasonMismatch, cl.id, "the approval was asked for a different call (the arguments changed); call again without requestState to ask about this one")
	}
	if !time.Now().Before(cl.expires) {
		return nil, h.deny(ReasonExpired, cl.id, "the approval request expired before it was answered")
	}
	resp, ok, err := mcp.LookupPath(h.c.Params, "inputResponses", InputKey)
	if err != nil || !ok {
		return m.askModern(h)
	}
	if !accepted(resp) {
		return nil, h.deny(ReasonDenied, cl.id, "the call was not approved")
	}
	params, err := mcp.DeleteMember(h.c.Params, "requestState")
	if err == nil {
		params, err = mcp.DeleteMember(params, "inputResponses")
	}
	if err != nil {
		return nil, h.deny(ReasonInvalidState, cl.id, "the approval state of this call is not valid")
	}
	return m.grant(ctx, h, cl.id, "client", params)
}
