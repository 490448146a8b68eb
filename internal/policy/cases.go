package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"go.yaml.in/yaml/v3"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// CaseFile is a table of policy test cases, the input of `sluice policy
// test`: calls made by principals, with the decision the policy must make.
type CaseFile struct {
	// Principals names the principals the cases use.
	Principals map[string]*CasePrincipal `yaml:"principals,omitempty"`
	Cases      []*Case                   `yaml:"cases"`
}

// CasePrincipal is a principal of a test case: written out, or the
// principal of an API key of the configuration (by the key's id).
type CasePrincipal struct {
	APIKey     string            `yaml:"api_key,omitempty"`
	Subject    string            `yaml:"subject,omitempty"`
	Name       string            `yaml:"name,omitempty"`
	Groups     []string          `yaml:"groups,omitempty,flow"`
	Scopes     []string          `yaml:"scopes,omitempty,flow"`
	ClientID   string            `yaml:"client_id,omitempty"`
	Attributes map[string]string `yaml:"attributes,omitempty"`
}

// Case is one call and the decision expected.
type Case struct {
	Name string `yaml:"name"`
	// Principal names an entry of CaseFile.Principals; empty means an
	// unauthenticated caller.
	Principal string   `yaml:"principal,omitempty"`
	Call      CaseCall `yaml:"call"`
	Expect    Expect   `yaml:"expect"`

	line int
}

// CaseCall describes the call.
type CaseCall struct {
	Server string `yaml:"server"`
	// Method defaults from what is named: tools/call for a tool,
	// resources/read for a resource, prompts/get for a prompt. A list
	// method (tools/list, ...) with a tool, resource or prompt asks whether
	// that item is shown.
	Method   string `yaml:"method,omitempty"`
	Tool     string `yaml:"tool,omitempty"`
	Resource string `yaml:"resource,omitempty"`
	Prompt   string `yaml:"prompt,omitempty"`
	// Args are the call's arguments.
	Args map[string]any `yaml:"args,omitempty"`
	// Annotations and InputSchema make up the tool's definition as its
	// server would list it.
	Annotations map[string]any    `yaml:"annotations,omitempty"`
	InputSchema map[string]any    `yaml:"input_schema,omitempty"`
	Client      CaseClient        `yaml:"client,omitempty"`
	Profile     string            `yaml:"profile,omitempty"`
	Headers     map[string]string `yaml:"headers,omitempty"`
	// Time is when the call is made (RFC 3339); default now.
	Time string `yaml:"time,omitempty"`
}

// CaseClient is what the client declares about itself.
type CaseClient struct {
	Name    string `yaml:"name,omitempty"`
	Version string `yaml:"version,omitempty"`
}

// Expect is the decision a case expects. Effect is required; the other
// fields are compared when set. For a list method, effect allow means the
// item is shown and deny that it is hidden.
type Expect struct {
	Effect string `yaml:"effect"`
	Rule   string `yaml:"rule,omitempty"`
	Reason string `yaml:"reason,omitempty"`
	Mode   string `yaml:"mode,omitempty"`
}

