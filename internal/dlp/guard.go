package dlp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "dlp"

// Reason codes of the guard's decisions: a class of data in a direction.
const (
	ReasonSecretInArguments = "dlp-secret-in-arguments"
	ReasonPIIInArguments    = "dlp-pii-in-arguments"
	ReasonSecretInResult    = "dlp-secret-in-result"
	ReasonPIIInResult       = "dlp-pii-in-result"
)

// DefaultRule names the decisions no configured rule made.
const DefaultRule = "(default)"

// Guard scans what a call sends (its arguments, or a request's params)
// and what comes back (the result), records every finding on the call
// (with a keyed fingerprint of its value), and applies the first rule
// that matches each finding: block refuses the call, alert records it.
// Without a matching rule, a secret in arguments is blocked and anything
// else is alerted.
type Guard struct {
	scanner *Scanner
	rules   []dlpRule
	mode    guard.Mode
	token   func(string) string
}

var _ guard.Guard = (*Guard)(nil)

type dlpRule struct {
	id        string
	types     []string
	args, res bool
	target    guard.Target
	block     bool
	mode      guard.Mode
}

// GuardOptions configure [NewGuard].
type GuardOptions struct {
	// Token makes fingerprints: a keyed HMAC stable for the deployment
	// (the audit log's, so that `sluice audit hash` finds them). Default:
	// a key made at start, so fingerprints match within one process only.
	Token func(string) string
}

// Options reads the detection settings of a validated configuration.
func OptionsFrom(cfg *config.DLP) (Options, error) {
	var o Options
	var err error
	if o.MinConfidence, err = ParseConfidence(cfg.MinConfidence); err != nil {
		return o, err
	}
	for i, d := range cfg.Detectors {
		re, err := regexp.Compile(d.Pattern)
		if err != nil {
			return o, fmt.Errorf("dlp.detectors[%d].pattern: %w", i, err)
		}
		conf, err := ParseConfidence(d.Confidence)
		if err != nil {
			return o, fmt.Errorf("dlp.detectors[%d].confidence: %w", i, err)
		}
		class := ClassSecret
		if d.Class == string(ClassPII) {
			class = ClassPII
		}
		o.Custom = append(o.Custom, Custom{Type: d.Type, Class: class, Pattern: re, Keywords: d.Keywords,
			Validator: d.Validator, Entropy: d.Entropy, Confidence: conf})
	}
	o.Allow = cfg.Allow.Values
	for i, p := range cfg.Allow.Patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return o, fmt.Errorf("dlp.allow.patterns[%d]: %w", i, err)
		}
		o.AllowPatterns = append(o.AllowPatterns, re)
	}
	o.Disabled = cfg.Disable
	return o, nil
}

// NewGuard builds the guard of a validated configuration.
func NewGuard(cfg *config.DLP, opts GuardOptions) (*Guard, error) {
	so, err := OptionsFrom(cfg)
	if err != nil {
		return nil, err
	}
	s, err := New(so)
	if err != nil {
		return nil, err
	}
	g := &Guard{scanner: s, mode: guard.Enforce, token: opts.Token}
	if cfg.Mode != "" {
		g.mode = guard.Mode(cfg.Mode)
	}
	if g.token == nil {
		key := make([]byte, 32)
		rand.Read(key)
		g.token = func(v string) string {
			m := hmac.New(sha256.New, key)
			m.Write([]byte(v))
			return "hmac:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		}
	}
	for i, r := range cfg.Rules {
		t, err := guard.CompileTarget(r.Target.Servers, r.Target.Tools, r.Target.Resources, r.Target.Prompts, r.Target.Methods)
		if err != nil {
			return nil, fmt.Errorf("dlp.rules[%d].target: %w", i, err)
		}
		dr := dlpRule{id: r.ID, types: r.Types, target: t, block: r.Action == config.DLPBlock, mode: g.mode,
			args: r.Direction != config.DLPResults, res: r.Direction != config.DLPArguments}
		if r.Mode != "" {
			dr.mode = guard.Mode(r.Mode)
		}
		g.rules = append(g.rules, dr)
	}
	return g, nil
}

// Scanner returns the guard's scanner.
func (g *Guard) Scanner() *Scanner { return g.scanner }

// Name implements [guard.Guard].
func (g *Guard) Name() string { return Name }

// Wrap implements [guard.Guard].
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Method == mcp.MethodPing {
			return next.Handle(ctx, c)
		}
		if err := g.inspect(c, sentData(c), "arguments"); err != nil {
			return nil, err
		}
		res, err := next.Handle(ctx, c)
		if err != nil || res == nil || res.Error != nil {
			return res, err
		}
		if err := g.inspect(c, res.Result, "result"); err != nil {
			return nil, err
		}
		return res, nil
	})
}

