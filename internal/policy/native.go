package policy

import (
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"

	"github.com/sluicehq/sluice/internal/policy/expr"
)

// The native evaluator runs the conditions of a policy without CEL's
// interpreter, which spends most of a decision setting up frames and
// resolving attributes rather than comparing values: a condition is
// compiled once, at load, into a tree of Go closures over the same CEL
// values and the same function implementations the interpreter would call
// (taken from the environment's own bindings), and each closure mirrors
// what the interpreter does for its node, errors included.
//
// It covers the shapes policies are written in: literals, variables, field
// selection (plain, optional "?." and has()), indexes, list literals, &&,
// ||, the conditional, equality, the comprehensions whose result is a bool
// (all, exists, exists_one), and every strict or non-strict function of the
// environment resolved at check time (comparisons, "in", string functions,
// orValue, time accessors, ...), with direct Go code for the commonest
// (contains, startsWith, endsWith, comparisons of ints, "in" a list of
// strings) when their arguments have the expected types. Anything else
// (map() and filter(), map literals, optional indexes, type names) keeps the
// whole condition on the interpreter. At run time, a value of a kind the
// evaluator does not handle exactly as the interpreter would (selecting a
// field of something that is not a map, an optional index, ...) yields
// [declined], and the condition is then evaluated by the interpreter, so
// that the two can never disagree about what a condition decides. A
// differential fuzz target (FuzzNativeMatchesCEL) holds that to account.

// native evaluates a condition for one call.
type native func(a *activation) ref.Val

// declined is what a native evaluation returns when it cannot decide the
// condition the way the interpreter would; the interpreter then runs it.
// It is an error value so that strict functions pass it on untouched; the
// logical operators, which may absorb errors, treat it specially.
var declined = types.NewErr("native evaluation declined")

// dispatcher returns the function implementations of the policy
// environment, built the way cel-go builds the dispatcher of its programs.
var dispatcher = sync.OnceValues(func() (interpreter.Dispatcher, error) {
	env, err := expr.Env()
	if err != nil {
		return nil, err
	}
	var bindings []*functions.Overload
	for _, fn := range env.Functions() {
		bs, err := fn.Bindings()
		if err != nil {
			return nil, err
		}
		bindings = append(bindings, bs...)
	}
	d := interpreter.NewDispatcher()
	if err := d.Add(bindings...); err != nil {
		return nil, err
	}
	return d, nil
})

// compileNative compiles a checked condition; ok is false when the
// condition uses something the native evaluator does not cover.
//
// metered is for a condition with a comprehension, which the interpreter
// runs under a cost limit (maxCost): the compiled condition then counts, in
// activation.cost, an upper bound of the cost the interpreter would charge
// (one per node, counted once outside loops and once per iteration inside
// them, and for each function call the sizes of its arguments, which bound
// CEL's own cost models: see [charge]), and declines once that bound
// passes [meterBudget]. Below it the interpreter could not have hit its
// limit, so both reach the same verdict. FuzzNativeMatchesCEL checks the
// bound against the cost the interpreter reports.
func compileNative(a *cel.Ast, metered bool) (native, bool) {
	disp, err := dispatcher()
	if err != nil || !a.IsChecked() {
		return nil, false
	}
	nc := &nativeCompiler{ast: a.NativeRep(), disp: disp, metered: metered}
	fn := nc.compile(a.NativeRep().Expr())
	if fn == nil {
		return nil, false
	}
	if metered {
		inner, n := fn, nodes(a.NativeRep().Expr())
		fn = func(a *activation) ref.Val {
			a.cost = n // each node outside a loop is evaluated at most once
			v := inner(a)
			if a.cost > meterBudget {
				return declined
			}
			return v
		}
	}
	return fn, true
}

// meterBudget is the metered cost past which a native evaluation declines:
// a quarter of the interpreter's limit.
const meterBudget = maxCost / 4

// maxLocals bounds the variables of nested comprehensions (two each).
const maxLocals = 4

