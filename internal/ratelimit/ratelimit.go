// Package ratelimit is the guard that bounds how often calls are made:
// token buckets per principal, per server and per tool, or any combination,
// each limit counting only the calls its target selects.
//
// A limit ([config.RateLimit]) has a rate ("10/s", "600/m") and a burst, and
// keeps one bucket per distinct key. The key is made of the limit's id and,
// as its per says, the principal's subject, the server and the tool; a tool
// is one server's tool, so per "tool" also keys by server. For calls other
// than tools/call, the "tool" part is the method and the name the call
// carries (a prompt name, a resource URI). Callers without a verified
// identity (no authentication configured, a nil [guard.Call.Principal])
// share one anonymous bucket per limit, kept apart from every subject, so
// a per-principal limit still bounds them all together.
//
// A limit's target selects calls with the patterns of package [glob]
// ("*" and "?" also match "/", so "file:///*" covers every file URI and
// "resources/*" every resources method): servers over the
// server's name, tools over tools/call's upstream-local tool name, prompts
// over prompts/get's name, resources over the URI of resources/read,
// subscribe and unsubscribe. When any of tools, prompts and resources is
// set, a call must be of one of the listed kinds and match. Methods select
// JSON-RPC methods in either direction; without them a limit counts only
// requests towards servers, leaving out the handshake (initialize,
// server/discover), ping, list methods ("*/list") and notifications, which
// clients send as a matter of course.
//
// Every matching limit takes a token for every call, in the order of the
// configuration, until one denies in enforce mode: the call stops with
// reason "ratelimit-exceeded" and a [guard.Decision.RetryAfter] the agent
// sees as retryAfterMs in the error's data. A limit in observe mode records
// the same decision and lets the call through. When the [Limiter] fails (a
// shared store that is down) the call is denied with reason
// "ratelimit-unavailable": a limit that cannot be checked is not a limit.
//
// Buckets live behind the [Limiter] interface: [Memory] holds them in this
// process; replicas that share limits plug in a shared store.
package ratelimit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/glob"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Name is the guard's name in [guard.Order].
const Name = "ratelimit"

// Reason codes of the decisions the guard records.
const (
	ReasonExceeded    = "ratelimit-exceeded"
	ReasonUnavailable = "ratelimit-unavailable"
)

// Options configures [New] beyond the limits themselves.
type Options struct {
	// Limiter holds the buckets. Nil means a new [Memory] with default
	// options. Pass the same limiter to the guards built on each reload so
	// that counts survive it.
	Limiter Limiter
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Guard is the rate limit guard. It is immutable after [New] and safe for
// concurrent use.
type Guard struct {
	limits  []*limit
	limiter Limiter
	now     func() time.Time
}

var _ guard.Guard = (*Guard)(nil)

// limit is one compiled config.RateLimit.
type limit struct {
	id                        string
	bucket                    Limit
	mode                      guard.Mode
	byPrincipal, byServer     bool
	byTool                    bool
	servers, methods          glob.List
	tools, prompts, resources glob.List
	byName                    bool // tools, prompts or resources is set
}

// New compiles the limits. It reports every problem with its place
// ("rate_limits[1].rate"), though a configuration that passed
// [config.Config.Validate] has none.
func New(limits []*config.RateLimit, opts Options) (*Guard, error) {
	g := &Guard{limiter: opts.Limiter, now: opts.Now}
	if g.limiter == nil {
		g.limiter = NewMemory(MemoryOptions{})
	}
	if g.now == nil {
		g.now = time.Now
	}
	var errs []error
	for i, rl := range limits {
		l, err := compile(rl)
		if err != nil {
			errs = append(errs, fmt.Errorf("rate_limits[%d]: %w", i, err))
			continue
		}
		g.limits = append(g.limits, l)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return g, nil
}

func compile(rl *config.RateLimit) (*limit, error) {
	if rl == nil {
		return nil, errors.New("empty rate limit")
	}
	var errs []error
	l := &limit{id: rl.ID, mode: guard.Mode(rl.Mode)}
	if rl.ID == "" {
		errs = append(errs, errors.New("id: required"))
	}
	if l.mode == "" {
		l.mode = guard.Enforce
	}
	if !l.mode.Valid() {
		errs = append(errs, fmt.Errorf("mode: unknown mode %q", rl.Mode))
	}
	parts, err := config.ParsePer(rl.Per)
	if err != nil {
		errs = append(errs, fmt.Errorf("per: %w", err))
	}
	for _, p := range parts {
		switch p {
		case config.PerPrincipal:
			l.byPrincipal = true
		case config.PerServer:
			l.byServer = true
		case config.PerTool:
			l.byServer, l.byTool = true, true
		}
	}
	rate, err := config.ParseRate(rl.Rate)
	if err != nil {
		errs = append(errs, fmt.Errorf("rate: %w", err))
	}
	l.bucket = Limit{Rate: rate, Burst: rl.Burst}
	switch {
	case rl.Burst < 0:
		errs = append(errs, errors.New("burst: must not be negative"))
	case rl.Burst == 0:
		l.bucket.Burst = max(1, int(min(math.Ceil(rate), math.MaxInt32)))
	}
	for _, list := range []struct {
		key string
		in  []string
		out *glob.List
	}{
		{"servers", rl.Target.Servers, &l.servers},
		{"tools", rl.Target.Tools, &l.tools},
		{"prompts", rl.Target.Prompts, &l.prompts},
		{"resources", rl.Target.Resources, &l.resources},
		{"methods", rl.Target.Methods, &l.methods},
	} {
		for i, p := range list.in {
			gl, err := glob.Compile(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("target.%s[%d]: %w", list.key, i, err))
				continue
			}
			*list.out = append(*list.out, gl)
		}
	}
	l.byName = len(rl.Target.Tools)+len(rl.Target.Prompts)+len(rl.Target.Resources) > 0
	return l, errors.Join(errs...)
}

// Name returns "ratelimit".
func (g *Guard) Name() string { return Name }

// Wrap returns the handler that charges the matching limits before next.
func (g *Guard) Wrap(next guard.Handler) guard.Handler {
	return guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		var now time.Time
		for _, l := range g.limits {
			if !l.matches(c) {
				continue
			}
			if now.IsZero() {
				now = g.now()
			}
			if err := g.charge(ctx, c, l, now); err != nil {
				return nil, err
			}
		}
		return next.Handle(ctx, c)
	})
}

