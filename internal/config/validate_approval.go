package config

import (
	"strings"
	"time"
	"unicode"
)

// Approval ways and limits.
const (
	ApprovalViaClient           = "client"
	ApprovalViaApprover         = "approver"
	ApprovalViaClientOrApprover = "client-or-approver"

	// maxApprovalWait bounds approval.timeout and approval.ttl: a call held
	// longer ties up its connection, an approval kept longer outlives the
	// context a human judged it in.
	maxApprovalWait = 24 * time.Hour
)

// approval checks how held calls are approved.
func (v *validator) approval() {
	a := v.c.Approval
	if a == nil {
		return
	}
	switch a.Via {
	case "", ApprovalViaClient, ApprovalViaApprover, ApprovalViaClientOrApprover:
	default:
		v.add("approval.via", "must be client, approver or client-or-approver, not %q", truncate(a.Via, 30))
	}
	for _, d := range []struct {
		key string
		val Duration
	}{{"timeout", a.Timeout}, {"ttl", a.TTL}} {
		switch {
		case d.val < 0:
			v.add("approval."+d.key, "must not be negative")
		case time.Duration(d.val) > maxApprovalWait:
			v.add("approval."+d.key, "must be at most %s", maxApprovalWait)
		}
	}
	seen := map[string]bool{}
	for i, s := range a.Approvers {
		p := indexPath("approval.approvers", i)
		name, group := strings.CutPrefix(s, "group:")
		switch {
		case s == "":
			v.add(p, "must not be empty")
		case strings.TrimSpace(s) != s || strings.ContainsFunc(s, unicode.IsControl):
			v.add(p, "must not have surrounding white space or control characters")
		case group && name == "":
			v.add(p, "names no group: write group:NAME")
		case seen[s]:
			v.add(p, "%q is listed twice", truncate(s, 64))
		}
		seen[s] = true
	}
	if a.Via == ApprovalViaApprover && len(a.Approvers) == 0 {
		v.add("approval.via", "via approver needs at least one entry in approval.approvers")
	}
}