// principalConjuncts compiles the terms of a condition's top-level && that
// read no variable but the principal (and no comprehension), each on its
// own: if one is false, so is the condition, whatever the rest of the call
// is (CEL's && is false as soon as any term is, errors elsewhere
// notwithstanding).
func principalConjuncts(a *cel.Ast) []native {
	disp, err := dispatcher()
	if err != nil || !a.IsChecked() {
		return nil
	}
	nc := &nativeCompiler{ast: a.NativeRep(), disp: disp}
	var out []native
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == operators.LogicalAnd && !e.AsCall().IsMemberFunction() {
			for _, t := range e.AsCall().Args() {
				walk(t)
			}
			return
		}
		if !readsOnlyPrincipal(e) {
			return
		}
		if f := nc.compile(e); f != nil {
			out = append(out, f)
		}
	}
	walk(a.NativeRep().Expr())
	return out
}

// readsOnlyPrincipal reports whether e reads at least one variable and no
// variable but the principal, and has no comprehension (whose own
// variables would be read too).
func readsOnlyPrincipal(e celast.Expr) bool {
	reads, only := false, true
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(x celast.Expr) {
		switch x.Kind() {
		case celast.IdentKind:
			reads = true
			only = only && x.AsIdent() == expr.Principal
		case celast.ComprehensionKind:
			only = false
		}
	}))
	return reads && only
}

type nativeCompiler struct {
	ast     *celast.AST
	disp    interpreter.Dispatcher
	metered bool
	// locals are the comprehension variables in scope, innermost last;
	// each lives in activation.locals at its index.
	locals []string
}

// compile returns nil for an expression it does not cover.
func (nc *nativeCompiler) compile(e celast.Expr) native {
	switch e.Kind() {
	case celast.LiteralKind:
		v := e.AsLiteral()
		return func(*activation) ref.Val { return v }
	case celast.IdentKind, celast.SelectKind:
		return nc.attribute(e)
	case celast.ListKind:
		return nc.list(e)
	case celast.CallKind:
		return nc.call(e)
	case celast.ComprehensionKind:
		return nc.comprehension(e)
	}
	return nil
}

// local returns the slot of a comprehension variable in scope.
func (nc *nativeCompiler) local(name string) (int, bool) {
	for i := len(nc.locals) - 1; i >= 0; i-- {
		if nc.locals[i] == name {
			return i, true
		}
	}
	return 0, false
}

// comprehension compiles the comprehensions of the macros whose result is
// a bool (all, exists, exists_one) over a list or a map, as the
// interpreter's fold does: the iteration variable takes each element of a
// list or each key of a map, the loop stops when its condition is not
// true, and the result expression sees the accumulator only. Those macros
// give the same result in any order of iteration, so the order of a Go map
// does not matter. Other comprehensions (map, filter) stay with the
// interpreter.
func (nc *nativeCompiler) comprehension(e celast.Expr) native {
	c := e.AsComprehension()
	if !nc.metered || c.HasIterVar2() || c.AccuInit().Kind() != celast.LiteralKind || len(nc.locals)+2 > maxLocals {
		return nil // a condition that iterates is always metered
	}
	if t := nc.ast.GetType(e.ID()); t == nil || t.Kind() != types.BoolKind {
		return nil
	}
	rng := nc.compile(c.IterRange())
	init := c.AccuInit().AsLiteral()
	accu := len(nc.locals)
	iter := accu + 1
	nc.locals = append(nc.locals, c.AccuVar(), c.IterVar())
	cond := nc.compile(c.LoopCondition())
	step := nc.compile(c.LoopStep())
	nc.locals = nc.locals[:iter]
	result := nc.compile(c.Result())
	nc.locals = nc.locals[:accu]
	if rng == nil || cond == nil || step == nil || result == nil {
		return nil
	}
	// Metered, each iteration evaluates each node of the condition and the
	// step at most once, the result's nodes once.
	loopNodes, resultNodes := nodes(c.LoopCondition())+nodes(c.LoopStep()), nodes(c.Result())
	// next runs one iteration; more is false once the loop is over, and v
	// is declined when the evaluation must be left to the interpreter.
	next := func(a *activation, elem ref.Val) (more bool, v ref.Val) {
		a.cost += loopNodes
		a.locals[iter] = elem
		switch c := cond(a); {
		case c == types.True:
		case types.IsError(c):
			return false, declined // the interpreter ends with an interruption error
		default:
			return false, nil
		}
		acc := step(a)
		if acc == declined || a.cost > meterBudget {
			return false, declined
		}
		a.locals[accu] = acc
		return true, nil
	}
	overArgs := nc.isArgs(c.IterRange())
	return func(a *activation) ref.Val {
		if overArgs {
			// The keys of the arguments, without building their map.
			o, err := a.argsObject()
			if err != nil {
				return err
			}
			a.locals[accu] = init
			for _, k := range o.keys {
				more, v := next(a, types.String(k))
				if v != nil {
					return v
				}
				if !more {
					break
				}
			}
			a.cost += resultNodes
			return result(a)
		}
		r := rng(a)
		if types.IsError(r) {
			return r
		}
		a.locals[accu] = init
		switch rv := r.(type) {
		case traits.Lister:
			n, ok := rv.Size().(types.Int)
			if !ok {
				return declined
			}
			for i := types.Int(0); i < n; i++ {
				more, v := next(a, rv.Get(i))
				if v != nil {
					return v
				}
				if !more {
					break
				}
			}
		case traits.Mapper:
			for it := rv.Iterator(); it.HasNext() == types.True; {
				more, v := next(a, it.Next())
				if v != nil {
					return v
				}
				if !more {
					break
				}
			}
		default:
			return declined
		}
		a.cost += resultNodes
		return result(a)
	}
}