// charge takes a token from l's bucket for c and records a denial.
func (g *Guard) charge(ctx context.Context, c *guard.Call, l *limit, now time.Time) error {
	v, err := g.limiter.Allow(ctx, l.key(c), l.bucket, now)
	switch {
	case err != nil:
		return c.Decide(guard.Decision{
			Guard:   Name,
			Rule:    l.id,
			Reason:  ReasonUnavailable,
			Effect:  guard.Deny,
			Mode:    l.mode,
			Message: "rate limits cannot be checked right now",
		})
	case !v.OK:
		return c.Decide(guard.Decision{
			Guard:      Name,
			Rule:       l.id,
			Reason:     ReasonExceeded,
			Effect:     guard.Deny,
			Mode:       l.mode,
			Message:    "rate limit exceeded; retry in " + roundUp(v.RetryAfter).String(),
			RetryAfter: ceilMillis(v.RetryAfter),
		})
	}
	return nil
}

// ceilMillis rounds d up to whole milliseconds, the unit of retryAfterMs
// in the agent's error: a wait shorter than a millisecond must not read as
// no wait at all.
func ceilMillis(d time.Duration) time.Duration {
	if r := d % time.Millisecond; r != 0 {
		d += time.Millisecond - r
	}
	return d
}

// roundUp rounds d up to a duration that reads well: milliseconds below a
// second, else seconds.
func roundUp(d time.Duration) time.Duration {
	unit := time.Second
	if d < time.Second {
		unit = time.Millisecond
	}
	if r := d % unit; r != 0 {
		d += unit - r
	}
	return d
}

// matches reports whether l counts c.
func (l *limit) matches(c *guard.Call) bool {
	if len(l.methods) > 0 {
		if !l.methods.Any(c.Method) {
			return false
		}
	} else if !countedByDefault(c) {
		return false
	}
	if len(l.servers) > 0 && (c.Server == "" || !l.servers.Any(c.Server)) {
		return false
	}
	if !l.byName {
		return true
	}
	switch c.Method {
	case mcp.MethodToolsCall:
		return l.tools.Any(c.Name)
	case mcp.MethodPromptsGet:
		return l.prompts.Any(c.Name)
	case mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsubscribe:
		return l.resources.Any(c.Name)
	}
	return false
}

// countedByDefault reports whether a limit without methods counts c:
// requests towards servers, except those every client sends as a matter
// of course.
func countedByDefault(c *guard.Call) bool {
	if c.Direction != guard.ToServer {
		return false
	}
	switch c.Method {
	case mcp.MethodInitialize, mcp.MethodDiscover, mcp.MethodPing:
		return false
	}
	return !strings.HasPrefix(c.Method, "notifications/") && !strings.HasSuffix(c.Method, "/list")
}

// key returns the bucket key of c under l: each part length-prefixed, so
// that no two different (subject, server, tool) tuples share a key.
func (l *limit) key(c *guard.Call) string {
	var buf [128]byte
	b := appendPart(buf[:0], l.id)
	if l.byPrincipal {
		// A flag byte keeps the anonymous bucket apart from a subject "".
		if c.Principal == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendPart(b, c.Principal.Issuer)
			b = appendPart(b, c.Principal.Subject)
		}
	}
	if l.byServer {
		b = appendPart(b, c.Server)
	}
	if l.byTool {
		b = appendPart(b, c.Method)
		b = appendPart(b, c.Name)
	}
	return string(b)
}

func appendPart(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
