// Package allowlist is the guard that decides what is reachable at all,
// before any finer policy runs: allow and deny lists of globs over tools
// and JSON-RPC methods per upstream server and per profile, and the strict
// API controls (a tools/call must name a tool its server lists, with
// arguments valid against that tool's input schema).
//
// A server's [Filter] matches the tool names the server itself uses
// (upstream-local, "read_file"); a profile's matches the names clients of
// that profile see, namespace prefix included ("fs__read_file"), so one
// profile can expose a server's read tools while another exposes all of them.
// In each filter a deny glob beats an allow glob, and an empty allow list
// allows every name. A tool is reachable only if it passes both its server's
// filter and its profile's; a server or profile without a filter lets every
// tool through. The glob syntax is that of package [glob].
//
// The tool filters act on two methods:
//
//   - tools/call of an unreachable tool is denied with reason
//     "allowlist-tool-denied" (a deny glob matched; the decision's Rule is the
//     glob) or "allowlist-tool-not-allowed" (an allow list exists and no glob
//     in it matched; the Rule names that list, "servers.<name>.allow" or
//     "profiles.<name>.allow").
//   - tools/list results lose the tools the caller could not call, and one
//     decision "allowlist-list-filtered" with effect Modify is recorded when
//     any were dropped. Everything else in the result keeps its exact bytes:
//     other members (nextCursor, _meta), and each kept tool's definition.
//
// In [guard.Observe] mode the same decisions are recorded but nothing is
// blocked or dropped.
//
// Method filters ([Config.ServerMethods], [Config.ProfileMethods]) are the
// same kind of glob lists over JSON-RPC method names. A profile's filter
// applies to the requests its callers send ("resources/*",
// "completion/complete") and to requests servers send towards them; a
// server's filter applies to the requests that server sends towards
// clients ("sampling/createMessage", "elicitation/create", "roots/list"),
// whether they arrive as requests of their own (legacy servers, calls with
// [guard.ToClient]) or as the inputRequests of an input_required result
// (2026-07-28). A refused method is denied with "allowlist-method-denied" or
// "allowlist-method-not-allowed", the Rule naming the glob or the list
// ("servers.<name>.methods.allow"). Methods every session needs
// (initialize, ping, server/discover, notifications) are never filtered.
//
// The strict controls run on every tools/call towards a server, in the
// mode of [Config.StrictMode]:
//
//   - a tool its server did not list ([guard.Call.Tool] is nil) is denied
//     with "allowlist-tool-unknown";
//   - the arguments are validated against the tool's input schema (JSON
//     Schema, draft 2020-12 unless the schema says otherwise); a mismatch
//     is denied with "allowlist-arguments-invalid" and a message naming
//     each offending field ("arguments.path: got number, want string");
//   - an input schema that cannot be compiled (not valid against its
//     meta-schema, a "$ref" outside itself, which Sluice never loads, a
//     pattern Go's RE2 cannot compile) is denied with
//     "allowlist-schema-invalid", or, with [Config.AllowInvalidSchemas],
//     let through with the same reason code and effect Allow and a warning
//     logged once per tool definition. Short of turning validation off
//     ([Config.SkipArguments]), no call passes silently unchecked.
//
// A tools/list result that is not a valid list (not an object, no "tools"
// array, a tool without a string "name", a member name that differs from
// "tools" or "name" only by case) cannot be filtered safely by name. It is
// passed through unchanged and a decision "allowlist-list-unparsed" (effect
// Allow) records that it was not filtered. Hiding tools from a list is about
// what an agent is shown; whether a tool can be called is decided on
// tools/call, which this guard enforces whatever the list looked like, and
// judging malformed or hostile tool definitions is the scan guard's work.
package allowlist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/glob"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "allowlist"

// Reason codes of the decisions the guard records.
const (
	ReasonToolDenied     = "allowlist-tool-denied"
	ReasonToolNotAllowed = "allowlist-tool-not-allowed"
	ReasonListFiltered   = "allowlist-list-filtered"
	ReasonListUnparsed   = "allowlist-list-unparsed"

	ReasonMethodDenied     = "allowlist-method-denied"
	ReasonMethodNotAllowed = "allowlist-method-not-allowed"
	ReasonToolUnknown      = "allowlist-tool-unknown"
	ReasonArgumentsInvalid = "allowlist-arguments-invalid"
	ReasonSchemaInvalid    = "allowlist-schema-invalid"
)

// Filter is a pair of glob lists. Deny wins over Allow; an empty Allow
// allows every name.
type Filter struct {
	Allow []string
	Deny  []string
}

