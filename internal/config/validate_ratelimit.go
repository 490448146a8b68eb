package config

import (
	"path"
	"regexp"
	"strings"
	"unicode/utf8"
)

// rateLimitIDRE is what a rate limit id looks like: it names the limit in
// decisions, audit records and metrics labels.
var rateLimitIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// maxBurst bounds a bucket's size; more would make a limit meaningless.
const maxBurst = 1_000_000_000

// maxMethodLen bounds a method name or glob; MCP's longest method is 40
// bytes.
const maxMethodLen = 128

// MethodAlwaysAllowed reports whether method is one that every session
// needs and that a [MethodFilter] therefore never blocks: initialize, ping,
// server/discover and every notification.
func MethodAlwaysAllowed(method string) bool {
	switch method {
	case "initialize", "ping", "server/discover":
		return true
	}
	return strings.HasPrefix(method, "notifications/")
}

func (v *validator) rateLimits() {
	ids := map[string]int{}
	for i, rl := range v.c.RateLimits {
		p := indexPath("rate_limits", i)
		if rl == nil {
			v.add(p, "rate limit is empty: set id, per and rate")
			continue
		}
		v.uniqueID(p, "rate_limits", i, rl.ID, ids, rateLimitIDRE, "is required",
			"must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit")
		if _, err := ParsePer(rl.Per); err != nil {
			v.add(childPath(p, "per"), "%v", err)
		}
		if rl.Rate == "" {
			v.add(childPath(p, "rate"), `is required, such as "10/s" or "600/m"`)
		} else if _, err := ParseRate(rl.Rate); err != nil {
			v.add(childPath(p, "rate"), "%v", err)
		}
		if rl.Burst < 0 {
			v.add(childPath(p, "burst"), "must not be negative")
		} else if rl.Burst > maxBurst {
			v.add(childPath(p, "burst"), "must be at most %d", maxBurst)
		}
		v.rateLimitTarget(childPath(p, "target"), rl.Target)
		switch rl.Mode {
		case "", ModeObserve, ModeEnforce:
		default:
			v.add(childPath(p, "mode"), "must be observe or enforce, not %q", truncate(rl.Mode, 20))
		}
	}
}

// rateLimitTarget checks the globs of a rate limit's target.
func (v *validator) rateLimitTarget(p string, t PolicyTarget) {
	for _, list := range []struct {
		key   string
		globs []string
	}{{"servers", t.Servers}, {"tools", t.Tools}, {"resources", t.Resources}, {"prompts", t.Prompts}} {
		for i, g := range list.globs {
			gp := indexPath(childPath(p, list.key), i)
			if !v.globSyntax(gp, g) {
				continue
			}
			if list.key == "servers" && !hasGlobMeta(g) && !hasKey(v.c.Servers, g) {
				v.add(gp, "no server named %q", truncate(g, 64))
			}
		}
	}
	for i, g := range t.Methods {
		v.methodGlob(indexPath(childPath(p, "methods"), i), g)
	}
}

// methods checks the method filters of servers and profiles.
func (v *validator) methods() {
	for _, name := range v.c.ServerNames() {
		if s := v.c.Servers[name]; s != nil {
			v.methodFilter(childPath(childPath("servers", name), "methods"), s.Methods)
		}
	}
	for _, name := range v.c.ProfileNames() {
		if pr := v.c.Profiles[name]; pr != nil {
			v.methodFilter(childPath(childPath("profiles", name), "methods"), pr.Methods)
		}
	}
}

func (v *validator) methodFilter(p string, f MethodFilter) {
	for i, g := range f.Allow {
		v.methodGlob(indexPath(childPath(p, "allow"), i), g)
	}
	for i, g := range f.Deny {
		gp := indexPath(childPath(p, "deny"), i)
		if v.methodGlob(gp, g) && MethodAlwaysAllowed(g) && !hasGlobMeta(g) {
			v.add(gp, "method %q is always allowed and cannot be denied", g)
		}
	}
}

// methodGlob checks a glob over JSON-RPC method names and reports whether
// it is valid. Method names are printable ASCII without spaces
// ("tools/call", "sampling/createMessage").
func (v *validator) methodGlob(p, g string) bool {
	if !v.globSyntax(p, g) {
		return false
	}
	if len(g) > maxMethodLen {
		v.add(p, "is longer than %d bytes; not a method name", maxMethodLen)
		return false
	}
	for i := 0; i < len(g); i++ {
		if c := g[i]; c <= ' ' || c >= 0x7f {
			v.add(p, "%q is not a method name: use printable ASCII without spaces, such as \"tools/call\" or \"resources/*\"", truncate(g, 64))
			return false
		}
	}
	return true
}

// globSyntax checks that g is a non-empty glob in the syntax of [path.Match] and
// reports whether it is.
func (v *validator) globSyntax(p, g string) bool {
	switch _, err := path.Match(g, ""); {
	case g == "":
		v.add(p, "glob must not be empty")
	case !utf8.ValidString(g):
		v.add(p, "glob must be valid UTF-8")
	case err != nil:
		v.add(p, "invalid glob %q", truncate(g, 64))
	default:
		return true
	}
	return false
}

// hasGlobMeta reports whether g has glob metacharacters, as opposed to naming
// one thing literally.
func hasGlobMeta(g string) bool { return strings.ContainsAny(g, `*?[\`) }

// controls checks the settings of the strict API controls.
func (v *validator) controls() {
	c := v.c.Controls
	switch c.Mode {
	case "", ModeObserve, ModeEnforce:
	default:
		v.add("controls.mode", "must be observe or enforce, not %q", truncate(c.Mode, 20))
	}
	switch c.Arguments {
	case "", ArgumentsValidate, ArgumentsOff:
	default:
		v.add("controls.arguments", "must be validate or off, not %q", truncate(c.Arguments, 20))
	}
	switch c.InvalidSchema {
	case "", InvalidSchemaDeny, InvalidSchemaAllow:
	default:
		v.add("controls.invalid_schema", "must be deny or allow, not %q", truncate(c.InvalidSchema, 20))
	}
}

// uniqueID checks the id of element i of list (at path p): present, in the
// form re describes (bad says how), and not used by an earlier element;
// ids maps the ids seen so far to their index.
func (v *validator) uniqueID(p, list string, i int, id string, ids map[string]int, re *regexp.Regexp, missing, bad string) {
	switch first, dup := ids[id]; {
	case id == "":
		v.add(childPath(p, "id"), "%s", missing)
	case !re.MatchString(id):
		v.add(childPath(p, "id"), "%s", bad)
	case dup:
		v.add(childPath(p, "id"), "id %q is already used by %s[%d]", id, list, first)
	default:
		ids[id] = i
	}
}