// nodes counts the nodes of an expression.
func nodes(e celast.Expr) int {
	n := 0
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(celast.Expr) { n++ }))
	return n
}

// qualifier is one step of an attribute: a field name (a select or a
// constant string index), optional or not.
type qualifier struct {
	key ref.Val // a types.String, boxed once: Find takes an interface
	opt bool
}

// attribute compiles a chain of selections, optional selections and
// constant string indexes over a variable or any other expression, as the
// interpreter does: once an optional step appears, every later step is
// optional too, and a present value comes out wrapped in an optional.
func (nc *nativeCompiler) attribute(e celast.Expr) native {
	var quals []qualifier // outermost first while collecting
	test := false
	for first := true; ; first = false {
		switch e.Kind() {
		case celast.SelectKind:
			if _, isRef := nc.ast.ReferenceMap()[e.ID()]; isRef {
				return nil // a qualified identifier or enum: not used by policies
			}
			sel := e.AsSelect()
			if sel.IsTestOnly() {
				if !first {
					return nil
				}
				test = true
			}
			quals = append(quals, qualifier{key: types.String(sel.FieldName())})
			e = sel.Operand()
			continue
		case celast.CallKind:
			call := e.AsCall()
			fn := call.FunctionName()
			if s, ok := constantKey(e); ok && (fn == operators.OptSelect || fn == operators.Index) {
				quals = append(quals, qualifier{key: s, opt: fn == operators.OptSelect})
				e = call.Args()[0]
				continue
			}
		}
		break
	}
	root := nc.root(e)
	if root == nil {
		return nil
	}
	if len(quals) == 0 {
		return root
	}
	// Innermost first.
	for i, j := 0, len(quals)-1; i < j; i, j = i+1, j-1 {
		quals[i], quals[j] = quals[j], quals[i]
	}
	if test {
		for _, q := range quals {
			if q.opt {
				return nil // has() over an optional chain
			}
		}
		if nc.isArgs(e) {
			return argsPresence(quals)
		}
		return presence(root, quals)
	}
	if nc.isArgs(e) {
		return argsAttribute(quals, nc.metered)
	}
	if nc.metered {
		return func(a *activation) ref.Val {
			a.cost += len(quals)
			return qualify(root(a), quals)
		}
	}
	return func(a *activation) ref.Val { return qualify(root(a), quals) }
}