// Config configures the guard.
type Config struct {
	// Servers maps a server name to a filter over the tool names that server
	// uses (upstream-local).
	Servers map[string]Filter
	// Profiles maps a profile name to a filter over the names clients of the
	// profile see (the call's Prefix followed by the local name).
	Profiles map[string]Filter
	// Mode is guard.Enforce or guard.Observe; empty means Enforce. It
	// applies to the tool filters.
	Mode guard.Mode

	// ServerMethods maps a server name to a filter over the methods of the
	// requests that server sends towards clients.
	ServerMethods map[string]Filter
	// ProfileMethods maps a profile name to a filter over the methods its
	// callers may use and servers may send towards them.
	ProfileMethods map[string]Filter
	// StrictMode is the mode of the method filters and the strict controls
	// on tools/call (unknown tools, argument validation); empty means
	// Enforce.
	StrictMode guard.Mode
	// SkipArguments turns argument validation off; unknown tools are still
	// refused.
	SkipArguments bool
	// AllowInvalidSchemas lets calls to a tool whose input schema cannot be
	// compiled through unchecked, recorded and logged, instead of denying
	// them.
	AllowInvalidSchemas bool
	// Logger receives the warning about a schema that cannot be compiled;
	// nil discards it.
	Logger *slog.Logger
}

// Guard is the allow-list guard. It is immutable after [New] and safe for
// concurrent use.
type Guard struct {
	servers  map[string]*filter
	profiles map[string]*filter
	mode     guard.Mode

	serverMethods  map[string]*filter
	profileMethods map[string]*filter
	strict         guard.Mode
	skipArgs       bool
	allowInvalid   bool
	log            *slog.Logger
	schemas        schemaCache
}

var _ guard.Guard = (*Guard)(nil)

// filter is a compiled Filter; path names it in Rule and error messages.
type filter struct {
	path  string
	allow []glob.Pattern
	deny  []glob.Pattern
}

// New compiles cfg. It reports every invalid glob with its place in the
// configuration ("servers.fs.deny[1]"), not only the first.
func New(cfg Config) (*Guard, error) {
	g := &Guard{
		servers: map[string]*filter{}, profiles: map[string]*filter{}, mode: cfg.Mode,
		serverMethods: map[string]*filter{}, profileMethods: map[string]*filter{}, strict: cfg.StrictMode,
		skipArgs: cfg.SkipArguments, allowInvalid: cfg.AllowInvalidSchemas, log: cfg.Logger,
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, m := range []struct {
		key string
		in  guard.Mode
		out *guard.Mode
	}{{"mode", cfg.Mode, &g.mode}, {"strict_mode", cfg.StrictMode, &g.strict}} {
		if m.in == "" {
			*m.out = guard.Enforce
		}
		if !m.out.Valid() {
			errs = append(errs, fmt.Errorf("%s: unknown mode %q (want %q or %q)", m.key, m.in, guard.Enforce, guard.Observe))
		}
	}
	compile := func(kind string, in map[string]Filter, out map[string]*filter, suffix string) {
		for _, name := range slices.Sorted(maps.Keys(in)) {
			f := &filter{path: kind + "." + name + suffix}
			for _, list := range []struct {
				key  string
				pats []string
				dst  *[]glob.Pattern
			}{{"allow", in[name].Allow, &f.allow}, {"deny", in[name].Deny, &f.deny}} {
				for i, p := range list.pats {
					gl, err := glob.Compile(p)
					if err != nil {
						errs = append(errs, fmt.Errorf("%s.%s[%d]: %w", f.path, list.key, i, err))
						continue
					}
					*list.dst = append(*list.dst, gl)
				}
			}
			if len(f.allow)+len(f.deny) > 0 {
				out[name] = f
			}
		}
	}
	compile("servers", cfg.Servers, g.servers, "")
	compile("profiles", cfg.Profiles, g.profiles, "")
	compile("servers", cfg.ServerMethods, g.serverMethods, ".methods")
	compile("profiles", cfg.ProfileMethods, g.profileMethods, ".methods")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

// Name returns "allowlist".
func (g *Guard) Name() string { return Name }

// verdict says why a tool is unreachable.
type verdict struct {
	reason string
	rule   string
}

// check decides whether the tool with upstream-local name local is
// reachable for c. Deny globs of both filters are looked at before allow
// lists, so a denial is reported as one even when an allow list would also
// have refused the tool.
func (g *Guard) check(c *guard.Call, local string) (verdict, bool) {
	sf, pf := g.servers[c.Server], g.profiles[c.Profile]
	if sf == nil && pf == nil {
		return verdict{}, true
	}
	exposed := c.ExposedName(local)
	if gl, hit := sf.denied(local); hit {
		return verdict{ReasonToolDenied, gl}, false
	}
	if gl, hit := pf.denied(exposed); hit {
		return verdict{ReasonToolDenied, gl}, false
	}
	if !sf.allowed(local) {
		return verdict{ReasonToolNotAllowed, sf.path + ".allow"}, false
	}
	if !pf.allowed(exposed) {
		return verdict{ReasonToolNotAllowed, pf.path + ".allow"}, false
	}
	return verdict{}, true
}

// denied returns the first deny glob matching name.
func (f *filter) denied(name string) (string, bool) {
	if f == nil {
		return "", false
	}
	for _, gl := range f.deny {
		if gl.Match(name) {
			return gl.String(), true
		}
	}
	return "", false
}

// allowed reports whether name passes the allow list.
func (f *filter) allowed(name string) bool {
	if f == nil || len(f.allow) == 0 {
		return true
	}
	for _, gl := range f.allow {
		if gl.Match(name) {
			return true
		}
	}
	return false
}

// Wrap returns the handler that applies the lists and controls around next.
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if err := g.checkMethod(c, c.Method, c.Direction == guard.ToClient); err != nil {
			return nil, err
		}
		if c.Direction != guard.ToServer {
			return next.Handle(ctx, c)
		}
		switch c.Method {
		case mcp.MethodToolsCall:
			if v, ok := g.check(c, c.Name); !ok {
				err := c.Decide(guard.Decision{
					Guard:   Name,
					Rule:    v.rule,
					Reason:  v.reason,
					Effect:  guard.Deny,
					Mode:    g.mode,
					Message: fmt.Sprintf("tool %q is not available", c.ExposedName(c.Name)),
				})
				if err != nil {
					return nil, err
				}
			}
			if err := g.checkTool(c); err != nil {
				return nil, err
			}
		case mcp.MethodToolsList:
			if g.servers[c.Server] == nil && g.profiles[c.Profile] == nil {
				break
			}
			res, err := next.Handle(ctx, c)
			if err != nil || res == nil || res.Error != nil || res.Result == nil {
				return res, err
			}
			return g.filterList(c, res), nil
		}
		res, err := next.Handle(ctx, c)
		if err != nil || res == nil || res.Error != nil {
			return res, err
		}
		if err := g.checkInputRequests(c, res.Result); err != nil {
			return nil, err
		}
		return res, nil
	})
}