// ParseCases reads a case file strictly (unknown keys are errors) and
// checks every case, reporting all problems with their lines.
func ParseCases(data []byte, name string) (*CaseFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f CaseFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: no cases", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err == nil && len(doc.Content) == 1 {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "cases" {
				for j, c := range root.Content[i+1].Content {
					if j < len(f.Cases) && f.Cases[j] != nil {
						f.Cases[j].line = c.Line
					}
				}
			}
		}
	}
	var errs []error
	if len(f.Cases) == 0 {
		errs = append(errs, fmt.Errorf("%s: no cases", name))
	}
	seen := map[string]bool{}
	for i, c := range f.Cases {
		at := fmt.Sprintf("%s: cases[%d]", name, i)
		if c == nil {
			errs = append(errs, fmt.Errorf("%s: empty case", at))
			continue
		}
		at = fmt.Sprintf("%s:%d: cases[%d]", name, c.line, i)
		if c.Name == "" {
			errs = append(errs, fmt.Errorf("%s: name is required", at))
		} else if seen[c.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is used twice", at, c.Name))
		}
		seen[c.Name] = true
		if c.Principal != "" && f.Principals[c.Principal] == nil {
			errs = append(errs, fmt.Errorf("%s: principal %q is not in principals", at, c.Principal))
		}
		if _, err := c.method(); err != nil {
			errs = append(errs, fmt.Errorf("%s: call: %w", at, err))
		}
		if c.Call.Server == "" {
			errs = append(errs, fmt.Errorf("%s: call.server is required", at))
		}
		if c.Call.Time != "" {
			if _, err := time.Parse(time.RFC3339, c.Call.Time); err != nil {
				errs = append(errs, fmt.Errorf("%s: call.time: not an RFC 3339 time", at))
			}
		}
		switch c.Expect.Effect {
		case config.EffectAllow, config.EffectDeny, config.EffectRequireApproval:
		default:
			errs = append(errs, fmt.Errorf("%s: expect.effect must be allow, deny or require-approval, not %q", at, c.Expect.Effect))
		}
		switch c.Expect.Mode {
		case "", config.ModeObserve, config.ModeEnforce:
		default:
			errs = append(errs, fmt.Errorf("%s: expect.mode must be observe or enforce, not %q", at, c.Expect.Mode))
		}
	}
	return &f, errors.Join(errs...)
}

// method returns the call's method, checking that it names what it needs.
func (c *Case) method() (string, error) {
	cc := c.Call
	n := 0
	for _, s := range []string{cc.Tool, cc.Resource, cc.Prompt} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return "", errors.New("name one of tool, resource and prompt")
	}
	m := cc.Method
	if m == "" {
		switch {
		case cc.Tool != "":
			m = mcp.MethodToolsCall
		case cc.Resource != "":
			m = mcp.MethodResourcesRead
		case cc.Prompt != "":
			m = mcp.MethodPromptsGet
		default:
			return "", errors.New("name a tool, resource or prompt, or a method")
		}
	}
	var need string
	switch m {
	case mcp.MethodToolsCall, mcp.MethodToolsList:
		need = cc.Tool
	case mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe, mcp.MethodResourcesList, mcp.MethodResourceTemplatesList:
		need = cc.Resource
	case mcp.MethodPromptsGet, mcp.MethodPromptsList:
		need = cc.Prompt
	default:
		if n > 0 {
			return "", fmt.Errorf("method %q takes no tool, resource or prompt", m)
		}
		return m, nil
	}
	if need == "" {
		return "", fmt.Errorf("method %q needs the %s it is about", m, what(m))
	}
	return m, nil
}

func what(method string) string {
	switch method {
	case mcp.MethodToolsCall, mcp.MethodToolsList:
		return "tool"
	case mcp.MethodPromptsGet, mcp.MethodPromptsList:
		return "prompt"
	}
	return "resource"
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	Case *Case
	// Got is the decision made, in the terms of Expect.
	Got Expect
	// Diffs lists the fields that differ, as "field: want X, got Y".
	Diffs []string
	Err   error
}

// Failed reports whether the case did not get what it expected.
func (r *CaseResult) Failed() bool { return r.Err != nil || len(r.Diffs) > 0 }

// Where returns the case's name and line for a report.
func (r *CaseResult) Where(file string) string {
	if r.Case.line > 0 {
		return fmt.Sprintf("%s (%s:%d)", r.Case.Name, file, r.Case.line)
	}
	return r.Case.Name
}

// RunCases runs every case against e, with principals resolved in cfg
// (for api_key references).
func RunCases(e *Engine, cfg *config.Config, f *CaseFile) []*CaseResult {
	out := make([]*CaseResult, 0, len(f.Cases))
	for _, c := range f.Cases {
		out = append(out, e.runCase(cfg, f, c))
	}
	return out
}

