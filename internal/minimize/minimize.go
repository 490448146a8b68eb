// Package minimize is the guard that gives agents no more data than they
// need: per server or tool, a cap on a tool result's size (cut with a
// notice the agent can read, or refused), a cap on the items of its
// content and of every array of its structured content, a projection of
// its structured content (JSON pointers to allow or deny, with "*"
// segments), and a cap on the text of each resource read.
//
// It is the innermost guard, so the others (DLP first) see what is left.
// When it projects or caps structured content, the result's text blocks
// are replaced by one holding the structure's JSON (which the spec asks
// servers to send beside structured content), so the agent never reads in
// text what the structure no longer holds.
package minimize

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "minimize"

// Reason codes of the guard's decisions.
const (
	ReasonTruncated        = "minimize-truncated"
	ReasonTooLarge         = "minimize-result-too-large"
	ReasonItemsCapped      = "minimize-items-capped"
	ReasonFieldsProjected  = "minimize-fields-projected"
	ReasonResourceCut      = "minimize-resource-truncated"
	ReasonResourceTooLarge = "minimize-resource-too-large"
	ReasonSchemaRemoved    = "minimize-output-schema-removed"
)

// Guard applies the first rule whose target matches a call.
type Guard struct {
	rules []rule
}

var _ guard.Guard = (*Guard)(nil)

type rule struct {
	id          string
	target      guard.Target
	maxResult   int
	refuse      bool
	maxItems    int
	allow, deny []pointer
	maxResource int
	mode        guard.Mode
}

// New builds the guard of a validated configuration.
func New(cfg *config.Minimize) (*Guard, error) {
	g := &Guard{}
	def := guard.Enforce
	if cfg.Mode != "" {
		def = guard.Mode(cfg.Mode)
	}
	for i, r := range cfg.Rules {
		t, err := guard.CompileTarget(r.Target.Servers, r.Target.Tools, r.Target.Resources, r.Target.Prompts, r.Target.Methods)
		if err != nil {
			return nil, fmt.Errorf("minimize.rules[%d].target: %w", i, err)
		}
		rl := rule{id: r.ID, target: t, maxResult: r.MaxResultBytes, refuse: r.Oversize == config.OversizeRefuse,
			maxItems: r.MaxItems, maxResource: r.MaxResourceBytes, mode: def}
		if r.Mode != "" {
			rl.mode = guard.Mode(r.Mode)
		}
		for _, list := range []struct {
			dst *[]pointer
			src []string
		}{{&rl.allow, r.Fields.Allow}, {&rl.deny, r.Fields.Deny}} {
			for j, s := range list.src {
				p, err := parsePointer(s)
				if err != nil {
					return nil, fmt.Errorf("minimize.rules[%d].fields[%d]: %w", i, j, err)
				}
				*list.dst = append(*list.dst, p)
			}
		}
		g.rules = append(g.rules, rl)
	}
	return g, nil
}

// Name implements [guard.Guard].
func (g *Guard) Name() string { return Name }

// Wrap implements [guard.Guard].
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Direction == guard.ToServer && c.Method == mcp.MethodToolsList {
			res, err := next.Handle(ctx, c)
			if err != nil || res == nil || res.Error != nil || len(res.Result) == 0 {
				return res, err
			}
			out, err := g.listed(c, res.Result)
			if err != nil || out == nil {
				return res, err
			}
			return &guard.Result{Result: out}, nil
		}
		if c.Direction != guard.ToServer || c.Method != mcp.MethodToolsCall && c.Method != mcp.MethodResourcesRead {
			return next.Handle(ctx, c)
		}
		r := g.ruleFor(c)
		if r == nil {
			return next.Handle(ctx, c)
		}
		res, err := next.Handle(ctx, c)
		if err != nil || res == nil || res.Error != nil || len(res.Result) == 0 {
			return res, err
		}
		var out jsontext.Value
		if c.Method == mcp.MethodResourcesRead {
			out, err = r.resource(c, res.Result)
		} else {
			out, err = r.toolResult(c, res.Result)
		}
		if err != nil {
			return nil, err
		}
		if out == nil || r.mode != guard.Enforce {
			return res, nil
		}
		return &guard.Result{Result: out}, nil
	})
}

