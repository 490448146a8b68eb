package policy

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy/expr"
)

// adapter builds CEL values. Variables are handed to CEL as ready-made
// CEL values, not Go maps, so that a condition reading principal.groups
// in each of a hundred rules does not convert the principal a hundred
// times.
var adapter = types.DefaultTypeAdapter

// activation gives a condition the variables of one call. Each variable is
// built the first time a condition reads it and kept for the other rules of
// the same decision, so a policy whose conditions only look at the
// principal never decodes the arguments.
type activation struct {
	e    *Engine
	c    *guard.Call
	k    kind
	name string
	// toolRaw is the tool definition of a tools/list item being filtered;
	// for a call the definition comes from c.Tool.
	toolRaw jsontext.Value
	now     time.Time

	pe                                      *principalEntry
	client, request, tool, resource, prompt ref.Val
	argsObj                                 *object
	argsErr                                 ref.Val

	// For the native evaluator: the variables of the comprehensions being
	// evaluated, and the metered cost of a condition (see compileNative).
	locals [maxLocals]ref.Val
	cost   int
}

// principalEntry returns the cached entry of the call's principal.
func (a *activation) principalEntry() *principalEntry {
	if a.pe == nil {
		a.pe = a.e.principals.get(a.c.Principal)
	}
	return a.pe
}

