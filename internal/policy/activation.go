package policy

import (
	"bytes"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
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

	principal, client, request, tool, args, resource, prompt ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName returns the value of a variable.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case expr.Principal:
		if a.principal == nil {
			a.principal = a.e.principals.get(a.c.Principal)
		}
		return a.principal, true
	case expr.Client:
		if a.client == nil {
			a.client = strMap("name", a.c.Client.Name, "version", a.c.Client.Version)
		}
		return a.client, true
	case expr.Server:
		return types.String(a.c.Server), true
	case expr.Tool:
		if a.tool == nil {
			a.tool = a.toolValue()
		}
		return a.tool, true
	case expr.Args:
		if a.args == nil {
			a.args = argsValue(a.c, a.k)
		}
		return a.args, true
	case expr.Resource:
		if a.resource == nil {
			uri := ""
			if a.k == kindResource {
				uri = a.name
			}
			a.resource = strMap("uri", uri)
		}
		return a.resource, true
	case expr.Prompt:
		if a.prompt == nil {
			n := ""
			if a.k == kindPrompt {
				n = a.name
			}
			a.prompt = strMap("name", n)
		}
		return a.prompt, true
	case expr.Time:
		return types.Timestamp{Time: a.now}, true
	case expr.Request:
		if a.request == nil {
			h := a.c.Transport.Headers
			if h == nil {
				h = map[string]string{}
			}
			a.request = types.NewRefValMap(adapter, map[ref.Val]ref.Val{
				types.String("method"):      types.String(a.c.Method),
				types.String("direction"):   types.String(a.c.Direction.String()),
				types.String("transport"):   types.String(a.c.Transport.Kind),
				types.String("remote_addr"): types.String(a.c.Transport.RemoteAddr),
				types.String("headers"):     types.NewStringStringMap(adapter, h),
				types.String("profile"):     types.String(a.c.Profile),
			})
		}
		return a.request, true
	}
	return nil, false
}

// Parent returns nil: an activation stands alone.
func (a *activation) Parent() interpreter.Activation { return nil }

// strMap builds a map of string members from key, value pairs.
func strMap(kv ...string) ref.Val {
	m := make(map[ref.Val]ref.Val, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[types.String(kv[i])] = types.String(kv[i+1])
	}
	return types.NewRefValMap(adapter, m)
}

