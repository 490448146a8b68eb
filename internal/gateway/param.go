package gateway

import (
	"bytes"
	"context"
	"math/big"
	"net/http"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Tool parameters mirrored into HTTP headers (2026-07-28): a tool's input
// schema may mark a property with "x-mcp-header": "Region", and the value
// of that argument then travels as header Mcp-Param-Region too. Sluice
// checks the headers of modern clients against the body, and mirrors the
// arguments into headers when it calls a modern HTTP server itself.

const paramHeaderPrefix = "Mcp-Param-"

// paramBinding ties an argument, by its property path, to a header.
type paramBinding struct {
	path   []string
	header string // canonical header name, Mcp-Param-<name>
}

// headerBindings reads the x-mcp-header annotations of an input schema,
// following only "properties" chains from the root.
func headerBindings(schema jsontext.Value) []paramBinding {
	if !bytes.Contains(schema, []byte("x-mcp-header")) {
		return nil
	}
	var out []paramBinding
	var walk func(obj jsontext.Value, prefix []string)
	walk = func(obj jsontext.Value, prefix []string) {
		props, ok, _ := mcp.Lookup(obj, "properties")
		if !ok || props.Kind() != '{' {
			return
		}
		_ = mcp.EachMember(props, func(name string, prop jsontext.Value) error {
			if prop.Kind() != '{' {
				return nil
			}
			path := append(append([]string(nil), prefix...), name)
			if h, ok, _ := mcp.LookupString(prop, "x-mcp-header"); ok && h != "" && validToken(h) {
				out = append(out, paramBinding{path: path, header: http.CanonicalHeaderKey(paramHeaderPrefix + h)})
			}
			walk(prop, path)
			return nil
		})
	}
	walk(schema, nil)
	return out
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// toolCatalog is what Sluice knows of a server's tools from its last
// listing: each definition (handed to guards as [guard.Call.Tool]) and the
// header bindings of their input schemas.
type toolCatalog struct {
	tools    map[string]*guard.Tool
	bindings map[string][]paramBinding // tool -> x-mcp-header bindings
}

// rememberTools records a server's tools as listed. A tool whose definition
// is byte for byte the one listed before keeps its *guard.Tool, so guards
// that cache what they derive from it (compiled schemas) keep their work
// until the definition changes.
func (u *Upstream) rememberTools(items []jsontext.Value) {
	u.infoMu.Lock()
	prev := u.catalog
	u.infoMu.Unlock()
	c := &toolCatalog{tools: make(map[string]*guard.Tool, len(items)), bindings: map[string][]paramBinding{}}
	for _, it := range items {
		name, ok, _ := mcp.LookupString(it, "name")
		if !ok {
			continue
		}
		if old := prev.lookup(name); old != nil && bytes.Equal(old.Raw, it) {
			c.tools[name] = old
		} else {
			c.tools[name] = &guard.Tool{Name: name, Raw: it}
		}
		if schema, ok, _ := mcp.Lookup(it, "inputSchema"); ok {
			if b := headerBindings(schema); len(b) > 0 {
				c.bindings[name] = b
			}
		}
	}
	u.infoMu.Lock()
	u.catalog = c
	u.infoMu.Unlock()
}

func (c *toolCatalog) lookup(name string) *guard.Tool {
	if c == nil {
		return nil
	}
	return c.tools[name]
}

// forgetTools drops the catalog after the server said its tools changed;
// the next lookup lists them again.
func (u *Upstream) forgetTools() {
	u.infoMu.Lock()
	u.catalog = nil
	u.infoMu.Unlock()
}

// tools returns the server's tool catalog, listing the tools once if they
// were never listed (or changed since). It returns nil when the server
// cannot be listed.
func (u *Upstream) tools(ctx context.Context) *toolCatalog {
	u.infoMu.Lock()
	c := u.catalog
	u.infoMu.Unlock()
	if c != nil {
		return c
	}
	us, err := u.probe(ctx)
	if err != nil {
		return nil
	}
	if _, _, err := us.list(ctx, mcp.MethodToolsList); err != nil {
		return nil
	}
	u.infoMu.Lock()
	c = u.catalog
	u.infoMu.Unlock()
	return c
}

// tool returns the definition of one of the server's tools, or nil.
func (u *Upstream) tool(ctx context.Context, name string) *guard.Tool {
	if c := u.tools(ctx); c != nil {
		return c.tools[name]
	}
	return nil
}

// toolBindings returns the header bindings of one of the server's tools.
func (u *Upstream) toolBindings(ctx context.Context, tool string) []paramBinding {
	if c := u.tools(ctx); c != nil {
		return c.bindings[tool]
	}
	return nil
}

// argumentAt returns the argument at a property path; absent and null
// arguments are reported as not found.
func argumentAt(args jsontext.Value, path []string) (jsontext.Value, bool) {
	v, ok, err := mcp.LookupPath(args, path...)
	if err != nil || !ok || v.Kind() == 'n' {
		return nil, false
	}
	return v, true
}

// encodeParam renders an argument as a header value.
func encodeParam(v jsontext.Value) string {
	switch v.Kind() {
	case '"':
		s, err := unquote(v)
		if err != nil {
			return ""
		}
		return mcp.EncodeHeaderValue(s)
	case 't':
		return "true"
	case 'f':
		return "false"
	}
	return string(v)
}

// paramMatches compares a decoded header value with the body's argument.
func paramMatches(header string, v jsontext.Value) bool {
	switch v.Kind() {
	case '"':
		s, err := unquote(v)
		return err == nil && s == header
	case 't':
		return header == "true"
	case 'f':
		return header == "false"
	case '0':
		a, ok1 := new(big.Rat).SetString(header)
		b, ok2 := new(big.Rat).SetString(string(v))
		return ok1 && ok2 && a.Cmp(b) == 0
	}
	return false
}

// checkParamHeaders validates a modern client's Mcp-Param-* headers for a
// tools/call against its arguments. It returns a problem description, or "".
func checkParamHeaders(h http.Header, bindings []paramBinding, args jsontext.Value) string {
	for _, b := range bindings {
		vals, present := h[b.header]
		v, has := argumentAt(args, b.path)
		if present {
			if len(vals) != 1 {
				return "repeated " + b.header + " header"
			}
			decoded, ok := mcp.DecodeHeaderValue(vals[0])
			if !ok {
				return b.header + " header is malformed"
			}
			if has && !paramMatches(decoded, v) {
				return b.header + " header does not match the body"
			}
			continue
		}
		if has {
			return "missing " + b.header + " header"
		}
	}
	return ""
}

// paramHeaders mirrors arguments into headers for a modern HTTP server.
func paramHeaders(bindings []paramBinding, args jsontext.Value) http.Header {
	var h http.Header
	for _, b := range bindings {
		v, ok := argumentAt(args, b.path)
		if !ok {
			continue
		}
		if h == nil {
			h = http.Header{}
		}
		h[b.header] = []string{encodeParam(v)}
	}
	return h
}