func (e *Engine) runCase(cfg *config.Config, f *CaseFile, tc *Case) *CaseResult {
	res := &CaseResult{Case: tc}
	method, err := tc.method()
	if err != nil {
		res.Err = err
		return res
	}
	p, err := casePrincipal(cfg, f.Principals[tc.Principal])
	if err != nil {
		res.Err = err
		return res
	}
	cc := tc.Call
	name := cc.Tool + cc.Resource + cc.Prompt
	c := &guard.Call{
		ID: "policy-test", Principal: p, Server: cc.Server, Method: method, Name: name, Profile: cc.Profile,
		Client:    guard.ClientInfo{Name: cc.Client.Name, Version: cc.Client.Version},
		Transport: guard.Transport{Kind: "http", Headers: cc.Headers},
	}
	params := map[string]any{}
	switch method {
	case mcp.MethodToolsCall, mcp.MethodPromptsGet:
		params["name"] = name
		if cc.Args != nil {
			params["arguments"] = cc.Args
		}
	case mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe:
		params["uri"] = name
	}
	if c.Params, err = json.Marshal(params); err != nil {
		res.Err = fmt.Errorf("args: %w", err)
		return res
	}
	var tool jsontext.Value
	if cc.Tool != "" {
		def := map[string]any{"name": cc.Tool}
		if cc.Annotations != nil {
			def["annotations"] = cc.Annotations
		}
		if cc.InputSchema != nil {
			def["inputSchema"] = cc.InputSchema
		}
		if tool, err = json.Marshal(def); err != nil {
			res.Err = fmt.Errorf("tool definition: %w", err)
			return res
		}
		if method == mcp.MethodToolsCall {
			c.Tool = &guard.Tool{Name: cc.Tool, Raw: tool}
		}
	}
	now := e.opts.Now()
	if cc.Time != "" {
		now, _ = time.Parse(time.RFC3339, cc.Time)
	}
	if listMember(method) != "" {
		v := e.visible(c, method, name, tool, now)
		res.Got = Expect{Effect: config.EffectAllow, Mode: config.ModeEnforce}
		if !v.WouldBeVisible {
			res.Got.Effect, res.Got.Rule = config.EffectDeny, v.Rule
			if v.Visible {
				res.Got.Mode = config.ModeObserve
			}
		}
	} else if ds := e.decide(c, now); len(ds) > 0 {
		d := ds[0]
		res.Got = Expect{Effect: string(d.Effect), Rule: d.Rule, Reason: d.Reason, Mode: string(d.Mode)}
	} else {
		res.Got = Expect{Effect: config.EffectAllow, Mode: config.ModeEnforce}
	}
	want := tc.Expect
	cmp := func(field, w, g string) {
		if w != "" && w != g {
			if g == "" {
				g = "(none)"
			}
			res.Diffs = append(res.Diffs, fmt.Sprintf("%s: want %s, got %s", field, w, g))
		}
	}
	cmp("effect", want.Effect, res.Got.Effect)
	cmp("rule", want.Rule, res.Got.Rule)
	cmp("reason", want.Reason, res.Got.Reason)
	cmp("mode", want.Mode, res.Got.Mode)
	return res
}

// casePrincipal builds the principal of a case; nil means unauthenticated.
func casePrincipal(cfg *config.Config, p *CasePrincipal) (*guard.Principal, error) {
	if p == nil {
		return nil, nil
	}
	if p.APIKey != "" {
		if cfg.Auth != nil {
			for _, k := range cfg.Auth.APIKeys {
				if k != nil && k.ID == p.APIKey {
					s := k.Principal
					return &guard.Principal{
						Subject: s.Subject, Name: s.Name, Groups: slices.Clone(s.Groups), Scopes: slices.Clone(s.Scopes),
						ClientID: p.ClientID, Attributes: s.Attributes,
					}, nil
				}
			}
		}
		return nil, fmt.Errorf("no API key %q in the configuration's auth.api_keys", p.APIKey)
	}
	if strings.TrimSpace(p.Subject) == "" {
		return nil, errors.New("principal has no subject (or api_key)")
	}
	return &guard.Principal{
		Subject: p.Subject, Name: p.Name, Groups: p.Groups, Scopes: p.Scopes,
		ClientID: p.ClientID, Attributes: p.Attributes,
	}, nil
}