// CheckMethod applies the method filters to a call the gateway answers
// without sending it through the chain (logging/setLevel,
// subscriptions/listen, a subscription it turns into one). It records the
// decision on c and returns a [*guard.DeniedError] when the method is
// refused in enforce mode.
func (g *Guard) CheckMethod(c *guard.Call) error {
	return g.checkMethod(c, c.Method, c.Direction == guard.ToClient)
}

// checkMethod applies the method filters to a request with the given
// method: the profile's in both directions, the server's to requests
// towards the client.
func (g *Guard) checkMethod(c *guard.Call, method string, toClient bool) error {
	if config.MethodAlwaysAllowed(method) {
		return nil
	}
	pf := g.profileMethods[c.Profile]
	var sf *filter
	if toClient {
		sf = g.serverMethods[c.Server]
	}
	if pf == nil && sf == nil {
		return nil
	}
	var v verdict
	if gl, hit := sf.denied(method); hit {
		v = verdict{ReasonMethodDenied, gl}
	} else if gl, hit := pf.denied(method); hit {
		v = verdict{ReasonMethodDenied, gl}
	} else if !sf.allowed(method) {
		v = verdict{ReasonMethodNotAllowed, sf.path + ".allow"}
	} else if !pf.allowed(method) {
		v = verdict{ReasonMethodNotAllowed, pf.path + ".allow"}
	} else {
		return nil
	}
	msg := fmt.Sprintf("method %q is not available", method)
	if toClient {
		msg = fmt.Sprintf("server %q may not send %q requests to this client", c.Server, method)
	}
	return c.Decide(guard.Decision{
		Guard:   Name,
		Rule:    v.rule,
		Reason:  v.reason,
		Effect:  guard.Deny,
		Mode:    g.strict,
		Message: msg,
	})
}

// checkInputRequests applies the method filters to the requests a
// 2026-07-28 server makes of the client inside an input_required result:
// they are the modern form of the requests legacy servers send as
// requests of their own, and are filtered the same way.
func (g *Guard) checkInputRequests(c *guard.Call, result jsontext.Value) error {
	if len(g.serverMethods) == 0 && len(g.profileMethods) == 0 {
		return nil
	}
	if !bytes.Contains(result, []byte(`"inputRequests"`)) {
		return nil
	}
	reqs, ok, err := mcp.Lookup(result, "inputRequests")
	if err != nil || !ok || reqs.Kind() != '{' {
		return nil
	}
	return mcp.EachMember(reqs, func(_ string, v jsontext.Value) error {
		method, ok, _ := mcp.LookupString(v, "method")
		if !ok {
			return nil
		}
		return g.checkMethod(c, method, true)
	})
}