// root compiles what an attribute's steps apply to: a comprehension
// variable, a variable of the environment, or any other expression.
func (nc *nativeCompiler) root(e celast.Expr) native {
	if e.Kind() != celast.IdentKind {
		return nc.compile(e)
	}
	name := e.AsIdent()
	if slot, ok := nc.local(name); ok {
		return func(a *activation) ref.Val { return a.locals[slot] }
	}
	r, ok := nc.ast.ReferenceMap()[e.ID()]
	if !ok || r.Value != nil || !isVariable(r.Name) || r.Name != name {
		return nil
	}
	return func(a *activation) ref.Val { return a.value(name) }
}

// qualify applies quals to v as the interpreter's attribute resolution
// does.
func qualify(v ref.Val, quals []qualifier) ref.Val {
	if types.IsError(v) {
		return v
	}
	isOpt := false
	if o, ok := v.(*types.Optional); ok {
		if !o.HasValue() {
			return o
		}
		v, isOpt = o.GetValue(), true
	}
	return qualifySteps(v, quals, isOpt)
}

// qualifySteps applies quals to v, already unwrapped; isOpt says whether an
// optional step came before.
func qualifySteps(v ref.Val, quals []qualifier, isOpt bool) ref.Val {
	for _, q := range quals {
		isOpt = isOpt || q.opt
		m, ok := v.(traits.Mapper)
		if !ok {
			return declined
		}
		got, found := m.Find(q.key)
		if !found {
			if isOpt {
				return types.OptionalNone
			}
			return types.NewErr("no such key: %v", q.key)
		}
		if types.IsError(got) {
			return declined
		}
		v = got
	}
	if isOpt {
		return types.OptionalOf(v)
	}
	return v
}

// presence is has(x.a.b): every step but the last must be there; the last
// is tested.
func presence(root native, quals []qualifier) native {
	prefix, last := quals[:len(quals)-1], quals[len(quals)-1]
	return func(a *activation) ref.Val { return hasMember(qualify(root(a), prefix), last.key) }
}

// hasMember is the last step of has(): whether the map v has key.
func hasMember(v, key ref.Val) ref.Val {
	if types.IsError(v) {
		return v
	}
	m, ok := v.(traits.Mapper)
	if !ok {
		return declined
	}
	got, found := m.Find(key)
	if types.IsError(got) {
		return declined
	}
	return types.Bool(found)
}

// isArgs reports whether e is the variable args (not a comprehension
// variable of that name), whose members are read from the decoded
// arguments without building their CEL map.
func (nc *nativeCompiler) isArgs(e celast.Expr) bool {
	if e.Kind() != celast.IdentKind || e.AsIdent() != expr.Args {
		return false
	}
	if _, local := nc.local(expr.Args); local {
		return false
	}
	r, ok := nc.ast.ReferenceMap()[e.ID()]
	return ok && r.Value == nil && r.Name == expr.Args
}

// argsMember looks up a member of the call's arguments as a step of an
// attribute does: v is the member; done is set, with v the result, when the
// attribute ends here (an error, or an optional step that found nothing).
func argsMember(a *activation, q qualifier) (v ref.Val, done bool) {
	o, err := a.argsObject()
	if err != nil {
		return err, true
	}
	v, found := o.get(string(q.key.(types.String)))
	if !found {
		if q.opt {
			return types.OptionalNone, true
		}
		return types.NewErr("no such key: %v", q.key), true
	}
	return v, false
}

// argsAttribute is args.a.b..., plain or optional.
func argsAttribute(quals []qualifier, metered bool) native {
	return func(a *activation) ref.Val {
		if metered {
			a.cost += len(quals)
		}
		v, done := argsMember(a, quals[0])
		if done {
			return v
		}
		return qualifySteps(v, quals[1:], quals[0].opt)
	}
}

// argsPresence is has(args.a...).
func argsPresence(quals []qualifier) native {
	if len(quals) == 1 {
		key := string(quals[0].key.(types.String))
		return func(a *activation) ref.Val {
			o, err := a.argsObject()
			if err != nil {
				return err
			}
			_, found := o.get(key)
			return types.Bool(found)
		}
	}
	inner := argsAttribute(quals[:len(quals)-1], false)
	last := quals[len(quals)-1]
	return func(a *activation) ref.Val { return hasMember(inner(a), last.key) }
}