// listed removes the output schema of the tools whose structured content
// an enforced rule projects or caps: what they return no longer follows
// it, and a client that validates structured content against it would
// reject the result. Without a schema, clients take structured content as
// it comes. nil when nothing changes.
func (g *Guard) listed(c *guard.Call, result jsontext.Value) (jsontext.Value, error) {
	tools, ok, err := mcp.Lookup(result, "tools")
	if err != nil || !ok {
		return nil, nil
	}
	list, err := elements(tools)
	if err != nil {
		return nil, nil
	}
	var decided []*rule
	for i, t := range list {
		name, ok, _ := mcp.LookupString(t, "name")
		if !ok {
			continue
		}
		call := *c
		call.Method, call.Name = mcp.MethodToolsCall, name
		r := g.ruleFor(&call)
		if r == nil || r.mode != guard.Enforce || len(r.allow)+len(r.deny) == 0 && r.maxItems == 0 {
			continue
		}
		if _, has, _ := mcp.Lookup(t, "outputSchema"); !has {
			continue
		}
		if list[i], err = mcp.DeleteMember(t, "outputSchema"); err != nil {
			return nil, nil
		}
		if !slices.Contains(decided, r) {
			decided = append(decided, r)
			if err := r.decide(c, ReasonSchemaRemoved, guard.Modify, ""); err != nil {
				return nil, err
			}
		}
	}
	if decided == nil {
		return nil, nil
	}
	out, err := mcp.SetMember(result, "tools", mcp.AppendArray(nil, list))
	if err != nil {
		return nil, nil
	}
	return out, nil
}

// ruleFor is the first rule whose target matches c, or nil.
func (g *Guard) ruleFor(c *guard.Call) *rule {
	for i := range g.rules {
		if g.rules[i].target.Matches(c) {
			return &g.rules[i]
		}
	}
	return nil
}

// elements returns the elements of a JSON array (slices of arr).
func elements(arr jsontext.Value) ([]jsontext.Value, error) {
	var out []jsontext.Value
	err := mcp.EachElement(arr, func(v jsontext.Value) error {
		out = append(out, v)
		return nil
	})
	return out, err
}

// decide records a decision of the rule; a refusal in enforce mode ends
// the call.
func (r *rule) decide(c *guard.Call, reason string, eff guard.Effect, msg string) error {
	return c.Decide(guard.Decision{Guard: Name, Rule: r.id, Reason: reason, Effect: eff, Mode: r.mode, Message: msg})
}

// toolResult minimizes a tools/call result; nil when nothing changes.
func (r *rule) toolResult(c *guard.Call, result jsontext.Value) (jsontext.Value, error) {
	if result.Kind() != '{' {
		return nil, nil // not an object: the gateway's checks deal with it
	}
	out, changed := result, false
	set := func(key string, v jsontext.Value) {
		if o, err := mcp.SetMember(out, key, v); err == nil {
			out, changed = o, true
		}
	}
	content, hasContent, _ := mcp.Lookup(result, "content")
	structured, hasStructured, _ := mcp.Lookup(result, "structuredContent")
	// Structured content: projection, then caps on its arrays.
	if hasStructured && (len(r.allow)+len(r.deny) > 0 || r.maxItems > 0) {
		w := &walker{allow: r.allow, deny: r.deny, maxItems: r.maxItems}
		projected, err := w.rewrite(structured)
		if err == nil && (w.dropped > 0 || w.capped > 0) {
			if w.dropped > 0 {
				if err := r.decide(c, ReasonFieldsProjected, guard.Modify, ""); err != nil {
					return nil, err
				}
			}
			if w.capped > 0 {
				if err := r.decide(c, ReasonItemsCapped, guard.Modify, ""); err != nil {
					return nil, err
				}
			}
			set("structuredContent", projected)
			// The text must not say what the structure no longer holds:
			// its text blocks become one, the structure's JSON (which the
			// spec asks servers to send beside structured content anyway);
			// other blocks stay.
			if blocks, err := elements(content); hasContent && err == nil {
				kept := []jsontext.Value{textBlock(string(projected))}
				for _, b := range blocks {
					if typ, _, _ := mcp.LookupString(b, "type"); typ != "text" {
						kept = append(kept, b)
					}
				}
				content = mcp.AppendArray(nil, kept)
				set("content", content)
			}
		}
	}
	// Content blocks.
	if blocks, err := elements(content); hasContent && err == nil && r.maxItems > 0 && len(blocks) > r.maxItems {
		n := len(blocks) - r.maxItems
		blocks = append(blocks[:r.maxItems:r.maxItems], textBlock(fmt.Sprintf("[sluice: %d more content blocks omitted]", n)))
		set("content", mcp.AppendArray(nil, blocks))
		if err := r.decide(c, ReasonItemsCapped, guard.Modify, ""); err != nil {
			return nil, err
		}
	}
	if r.maxResult > 0 && len(out) > r.maxResult {
		if r.refuse {
			return nil, r.decide(c, ReasonTooLarge, guard.Deny,
				fmt.Sprintf("the result of %q is larger than %d bytes", c.ExposedName(c.Name), r.maxResult))
		}
		if err := r.decide(c, ReasonTruncated, guard.Modify, ""); err != nil {
			return nil, err
		}
		return truncated(out, r.maxResult), nil
	}
	if !changed {
		return nil, nil
	}
	return out, nil
}

