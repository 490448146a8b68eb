// Package allowlist is the guard that decides which tools are reachable at
// all, before any finer policy runs: allow and deny lists of globs per
// upstream server and per profile.
//
// A server's [Filter] matches the tool names the server itself uses
// (upstream-local, "read_file"); a profile's matches the names clients of
// that profile see, namespace prefix included ("fs__read_file"), so one
// profile can expose a server's read tools while another exposes all of them.
// In each filter a deny glob beats an allow glob, and an empty allow list
// allows every name. A tool is reachable only if it passes both its server's
// filter and its profile's; a server or profile without a filter lets every
// tool through. The glob syntax is described at [glob].
//
// The guard acts on two methods:
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
	"maps"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

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
	// Mode is guard.Enforce or guard.Observe; empty means Enforce.
	Mode guard.Mode
}

// Guard is the allow-list guard. It is immutable after [New] and safe for
// concurrent use.
type Guard struct {
	servers  map[string]*filter
	profiles map[string]*filter
	mode     guard.Mode
}

var _ guard.Guard = (*Guard)(nil)

// filter is a compiled Filter; path names it in Rule and error messages.
type filter struct {
	path  string
	allow []glob
	deny  []glob
}

// New compiles cfg. It reports every invalid glob with its place in the
// configuration ("servers.fs.deny[1]"), not only the first.
func New(cfg Config) (*Guard, error) {
	g := &Guard{servers: map[string]*filter{}, profiles: map[string]*filter{}, mode: cfg.Mode}
	var errs []error
	if g.mode == "" {
		g.mode = guard.Enforce
	}
	if !g.mode.Valid() {
		errs = append(errs, fmt.Errorf("mode: unknown mode %q (want %q or %q)", cfg.Mode, guard.Enforce, guard.Observe))
	}
	compile := func(kind string, in map[string]Filter, out map[string]*filter) {
		for _, name := range slices.Sorted(maps.Keys(in)) {
			f := &filter{path: kind + "." + name}
			for _, list := range []struct {
				key  string
				pats []string
				dst  *[]glob
			}{{"allow", in[name].Allow, &f.allow}, {"deny", in[name].Deny, &f.deny}} {
				for i, p := range list.pats {
					gl, err := compileGlob(p)
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
	compile("servers", cfg.Servers, g.servers)
	compile("profiles", cfg.Profiles, g.profiles)
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
		if gl.match(name) {
			return gl.pattern, true
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
		if gl.match(name) {
			return true
		}
	}
	return false
}

// Wrap returns the handler that applies the lists around next.
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
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
		return next.Handle(ctx, c)
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