// constantKey returns the key of x.?name, x[?"name"] or x["name"].
func constantKey(e celast.Expr) (types.String, bool) {
	if e.Kind() != celast.CallKind {
		return "", false
	}
	call := e.AsCall()
	if call.IsMemberFunction() || len(call.Args()) != 2 || call.Args()[1].Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := call.Args()[1].AsLiteral().(types.String)
	return s, ok
}

// index is x[k] with k computed or not a string: a map's member by a
// string, or a list's element by an int. Anything else (an optional, keys
// of other types, which CEL converts between numeric kinds) is left to
// the interpreter.
func (nc *nativeCompiler) index(x, k celast.Expr) native {
	operand, key := nc.compile(x), nc.compile(k)
	if operand == nil || key == nil {
		return nil
	}
	return func(a *activation) ref.Val {
		v := operand(a)
		if types.IsError(v) {
			return v
		}
		kv := key(a)
		if types.IsError(kv) {
			return kv
		}
		switch c := v.(type) {
		case traits.Mapper:
			ks, ok := kv.(types.String)
			if !ok {
				return declined
			}
			got, found := c.Find(ks)
			switch {
			case types.IsError(got):
				return declined
			case !found:
				return types.NewErr("no such key: %v", ks)
			}
			return got
		case traits.Lister:
			i, ok := kv.(types.Int)
			n, ok2 := c.Size().(types.Int)
			if !ok || !ok2 {
				return declined
			}
			if i < 0 || i >= n {
				return types.NewErr("index out of bounds: %d", i)
			}
			return c.Get(i)
		}
		return declined
	}
}

// isVariable reports whether name is one of the environment's variables.
func isVariable(name string) bool {
	switch name {
	case expr.Principal, expr.Client, expr.Server, expr.Tool, expr.Args,
		expr.Resource, expr.Prompt, expr.Time, expr.Request:
		return true
	}
	return false
}

// list compiles a list literal without optional elements. A list of
// constants is built once.
func (nc *nativeCompiler) list(e celast.Expr) native {
	l := e.AsList()
	if len(l.OptionalIndices()) > 0 {
		return nil
	}
	elems := make([]native, len(l.Elements()))
	constant := true
	for i, el := range l.Elements() {
		if elems[i] = nc.compile(el); elems[i] == nil {
			return nil
		}
		constant = constant && el.Kind() == celast.LiteralKind
	}
	build := func(a *activation) ref.Val {
		vals := make([]ref.Val, len(elems))
		for i, el := range elems {
			v := el(a)
			if types.IsError(v) {
				return v
			}
			vals[i] = v
		}
		return types.NewRefValList(adapter, vals)
	}
	if constant {
		v := build(nil)
		return func(*activation) ref.Val { return v }
	}
	return build
}

