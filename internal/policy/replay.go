package policy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
)

// Recorded is a call as an audit log kept it, to be decided again.
type Recorded struct {
	// Call holds what was recorded of the caller, the target and the
	// transport; its Params are not read.
	Call *guard.Call
	// Time is when the call was made: conditions on time see it.
	Time time.Time
	// Args are the call's arguments as recorded; nil when they were not
	// recorded. Strings for which Placeholder says so stand for values that
	// were not kept (keyed tokens, shapes, omissions).
	Args jsontext.Value
	// Placeholder reports whether a recorded string stands for a value
	// that was not recorded, and whether it stands for the rest of the
	// array it is in rather than for one value.
	Placeholder func(s string) (unknown, rest bool)
}

// Replayed is what the policy decides on a recorded call.
type Replayed struct {
	// Decisions are the policy's decisions, as [Engine.Decide] makes them;
	// when not Determined, those it would make were every value that was
	// not recorded to make the conditions that depend on them false.
	Decisions []guard.Decision
	// Determined is false when the decisions depend on values that were
	// not recorded; Unknown then names them ("args.customer",
	// "tool.annotations", ...). Effects is true when at least their
	// effects and modes do not depend on them, only which rule decided.
	Determined, Effects bool
	Unknown             []string
	// Otherwise, when not Determined, are the decisions were those
	// conditions true.
	Otherwise []guard.Decision
}

// notRecordedTool are the members of the tool variable a replay cannot
// see: the audit log keeps a tool's name, not its definition.
var notRecordedTool = []string{"description", "annotations", "input_schema"}

// Replay decides a recorded call again. The decision is exact when it does
// not depend on what the record lacks: conditions are evaluated with every
// value that was not recorded unknown (CEL's partial evaluation), and the
// outcome is determined when it is the same whether the conditions left
// undecided by those values hold or not. A rule's target, the principal,
// the client, the request's headers and the time are always recorded.
func (e *Engine) Replay(r Recorded) Replayed {
	c := r.Call
	k := subjectKind(c.Method)
	if c.Direction == guard.ToClient {
		k = kindOther
	}
	if k == kindResource && !canonicalURI(c.Name) {
		return Replayed{Decisions: e.decide(c, r.Time), Determined: true}
	}
	u := &unknowns{}
	a := &activation{e: e, c: c, k: k, name: c.Name, now: r.Time}
	if k == kindTool {
		m := map[string]ref.Val{"name": types.String(c.Name)}
		for _, f := range notRecordedTool {
			m[f] = u.new("tool." + f)
		}
		a.tool = newMap(m)
	}
	if k == kindTool || k == kindPrompt {
		a.argsObj, a.argsErr = u.args(r)
	}
	var lo, hi outcome
	cands, _ := e.candidates.get(e, c.Server, c.Method, k, c.Name)
	for _, i := range cands {
		rl := e.rules[i]
		v, errored := vYes, false
		if rl.prog != nil {
			out, _, err := rl.prog.Eval(a)
			if err == nil && types.IsUnknown(out) {
				for _, id := range out.(*types.Unknown).IDs() {
					u.used(id)
				}
				hi.add(rl, false)
				continue
			}
			v = toVerdict(out, err)
		}
		switch v {
		case vNo:
			continue
		case vError:
			if rl.effect == guard.Allow {
				if lo.allowErr == nil {
					lo.allowErr, hi.allowErr = rl, rl
				}
				continue
			}
			errored = true
		}
		lo.add(rl, errored)
		hi.add(rl, errored)
	}
	low, high := e.decisions(c, k, &lo), e.decisions(c, k, &hi)
	out := Replayed{Decisions: low, Determined: SameDecisions(low, high), Effects: SameEffects(low, high)}
	if !out.Determined {
		out.Unknown, out.Otherwise = u.names(), high
	}
	return out
}

// SameDecisions reports whether two lists of decisions decide the same:
// the same rules, reasons, effects and modes.
func SameDecisions(a, b []guard.Decision) bool {
	return slices.EqualFunc(a, b, func(x, y guard.Decision) bool {
		return x.Rule == y.Rule && x.Effect == y.Effect && x.Reason == y.Reason && x.Mode == y.Mode
	})
}

// SameEffects reports whether two lists of decisions have the same effects
// in the same modes, whichever rules made them.
func SameEffects(a, b []guard.Decision) bool {
	return slices.EqualFunc(a, b, func(x, y guard.Decision) bool { return x.Effect == y.Effect && x.Mode == y.Mode })
}

// unknowns hands out CEL unknown values, one per value that was not
// recorded, and remembers which of them an outcome depended on.
type unknowns struct {
	paths []string
	hit   []bool
}

func (u *unknowns) new(path string) ref.Val {
	u.paths = append(u.paths, path)
	u.hit = append(u.hit, false)
	return types.NewUnknown(int64(len(u.paths)), nil)
}

func (u *unknowns) used(id int64) {
	if id >= 1 && int(id) <= len(u.hit) {
		u.hit[id-1] = true
	}
}

