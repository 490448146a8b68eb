package policy

import (
	"bytes"
	"errors"
	"runtime"
	"strconv"
	"sync"
	"time"
	"weak"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/interpreter"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/policy/expr"
)

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

	principal, client, request, tool, args, resource, prompt any
}

var _ interpreter.Activation = (*activation)(nil)

// ResolveName returns the value of a variable.
func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case expr.Principal:
		if a.principal == nil {
			a.principal = principalValue(a.c.Principal)
		}
		return a.principal, true
	case expr.Client:
		if a.client == nil {
			a.client = map[string]any{"name": a.c.Client.Name, "version": a.c.Client.Version}
		}
		return a.client, true
	case expr.Server:
		return a.c.Server, true
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
			a.resource = map[string]any{"uri": uri}
		}
		return a.resource, true
	case expr.Prompt:
		if a.prompt == nil {
			n := ""
			if a.k == kindPrompt {
				n = a.name
			}
			a.prompt = map[string]any{"name": n}
		}
		return a.prompt, true
	case expr.Time:
		return a.now, true
	case expr.Request:
		if a.request == nil {
			h := a.c.Transport.Headers
			if h == nil {
				h = map[string]string{}
			}
			a.request = map[string]any{
				"method":      a.c.Method,
				"direction":   a.c.Direction.String(),
				"transport":   a.c.Transport.Kind,
				"remote_addr": a.c.Transport.RemoteAddr,
				"headers":     h,
				"profile":     a.c.Profile,
			}
		}
		return a.request, true
	}
	return nil, false
}

// Parent returns nil: an activation stands alone.
func (a *activation) Parent() interpreter.Activation { return nil }

func principalValue(p *guard.Principal) map[string]any {
	if p == nil {
		return map[string]any{
			"subject": "", "name": "", "groups": []string{}, "scopes": []string{},
			"client_id": "", "attributes": map[string]string{}, "authenticated": false,
		}
	}
	groups, scopes, attrs := p.Groups, p.Scopes, p.Attributes
	if groups == nil {
		groups = []string{}
	}
	if scopes == nil {
		scopes = []string{}
	}
	if attrs == nil {
		attrs = map[string]string{}
	}
	return map[string]any{
		"subject": p.Subject, "name": p.Name, "groups": groups, "scopes": scopes,
		"client_id": p.ClientID, "attributes": attrs, "authenticated": true,
	}
}

func (a *activation) toolValue() map[string]any {
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

func emptyTool(name string) map[string]any {
	return map[string]any{"name": name, "description": "", "annotations": map[string]any{}, "input_schema": map[string]any{}}
}

// parseTool builds the tool variable from a tool definition. Members that
// are missing or of the wrong type are left empty rather than failing: a
// condition on a malformed definition sees no annotations.
func parseTool(name string, raw jsontext.Value) map[string]any {
	t := emptyTool(name)
	if raw.Kind() != '{' {
		return t
	}
	if v, ok, _ := mcp.LookupString(raw, "description"); ok {
		t["description"] = v
	}
	for key, member := range map[string]string{"annotations": "annotations", "input_schema": "inputSchema"} {
		v, ok, err := mcp.Lookup(raw, member)
		if err != nil || !ok || v.Kind() != '{' {
			continue
		}
		if m, err := decodeJSON(v); err == nil {
			t[key] = m
		}
	}
	return t
}

// toolCache keeps the parsed form of each tool definition the gateway hands
// out, keyed by its pointer, for as long as the definition is in use.
type toolCache struct{ m sync.Map } // weak.Pointer[guard.Tool] -> map[string]any

func (tc *toolCache) get(t *guard.Tool) map[string]any {
	k := weak.Make(t)
	if v, ok := tc.m.Load(k); ok {
		return v.(map[string]any)
	}
	v := parseTool(t.Name, t.Raw)
	if _, loaded := tc.m.LoadOrStore(k, v); !loaded {
		runtime.AddCleanup(t, func(k weak.Pointer[guard.Tool]) { tc.m.Delete(k) }, k)
	}
	return v
}

var errArgsNotObject = errors.New("arguments are not a JSON object")

// argsValue decodes the arguments of a tools/call or prompts/get; other
// calls have none. Arguments that cannot be decoded make every condition
// that reads them fail (which denies the call if a deny rule reads them).
func argsValue(c *guard.Call, k kind) any {
	if k != kindTool && k != kindPrompt {
		return map[string]any{}
	}
	v, ok, err := mcp.Lookup(c.Params, "arguments")
	switch {
	case err != nil:
		return types.WrapErr(err)
	case !ok || v.Kind() == 'n':
		return map[string]any{}
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

var errTooDeep = errors.New("arguments nested too deeply")

// decodeJSON decodes a JSON value into maps, lists, strings, booleans,
// nil, int64 (integers that fit) and float64 (other numbers). Duplicate
// member names and invalid UTF-8 are errors, so a condition never sees a
// different value from the one the server will read.
func decodeJSON(v jsontext.Value) (any, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(v))
	out, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func decodeValue(dec *jsontext.Decoder, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't', 'f':
		return tok.Bool(), nil
	case '"':
		return tok.String(), nil
	case '0':
		raw := tok.String()
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return i, nil
		}
		return tok.Float()
	case '{':
		m := map[string]any{}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			k := tok.String() // before the next read voids tok
			v, err := decodeValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return m, nil
	case '[':
		l := []any{}
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
		return l, nil
	}
	return nil, errors.New("unexpected JSON token")
}
