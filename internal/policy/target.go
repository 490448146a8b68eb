package policy

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/glob"
	"github.com/sluicehq/sluice/internal/mcp"
)

// kind is what a call is about.
type kind uint8

const (
	kindOther kind = iota // no subject: sampling, elicitation, completion, ...
	kindTool
	kindResource
	kindPrompt
)

// subjectKind returns the kind of the call a method makes. Only these calls
// are governed by default (a call no rule allows is denied); calls of any
// other method are decided only by rules that name the method in
// target.methods.
func subjectKind(method string) kind {
	switch method {
	case mcp.MethodToolsCall:
		return kindTool
	case mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe:
		return kindResource
	case mcp.MethodPromptsGet:
		return kindPrompt
	}
	return kindOther
}

// tri is a three-valued truth: whether a rule applies when some inputs (the
// arguments, a resource template's URI) are not known.
type tri uint8

const (
	no tri = iota
	maybe
	yes
)

// target is a compiled [config.PolicyTarget].
type target struct {
	servers, tools, resources, prompts, methods glob.List
	// kinds is set when tools, resources or prompts restrict the rule to
	// calls of those kinds.
	kinds bool
}

func compileTarget(t config.PolicyTarget) (target, error) {
	var out target
	var errs []error
	for _, f := range []struct {
		key  string
		pats []string
		dst  *glob.List
	}{
		{"servers", t.Servers, &out.servers},
		{"tools", t.Tools, &out.tools},
		{"resources", t.Resources, &out.resources},
		{"prompts", t.Prompts, &out.prompts},
		{"methods", t.Methods, &out.methods},
	} {
		gs, err := glob.CompileList(f.pats)
		if err != nil {
			errs = append(errs, fmt.Errorf("target.%s%w", f.key, err))
		}
		*f.dst = gs
	}
	out.kinds = len(out.tools)+len(out.resources)+len(out.prompts) > 0
	return out, errors.Join(errs...)
}

// match tells whether the target selects a call of method to server about
// name (of kind k). When nameKnown is false, name is only the literal start
// of the name (a resource template's URI up to its first variable), and a
// target that restricts names of that kind may or may not match.
func (t *target) match(server, method string, k kind, name string, nameKnown bool) tri {
	if len(t.servers) > 0 && !t.servers.Any(server) {
		return no
	}
	if k == kindOther {
		// Methods without a subject are only ever decided by rules that
		// name them.
		if len(t.methods) == 0 || t.kinds || !t.methods.Any(method) {
			return no
		}
		return yes
	}
	if len(t.methods) > 0 && !t.methods.Any(method) {
		return no
	}
	if !t.kinds {
		return yes
	}
	var names glob.List
	switch k {
	case kindTool:
		names = t.tools
	case kindResource:
		names = t.resources
	case kindPrompt:
		names = t.prompts
	}
	switch {
	case len(names) == 0:
		return no
	case !nameKnown:
		for _, g := range names {
			if g.MayMatchPrefixed(name) {
				return maybe
			}
		}
		return no
	case names.Any(name):
		return yes
	}
	return no
}