// truncated is a tool result cut to limit bytes: its text, as much as
// fits, and a notice of what was cut. Structured content, which cannot be
// cut and stay valid, is left out.
func truncated(result jsontext.Value, limit int) jsontext.Value {
	isError := jsontext.Value("false")
	if v, ok, _ := mcp.Lookup(result, "isError"); ok {
		isError = v
	}
	notice := fmt.Sprintf("\n[sluice: result truncated from %d to %d bytes", len(result), limit)
	if _, ok, _ := mcp.Lookup(result, "structuredContent"); ok {
		notice += "; structured content omitted"
	}
	notice += "]"
	var text []byte
	if content, ok, _ := mcp.Lookup(result, "content"); ok {
		mcp.EachElement(content, func(b jsontext.Value) error {
			if t, ok, _ := mcp.LookupString(b, "text"); ok {
				text = append(text, t...)
				text = append(text, '\n')
			}
			return nil
		})
	}
	// Room for the wrapper and the notice, and for escapes in the text.
	budget := limit - 64 - len(notice)
	for len(text) > 0 && quotedLen(text) > budget {
		cut := len(text) - max(1, (quotedLen(text)-budget+1)/2)
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	block := textBlock(string(text) + notice)
	return jsontext.Value(`{"content":[` + string(block) + `],"isError":` + string(isError) + `}`)
}

func quotedLen(b []byte) int {
	q, _ := jsontext.AppendQuote(nil, b)
	return len(q)
}

// resource minimizes a resources/read result: each text longer than the
// cap is cut, with a notice; a binary one that long refuses the call.
func (r *rule) resource(c *guard.Call, result jsontext.Value) (jsontext.Value, error) {
	if r.maxResource <= 0 {
		return nil, nil
	}
	contents, ok, err := mcp.Lookup(result, "contents")
	if err != nil || !ok {
		return nil, nil
	}
	list, err := elements(contents)
	if err != nil {
		return nil, nil
	}
	changed := false
	for i, item := range list {
		if blob, ok, _ := mcp.Lookup(item, "blob"); ok && len(blob) > r.maxResource {
			return nil, r.decide(c, ReasonResourceTooLarge, guard.Deny,
				fmt.Sprintf("resource %q is larger than %d bytes", c.Name, r.maxResource))
		}
		text, ok, _ := mcp.LookupString(item, "text")
		if !ok || len(text) <= r.maxResource {
			continue
		}
		cut := r.maxResource
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		q, _ := jsontext.AppendQuote(nil, text[:cut]+"\n[sluice: truncated from "+strconv.Itoa(len(text))+" bytes]")
		if list[i], err = mcp.SetMember(item, "text", q); err != nil {
			return nil, nil
		}
		changed = true
	}
	if !changed {
		return nil, nil
	}
	if err := r.decide(c, ReasonResourceCut, guard.Modify, ""); err != nil {
		return nil, err
	}
	out, err := mcp.SetMember(result, "contents", mcp.AppendArray(nil, list))
	if err != nil {
		return nil, nil
	}
	return out, nil
}
