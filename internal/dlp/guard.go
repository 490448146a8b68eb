package dlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
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
	// ReasonRewriteFailed refuses a call whose data could not be
	// rewritten into valid JSON (fail closed).
	ReasonRewriteFailed = "dlp-rewrite-failed"
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
	action    string
	mode      guard.Mode
}

// GuardOptions configure [NewGuard].
type GuardOptions struct {
	// Token makes fingerprints: a keyed HMAC stable for the deployment
	// (the gateway gives the audit log's, so that `sluice audit hash` finds
	// them). Required.
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
		return nil, errors.New("dlp: a fingerprint function is required")
	}
	for i, r := range cfg.Rules {
		t, err := guard.CompileTarget(r.Target.Servers, r.Target.Tools, r.Target.Resources, r.Target.Prompts, r.Target.Methods)
		if err != nil {
			return nil, fmt.Errorf("dlp.rules[%d].target: %w", i, err)
		}
		dr := dlpRule{id: r.ID, types: r.Types, target: t, action: r.Action, mode: g.mode,
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
		sent, inArgs := sentData(c)
		edits, err := g.inspect(c, sent, "arguments")
		if err != nil {
			return nil, err
		}
		if len(edits) > 0 {
			// Copy before changing: the call's params are replaced whole.
			params := jsontext.Value(rewrite(sent, edits))
			if inArgs {
				params, err = mcp.SetMember(c.Params, "arguments", params)
			}
			if err != nil || !params.IsValid() {
				return nil, c.Decide(rewriteFailed(c))
			}
			c.Params = params
		}
		res, err := next.Handle(ctx, c)
		if err != nil || res == nil || res.Error != nil {
			return res, err
		}
		edits, err = g.inspect(c, res.Result, "result")
		if err != nil {
			return nil, err
		}
		if len(edits) > 0 {
			out := rewrite(res.Result, edits)
			if !jsontext.Value(out).IsValid() {
				return nil, c.Decide(rewriteFailed(c))
			}
			res = &guard.Result{Result: out}
		}
		return res, nil
	})
}

func rewriteFailed(c *guard.Call) guard.Decision {
	return guard.Decision{Guard: Name, Rule: DefaultRule, Reason: ReasonRewriteFailed, Effect: guard.Deny, Mode: guard.Enforce,
		Message: fmt.Sprintf("the data of %q could not be redacted", c.ExposedName(c.Name))}
}

// sentData is what a call sends: a tool's or prompt's arguments (and
// true), else the params.
func sentData(c *guard.Call) (jsontext.Value, bool) {
	if c.Method == mcp.MethodToolsCall || c.Method == mcp.MethodPromptsGet {
		v, ok, err := mcp.Lookup(c.Params, "arguments")
		if err != nil || !ok {
			return nil, true
		}
		return v, true
	}
	return c.Params, false
}

// edit replaces data[start:end].
type edit struct {
	start, end int
	with       string
}

// rewrite applies edits, which are in order and do not overlap, to JSON
// text. An edit inside a string replaces those bytes; one over a bare
// number replaces the whole number with a JSON string. An edit that
// straddles a string's quotes is not made, and the result is then invalid
// and refused by the caller.
func rewrite(data []byte, edits []edit) []byte {
	return rewriteWalking(data, edits, &jsonStrings{data: data, chunk: -1})
}

// stringWalk tells, walking JSON text forward, whether a position is
// inside a string.
type stringWalk interface {
	// walk goes from position from to position to, or just past it when an
	// escape straddles it, and returns where it stopped and whether that
	// is inside a string. Bytes before from are not read again.
	walk(from, to int) (int, bool)
}

// rewriteWalking is rewrite with the strings found by st.
func rewriteWalking(data []byte, edits []edit, st stringWalk) []byte {
	out := make([]byte, 0, len(data)+16*len(edits))
	at := 0
	for _, e := range edits {
		// Walk to e.start, tracking strings, then copy at once.
		i, in := st.walk(at, e.start)
		out = append(out, data[at:min(i, len(data))]...)
		at = i
		if bytes.IndexByte(data[e.start:e.end], '"') >= 0 {
			return append(out, '"') // refused: the edit would cross a string's end
		}
		if in {
			out = append(out, e.with...)
			at = e.end
			continue
		}
		// A bare value: from the start of the number to its end.
		for n := len(out); n > 0 && isNumberByte(out[n-1]); n-- {
			out = out[:n-1]
		}
		end := e.end
		for end < len(data) && isNumberByte(data[end]) {
			end++
		}
		out = append(out, '"')
		out = append(out, e.with...)
		out = append(out, '"')
		at = end
	}
	return append(out, data[at:]...)
}

