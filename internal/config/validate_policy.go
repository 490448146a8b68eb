package config

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/sluicehq/sluice/internal/policy/expr"
)

var (
	ruleIDRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	reasonCodeRE = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
)

// maxRuleMessage bounds the message a rule shows the agent.
const maxRuleMessage = 500

// policy checks the rule set: every rule has a unique id, a known effect
// and mode, valid target globs and a condition that compiles. A condition
// that does not compile is reported at its own line in the file (for a
// block scalar, the line inside the block).
func (v *validator) policy() {
	p := v.c.Policy
	if p == nil {
		return
	}
	switch p.Mode {
	case "", ModeObserve, ModeEnforce:
	default:
		v.add("policy.mode", "must be observe or enforce, not %q", truncate(p.Mode, 20))
	}
	if len(p.Rules) == 0 {
		v.add("policy.rules", "at least one rule is required (a policy without rules denies every call; say so with a deny rule)")
	}
	ids := map[string]int{}
	for i, r := range p.Rules {
		rp := indexPath("policy.rules", i)
		if r == nil {
			v.add(rp, "rule is empty: set id and effect")
			continue
		}
		switch {
		case r.ID == "":
			v.add(childPath(rp, "id"), "is required")
		case !ruleIDRE.MatchString(r.ID):
			v.add(childPath(rp, "id"), "%q must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", truncate(r.ID, 64))
		default:
			if first, dup := ids[r.ID]; dup {
				v.add(childPath(rp, "id"), "%q is also the id of policy.rules[%d]", r.ID, first)
			} else {
				ids[r.ID] = i
			}
		}
		switch r.Effect {
		case EffectAllow, EffectDeny, EffectRequireApproval:
		case "":
			v.add(childPath(rp, "effect"), "is required: allow, deny or require-approval")
		default:
			v.add(childPath(rp, "effect"), "must be allow, deny or require-approval, not %q", truncate(r.Effect, 30))
		}
		switch r.Mode {
		case "", ModeObserve, ModeEnforce:
		default:
			v.add(childPath(rp, "mode"), "must be observe or enforce, not %q", truncate(r.Mode, 20))
		}
		if r.Reason != "" && (len(r.Reason) > 64 || !reasonCodeRE.MatchString(r.Reason) || !strings.HasPrefix(r.Reason, "policy-")) {
			v.add(childPath(rp, "reason"), "%q must be a kebab-case code starting with \"policy-\", at most 64 characters, such as \"policy-no-writes\"", truncate(r.Reason, 64))
		}
		switch {
		case len(r.Message) > maxRuleMessage:
			v.add(childPath(rp, "message"), "must be at most %d bytes", maxRuleMessage)
		case strings.ContainsFunc(r.Message, unicode.IsControl):
			v.add(childPath(rp, "message"), "must not contain control characters")
		}
		v.policyTarget(childPath(rp, "target"), r.Target)
		if r.When != "" {
			v.condition(childPath(rp, "when"), r.When)
		}
	}
}

func (v *validator) policyTarget(p string, t PolicyTarget) {
	for _, f := range []struct {
		key  string
		pats []string
	}{{"servers", t.Servers}, {"tools", t.Tools}, {"resources", t.Resources}, {"prompts", t.Prompts}, {"methods", t.Methods}} {
		for i, g := range f.pats {
			gp := indexPath(childPath(p, f.key), i)
			switch _, err := path.Match(g, ""); {
			case g == "":
				v.add(gp, "glob must not be empty")
			case !utf8.ValidString(g):
				v.add(gp, "glob must be valid UTF-8")
			case err != nil:
				v.add(gp, "invalid glob %q", truncate(g, 64))
			}
		}
	}
}

// condition compiles a CEL condition and reports the first problem at the
// line of the file it is on.
func (v *validator) condition(p, src string) {
	_, err := expr.Compile(src)
	if err == nil {
		return
	}
	var ce *expr.Error
	if !errors.As(err, &ce) {
		v.add(p, "condition does not compile: %v", err)
		return
	}
	prob := v.c.problem(p, "condition does not compile: %s", ce.Msg)
	if ce.Line > 0 {
		// A condition written on the key's line starts there; one written as
		// a block scalar ("when: |") starts on the next line.
		line := prob.Line
		if line > 0 {
			if strings.Contains(strings.TrimRight(src, "\n"), "\n") {
				line += ce.Line
			}
			prob.Line = line
		}
		prob.Msg = fmt.Sprintf("condition does not compile: line %d, column %d of the condition: %s", ce.Line, ce.Column, ce.Msg)
	}
	if ce.More > 0 {
		prob.Msg += fmt.Sprintf(" (and %d more)", ce.More)
	}
	v.problems = append(v.problems, prob)
}

// ProblemAt returns a [*Problem] located at the YAML path p of c (with the
// line of p or its nearest ancestor), for checks made outside this package
// on a parsed configuration, such as `sluice policy lint`.
func (c *Config) ProblemAt(p, format string, args ...any) *Problem {
	return c.problem(p, format, args...)
}
