package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/glob"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy/expr"
)

// Lint finds what is valid in a policy but cannot be what its author meant,
// each as a problem located in cfg (which must have passed validation):
//
//   - rules that never decide anything: a condition that is always false;
//     a target that cannot match (tools with only methods that do not call
//     tools); a rule that an earlier rule with the same effect, the same
//     mode, a target at least as broad and no condition (or the same one)
//     always decides first; an allow or require-approval rule whose every
//     call an unconditional enforced deny rule refuses;
//   - targets that reference what does not exist: a server glob that no
//     configured server matches; a tool that no server in the rule's scope
//     exposes, as far as the configuration tells (see below);
//   - conditions that read fields that do not exist (principal.subjekt,
//     tool.nmae, resource.url): they fail on every call.
//
// Lint reads the configuration only; it does not start or connect to the
// servers. It knows a server's tools only from the server's tools.allow
// list when that list names tools literally (and from tools.deny); for a
// server without an allow list any tool name may exist, and lint says
// nothing about it. Resource URIs and prompt names are not checked.
func Lint(cfg *config.Config) []*config.Problem {
	p := cfg.Policy
	if p == nil {
		return nil
	}
	l := &linter{cfg: cfg}
	compiled := make([]*target, len(p.Rules))
	for i, r := range p.Rules {
		if r == nil {
			continue
		}
		t, err := compileTarget(r.Target)
		if err != nil {
			continue // validation reports it
		}
		compiled[i] = &t
	}
	for i, r := range p.Rules {
		if r == nil || compiled[i] == nil {
			continue
		}
		rp := "policy.rules[" + strconv.Itoa(i) + "]"
		l.condition(rp, r)
		l.unreachableTarget(rp, r)
		l.servers(rp, r)
		l.tools(rp, r)
		l.shadowed(rp, i, compiled)
	}
	slices.SortStableFunc(l.problems, func(a, b *config.Problem) int { return a.Line - b.Line })
	return l.problems
}

type linter struct {
	cfg      *config.Config
	problems []*config.Problem
}

func (l *linter) add(path, format string, args ...any) {
	l.problems = append(l.problems, l.cfg.ProblemAt(path, format, args...))
}

func ruleMode(p *config.Policy, r *config.PolicyRule) string {
	switch {
	case r.Mode != "":
		return r.Mode
	case p.Mode != "":
		return p.Mode
	}
	return config.ModeEnforce
}

// condition looks for fields that do not exist and for a condition that
// is always false.
func (l *linter) condition(rp string, r *config.PolicyRule) {
	if r.When == "" {
		return
	}
	wp := rp + ".when"
	ast, err := expr.Compile(r.When)
	if err != nil {
		return // validation reports it
	}
	native := ast.NativeRep()
	info := native.SourceInfo()
	celast.PreOrderVisit(native.Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		variable, field, operand, ok := fieldAccess(e)
		if !ok {
			return
		}
		fields, fixed := expr.Fields[variable]
		if !fixed || slices.Contains(fields, field) {
			return
		}
		loc := info.GetStartLocation(operand)
		l.add(wp, "%s.%s (line %d, column %d of the condition) does not exist: %s has %s",
			variable, field, loc.Line(), loc.Column()+1, variable, strings.Join(fields, ", "))
	}))
	env, err := expr.Env()
	if err != nil {
		return
	}
	folder, err := cel.NewConstantFoldingOptimizer()
	if err != nil {
		return
	}
	opt, err := cel.NewStaticOptimizer(folder)
	if err != nil {
		return
	}
	folded, iss := opt.Optimize(env, ast)
	if iss != nil && iss.Err() != nil {
		return
	}
	if e := folded.NativeRep().Expr(); e.Kind() == celast.LiteralKind && e.AsLiteral() == types.False {
		l.add(wp, "the condition is always false: the rule never applies")
	}
}

// fieldAccess recognises variable.field, variable.?field, has(variable.field)
// and variable["field"] on a top-level variable, and returns the id of the
// variable's node (where the access starts in the source).
func fieldAccess(e celast.Expr) (variable, field string, operand int64, ok bool) {
	switch e.Kind() {
	case celast.SelectKind:
		s := e.AsSelect()
		if op := s.Operand(); op.Kind() == celast.IdentKind {
			return op.AsIdent(), s.FieldName(), op.ID(), true
		}
	case celast.CallKind:
		c := e.AsCall()
		if (c.FunctionName() == operators.OptSelect || c.FunctionName() == operators.Index) && len(c.Args()) == 2 {
			op, key := c.Args()[0], c.Args()[1]
			if op.Kind() == celast.IdentKind && key.Kind() == celast.LiteralKind {
				if s, isStr := key.AsLiteral().(types.String); isStr {
					return op.AsIdent(), string(s), op.ID(), true
				}
			}
		}
	}
	return "", "", 0, false
}

// unreachableTarget finds targets that restrict names of some kinds and
// methods that never concern those kinds.
func (l *linter) unreachableTarget(rp string, r *config.PolicyRule) {
	t := r.Target
	if len(t.Tools)+len(t.Resources)+len(t.Prompts) == 0 || len(t.Methods) == 0 {
		return
	}
	for _, m := range []string{mcp.MethodToolsCall, mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe, mcp.MethodPromptsGet} {
		var names []string
		switch subjectKind(m) {
		case kindTool:
			names = t.Tools
		case kindResource:
			names = t.Resources
		case kindPrompt:
			names = t.Prompts
		}
		if len(names) == 0 {
			continue
		}
		for _, g := range t.Methods {
			if gl, err := glob.Compile(g); err == nil && gl.Match(m) {
				return
			}
		}
	}
	l.add(rp+".target.methods", "no method listed calls the tools, resources or prompts of the target: the rule never applies")
}

