package config

import (
	"regexp"
	"slices"
)

// lineageLabelRE is what a label looks like: lower case words joined by
// '-', as in "pii", "untrusted-input", "external-sink".
var lineageLabelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func (v *validator) lineage() {
	l := v.c.Lineage
	if l == nil {
		return
	}
	v.mode("lineage.mode", l.Mode)
	assigned := map[string]bool{}
	for i, lb := range l.Labels {
		p := indexPath("lineage.labels", i)
		if lb == nil {
			v.add(p, "label entry is empty: set target and labels")
			continue
		}
		t := lb.Target
		if len(t.Servers)+len(t.Tools)+len(t.Resources)+len(t.Prompts)+len(t.Methods) == 0 {
			v.add(childPath(p, "target"), "is required: which servers, tools, resources or prompts carry the labels")
		}
		v.rateLimitTarget(childPath(p, "target"), t)
		if len(lb.Labels) == 0 {
			v.add(childPath(p, "labels"), "is required")
		}
		for j, name := range lb.Labels {
			if !lineageLabelRE.MatchString(name) {
				v.add(indexPath(childPath(p, "labels"), j), "must be 1 to 64 lower-case letters, digits or '-', not %q", truncate(name, 64))
				continue
			}
			assigned[name] = true
		}
	}
	ids := map[string]int{}
	for i, r := range l.Rules {
		p := indexPath("lineage.rules", i)
		if r == nil {
			v.add(p, "rule is empty: set id, call and after")
			continue
		}
		v.uniqueID(p, "lineage.rules", i, r.ID, ids, rateLimitIDRE, "is required",
			"must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
		switch {
		case r.Call == "":
			v.add(childPath(p, "call"), "is required: the label of the targets the rule refuses calls to")
		case !assigned[r.Call]:
			v.add(childPath(p, "call"), "no target carries label %q (see lineage.labels), so the rule can never apply", truncate(r.Call, 64))
		}
		if len(r.After) == 0 {
			v.add(childPath(p, "after"), "is required: the labels a session must have read for the call to be refused")
		}
		for j, name := range r.After {
			if !assigned[name] {
				v.add(indexPath(childPath(p, "after"), j), "no target carries label %q (see lineage.labels), so the rule can never apply", truncate(name, 64))
			}
			if slices.Index(r.After, name) != j {
				v.add(indexPath(childPath(p, "after"), j), "label %q is listed twice", truncate(name, 64))
			}
		}
		v.mode(childPath(p, "mode"), r.Mode)
	}
}

// mode checks an optional observe-or-enforce setting.
func (v *validator) mode(p, m string) {
	switch m {
	case "", ModeObserve, ModeEnforce:
	default:
		v.add(p, "must be observe or enforce, not %q", truncate(m, 20))
	}
}
