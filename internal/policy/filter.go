package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Wrap returns the handler that applies the policy around next: calls are
// decided before they go on, list results are filtered on their way back.
func (e *Engine) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		for _, d := range e.Decide(c) {
			if err := c.Decide(d); err != nil {
				return nil, err
			}
		}
		if c.Method == mcp.MethodCompletionComplete && c.Direction == guard.ToServer {
			if d, ok := e.completion(c); ok {
				if err := c.Decide(d); err != nil {
					return nil, err
				}
			}
		}
		if c.Direction != guard.ToServer {
			return next.Handle(ctx, c)
		}
		res, err := next.Handle(ctx, c)
		if err != nil || res == nil || res.Error != nil || res.Result == nil {
			return res, err
		}
		if listMember(c.Method) == "" {
			if err := e.checkInputRequests(c, res.Result); err != nil {
				return nil, err
			}
			return res, nil
		}
		return e.filterList(c, res), nil
	})
}

// checkInputRequests decides the requests a server makes of a 2026-07-28
// client inside an input_required result (its own, or a legacy server's
// requests bridged by the gateway) as the requests towards the client they
// are: a rule that stops a server from asking for sampling must hold for
// modern clients too. Such a request cannot be held for approval, so an
// enforced require-approval refuses it. The approval guard's own request
// (its input_required asks the human, and nothing went upstream) is not
// judged.
func (e *Engine) checkInputRequests(c *guard.Call, result jsontext.Value) error {
	if !bytes.Contains(result, []byte(`"inputRequests"`)) {
		return nil
	}
	for _, d := range c.Decisions {
		if d.Guard == "approval" && d.Reason == "approval-requested" {
			return nil
		}
	}
	reqs, ok, err := mcp.Lookup(result, "inputRequests")
	if err != nil || !ok || reqs.Kind() != '{' {
		return nil
	}
	return mcp.EachMember(reqs, func(_ string, v jsontext.Value) error {
		method, _, _ := mcp.LookupString(v, "method")
		params, _, _ := mcp.Lookup(v, "params")
		tc := &guard.Call{
			ID: c.ID, Principal: c.Principal, Client: c.Client, Era: c.Era, Direction: guard.ToClient,
			Profile: c.Profile, Server: c.Server, Prefix: c.Prefix, Method: method, Params: params,
			Transport: c.Transport,
		}
		for _, d := range e.Decide(tc) {
			if d.Effect == guard.RequireApproval && d.Mode == guard.Enforce {
				d.Effect, d.Reason = guard.Deny, ReasonApprovalUnavailable
				d.Message = denyMessage(tc, kindOther, guard.Deny) + ": it needs a human's approval, which cannot be asked inside another request"
			}
			if err := c.Decide(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// listMember returns the array member of a list method's result and the
// member of each item that names it.
func listMember(method string) string {
	m, _ := listKeys(method)
	return m
}

func listKeys(method string) (member, key string) {
	switch method {
	case mcp.MethodToolsList:
		return "tools", "name"
	case mcp.MethodPromptsList:
		return "prompts", "name"
	case mcp.MethodResourcesList:
		return "resources", "uri"
	case mcp.MethodResourceTemplatesList:
		return "resourceTemplates", "uriTemplate"
	}
	return "", ""
}

// Visibility is whether a list item is shown.
type Visibility struct {
	// Visible under the rules as enforced.
	Visible bool
	// WouldBeVisible were every rule enforced.
	WouldBeVisible bool
	// Rule names the rule that hides the item (or [DefaultRule]).
	Rule string
}

// Visible decides whether an item of the result of list method (tools/list,
// ...) is shown to the caller of c: whether the caller may possibly use it.
// name is the item's tool or prompt name or resource URI; for
// resources/templates/list it is the URI template. raw is the item as
// listed (a tool's definition: its annotations and input schema are known
// to conditions). Arguments are unknown, so a condition on them counts as
// possibly true.
func (e *Engine) Visible(c *guard.Call, list, name string, raw jsontext.Value) Visibility {
	return e.visible(c, list, name, raw, e.opts.Now())
}

func (e *Engine) visible(c *guard.Call, list, name string, raw jsontext.Value, now time.Time) Visibility {
	method, k := methodOf(list)
	template := list == mcp.MethodResourceTemplatesList
	var cands []int32
	var maybeTarget []bool
	if template {
		prefix := name
		if i := strings.IndexByte(prefix, '{'); i >= 0 {
			prefix = prefix[:i]
		}
		for i, r := range e.rules {
			switch r.target.match(c.Server, method, k, prefix, false) {
			case yes:
				cands = append(cands, int32(i))
				maybeTarget = append(maybeTarget, false)
			case maybe:
				cands = append(cands, int32(i))
				maybeTarget = append(maybeTarget, true)
			}
		}
	} else {
		cands, _ = e.candidates.get(e, c.Server, method, k, name)
	}
	a := &activation{e: e, c: c, k: k, name: name, now: now}
	if k == kindTool {
		a.toolRaw = raw
	}
	unknowns := []*cel.AttributePatternType{cel.AttributePattern("args")}
	if template {
		unknowns = append(unknowns, cel.AttributePattern("resource"))
	}
	pa, err := cel.PartialVars(a, unknowns...)
	if err != nil {
		// Cannot happen with an activation; show the item, the call is
		// still checked.
		return Visibility{Visible: true, WouldBeVisible: true}
	}
	// For each set (every rule; enforced rules only): whether some allow
	// or require-approval rule may apply, and the first deny rule that
	// certainly applies.
	var possible [2]bool
	var denied [2]*rule
	for j, i := range cands {
		r := e.rules[i]
		v := yes
		switch {
		case r.principalOnly != nil && a.ruledOut(r):
			v = no // false for this principal, whatever the arguments
		case r.partial != nil:
			v = partialVerdict(r, pa)
		}
		if maybeTarget != nil && maybeTarget[j] && v == yes {
			v = maybe
		}
		for set := range 2 {
			if set == 1 && r.mode != guard.Enforce {
				continue
			}
			switch {
			case v == no:
			case r.effect == guard.Deny:
				if v == yes && denied[set] == nil {
					denied[set] = r
				}
			default:
				possible[set] = true
			}
		}
	}
	vis := Visibility{
		WouldBeVisible: denied[0] == nil && possible[0],
		Visible:        denied[1] == nil && (possible[1] || e.mode == guard.Observe),
	}
	switch {
	case denied[1] != nil:
		vis.Rule = denied[1].id
	case denied[0] != nil && vis.Visible:
		vis.Rule = denied[0].id
	default:
		vis.Rule = DefaultRule
	}
	return vis
}

// partialVerdict evaluates r's condition with unknowns: maybe when the
// outcome depends on them. A condition that fails counts as applying for a
// deny rule (fail closed) and as not applying for an allow rule, as on a
// call.
func partialVerdict(r *rule, pa cel.PartialActivation) tri {
	out, _, err := r.partial.Eval(pa)
	if err == nil && types.IsUnknown(out) {
		return maybe
	}
	switch toVerdict(out, err) {
	case vYes:
		return yes
	case vNo:
		return no
	}
	if r.effect == guard.Allow {
		return no
	}
	return yes
}

// filterList drops from a list result the items the caller may not use.
func (e *Engine) filterList(c *guard.Call, res *guard.Result) *guard.Result {
	member, key := listKeys(c.Method)
	var hidden, wouldHide int
	var rules []string
	out, err := filterItems(res.Result, member, key, func(name string, raw jsontext.Value) bool {
		v := e.Visible(c, c.Method, name, raw)
		if !v.Visible {
			hidden++
		}
		if !v.WouldBeVisible {
			wouldHide++
		}
		if (!v.Visible || !v.WouldBeVisible) && !slices.Contains(rules, v.Rule) {
			rules = append(rules, v.Rule)
		}
		return v.Visible
	})
	if err != nil {
		// A list the guard cannot read cannot be judged item by item:
		// enforced, it is replaced by an empty list (not an error, so the
		// session goes on); observed, it passes.
		_ = c.Decide(guard.Decision{
			Guard: Name, Version: e.version, Rule: DefaultRule,
			Reason: ReasonListUnparsed, Effect: guard.Modify, Mode: e.mode,
			Message: "the " + c.Method + " result is not a valid list",
		})
		if e.mode == guard.Observe {
			return res
		}
		return &guard.Result{Result: jsontext.Value(`{"` + member + `":[]}`)}
	}
	slices.Sort(rules)
	what := strings.TrimSuffix(member, "s")
	if wouldHide > hidden {
		_ = c.Decide(guard.Decision{
			Guard: Name, Version: e.version, Rule: strings.Join(rules, " "),
			Reason: ReasonListFiltered, Effect: guard.Modify, Mode: guard.Observe,
			Message: fmt.Sprintf("%d %s(s) would be hidden", wouldHide, what),
		})
	}
	if hidden == 0 {
		return res
	}
	_ = c.Decide(guard.Decision{
		Guard: Name, Version: e.version, Rule: strings.Join(rules, " "),
		Reason: ReasonListFiltered, Effect: guard.Modify, Mode: guard.Enforce,
		Message: fmt.Sprintf("%d %s(s) hidden", hidden, what),
	})
	return &guard.Result{Result: out}
}

var (
	errNoList     = errors.New("result has no list array")
	errItemNoName = errors.New("an item has no string name")
)

// filterItems returns result with the items of its member array for which
// keep is false removed. It works on the bytes: every other member and
// every kept item is copied verbatim.
func filterItems(result jsontext.Value, member, key string, keep func(name string, raw jsontext.Value) bool) (jsontext.Value, error) {
	arr, ok, err := mcp.Lookup(result, member)
	if err != nil {
		return nil, err
	}
	if !ok || arr.Kind() != '[' {
		return nil, errNoList
	}
	dec := jsontext.NewDecoder(bytes.NewReader(arr))
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	kept := make([]byte, 0, len(arr))
	kept = append(kept, '[')
	n, dropped := 0, 0
	for dec.PeekKind() != ']' {
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		end := dec.InputOffset()
		item := arr[end-int64(len(v)) : end]
		if item.Kind() != '{' {
			return nil, errItemNoName
		}
		name, ok, err := mcp.LookupString(item, key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errItemNoName
		}
		if !keep(name, item) {
			dropped++
			continue
		}
		if n > 0 {
			kept = append(kept, ',')
		}
		kept = append(kept, item...)
		n++
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	if dropped == 0 {
		return result, nil
	}
	kept = append(kept, ']')
	return mcp.SetMember(result, member, kept)
}

// completion judges a completion/complete by what it completes: the
// arguments of a prompt, or the variables of a resource template, may be
// completed only by a caller who may possibly use that prompt or read a
// resource of that template, exactly as list filtering decides whether to
// show them. It returns no decision when the reference is neither, or when
// the caller may use it.
func (e *Engine) completion(c *guard.Call) (guard.Decision, bool) {
	typ, _, _ := mcp.LookupPath(c.Params, "ref", "type")
	var list, what string
	switch string(typ) {
	case `"ref/prompt"`:
		list, what = mcp.MethodPromptsList, "prompt "+strconv.Quote(c.ExposedName(c.Name))
	case `"ref/resource"`:
		list, what = mcp.MethodResourceTemplatesList, "resource "+strconv.Quote(truncate(c.Name, 200))
	default:
		return guard.Decision{}, false
	}
	v := e.Visible(c, list, c.Name, nil)
	if v.Visible && v.WouldBeVisible {
		return guard.Decision{}, false
	}
	d := guard.Decision{
		Guard: Name, Version: e.version, Rule: v.Rule, Reason: ReasonCompletionNotAllowed,
		Effect: guard.Deny, Mode: guard.Enforce,
		Message: "completing the arguments of " + what + " is not allowed by policy",
	}
	if v.Visible {
		d.Mode = guard.Observe // hidden only once observed rules are enforced
	}
	return d, true
}
