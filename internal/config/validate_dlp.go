package config

import (
	"regexp"
)

// dlpTypeRE is what a finding type looks like.
var dlpTypeRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

func (v *validator) dlp() {
	d := v.c.DLP
	if d == nil {
		return
	}
	v.mode("dlp.mode", d.Mode)
	v.confidence("dlp.min_confidence", d.MinConfidence)
	for i, det := range d.Detectors {
		p := indexPath("dlp.detectors", i)
		if det == nil {
			v.add(p, "detector is empty: set type and pattern")
			continue
		}
		if !dlpTypeRE.MatchString(det.Type) {
			v.add(childPath(p, "type"), "must be 1 to 64 lower-case letters, digits or '-', not %q", truncate(det.Type, 64))
		}
		switch det.Class {
		case "", "pii", "secret":
		default:
			v.add(childPath(p, "class"), "must be pii or secret, not %q", truncate(det.Class, 64))
		}
		if det.Pattern == "" {
			v.add(childPath(p, "pattern"), "is required")
		} else if re, err := regexp.Compile(det.Pattern); err != nil {
			v.add(childPath(p, "pattern"), "is not a valid RE2 expression: %v", err)
		} else if re.MatchString("") {
			v.add(childPath(p, "pattern"), "matches the empty string")
		}
		switch det.Validator {
		case "", "luhn", "mod97":
		default:
			v.add(childPath(p, "validator"), "must be luhn or mod97, not %q", truncate(det.Validator, 64))
		}
		if det.Entropy < 0 || det.Entropy > 8 {
			v.add(childPath(p, "entropy"), "must be between 0 and 8 bits per byte")
		}
		v.confidence(childPath(p, "confidence"), det.Confidence)
	}
	for i, pat := range d.Allow.Patterns {
		if _, err := regexp.Compile(pat); err != nil {
			v.add(indexPath("dlp.allow.patterns", i), "is not a valid RE2 expression: %v", err)
		}
	}
	ids := map[string]int{}
	for i, r := range d.Rules {
		p := indexPath("dlp.rules", i)
		if r == nil {
			v.add(p, "rule is empty: set id and action")
			continue
		}
		v.uniqueID(p, "dlp.rules", i, r.ID, ids, rateLimitIDRE, "is required",
			"must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
		for j, t := range r.Types {
			if !dlpTypeRE.MatchString(t) {
				v.add(indexPath(childPath(p, "types"), j), "must be a finding type or class (pii, secret), not %q", truncate(t, 64))
			}
		}
		switch r.Direction {
		case "", DLPArguments, DLPResults, DLPBoth:
		default:
			v.add(childPath(p, "direction"), "must be arguments, results or both, not %q", truncate(r.Direction, 64))
		}
		v.rateLimitTarget(childPath(p, "target"), r.Target)
		switch r.Action {
		case DLPBlock, DLPRedact, DLPMask, DLPHash, DLPAlert:
		case "":
			v.add(childPath(p, "action"), "is required: block, redact, mask, hash or alert")
		default:
			v.add(childPath(p, "action"), "must be block, redact, mask, hash or alert, not %q", truncate(r.Action, 64))
		}
		v.mode(childPath(p, "mode"), r.Mode)
	}
}

func (v *validator) confidence(p, c string) {
	switch c {
	case "", "low", "medium", "high":
	default:
		v.add(p, "must be low, medium or high, not %q", truncate(c, 64))
	}
}