// sentData is what a call sends: a tool's or prompt's arguments, else the
// params.
func sentData(c *guard.Call) jsontext.Value {
	if c.Method == mcp.MethodToolsCall || c.Method == mcp.MethodPromptsGet {
		v, ok, err := mcp.Lookup(c.Params, "arguments")
		if err != nil || !ok {
			return nil
		}
		return v
	}
	return c.Params
}

// inspect scans data, records the findings on c and decides on them: the
// first blocking decision that is enforced ends the call.
func (g *Guard) inspect(c *guard.Call, data []byte, where string) error {
	if len(data) == 0 {
		return nil
	}
	fs := g.scanner.Scan(data)
	if len(fs) == 0 {
		return nil
	}
	args := where == "arguments"
	type verdict struct {
		rule   string
		block  bool
		mode   guard.Mode
		reason string
	}
	var verdicts []verdict
	for i := range fs {
		f := &fs[i]
		c.Findings = append(c.Findings, guard.Finding{Guard: Name, Kind: string(f.Class) + "/" + f.Type, Location: where,
			Confidence: f.Confidence.String(), Fingerprint: f.Fingerprint(g.token)})
		v := verdict{rule: DefaultRule, block: args && f.Class == ClassSecret, mode: g.mode}
		for _, r := range g.rules {
			if (args && !r.args) || (!args && !r.res) || !r.target.Matches(c) ||
				len(r.types) > 0 && !slices.Contains(r.types, f.Type) && !slices.Contains(r.types, string(f.Class)) {
				continue
			}
			v = verdict{rule: r.id, block: r.block, mode: r.mode}
			break
		}
		v.reason = reasonFor(f.Class, args)
		if !slices.Contains(verdicts, v) {
			verdicts = append(verdicts, v)
		}
	}
	// Blocks first, so that an enforced one is recorded before the call
	// ends.
	slices.SortStableFunc(verdicts, func(a, b verdict) int {
		switch {
		case a.block && !b.block:
			return -1
		case b.block && !a.block:
			return 1
		}
		return 0
	})
	var denied error
	for _, v := range verdicts {
		d := guard.Decision{Guard: Name, Rule: v.rule, Reason: v.reason, Effect: guard.Allow, Mode: v.mode}
		if v.block {
			d.Effect = guard.Deny
			d.Message = blockMessage(c, v.reason)
		}
		if err := c.Decide(d); err != nil && denied == nil {
			denied = err
		}
	}
	return denied
}

func reasonFor(class Class, args bool) string {
	switch {
	case args && class == ClassSecret:
		return ReasonSecretInArguments
	case args:
		return ReasonPIIInArguments
	case class == ClassSecret:
		return ReasonSecretInResult
	}
	return ReasonPIIInResult
}

// blockMessage says what was refused, without the value or the rule.
func blockMessage(c *guard.Call, reason string) string {
	what := "personal data"
	if strings.Contains(reason, "secret") {
		what = "a secret"
	}
	if strings.HasSuffix(reason, "arguments") {
		return fmt.Sprintf("the arguments of %q carry %s, which may not be sent", c.ExposedName(c.Name), what)
	}
	return fmt.Sprintf("the result of %q carries %s, which may not be returned", c.ExposedName(c.Name), what)
}