// ruledOut reports whether r's condition is false for the call's principal
// whatever the rest of the call is, learning it on first use.
func (a *activation) ruledOut(r *rule) bool {
	pe := a.principalEntry()
	switch pe.ruledOut[r.index].Load() {
	case 1:
		return true
	case 2:
		return false
	}
	out := false
	for _, f := range r.principalOnly {
		if f(a) == types.False {
			out = true
			break
		}
	}
	state := uint32(2)
	if out {
		state = 1
	}
	pe.ruledOut[r.index].Store(state)
	return out
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName returns the value of a variable.
func (a *activation) ResolveName(name string) (any, bool) {
	if v := a.value(name); v != nil {
		return v, true
	}
	return nil, false
}

// value returns the value of a variable, or nil for a name that is not
// one.
func (a *activation) value(name string) ref.Val {
	switch name {
	case expr.Principal:
		return a.principalEntry().val
	case expr.Client:
		if a.client == nil {
			a.client = strMap("name", a.c.Client.Name, "version", a.c.Client.Version)
		}
		return a.client
	case expr.Server:
		return types.String(a.c.Server)
	case expr.Tool:
		if a.tool == nil {
			a.tool = a.toolValue()
		}
		return a.tool
	case expr.Args:
		o, err := a.argsObject()
		if err != nil {
			return err
		}
		return o.value()
	case expr.Resource:
		if a.resource == nil {
			uri := ""
			if a.k == kindResource {
				uri = a.name
			}
			a.resource = strMap("uri", uri)
		}
		return a.resource
	case expr.Prompt:
		if a.prompt == nil {
			n := ""
			if a.k == kindPrompt {
				n = a.name
			}
			a.prompt = strMap("name", n)
		}
		return a.prompt
	case expr.Time:
		return types.Timestamp{Time: a.now}
	case expr.Request:
		if a.request == nil {
			h := a.c.Transport.Headers
			if h == nil {
				h = map[string]string{}
			}
			a.request = newMap(map[string]ref.Val{
				"method":      types.String(a.c.Method),
				"direction":   types.String(a.c.Direction.String()),
				"transport":   types.String(a.c.Transport.Kind),
				"remote_addr": types.String(a.c.Transport.RemoteAddr),
				"headers":     types.NewStringStringMap(adapter, h),
				"profile":     types.String(a.c.Profile),
			})
		}
		return a.request
	}
	return nil
}

// Parent returns nil: an activation stands alone.
func (a *activation) Parent() interpreter.Activation { return nil }

// strMap builds a map of string members from key, value pairs.
func strMap(kv ...string) ref.Val {
	m := make(map[string]ref.Val, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = types.String(kv[i+1])
	}
	return newMap(m)
}

// newMap makes a CEL map of m. Maps keyed by Go strings are looked up
// without hashing an interface, and their values are CEL values already,
// so reading a member allocates nothing.
func newMap(m map[string]ref.Val) ref.Val { return types.NewMap(adapter, m) }

// stringMap converts a map of strings once, so that the conditions reading
// it do not convert each member they read.
func stringMap(m map[string]string) ref.Val {
	out := make(map[string]ref.Val, len(m))
	for k, v := range m {
		out[k] = types.String(v)
	}
	return newMap(out)
}

func principalValue(p *guard.Principal) ref.Val {
	var v guard.Principal
	authenticated := p != nil
	if p != nil {
		v = *p
	}
	groups, scopes, attrs := v.Groups, v.Scopes, v.Attributes
	if groups == nil {
		groups = []string{}
	}
	if scopes == nil {
		scopes = []string{}
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	return newMap(map[string]ref.Val{
		"issuer":        types.String(v.Issuer),
		"subject":       types.String(v.Subject),
		"name":          types.String(v.Name),
		"groups":        types.NewStringList(adapter, groups),
		"scopes":        types.NewStringList(adapter, scopes),
		"client_id":     types.String(v.ClientID),
		"attributes":    stringMap(attrs),
		"authenticated": types.Bool(authenticated),
	})
}

func (a *activation) toolValue() ref.Val {
	if a.k != kindTool {
		return emptyTool("")
	}
	if a.toolRaw != nil {
		return parseTool(a.name, a.toolRaw)
	}
	if t := a.c.Tool; t != nil && t.Name == a.name {
		return a.e.tools.get(t)
	}
	return emptyTool(a.name)
}

func emptyTool(name string) ref.Val {
	return toolValue(name, "", newMap(map[string]ref.Val{}), newMap(map[string]ref.Val{}))
}

func toolValue(name, description string, annotations, schema ref.Val) ref.Val {
	return newMap(map[string]ref.Val{
		"name":         types.String(name),
		"description":  types.String(description),
		"annotations":  annotations,
		"input_schema": schema,
	})
}

// parseTool builds the tool variable from a tool definition. Members that
// are missing or of the wrong type are left empty rather than failing: a
// condition on a malformed definition sees no annotations.
func parseTool(name string, raw jsontext.Value) ref.Val {
	if raw.Kind() != '{' {
		return emptyTool(name)
	}
	desc, _, _ := mcp.LookupString(raw, "description")
	member := func(key string) ref.Val {
		v, ok, err := mcp.Lookup(raw, key)
		if err == nil && ok && v.Kind() == '{' {
			if m, err := decodeJSON(v); err == nil {
				return m
			}
		}
		return newMap(map[string]ref.Val{})
	}
	return toolValue(name, desc, member("annotations"), member("inputSchema"))
}

// weakCache keeps a value derived from each *K the gateway hands out (a
// tool definition, a session's principal), keyed by the pointer, for as
// long as the pointer is in use.
type weakCache[K, V any] struct {
	m     sync.Map // weak.Pointer[K] -> V
	build func(*K) V
}

func (wc *weakCache[K, V]) get(p *K) V {
	k := weak.Make(p)
	if v, ok := wc.m.Load(k); ok {
		return v.(V)
	}
	v, loaded := wc.m.LoadOrStore(k, wc.build(p))
	if !loaded {
		runtime.AddCleanup(p, func(k weak.Pointer[K]) { wc.m.Delete(k) }, k)
	}
	return v.(V)
}

// toolCache caches the tool variable per definition: the gateway hands
// guards the same *guard.Tool until the server's tool list changes.
type toolCache struct{ weakCache[guard.Tool, ref.Val] }

// principalCache caches, per principal, the principal variable and what
// the rules' conditions on the principal alone decided (see
// [principalEntry]): a session keeps one *guard.Principal for all its
// calls, and a principal is not changed once it is on a call.
type principalCache struct {
	weakCache[guard.Principal, *principalEntry]
	anonymous *principalEntry // for calls nobody authenticated
	// recent holds the entries of the principals seen last, by a hash of
	// their address: one atomic load finds a busy principal, where the
	// weak map takes a weak handle and a hash-trie walk. A slot holds its
	// principal strongly, so at most len(recent) principals outlive their
	// sessions, until another principal takes the slot.
	recent [64]atomic.Pointer[recentPrincipal]
}

type recentPrincipal struct {
	p *guard.Principal
	e *principalEntry
}

func (pc *principalCache) get(p *guard.Principal) *principalEntry {
	if p == nil {
		return pc.anonymous
	}
	slot := &pc.recent[(uintptr(unsafe.Pointer(p))>>4)%uintptr(len(pc.recent))]
	if r := slot.Load(); r != nil && r.p == p {
		return r.e
	}
	e := pc.weakCache.get(p)
	slot.Store(&recentPrincipal{p: p, e: e})
	return e
}

// principalEntry is what a policy knows about one principal.
type principalEntry struct {
	val ref.Val
	// ruledOut remembers, per rule (by index), whether the conjuncts of
	// its condition that read only the principal found it false, which
	// makes the whole condition false for every call of this principal:
	// 0 not known yet, 1 ruled out, 2 not ruled out. Computed on first use,
	// so a principal seen once costs no more than evaluating the rules it
	// meets.
	ruledOut []atomic.Uint32
	// plans keeps, per slice of candidate rules the engine's cache holds
	// (keyed by its first element, which the key keeps alive), the rules
	// among them this principal has not ruled out: a call then touches
	// only the rules that may apply to it. At most maxPlans are kept.
	plans  sync.Map // *int32 -> []*rule
	nplans atomic.Int32
	// recent holds the plans used last, by a hash of their key: one
	// atomic load instead of a hash-trie walk for a principal's usual calls.
	recent [16]atomic.Pointer[recentPlan]
}

type recentPlan struct {
	key   *int32
	rules []*rule
}

// maxPlans bounds the plans kept per principal (one per call shape it
// uses: server, method and name).
const maxPlans = 256

// plan returns the rules among cands that the call's principal has not
// ruled out, in order. cached says whether cands is the candidate cache's
// own slice, which may then key a plan.
func (a *activation) plan(cands []int32, cached bool) []*rule {
	if len(cands) == 0 {
		return nil
	}
	pe := a.principalEntry()
	key := unsafe.SliceData(cands)
	slot := &pe.recent[(uintptr(unsafe.Pointer(key))>>2)%uintptr(len(pe.recent))]
	if cached {
		if r := slot.Load(); r != nil && r.key == key {
			return r.rules
		}
		if v, ok := pe.plans.Load(key); ok {
			slot.Store(&recentPlan{key: key, rules: v.([]*rule)})
			return v.([]*rule)
		}
	}
	out := make([]*rule, 0, len(cands))
	for _, i := range cands {
		r := a.e.rules[i]
		if r.principalOnly != nil && a.ruledOut(r) {
			continue
		}
		out = append(out, r)
	}
	if cached && pe.nplans.Load() < maxPlans {
		if _, loaded := pe.plans.LoadOrStore(key, out); !loaded {
			pe.nplans.Add(1)
		}
		slot.Store(&recentPlan{key: key, rules: out})
	}
	return out
}

func newPrincipalEntry(p *guard.Principal, rules int) *principalEntry {
	return &principalEntry{val: principalValue(p), ruledOut: make([]atomic.Uint32, rules)}
}

var errArgsNotObject = errors.New("arguments are not a JSON object")

// argsObject returns the decoded arguments of a tools/call or prompts/get
// (other calls have none), decoding them on first use; or the error value
// that every condition reading them gets: arguments that cannot be decoded
// make such a condition fail (which denies the call if a deny rule reads
// them).
func (a *activation) argsObject() (*object, ref.Val) {
	if a.argsObj == nil && a.argsErr == nil {
		a.argsObj, a.argsErr = decodeArgs(a.c, a.k)
	}
	return a.argsObj, a.argsErr
}

func decodeArgs(c *guard.Call, k kind) (*object, ref.Val) {
	if k != kindTool && k != kindPrompt {
		return emptyObject, nil
	}
	v, ok, err := mcp.Lookup(c.Params, "arguments")
	switch {
	case err != nil:
		return nil, types.WrapErr(err)
	case !ok || v.Kind() == 'n':
		return emptyObject, nil
	case v.Kind() != '{':
		return nil, types.WrapErr(errArgsNotObject)
	}
	o, err := decodeObject(v)
	if err != nil {
		return nil, types.WrapErr(err)
	}
	return o, nil
}