// servers finds server globs that match no configured server.
func (l *linter) servers(rp string, r *config.PolicyRule) {
	names := l.cfg.ServerNames()
	for i, g := range r.Target.Servers {
		gl, err := glob.Compile(g)
		if err != nil {
			continue
		}
		if !slices.ContainsFunc(names, gl.Match) {
			l.add(fmt.Sprintf("%s.target.servers[%d]", rp, i), "no configured server matches %q (servers: %s)", g, strings.Join(names, ", "))
		}
	}
}

// tools finds tool names that no server in the rule's scope exposes, as
// far as the servers' tools.allow and tools.deny lists tell.
func (l *linter) tools(rp string, r *config.PolicyRule) {
	if len(r.Target.Tools) == 0 {
		return
	}
	var scope []string
	sg, err := glob.CompileList(r.Target.Servers)
	if err != nil {
		return
	}
	for _, name := range l.cfg.ServerNames() {
		if len(sg) == 0 || sg.Any(name) {
			scope = append(scope, name)
		}
	}
	if len(scope) == 0 {
		return // reported by servers
	}
	for i, g := range r.Target.Tools {
		gl, err := glob.Compile(g)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(scope, func(server string) bool { return mayExpose(l.cfg.Servers[server], gl) }) {
			continue
		}
		l.add(fmt.Sprintf("%s.target.tools[%d]", rp, i), "no server in the rule's scope (%s) exposes a tool matching %q, according to their tools.allow and tools.deny lists",
			strings.Join(scope, ", "), g)
	}
}

// mayExpose reports whether server s may expose a tool that g matches.
func mayExpose(s *config.Server, g glob.Pattern) bool {
	if s == nil {
		return false
	}
	denied := func(name string) bool {
		for _, d := range s.Tools.Deny {
			if dg, err := glob.Compile(d); err == nil && dg.Match(name) {
				return true
			}
		}
		return false
	}
	if lit, ok := g.Literal(); ok {
		if denied(lit) {
			return false
		}
		if len(s.Tools.Allow) == 0 {
			return true
		}
		for _, a := range s.Tools.Allow {
			if ag, err := glob.Compile(a); err == nil && ag.Match(lit) {
				return true
			}
		}
		return false
	}
	if len(s.Tools.Allow) == 0 {
		return true
	}
	for _, a := range s.Tools.Allow {
		ag, err := glob.Compile(a)
		if _, ok := ag.Literal(); err != nil || !ok {
			return true // two globs: lint cannot tell
		}
		if g.Match(a) && !denied(a) {
			return true
		}
	}
	return false
}

// shadowed finds rule i's earlier rules that always decide in its place,
// and unconditional deny rules that refuse every call it targets.
func (l *linter) shadowed(rp string, i int, targets []*target) {
	p := l.cfg.Policy
	r := p.Rules[i]
	mode := ruleMode(p, r)
	for j, o := range p.Rules {
		if j == i || o == nil || targets[j] == nil {
			continue
		}
		if !covers(o.Target, r.Target) {
			continue
		}
		om := ruleMode(p, o)
		switch {
		case j < i && o.Effect == r.Effect && om == mode && (o.When == "" || o.When == r.When):
			l.add(rp, "never decides: rule %q (policy.rules[%d]) has the same effect and mode, a target at least as broad and %s, and comes first",
				o.ID, j, condWord(o.When))
			return
		case o.Effect == config.EffectDeny && r.Effect != config.EffectDeny && o.When == "" && (om == config.ModeEnforce || om == mode):
			l.add(rp, "never takes effect: rule %q (policy.rules[%d]) denies every call this rule targets, and deny overrides %s", o.ID, j, r.Effect)
			return
		}
	}
}

func condWord(when string) string {
	if when == "" {
		return "no condition"
	}
	return "the same condition"
}

// covers reports whether every call target b selects is also selected by
// target a. It answers true only when sure.
func covers(a, b config.PolicyTarget) bool {
	if !coversList(a.Servers, b.Servers) || !coversList(a.Methods, b.Methods) {
		return false
	}
	aKinds := len(a.Tools)+len(a.Resources)+len(a.Prompts) > 0
	bKinds := len(b.Tools)+len(b.Resources)+len(b.Prompts) > 0
	switch {
	case !aKinds:
		return true
	case !bKinds:
		return false
	}
	for _, pair := range [][2][]string{{a.Tools, b.Tools}, {a.Resources, b.Resources}, {a.Prompts, b.Prompts}} {
		if len(pair[1]) == 0 {
			continue
		}
		if len(pair[0]) == 0 || !coversList(pair[0], pair[1]) {
			return false
		}
	}
	return true
}

// coversList reports whether globs a match everything globs b match; an
// empty list matches everything.
func coversList(a, b []string) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, pb := range b {
		if !slices.ContainsFunc(a, func(pa string) bool { return globCovers(pa, pb) }) {
			return false
		}
	}
	return true
}

// globCovers reports whether glob a matches every string glob b matches:
// when they are equal, when b is literal and a matches it, or when a is a
// prefix followed by "*" and b starts with that prefix.
func globCovers(a, b string) bool {
	if a == b || a == "*" {
		return true
	}
	ga, err := glob.Compile(a)
	if err != nil {
		return false
	}
	gb, err := glob.Compile(b)
	if err != nil {
		return false
	}
	if _, ok := gb.Literal(); ok {
		return ga.Match(b)
	}
	if prefix, ok := ga.Prefix(); ok {
		lit := b
		if i := strings.IndexAny(b, `*?[\`); i >= 0 {
			lit = b[:i]
		}
		return strings.HasPrefix(lit, prefix)
	}
	return false
}