func (nc *nativeCompiler) call(e celast.Expr) native {
	call := e.AsCall()
	fn := call.FunctionName()
	var argExprs []celast.Expr
	if call.IsMemberFunction() {
		argExprs = append(argExprs, call.Target())
	}
	argExprs = append(argExprs, call.Args()...)
	switch fn {
	case operators.OptSelect, operators.Index:
		if _, ok := constantKey(e); ok {
			return nc.attribute(e)
		}
		if fn == operators.OptSelect || len(argExprs) != 2 {
			return nil
		}
		return nc.index(argExprs[0], argExprs[1])
	case operators.OptIndex:
		return nil
	}
	args := make([]native, len(argExprs))
	for i, ae := range argExprs {
		if args[i] = nc.compile(ae); args[i] == nil {
			return nil
		}
	}
	switch fn {
	case operators.LogicalAnd:
		return logical(args, types.False, types.True)
	case operators.LogicalOr:
		return logical(args, types.True, types.False)
	case operators.Conditional:
		if len(args) != 3 {
			return nil
		}
		return conditional(args[0], args[1], args[2])
	case operators.Equals, operators.NotEquals:
		if len(args) != 2 {
			return nil
		}
		return equality(args[0], args[1], fn == operators.NotEquals, nc.metered)
	}
	// or and orValue on optionals short-circuit: cel-go's optional library
	// replaces their calls with its own evaluation, mirrored here.
	ids := nc.ast.GetOverloadIDs(e.ID())
	if overload, ok := optionalOverloads[fn]; ok && len(args) == 2 && call.IsMemberFunction() &&
		(len(ids) != 1 || ids[0] == overload) {
		return nc.optionalOr(call.Target(), args[0], args[1], fn == "orValue")
	}
	// Any other function, resolved as the interpreter's planner does: by
	// its overload id when the checker narrowed it to one, else by name.
	var impl *functions.Overload
	if len(ids) == 1 {
		impl, _ = nc.disp.FindOverload(ids[0])
	}
	if impl == nil {
		impl, _ = nc.disp.FindOverload(fn)
	}
	if impl == nil || impl.Async != nil || impl.LateBound {
		return nil
	}
	if fn == operators.In && !nc.metered {
		if set := stringSet(argExprs[1]); set != nil {
			return inStrings(args[0], set, strictCall(impl, args, false, false))
		}
	}
	call2 := strictCall(impl, args, nc.metered, !linear[fn])
	if fast := fastBinary[fn]; fast != nil && !nc.metered && len(args) == 2 && call2 != nil {
		return withFast(args[0], args[1], fast, call2)
	}
	return call2
}

// fastBinary are direct implementations of the functions policies use
// most, for the argument types they are used with: they answer ok false
// for other types, which the function's own implementation then takes.
var fastBinary = map[string]func(l, r ref.Val) (ref.Val, bool){
	"contains":              stringOp(strings.Contains),
	"startsWith":            stringOp(strings.HasPrefix),
	"endsWith":              stringOp(strings.HasSuffix),
	operators.Less:          intOp(func(l, r types.Int) bool { return l < r }),
	operators.LessEquals:    intOp(func(l, r types.Int) bool { return l <= r }),
	operators.Greater:       intOp(func(l, r types.Int) bool { return l > r }),
	operators.GreaterEquals: intOp(func(l, r types.Int) bool { return l >= r }),
}

func stringOp(f func(s, t string) bool) func(l, r ref.Val) (ref.Val, bool) {
	return func(l, r ref.Val) (ref.Val, bool) {
		ls, ok := l.(types.String)
		rs, ok2 := r.(types.String)
		if !ok || !ok2 {
			return nil, false
		}
		return types.Bool(f(string(ls), string(rs))), true
	}
}

func intOp(f func(l, r types.Int) bool) func(l, r ref.Val) (ref.Val, bool) {
	return func(l, r ref.Val) (ref.Val, bool) {
		li, ok := l.(types.Int)
		ri, ok2 := r.(types.Int)
		if !ok || !ok2 {
			return nil, false
		}
		return types.Bool(f(li, ri)), true
	}
}

// withFast evaluates both arguments and answers with fast when it can,
// else with the general call, which evaluates them again (they are pure).
func withFast(lhs, rhs native, fast func(l, r ref.Val) (ref.Val, bool), general native) native {
	return func(a *activation) ref.Val {
		l := lhs(a)
		if _, ok := l.(*types.Err); !ok {
			if v, ok := fast(l, rhs(a)); ok {
				return v
			}
		}
		return general(a)
	}
}

// stringSet returns the members of a list literal of strings, or nil.
func stringSet(e celast.Expr) map[types.String]bool {
	if e.Kind() != celast.ListKind || len(e.AsList().OptionalIndices()) > 0 || len(e.AsList().Elements()) == 0 {
		return nil
	}
	set := map[types.String]bool{}
	for _, el := range e.AsList().Elements() {
		if el.Kind() != celast.LiteralKind {
			return nil
		}
		s, ok := el.AsLiteral().(types.String)
		if !ok {
			return nil
		}
		set[s] = true
	}
	return set
}