// jsonStrings tracks whether a position of JSON text is inside a string,
// from the text's quotes and backslashes, found 32 bytes at a time.
type jsonStrings struct {
	data []byte
	// pos is where the state is known: in is whether pos is inside a
	// string, and skip the position after the last escape seen.
	pos, skip int
	in        bool
	// marks are the quotes and backslashes of the chunk from chunk.
	marks [maskChunk / 32]uint32
	chunk int
}

// walk implements [stringWalk].
func (s *jsonStrings) walk(from, to int) (int, bool) {
	s.pos = from
	s.advance(to)
	return max(from, to, s.skip), s.in
}

// advance moves the state on to position to.
func (s *jsonStrings) advance(to int) {
	for s.pos < to {
		c0 := s.pos / maskChunk * maskChunk
		if c0 != s.chunk {
			byteMarks(s.data, c0, min(len(s.data), c0+maskChunk), '"', '\\', false, s.marks[:])
			s.chunk = c0
		}
		end := min(to, c0+maskChunk)
		for w := (s.pos - c0) / 32; c0+32*w < end; w++ {
			base := c0 + 32*w
			m := s.marks[w]
			if s.pos > base {
				m &= ^uint32(0) << (s.pos - base)
			}
			if end < base+32 {
				m &= 1<<(end-base) - 1
			}
			for ; m != 0; m &= m - 1 {
				p := base + bits.TrailingZeros32(m)
				switch {
				case p < s.skip:
				case s.in && s.data[p] == '\\':
					s.skip = p + 2
				case s.data[p] == '"':
					s.in = !s.in
				}
			}
		}
		s.pos = end
	}
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// mask keeps the last four characters of a value when they are letters or
// digits, and hides the rest, keeping the length.
func mask(raw []byte) string {
	out := []byte(strings.Repeat("*", len(raw)))
	if len(raw) > 4 {
		tail := raw[len(raw)-4:]
		plain := true
		for _, c := range tail {
			plain = plain && isAlnum(c)
		}
		if plain {
			copy(out[len(out)-4:], tail)
		}
	}
	return string(out)
}

// inspect scans data, records the findings on c, decides on them, and
// returns the edits that enforced redact, mask and hash rules make. The
// first blocking decision that is enforced ends the call.
func (g *Guard) inspect(c *guard.Call, data []byte, where string) ([]edit, error) {
	if len(data) == 0 {
		return nil, nil
	}
	fs := g.scanner.Scan(data)
	if len(fs) == 0 {
		return nil, nil
	}
	args := where == "arguments"
	type verdict struct {
		rule   string
		action string
		mode   guard.Mode
		reason string
	}
	var verdicts []verdict
	var edits []edit
	for i := range fs {
		f := &fs[i]
		fp := f.Fingerprint(g.token)
		c.Findings = append(c.Findings, guard.Finding{Guard: Name, Kind: string(f.Class) + "/" + f.Type, Location: where,
			Confidence: f.Confidence.String(), Fingerprint: fp})
		v := verdict{rule: DefaultRule, action: config.DLPAlert, mode: g.mode}
		if args && f.Class == ClassSecret {
			v.action = config.DLPBlock
		}
		for _, r := range g.rules {
			if (args && !r.args) || (!args && !r.res) || !r.target.Matches(c) ||
				len(r.types) > 0 && !slices.Contains(r.types, f.Type) && !slices.Contains(r.types, string(f.Class)) {
				continue
			}
			v = verdict{rule: r.id, action: r.action, mode: r.mode}
			break
		}
		v.reason = reasonFor(f.Class, args)
		if !slices.Contains(verdicts, v) {
			verdicts = append(verdicts, v)
		}
		if v.mode != guard.Enforce {
			continue
		}
		switch v.action {
		case config.DLPRedact:
			edits = append(edits, edit{f.Start, f.End, "[REDACTED:" + f.Type + "]"})
		case config.DLPMask:
			edits = append(edits, edit{f.Start, f.End, mask(data[f.Start:f.End])})
		case config.DLPHash:
			edits = append(edits, edit{f.Start, f.End, fp})
		}
	}
	// Blocks first, so that an enforced one is recorded before the call
	// ends.
	slices.SortStableFunc(verdicts, func(a, b verdict) int {
		ab, bb := a.action == config.DLPBlock, b.action == config.DLPBlock
		switch {
		case ab && !bb:
			return -1
		case bb && !ab:
			return 1
		}
		return 0
	})
	var denied error
	for _, v := range verdicts {
		d := guard.Decision{Guard: Name, Rule: v.rule, Reason: v.reason, Effect: guard.Allow, Mode: v.mode}
		switch v.action {
		case config.DLPBlock:
			d.Effect = guard.Deny
			d.Message = blockMessage(c, v.reason)
		case config.DLPRedact, config.DLPMask, config.DLPHash:
			d.Effect = guard.Modify
		}
		if err := c.Decide(d); err != nil && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		return nil, denied
	}
	return edits, nil
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
