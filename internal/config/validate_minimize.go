package config

import "strings"

func (v *validator) minimize() {
	m := v.c.Minimize
	if m == nil {
		return
	}
	v.mode("minimize.mode", m.Mode)
	if len(m.Rules) == 0 {
		v.add("minimize.rules", "is required: at least one rule")
	}
	ids := map[string]int{}
	for i, r := range m.Rules {
		p := indexPath("minimize.rules", i)
		if r == nil {
			v.add(p, "rule is empty: set id and a cap or projection")
			continue
		}
		v.uniqueID(p, "minimize.rules", i, r.ID, ids, rateLimitIDRE, "is required",
			"must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
		v.rateLimitTarget(childPath(p, "target"), r.Target)
		for _, f := range []struct {
			key string
			n   int
		}{{"max_result_bytes", r.MaxResultBytes}, {"max_items", r.MaxItems}, {"max_resource_bytes", r.MaxResourceBytes}} {
			if f.n < 0 {
				v.add(childPath(p, f.key), "must not be negative")
			}
		}
		if r.MaxResultBytes > 0 && r.MaxResultBytes < 256 {
			v.add(childPath(p, "max_result_bytes"), "must be at least 256, room for the notice of what was cut")
		}
		switch r.Oversize {
		case "", OversizeTruncate, OversizeRefuse:
		default:
			v.add(childPath(p, "oversize"), "must be truncate or refuse, not %q", truncate(r.Oversize, 64))
		}
		if r.MaxResultBytes == 0 && r.MaxItems == 0 && r.MaxResourceBytes == 0 && len(r.Fields.Allow)+len(r.Fields.Deny) == 0 {
			v.add(p, "does nothing: set max_result_bytes, max_items, max_resource_bytes or fields")
		}
		for _, list := range []struct {
			key  string
			ptrs []string
		}{{"allow", r.Fields.Allow}, {"deny", r.Fields.Deny}} {
			for j, ptr := range list.ptrs {
				if ptr == "" || !strings.HasPrefix(ptr, "/") {
					v.add(indexPath(childPath(childPath(p, "fields"), list.key), j), "must be a JSON pointer starting with '/', not %q", truncate(ptr, 64))
				}
			}
		}
		v.mode(childPath(p, "mode"), r.Mode)
	}
}
