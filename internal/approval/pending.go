package approval

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sluicehq/sluice/internal/guard"
)

// Errors of [Manager.Decide].
var (
	ErrNotFound     = errors.New("no call waits for this approval (unknown, decided or expired)")
	ErrNotApprover  = errors.New("not an approver")
	ErrSelfApproval = errors.New("an approver may not approve their own call")
)

// Pending is a call waiting for an approver, as approvers see it.
type Pending struct {
	ID string `json:"id"`
	// Principal is the caller's subject ("" when unauthenticated).
	Principal     string `json:"principal"`
	PrincipalName string `json:"principalName,omitempty"`
	Server        string `json:"server"`
	Method        string `json:"method"`
	// Tool is the upstream-local tool or prompt name, or the resource URI.
	Tool string `json:"tool"`
	// Arguments is a display-safe summary of the canonical arguments,
	// shortened when long; Digest identifies them exactly.
	Arguments     string    `json:"arguments"`
	Digest        string    `json:"digest"`
	Rule          string    `json:"rule"`
	PolicyVersion string    `json:"policyVersion,omitempty"`
	Created       time.Time `json:"created"`
	Expires       time.Time `json:"expires"`
}

// pending is an entry of the table; calls with the same binding wait on
// the same entry.
type pending struct {
	info     Pending
	key      string
	issuer   string
	subject  string
	done     chan struct{} // closed once outcome is set
	outcome  outcome
	resolved bool
	waiters  int
}

type outcome struct {
	approve     bool
	timeout     bool
	unavailable bool
	approver    string
	reason      string
	grant       Grant
}

// waitApprover lists the call for approvers and waits for a decision, the
// timeout, or the caller going away.
func (m *Manager) waitApprover(ctx context.Context, h *held) (*guard.Result, error) {
	p, ok := m.enqueue(h)
	if !ok {
		return nil, h.deny(ReasonUnavailable, "", "too many calls wait for approval; try again later")
	}
	defer m.leave(p)
	timer := time.NewTimer(time.Until(p.info.Expires))
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		m.resolve(p, outcome{timeout: true})
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	<-p.done
	o := p.outcome
	switch {
	case o.unavailable:
		return nil, h.deny(ReasonUnavailable, p.info.ID, "approvals are not available")
	case o.timeout:
		return nil, h.deny(ReasonTimeout, p.info.ID, "no one approved the call in time")
	case !o.approve:
		return nil, h.deny(ReasonDenied, p.info.ID, deniedMessage(o.reason))
	}
	return h.proceed(ctx, o.grant, h.c.Params)
}

// enqueue adds the call to the table, or joins the entry of an identical
// call already waiting. It fails when the table is full or shut down.
func (m *Manager) enqueue(h *held) (*pending, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false
	}
	if p := m.byKey[h.key]; p != nil {
		p.waiters++
		return p, true
	}
	if len(m.pending) >= h.s.maxPending {
		return nil, false
	}
	now := time.Now()
	p := &pending{
		key:     h.key,
		issuer:  h.b.Issuer,
		subject: h.b.Subject,
		done:    make(chan struct{}),
		waiters: 1,
		info: Pending{
			ID:            newID(),
			Principal:     escapeText(h.b.Subject, 200),
			Server:        h.b.Server,
			Method:        escapeText(h.b.Method, 100),
			Tool:          escapeText(h.b.Name, 300),
			Arguments:     h.summary,
			Digest:        h.b.Digest,
			Rule:          escapeText(h.b.Rule, 200),
			PolicyVersion: h.b.Version,
			Created:       now,
			Expires:       now.Add(h.s.timeout),
		},
	}
	if h.c.Principal != nil {
		p.info.PrincipalName = escapeText(h.c.Principal.Name, 200)
	}
	m.pending[p.info.ID] = p
	m.byKey[h.key] = p
	return p, true
}

// leave drops a waiter; an entry nobody waits for any more is removed.
func (m *Manager) leave(p *pending) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.waiters--
	if p.waiters == 0 && !p.resolved {
		m.remove(p)
	}
}

// remove takes p out of the table; m.mu is held.
func (m *Manager) remove(p *pending) {
	delete(m.pending, p.info.ID)
	if m.byKey[p.key] == p {
		delete(m.byKey, p.key)
	}
}

// resolve sets p's outcome unless it already has one, and wakes its
// waiters. It reports whether o was the outcome set.
func (m *Manager) resolve(p *pending, o outcome) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.resolved {
		return false
	}
	p.resolved = true
	p.outcome = o
	m.remove(p)
	close(p.done)
	return true
}

// List returns the calls waiting for an approver, oldest first.
func (m *Manager) List() []Pending {
	m.mu.Lock()
	out := make([]Pending, 0, len(m.pending))
	for _, p := range m.pending {
		out = append(out, p.info)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Pending) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Get returns the waiting call with the given approval ID.
func (m *Manager) Get(id string) (Pending, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pending[id]
	if p == nil {
		return Pending{}, false
	}
	return p.info, true
}

// Decide records an approver's decision on a waiting call and releases
// it. approver must be one of the configured approvers; they may deny
// their own call but not approve it. An approval is also kept in the store
// for the configured TTL, so that the same exact call passes again.
func (m *Manager) Decide(ctx context.Context, id string, approver *guard.Principal, approve bool, reason string) error {
	s := m.set.Load()
	if !s.isApprover(approver) {
		return ErrNotApprover
	}
	m.mu.Lock()
	p := m.pending[id]
	m.mu.Unlock()
	if p == nil {
		return ErrNotFound
	}
	// The same subject from another issuer is another caller, except for
	// an approver listed by that subject: approvers are named by subject
	// whatever their issuer, so the name is one person, and alice's API key
	// does not make alice someone else approving alice's call.
	if approve && p.subject != "" && p.subject == approver.Subject && (p.issuer == approver.Issuer || s.subjects[approver.Subject]) {
		return ErrSelfApproval
	}
	o := outcome{approve: approve, approver: approver.Subject, reason: sanitize(reason, 200)}
	if approve {
		o.grant = Grant{ID: id, Approver: approver.Subject, Expires: time.Now().Add(s.ttl)}
	}
	if !m.resolve(p, o) {
		return ErrNotFound
	}
	if approve {
		// Should the store fail, the waiting call still proceeds; only a
		// repeat of it will be held again.
		_ = m.store.Put(ctx, p.key, o.grant)
	} else {
		// The approvers said no to this exact call: the same call sent
		// again at once is refused without asking them again.
		_ = m.store.Put(ctx, p.key, Grant{ID: id, Approver: approver.Subject, Expires: time.Now().Add(DeniedFor), Denied: true, Reason: o.reason})
	}
	return nil
}

// deniedMessage is what the agent is told of an approver's denial.
func deniedMessage(reason string) string {
	msg := "the call was denied by an approver"
	if reason != "" {
		msg += ": " + reason
	}
	return msg
}