// inStrings is x in ["a", "b", ...]: a look-up when x is a string (no
// other string equals one of them), else the general call.
func inStrings(x native, set map[types.String]bool, general native) native {
	return func(a *activation) ref.Val {
		if s, ok := x(a).(types.String); ok {
			return types.Bool(set[s])
		}
		return general(a)
	}
}

// optionalOverloads are the functions on optionals that cel-go evaluates
// itself, with the only overload of each.
var optionalOverloads = map[string]string{"or": "optional_or_optional", "orValue": "optional_orValue_value"}

// optionalOr is opt.or(other) (orValue false) or opt.orValue(default): an
// error on the left is the result; an optional with a value gives it (or its
// value) without evaluating the right; an empty one gives the right.
//
// The usual way of reading an argument that may be absent,
// args.?name.orValue(default), is done without building the optional: when
// the operand is a map, the result is its member or the default.
func (nc *nativeCompiler) optionalOr(target celast.Expr, lhs, rhs native, value bool) native {
	general := func(a *activation) ref.Val {
		switch v := lhs(a).(type) {
		case *types.Err:
			return v
		case *types.Optional:
			if !v.HasValue() {
				return rhs(a)
			}
			if value {
				return v.GetValue()
			}
			return v
		}
		return types.NoSuchOverloadErr()
	}
	if !value || target.Kind() != celast.CallKind {
		return general
	}
	tc := target.AsCall()
	if tc.FunctionName() != operators.OptSelect || tc.IsMemberFunction() || len(tc.Args()) != 2 ||
		tc.Args()[1].Kind() != celast.LiteralKind {
		return general
	}
	var key ref.Val = tc.Args()[1].AsLiteral()
	ks, ok := key.(types.String)
	if ok && nc.isArgs(tc.Args()[0]) {
		name := string(ks)
		return func(a *activation) ref.Val {
			o, err := a.argsObject()
			if err != nil {
				return err
			}
			if v, found := o.get(name); found {
				return v
			}
			return rhs(a)
		}
	}
	operand := nc.compile(tc.Args()[0])
	if !ok || operand == nil {
		return general
	}
	return func(a *activation) ref.Val {
		m, ok := operand(a).(traits.Mapper)
		if !ok {
			return general(a)
		}
		got, found := m.Find(key)
		switch {
		case types.IsError(got):
			return declined
		case found:
			return got
		}
		return rhs(a)
	}
}

// size is the size of a value for metering: the bytes of a string, the
// elements of a list or map, else 1.
func size(v ref.Val) int {
	switch x := v.(type) {
	case types.String:
		return len(x)
	case types.Bytes:
		return len(x)
	case traits.Sizer:
		if n, ok := x.Size().(types.Int); ok {
			return int(n)
		}
	}
	return 1
}

// linear are the functions whose cost CEL charges at most linearly in the
// sizes of their arguments (a tenth of a string's length, a list's size,
// or a constant); the meter charges them one plus the sum of the sizes.
// Any other function (contains and matches, whose costs are products, and
// the extensions' functions) is charged the product of one plus each size.
var linear = map[string]bool{
	operators.Less: true, operators.LessEquals: true, operators.Greater: true, operators.GreaterEquals: true,
	operators.Equals: true, operators.NotEquals: true, operators.In: true, operators.LogicalNot: true,
	operators.NotStrictlyFalse: true, operators.Add: true, operators.Subtract: true, operators.Multiply: true,
	operators.Divide: true, operators.Modulo: true, operators.Negate: true,
	"size": true, "startsWith": true, "endsWith": true, "lowerAscii": true, "upperAscii": true, "trim": true,
	"int": true, "uint": true, "double": true, "string": true, "bool": true,
	"hasValue": true, "value": true,
	"getFullYear": true, "getMonth": true, "getDayOfYear": true, "getDayOfMonth": true, "getDate": true,
	"getDayOfWeek": true, "getHours": true, "getMinutes": true, "getSeconds": true, "getMilliseconds": true,
}