// anonymous is the principal variable of a call nobody authenticated.
var anonymous = principalValue(nil)

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
	return types.NewRefValMap(adapter, map[ref.Val]ref.Val{
		types.String("issuer"):        types.String(v.Issuer),
		types.String("subject"):       types.String(v.Subject),
		types.String("name"):          types.String(v.Name),
		types.String("groups"):        types.NewStringList(adapter, groups),
		types.String("scopes"):        types.NewStringList(adapter, scopes),
		types.String("client_id"):     types.String(v.ClientID),
		types.String("attributes"):    types.NewStringStringMap(adapter, attrs),
		types.String("authenticated"): types.Bool(authenticated),
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
	return toolValue(name, "", types.NewRefValMap(adapter, map[ref.Val]ref.Val{}), types.NewRefValMap(adapter, map[ref.Val]ref.Val{}))
}

func toolValue(name, description string, annotations, schema ref.Val) ref.Val {
	return types.NewRefValMap(adapter, map[ref.Val]ref.Val{
		types.String("name"):         types.String(name),
		types.String("description"):  types.String(description),
		types.String("annotations"):  annotations,
		types.String("input_schema"): schema,
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
		return types.NewRefValMap(adapter, map[ref.Val]ref.Val{})
	}
	return toolValue(name, desc, member("annotations"), member("inputSchema"))
}

// weakCache keeps a value derived from each *K the gateway hands out (a
// tool definition, a session's principal), keyed by the pointer, for as
// long as the pointer is in use.
type weakCache[K any] struct {
	m     sync.Map // weak.Pointer[K] -> ref.Val
	build func(*K) ref.Val
}

func (wc *weakCache[K]) get(p *K) ref.Val {
	k := weak.Make(p)
	if v, ok := wc.m.Load(k); ok {
		return v.(ref.Val)
	}
	v := wc.build(p)
	if _, loaded := wc.m.LoadOrStore(k, v); !loaded {
		runtime.AddCleanup(p, func(k weak.Pointer[K]) { wc.m.Delete(k) }, k)
	}
	return v
}

// toolCache caches the tool variable per definition: the gateway hands
// guards the same *guard.Tool until the server's tool list changes.
type toolCache struct{ weakCache[guard.Tool] }

// principalCache caches the principal variable per principal: a session
// keeps one *guard.Principal for all its calls. A principal is not changed
// once it is on a call.
type principalCache struct{ weakCache[guard.Principal] }

func (pc *principalCache) get(p *guard.Principal) ref.Val {
	if p == nil {
		return anonymous
	}
	return pc.weakCache.get(p)
}

var errArgsNotObject = errors.New("arguments are not a JSON object")

var emptyArgs = types.NewRefValMap(adapter, map[ref.Val]ref.Val{})

// argsValue decodes the arguments of a tools/call or prompts/get; other
// calls have none. Arguments that cannot be decoded make every condition
// that reads them fail (which denies the call if a deny rule reads them).
func argsValue(c *guard.Call, k kind) ref.Val {
	if k != kindTool && k != kindPrompt {
		return emptyArgs
	}
	v, ok, err := mcp.Lookup(c.Params, "arguments")
	switch {
	case err != nil:
		return types.WrapErr(err)
	case !ok || v.Kind() == 'n':
		return emptyArgs
	case v.Kind() != '{':
		return types.WrapErr(errArgsNotObject)
	}
	m, err := decodeJSON(v)
	if err != nil {
		return types.WrapErr(err)
	}
	return m
}

// maxDepth bounds the nesting of decoded arguments; the gateway bounds
// messages more tightly before they get here.
const maxDepth = 256

var (
	errTooDeep      = errors.New("arguments nested too deeply")
	errDuplicateKey = errors.New("duplicate member name")
	errCaseVariant  = errors.New("member names that differ only by case")
)

// caseVariants reports whether two member names of m differ only by case
// ("path" and "PATH", or "paſs" and "pass"). A condition reads one of them,
// while a server that matches names case-insensitively (Go's encoding/json
// does) may read the other: such arguments make conditions that read them
// fail rather than judge a value the server might not use.
func caseVariants(m map[ref.Val]ref.Val) bool {
	if len(m) <= 8 {
		var keys [8]string
		n := 0
		for k := range m {
			ks := string(k.(types.String))
			for _, prev := range keys[:n] {
				if strings.EqualFold(ks, prev) {
					return true
				}
			}
			keys[n] = ks
			n++
		}
		return false
	}
	seen := make(map[string]struct{}, len(m))
	for k := range m {
		f := strings.ToLower(strings.ToUpper(string(k.(types.String))))
		if _, dup := seen[f]; dup {
			return true
		}
		seen[f] = struct{}{}
	}
	return false
}

// decodeJSON decodes a JSON value into CEL values: maps, lists, strings,
// booleans, null, int (integers that fit in 64 bits) and double (other
// numbers). Duplicate member names and invalid UTF-8 are errors, so a
// condition never sees a different value from the one the server will read.
func decodeJSON(v jsontext.Value) (ref.Val, error) {
	d := decoders.Get().(*pooledDecoder)
	d.r.Reset(v)
	d.dec.Reset(&d.r)
	out, err := decodeValue(&d.dec, 0)
	d.r.Reset(nil)
	d.dec.Reset(&d.r)
	decoders.Put(d)
	return out, err
}

// pooledDecoder is a decoder kept between calls: setting one up costs more
// than decoding the arguments of a typical call.
type pooledDecoder struct {
	r   bytes.Reader
	dec jsontext.Decoder
}

var decoders = sync.Pool{New: func() any { return new(pooledDecoder) }}

func decodeValue(dec *jsontext.Decoder, depth int) (ref.Val, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return types.NullValue, nil
	case 't', 'f':
		return types.Bool(tok.Bool()), nil
	case '"':
		return types.String(tok.String()), nil
	case '0':
		raw := tok.String()
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return types.Int(i), nil
		}
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return types.Double(f), nil // out of range: ±Inf, which compares as expected
	case '{':
		m := map[ref.Val]ref.Val{}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			k := types.String(tok.String()) // before the next read voids tok
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, errDuplicateKey
			}
			m[k] = v
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		if len(m) > 1 && caseVariants(m) {
			return nil, errCaseVariant
		}
		return types.NewRefValMap(adapter, m), nil
	case '[':
		l := []ref.Val{}
		for dec.PeekKind() != ']' {
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return types.NewRefValList(adapter, l), nil
	}
	return nil, errors.New("unexpected JSON token")
}
