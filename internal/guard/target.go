package guard

import (
	"github.com/sluicehq/sluice/internal/glob"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Target selects calls by globs over server names, upstream-local tool and
// prompt names, resource URIs and methods, as configuration targets do
// (a policy target in configuration); an empty Target selects every call.
type Target struct {
	servers, tools, resources, prompts, methods glob.List
	byName                                      bool
}

// CompileTarget compiles the globs of a target.
func CompileTarget(servers, tools, resources, prompts, methods []string) (Target, error) {
	var t Target
	var err error
	for _, f := range []struct {
		dst  *glob.List
		pats []string
	}{{&t.servers, servers}, {&t.tools, tools}, {&t.resources, resources}, {&t.prompts, prompts}, {&t.methods, methods}} {
		if *f.dst, err = glob.CompileList(f.pats); err != nil {
			return Target{}, err
		}
	}
	t.byName = len(tools)+len(resources)+len(prompts) > 0
	return t, nil
}

// Matches reports whether the target selects c. A target naming tools,
// resources or prompts selects only calls of those (tools/call,
// resources/read, prompts/get).
func (t *Target) Matches(c *Call) bool {
	if len(t.methods) > 0 && !t.methods.Any(c.Method) {
		return false
	}
	if len(t.servers) > 0 && (c.Server == "" || !t.servers.Any(c.Server)) {
		return false
	}
	if !t.byName {
		return true
	}
	switch c.Method {
	case mcp.MethodToolsCall:
		return t.tools.Any(c.Name)
	case mcp.MethodPromptsGet:
		return t.prompts.Any(c.Name)
	case mcp.MethodResourcesRead:
		return t.resources.Any(c.Name)
	}
	return false
}