// checkTool applies the strict controls to a tools/call: the tool must be
// one its server listed, and its arguments must be valid against its input
// schema.
func (g *Guard) checkTool(c *guard.Call) error {
	exposed := c.ExposedName(c.Name)
	if c.Tool == nil {
		return c.Decide(guard.Decision{
			Guard:   Name,
			Reason:  ReasonToolUnknown,
			Effect:  guard.Deny,
			Mode:    g.strict,
			Message: fmt.Sprintf("unknown tool %q: its server does not list it", exposed),
		})
	}
	if g.skipArgs {
		return nil
	}
	cs, fresh := g.schemas.get(c.Tool)
	if cs.err != nil {
		if fresh {
			calls := "denied"
			if g.allowInvalid {
				calls = "let through unchecked"
			}
			g.log.Warn("tool input schema cannot be compiled", "server", c.Server, "tool", c.Name, "err", cs.err, "calls", calls)
		}
		d := guard.Decision{
			Guard:   Name,
			Reason:  ReasonSchemaInvalid,
			Effect:  guard.Deny,
			Mode:    g.strict,
			Message: fmt.Sprintf("tool %q cannot be called: its input schema is not valid", exposed),
		}
		if g.allowInvalid {
			d.Effect = guard.Allow
			d.Message = fmt.Sprintf("the input schema of tool %q is not valid; arguments were not checked", exposed)
		}
		return c.Decide(d)
	}
	problems, err := validateArguments(cs, c.Params)
	if err != nil {
		problems = "arguments: " + err.Error()
	}
	if problems == "" {
		return nil
	}
	return c.Decide(guard.Decision{
		Guard:   Name,
		Reason:  ReasonArgumentsInvalid,
		Effect:  guard.Deny,
		Mode:    g.strict,
		Message: fmt.Sprintf("invalid arguments for tool %q: %s", exposed, problems),
	})
}

// filterList drops the tools c may not call from a tools/list result.
func (g *Guard) filterList(c *guard.Call, res *guard.Result) *guard.Result {
	var rules []string
	out, dropped, err := filterTools(res.Result, func(local string) bool {
		v, ok := g.check(c, local)
		if !ok && !slices.Contains(rules, v.rule) {
			rules = append(rules, v.rule)
		}
		return ok
	})
	if err != nil {
		// Cannot fail: only enforced denials return errors.
		_ = c.Decide(guard.Decision{
			Guard:   Name,
			Reason:  ReasonListUnparsed,
			Effect:  guard.Allow,
			Mode:    g.mode,
			Message: "the tools/list result is not a valid tool list and was not filtered: " + err.Error(),
		})
		return res
	}
	if dropped == 0 {
		return res
	}
	slices.Sort(rules)
	_ = c.Decide(guard.Decision{
		Guard:   Name,
		Rule:    strings.Join(rules, " "),
		Reason:  ReasonListFiltered,
		Effect:  guard.Modify,
		Mode:    g.mode,
		Message: fmt.Sprintf("%d of the server's tools are not available", dropped),
	})
	if g.mode == guard.Observe {
		return res
	}
	return &guard.Result{Result: out}
}

var (
	errNoTools    = errors.New(`result has no "tools" array`)
	errToolNoName = errors.New(`a tool has no string "name"`)
)

// filterTools returns result with the elements of its "tools" array for
// which keep is false removed, and how many were removed. It works on the
// bytes: every other member of result, and every kept tool, is copied
// verbatim; only the separators between kept tools are rewritten. When
// nothing is dropped the result is returned as it is.
func filterTools(result jsontext.Value, keep func(local string) bool) (jsontext.Value, int, error) {
	tools, ok, err := mcp.Lookup(result, "tools")
	if err != nil {
		return nil, 0, err
	}
	if !ok || tools.Kind() != '[' {
		return nil, 0, errNoTools
	}
	dec := jsontext.NewDecoder(bytes.NewReader(tools))
	if _, err := dec.ReadToken(); err != nil {
		return nil, 0, err
	}
	kept := make([]byte, 0, len(tools))
	kept = append(kept, '[')
	n, dropped := 0, 0
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, 0, err
		}
		end := dec.InputOffset()
		tool := tools[end-int64(len(v)) : end]
		if tool.Kind() != '{' {
			return nil, 0, errToolNoName
		}
		name, ok, err := mcp.LookupString(tool, "name")
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			return nil, 0, errToolNoName
		}
		if !keep(name) {
			dropped++
			continue
		}
		if n > 0 {
			kept = append(kept, ',')
		}
		kept = append(kept, tool...)
		n++
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, 0, err
	}
	if dropped == 0 {
		return result, 0, nil
	}
	kept = append(kept, ']')
	out, err := mcp.SetMember(result, "tools", kept)
	if err != nil {
		return nil, 0, err
	}
	return out, dropped, nil
}