// charge adds to a metered cost one plus the sum of the sizes of the
// values, or the product of one plus each size (see [linear]), saturating
// well above any budget.
func charge(a *activation, product bool, vals ...ref.Val) {
	c := 1
	for _, v := range vals {
		if product {
			c *= 1 + size(v)
		} else {
			c += size(v)
		}
		if c > 1<<40 {
			c = 1 << 40
		}
	}
	a.cost += c
}

// strictCall calls a function implementation the way the interpreter's
// evalUnary, evalBinary and evalVarArgs do.
func strictCall(impl *functions.Overload, args []native, metered, product bool) native {
	strict := !impl.NonStrict
	trait := impl.OperandTrait
	traitOK := func(v ref.Val) bool {
		return trait == 0 || (!strict && types.IsUnknownOrError(v)) || v.Type().HasTrait(trait)
	}
	switch {
	case len(args) == 1 && (impl.Unary != nil || impl.Function == nil):
		if impl.Unary == nil {
			return nil
		}
		arg, f := args[0], impl.Unary
		return func(a *activation) ref.Val {
			v := arg(a)
			if v == declined {
				return declined
			}
			if strict && types.IsError(v) {
				return v
			}
			if !traitOK(v) {
				return declined
			}
			if metered {
				charge(a, product, v)
			}
			return f(v)
		}
	case len(args) == 2 && (impl.Binary != nil || impl.Function == nil):
		if impl.Binary == nil {
			return nil
		}
		lhs, rhs, f := args[0], args[1], impl.Binary
		return func(a *activation) ref.Val {
			l := lhs(a)
			if l == declined {
				return declined
			}
			if strict && types.IsError(l) {
				return l
			}
			r := rhs(a)
			if r == declined {
				return declined
			}
			if strict && types.IsError(r) {
				return r
			}
			if !traitOK(l) {
				return declined
			}
			if metered {
				charge(a, product, l, r)
			}
			return f(l, r)
		}
	case len(args) > 0 && impl.Function != nil:
		f := impl.Function
		return func(a *activation) ref.Val {
			vals := make([]ref.Val, len(args))
			for i, arg := range args {
				v := arg(a)
				if v == declined {
					return declined
				}
				if strict && types.IsError(v) {
					return v
				}
				vals[i] = v
			}
			if !traitOK(vals[0]) {
				return declined
			}
			if metered {
				charge(a, product, vals...)
			}
			return f(vals...)
		}
	}
	return nil
}

// logical is && (stop False, otherwise True) or || (stop True, otherwise
// False): the first term equal to stop decides, whatever the others are;
// otherwise an error (or a term that is not a bool) is the result, and a
// declined term declines.
func logical(terms []native, stop, otherwise types.Bool) native {
	return func(a *activation) ref.Val {
		var err ref.Val
		for _, t := range terms {
			v := t(a)
			b, ok := v.(types.Bool)
			if ok && b == stop {
				return stop
			}
			if !ok && err != declined {
				if v == declined {
					err = declined
				} else if err == nil {
					err = v
				}
			}
		}
		switch {
		case err == declined:
			return declined
		case err == nil:
			return otherwise
		case types.IsError(err):
			return err
		}
		return types.MaybeNoSuchOverloadErr(err)
	}
}

// conditional is c ? t : f.
func conditional(c, t, f native) native {
	return func(a *activation) ref.Val {
		switch v := c(a).(type) {
		case types.Bool:
			if v {
				return t(a)
			}
			return f(a)
		case *types.Err:
			return v
		}
		return declined
	}
}

// equality is == (or != when negate), as the interpreter's evalEq and
// evalNe: an error on the left is the result without evaluating the right.
func equality(lhs, rhs native, negate, metered bool) native {
	return func(a *activation) ref.Val {
		l := lhs(a)
		if types.IsError(l) {
			return l
		}
		r := rhs(a)
		if types.IsError(r) {
			return r
		}
		if metered {
			charge(a, false, l, r)
		}
		eq := types.Equal(l, r)
		if negate {
			return types.Bool(eq != types.True)
		}
		return eq
	}
}