func (u *unknowns) names() []string {
	var out []string
	for i, p := range u.paths {
		if u.hit[i] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// args decodes recorded arguments, with unknown values in place of what
// was not recorded.
func (u *unknowns) args(r Recorded) (*object, ref.Val) {
	if len(r.Args) == 0 {
		return &object{m: u.new("args")}, nil
	}
	if r.Args.Kind() != '{' {
		if unk, _ := r.placeholder(r.Args); unk {
			return &object{m: u.new("args")}, nil
		}
		if r.Args.Kind() == 'n' {
			return emptyObject, nil
		}
		return nil, types.WrapErr(errArgsNotObject)
	}
	d := json.NewDecoder(bytes.NewReader(r.Args))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, types.WrapErr(err)
	}
	o := &object{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	partial := false
	for _, k := range keys {
		v, p := u.value(r, "args"+selector(k), m[k])
		o.keys = append(o.keys, k)
		o.vals = append(o.vals, v)
		partial = partial || p
	}
	if partial {
		o.m = partialMap{o.value().(traits.Mapper)}
	}
	return o, nil
}

func (r Recorded) placeholder(v jsontext.Value) (unknown, rest bool) {
	if v.Kind() != '"' || r.Placeholder == nil {
		return false, false
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return false, false
	}
	return r.Placeholder(s)
}

// value converts a decoded JSON value, reporting whether it holds an
// unknown value.
func (u *unknowns) value(r Recorded, path string, v any) (ref.Val, bool) {
	switch v := v.(type) {
	case string:
		if r.Placeholder != nil {
			if unk, _ := r.Placeholder(v); unk {
				return u.new(path), true
			}
		}
		return types.String(v), false
	case json.Number:
		n, err := decodeJSON(jsontext.Value(v.String()))
		if err != nil {
			return types.Double(0), false
		}
		return n, false
	case bool:
		return types.Bool(v), false
	case []any:
		l := make([]ref.Val, 0, len(v))
		partial := false
		for i, x := range v {
			if s, ok := x.(string); ok && r.Placeholder != nil {
				if unk, rest := r.Placeholder(s); unk && rest {
					// The array was cut short: neither its size nor its
					// items are known.
					return u.new(path), true
				}
			}
			e, p := u.value(r, path+"["+strconv.Itoa(i)+"]", x)
			l = append(l, e)
			partial = partial || p
		}
		list := types.NewRefValList(adapter, l).(traits.Lister)
		if partial {
			return partialList{list}, true
		}
		return list, false
	case map[string]any:
		m := make(map[string]ref.Val, len(v))
		partial := false
		for k, x := range v {
			e, p := u.value(r, path+selector(k), x)
			m[k] = e
			partial = partial || p
		}
		mp := newMap(m).(traits.Mapper)
		if partial {
			return partialMap{mp}, true
		}
		return mp, false
	}
	return types.NullValue, false
}

// selector is how a condition names a member: .name, or ["name"] when the
// name is not an identifier.
func selector(k string) string {
	if k != "" && strings.IndexFunc(k, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) < 0 && (k[0] < '0' || k[0] > '9') {
		return "." + k
	}
	return "[" + strconv.Quote(k) + "]"
}

// partialList is a list holding unknown values. CEL compares lists, and
// looks for an item in them, by comparing items, and takes an unknown
// comparison for a false one; these answer unknown instead whenever the
// answer could depend on an unknown item.
type partialList struct{ traits.Lister }

func (l partialList) Equal(other ref.Val) ref.Val {
	if o, ok := other.(traits.Lister); !ok || o.Size() != l.Size() {
		return types.False
	}
	return firstUnknown(l.Lister)
}

func (l partialList) Contains(v ref.Val) ref.Val {
	if l.Lister.Contains(v) == types.True {
		return types.True
	}
	return firstUnknown(l.Lister)
}

func (l partialList) Add(other ref.Val) ref.Val {
	if out, ok := l.Lister.Add(other).(traits.Lister); ok {
		return partialList{out}
	}
	return l.Lister.Add(other)
}

// partialMap is a map holding unknown values (its keys are known).
type partialMap struct{ traits.Mapper }

func (m partialMap) Equal(other ref.Val) ref.Val {
	if o, ok := other.(traits.Mapper); !ok || o.Size() != m.Size() {
		return types.False
	}
	return mapUnknown(m.Mapper)
}

// mapUnknown returns the first unknown value in m, in depth.
func mapUnknown(m traits.Mapper) ref.Val {
	it := m.Iterator()
	for it.HasNext() == types.True {
		if u := unknownIn(m.Get(it.Next())); u != nil {
			return u
		}
	}
	return types.False
}

// firstUnknown returns the first unknown value in l, in depth, or false.
func firstUnknown(l traits.Lister) ref.Val {
	it := l.Iterator()
	for it.HasNext() == types.True {
		if u := unknownIn(it.Next()); u != nil {
			return u
		}
	}
	return types.False
}

// unknownIn returns v if it is unknown, else the first unknown value it
// holds, else nil.
func unknownIn(v ref.Val) ref.Val {
	var u ref.Val
	switch v := v.(type) {
	case *types.Unknown:
		return v
	case partialList:
		u = firstUnknown(v.Lister)
	case partialMap:
		u = mapUnknown(v.Mapper)
	default:
		return nil
	}
	if u == types.False {
		return nil
	}
	return u
}
