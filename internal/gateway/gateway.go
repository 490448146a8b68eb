// Package gateway is the heart of Sluice: it terminates MCP sessions from
// clients (both protocol eras), routes each request through the guard chain
// to the upstream server that owns it, aggregates list results across
// upstreams with namespaced names, and bridges the two protocol eras in
// both directions (a legacy server's requests to the client become modern
// input_required results and back).
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/allowlist"
	"github.com/sluicehq/sluice/internal/approval"
	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/lineage"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/minimize"
	"github.com/sluicehq/sluice/internal/policy"
	"github.com/sluicehq/sluice/internal/ratelimit"
	"github.com/sluicehq/sluice/internal/transport/upstream"
)

// Options configure a [Gateway].
type Options struct {
	Logger *slog.Logger
	// BaseEnv is the environment every launched server starts from, before
	// its configured env. Sluice passes a minimal one (PATH, HOME, ...),
	// never its own full environment.
	BaseEnv []string
	// ServerInfo is how Sluice names itself to clients.
	Version string
	// KillTimeouts shorten the stdio shutdown sequence (tests).
	CloseTimeout, TermTimeout time.Duration
	// DataDir is where the audit log and its keys live by default (the
	// configuration's data_dir wins). With neither, calls are not audited.
	DataDir string
	// AuditAlternates lets this gateway keep an audit chain of its own
	// beside the default database when another process writes that one
	// (for `sluice stdio`, which desktop clients start several times).
	AuditAlternates bool
}

// Gateway serves clients in front of the configured upstream servers.
type Gateway struct {
	log  *slog.Logger
	opts Options

	st atomic.Pointer[state]

	mu        sync.Mutex
	upstreams map[string]*Upstream
	sessions  map[string]*Session // legacy sessions by id
	closed    bool

	callSeq  atomic.Uint64
	callBase string

	bridge *bridgeTable
	// approvals outlives configurations: calls held for approval and
	// approvals granted survive a reload.
	approvals    *approval.Manager
	cursors      cursorKey
	closingC     chan struct{}
	shutdownOnce sync.Once
	progress     progressTable
	// limiter holds the rate limit buckets; it outlives reloads so that a
	// reload does not refill them.
	limiter ratelimit.Limiter
	// audit is the audit log, opened once from the first configuration;
	// nil when calls are not audited.
	audit      *audit.Log
	auditKeys  *audit.KeySet
	auditFixed auditFixed
	// taint holds what each session has read (lineage); it outlives
	// reloads.
	taint *lineage.Store
	// fingerprints makes the keyed fingerprints of DLP findings: with the
	// audit log's HMAC key when there is one (so that `sluice audit hash`
	// finds them), else with a key made at start. It outlives reloads, so
	// that lineage matches values across them.
	fingerprints *audit.Hasher
}

// state is everything derived from one configuration; it is replaced whole
// on reload so that a request sees one consistent configuration.
type state struct {
	cfg      *config.Config
	profiles map[string]*profile
	chain    guard.Handler
	guards   []guard.Guard
	// allow is the allowlist guard of the chain; the gateway asks it about
	// methods it answers without the chain.
	allow   *allowlist.Guard
	limits  mcp.Limits
	timeout time.Duration
	// maxTimeout is the longest call timeout of any server: the deadline a
	// request gets before it is routed.
	maxTimeout time.Duration
	sep        string
	// authn authenticates HTTP requests; nil when auth is not configured.
	authn *authn.Authenticator
	// resourceHost is the host of auth.resource, accepted in Host headers
	// besides the loopback names and http.allowed_hosts.
	resourceHost string
	// hold is how long a call may wait for a human's approval before it is
	// forwarded (zero when nothing can require approval); it adds to the
	// request's deadline, and forward then times the upstream call alone.
	hold time.Duration
}

// profile is a set of servers exposed at one path.
type profile struct {
	name    string   // "" for the default profile at /mcp
	servers []string // sorted
	prefix  bool     // names are namespaced (more than one server)
}

// New builds a gateway from a validated configuration. Upstream servers are
// connected lazily; call [Gateway.Start] to probe them eagerly.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	g := &Gateway{
		log:       opts.Logger,
		opts:      opts,
		upstreams: map[string]*Upstream{},
		sessions:  map[string]*Session{},
		callBase:  hex.EncodeToString(b[:]),
		bridge:    newBridgeTable(),
		cursors:   newCursorKey(),
		closingC:  make(chan struct{}),
		limiter:   ratelimit.NewMemory(ratelimit.MemoryOptions{}),
		taint:     lineage.NewStore(0, 0),
	}
	am, err := approval.New(approval.FromConfig(cfg.Approval), nil)
	if err != nil {
		return nil, fmt.Errorf("approval: %w", err)
	}
	g.approvals = am
	if err := g.openAudit(cfg); err != nil {
		return nil, err
	}
	if g.auditKeys != nil && len(g.auditKeys.HMAC) > 0 {
		g.fingerprints = audit.NewHasher(g.auditKeys.HMAC)
	} else {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		g.fingerprints = audit.NewHasher(key)
	}
	st, err := g.build(cfg, nil)
	if err != nil {
		g.closeAudit()
		return nil, err
	}
	g.st.Store(st)
	g.syncUpstreams(cfg)
	go g.sweep()
	return g, nil
}

// sweep closes legacy sessions that have been idle longer than
// limits.session_idle: clients that vanish without a DELETE must not pin
// upstream sessions (and launched servers) forever. A session with a call in
// flight or an open GET stream is not idle.
func (g *Gateway) sweep() {
	for {
		idle := time.Duration(g.st.Load().cfg.Limits.SessionIdle)
		if idle <= 0 {
			idle = time.Duration(config.DefaultSessionIdle)
		}
		t := time.NewTimer(min(max(idle/4, 10*time.Millisecond), time.Minute))
		select {
		case <-g.closing():
			t.Stop()
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-idle).UnixNano()
		g.mu.Lock()
		var stale []*Session
		for _, s := range g.sessions {
			if s.lastActive.Load() < cutoff && !s.busy() {
				stale = append(stale, s)
			}
		}
		g.mu.Unlock()
		for _, s := range stale {
			g.log.Info("closing idle session", "session", s.id, "idle", idle)
			s.Close()
		}
	}
}

func (g *Gateway) build(cfg *config.Config, prev *state) (*state, error) {
	st := &state{
		cfg:      cfg,
		profiles: map[string]*profile{},
		limits:   mcp.Limits{MaxBytes: int(cfg.Limits.MaxMessageBytes), MaxDepth: cfg.Limits.MaxDepth},
		timeout:  time.Duration(cfg.Limits.CallTimeout),
		sep:      cfg.Namespace.Separator,
	}
	if st.sep == "" {
		st.sep = "__"
	}
	if st.timeout <= 0 {
		st.timeout = 60 * time.Second
	}
	st.maxTimeout = st.timeout
	for _, sc := range cfg.Servers {
		st.maxTimeout = max(st.maxTimeout, time.Duration(sc.Timeout))
	}
	all := cfg.ServerNames()
	st.profiles[""] = &profile{name: "", servers: all, prefix: len(all) > 1}
	for name, p := range cfg.Profiles {
		servers := slices.Clone(p.Servers)
		if len(servers) == 0 {
			servers = all
		}
		slices.Sort(servers)
		servers = slices.Compact(servers)
		pr := &profile{name: name, servers: servers, prefix: len(servers) > 1}
		if name == "default" {
			st.profiles[""] = pr
		}
		st.profiles[name] = pr
	}
	al := allowlist.Config{Servers: map[string]allowlist.Filter{}, Profiles: map[string]allowlist.Filter{}, Mode: guard.Enforce}
	for name, s := range cfg.Servers {
		if len(s.Tools.Allow)+len(s.Tools.Deny) > 0 {
			al.Servers[name] = allowlist.Filter{Allow: s.Tools.Allow, Deny: s.Tools.Deny}
		}
	}
	for name, p := range cfg.Profiles {
		if len(p.Tools.Allow)+len(p.Tools.Deny) > 0 {
			al.Profiles[name] = allowlist.Filter{Allow: p.Tools.Allow, Deny: p.Tools.Deny}
			if name == "default" {
				al.Profiles[""] = al.Profiles[name]
			}
		}
	}
	addStrictControls(&al, cfg, g.log)
	ag, err := allowlist.New(al)
	if err != nil {
		return nil, fmt.Errorf("allowlist: %w", err)
	}
	st.allow = ag
	st.guards = []guard.Guard{ag, g.approvals}
	if len(cfg.RateLimits) > 0 {
		rg, err := ratelimit.New(cfg.RateLimits, ratelimit.Options{Limiter: g.limiter})
		if err != nil {
			return nil, fmt.Errorf("ratelimit: %w", err)
		}
		st.guards = append(st.guards, rg)
	}
	if cfg.Policy != nil {
		// Installed after the others so that it can tell whether an
		// approval guard will hold what needs approval.
		pg, err := policy.New(cfg.Policy, policy.Options{
			Approval: slices.ContainsFunc(st.guards, func(x guard.Guard) bool { return x.Name() == "approval" }),
			Logger:   g.log,
		})
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		st.guards = append(st.guards, pg)
	}
	if cfg.Auth != nil {
		if err := g.buildAuthn(st, prev); err != nil {
			return nil, err
		}
		st.guards = append(st.guards, authn.Guard{})
	}
	if cfg.Minimize != nil {
		mg, err := minimize.New(cfg.Minimize)
		if err != nil {
			return nil, fmt.Errorf("minimize: %w", err)
		}
		st.guards = append(st.guards, mg)
	}
	if cfg.DLP != nil {
		dg, err := dlp.NewGuard(cfg.DLP, dlp.GuardOptions{Token: g.fingerprints.Token})
		if err != nil {
			return nil, fmt.Errorf("dlp: %w", err)
		}
		st.guards = append(st.guards, dg)
	}
	if cfg.Lineage != nil || cfg.DLP != nil {
		// With DLP, lineage follows the values it finds even without
		// labels of its own.
		lc := cfg.Lineage
		if lc == nil {
			lc = &config.Lineage{}
		}
		lg, err := lineage.New(lc, g.taint)
		if err != nil {
			return nil, fmt.Errorf("lineage: %w", err)
		}
		st.guards = append(st.guards, lg)
	}
	if g.audit != nil && cfg.AuditEnabled() {
		if !reflect.DeepEqual(g.fixedAudit(cfg), g.auditFixed) {
			g.log.Warn("audit sinks, keys or data directory changed: they take effect at the next start")
		}
		st.guards = append(st.guards, audit.GuardFor(g.audit, cfg.Audit, g.auditKeys.HMAC))
	} else if prev != nil && g.audit == nil && cfg.AuditEnabled() && g.auditDir(cfg) != "" {
		g.log.Warn("auditing was off at start: it takes effect at the next start")
	}
	chain, err := guard.Chain(guard.HandlerFunc(g.forward), st.guards...)
	if err != nil {
		st.closeAuthn(prev)
		return nil, err
	}
	if err := g.approvals.Configure(approval.FromConfig(cfg.Approval)); err != nil {
		st.closeAuthn(prev)
		return nil, fmt.Errorf("approval: %w", err)
	}
	if cfg.Policy != nil || cfg.Approval != nil {
		st.hold = approval.DefaultTimeout
		if cfg.Approval != nil && cfg.Approval.Timeout > 0 {
			st.hold = time.Duration(cfg.Approval.Timeout)
		}
	}
	st.chain = chain
	return st, nil
}

// auditDir is the data directory the audit log uses, "" when none is set.
func (g *Gateway) auditDir(cfg *config.Config) string {
	if cfg.DataDir != "" {
		return cfg.DataDir
	}
	return g.opts.DataDir
}

// openAudit opens the audit log when cfg audits and a data directory is
// known. The log outlives reloads.
func (g *Gateway) openAudit(cfg *config.Config) error {
	dir := g.auditDir(cfg)
	if !cfg.AuditEnabled() || dir == "" {
		return nil
	}
	keys, err := audit.LoadKeys(cfg.Audit, dir, true)
	if err != nil {
		return err
	}
	l, err := audit.Open(context.Background(), cfg.Audit, dir, keys, g.log, audit.OpenOptions{Alternates: g.opts.AuditAlternates})
	if err != nil {
		return err
	}
	g.audit, g.auditKeys, g.auditFixed = l, keys, g.fixedAudit(cfg)
	g.log.Info("auditing calls", "database", l.Store().Name())
	return nil
}

// auditFixed is the part of an audit configuration fixed at start: the
// data directory, sinks, keys, checkpoints and retention.
type auditFixed struct {
	dir   string
	audit config.Audit
}

func (g *Gateway) fixedAudit(cfg *config.Config) auditFixed {
	f := auditFixed{dir: g.auditDir(cfg)}
	if a := cfg.Audit; a != nil {
		f.audit = config.Audit{Sinks: a.Sinks, HMACKey: a.HMACKey, SigningKey: a.SigningKey, Checkpoint: a.Checkpoint, Retention: a.Retention}
	}
	return f
}

func (g *Gateway) closeAudit() {
	if g.audit != nil {
		if err := g.audit.Close(); err != nil {
			g.log.Error("closing the audit log", "err", err)
		}
	}
}

// Reason codes of requests refused at the HTTP front, before the chain.
const (
	ReasonHostNotAllowed   = "http-host-not-allowed"
	ReasonOriginNotAllowed = "http-origin-not-allowed"
)

// auditRefusal records a request refused before the guard chain (its
// Host, its Origin, or its credentials), whose method is not known since
// its body was not read. What the journal does not take is dropped: the
// request is refused either way.
func (g *Gateway) auditRefusal(r *http.Request, by, reason string) {
	if g.audit == nil || !g.st.Load().cfg.AuditEnabled() {
		return
	}
	t := httpTransport(r)
	e := &audit.Event{
		ID:        g.newCallID(),
		Time:      time.Now(),
		Kind:      "request",
		Direction: guard.ToServer.String(),
		Method:    r.Method,
		Name:      r.URL.Path,
		Transport: t.Kind,
		Remote:    t.RemoteAddr,
		Headers:   t.Headers,
		Outcome:   "denied",
		Reason:    reason,
		Decisions: []audit.Decision{{Guard: by, Reason: reason, Effect: string(guard.Deny), Mode: string(guard.Enforce)}},
	}
	if err := g.audit.Append(e.Body(), false); err != nil {
		g.log.Warn("refused request not recorded", "reason", reason, "err", err)
	}
}

// buildAuthn gives st its authenticator: the previous one when the auth and
// tls configuration did not change (keeping its fetched keys and verified
// tokens), else a new one.
func (g *Gateway) buildAuthn(st *state, prev *state) error {
	cfg := st.cfg
	if u, err := url.Parse(cfg.Auth.Resource); err == nil && u.Host != "" {
		st.resourceHost = u.Host
	}
	if prev != nil && prev.authn != nil && reflect.DeepEqual(prev.cfg.Auth, cfg.Auth) && reflect.DeepEqual(prev.cfg.TLS, cfg.TLS) {
		st.authn = prev.authn
		return nil
	}
	a, err := authn.New(context.Background(), cfg.Auth, cfg.TLS, g.log)
	if err != nil {
		return err
	}
	st.authn = a
	return nil
}

// closeAuthn closes st's authenticator unless other (the state before or
// after it) shares it.
func (st *state) closeAuthn(other *state) {
	if st.authn != nil && (other == nil || other.authn != st.authn) {
		_ = st.authn.Close()
	}
}

// addStrictControls configures the method filters and the strict controls
// on tools/call of the allowlist guard from cfg.
func addStrictControls(al *allowlist.Config, cfg *config.Config, log *slog.Logger) {
	al.ServerMethods, al.ProfileMethods = map[string]allowlist.Filter{}, map[string]allowlist.Filter{}
	for name, s := range cfg.Servers {
		if len(s.Methods.Allow)+len(s.Methods.Deny) > 0 {
			al.ServerMethods[name] = allowlist.Filter{Allow: s.Methods.Allow, Deny: s.Methods.Deny}
		}
	}
	for name, p := range cfg.Profiles {
		if len(p.Methods.Allow)+len(p.Methods.Deny) > 0 {
			al.ProfileMethods[name] = allowlist.Filter{Allow: p.Methods.Allow, Deny: p.Methods.Deny}
			if name == "default" {
				al.ProfileMethods[""] = al.ProfileMethods[name]
			}
		}
	}
	al.StrictMode = guard.Mode(cfg.Controls.Mode)
	al.SkipArguments = cfg.Controls.Arguments == config.ArgumentsOff
	al.AllowInvalidSchemas = cfg.Controls.InvalidSchema == config.InvalidSchemaAllow
	al.Logger = log
}

// Reload swaps in a new configuration without dropping sessions. Servers
// whose definition changed are reconnected on next use; removed servers are
// closed. The new configuration must already be validated.
func (g *Gateway) Reload(cfg *config.Config) error {
	prev := g.st.Load()
	st, err := g.build(cfg, prev)
	if err != nil {
		return err
	}
	g.st.Store(st)
	prev.closeAuthn(st)
	g.syncUpstreams(cfg)
	g.log.Info("configuration reloaded", "servers", len(cfg.Servers), "profiles", len(cfg.Profiles))
	return nil
}

func (g *Gateway) syncUpstreams(cfg *config.Config) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, up := range g.upstreams {
		sc, ok := cfg.Servers[name]
		if !ok || !up.sameConfig(sc) {
			delete(g.upstreams, name)
			go up.close()
		}
	}
	for name, sc := range cfg.Servers {
		if _, ok := g.upstreams[name]; !ok {
			g.upstreams[name] = newUpstream(g, name, sc)
		} else {
			g.upstreams[name].setTimeout(sc)
		}
	}
}

// Start connects to every upstream once, so that capabilities are known
// before the first client arrives and name collisions are reported. Errors
// are logged, not fatal: a server that is down now may be up later.
func (g *Gateway) Start(ctx context.Context) {
	g.mu.Lock()
	ups := make([]*Upstream, 0, len(g.upstreams))
	for _, u := range g.upstreams {
		ups = append(ups, u)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := u.probe(ctx); err != nil {
				g.log.Warn("upstream not reachable at start-up", "server", u.name, "err", err)
			}
		}()
	}
	wg.Wait()
	g.reportCollisions(ctx)
}

// reportCollisions logs exposed names that more than one server would claim
// in a profile.
func (g *Gateway) reportCollisions(ctx context.Context) {
	st := g.st.Load()
	for _, p := range st.profiles {
		seen := map[string]string{}
		for _, s := range p.servers {
			up := g.upstream(s)
			if up == nil {
				continue
			}
			us := up.probeSession()
			if us == nil {
				continue
			}
			items, _, err := us.list(ctx, mcp.MethodToolsList)
			if err != nil {
				continue
			}
			for _, it := range items {
				name, _, _ := mcp.LookupString(it, "name")
				exposed := st.expose(p, s, name)
				if other, dup := seen[exposed]; dup && other != s {
					g.log.Warn("tool name collision", "profile", p.name, "name", exposed, "servers", other+","+s)
				}
				seen[exposed] = s
			}
		}
	}
}

func (g *Gateway) upstream(name string) *Upstream {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.upstreams[name]
}

// Profile reports whether a profile of that name exists ("" is the default).
func (g *Gateway) Profile(name string) bool {
	_, ok := g.st.Load().profiles[name]
	return ok
}

// Limits returns the message limits in force.
func (g *Gateway) Limits() mcp.Limits { return g.st.Load().limits }

// Close ends every session and upstream connection.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	g.shutdownOnce.Do(func() { close(g.closingC) })
	g.approvals.Shutdown()
	ups := g.upstreams
	g.upstreams = map[string]*Upstream{}
	sessions := g.sessions
	g.sessions = map[string]*Session{}
	g.mu.Unlock()
	for _, s := range sessions {
		s.close()
	}
	g.st.Load().closeAuthn(nil)
	g.bridge.closeAll()
	var wg sync.WaitGroup
	for _, u := range ups {
		wg.Add(1)
		go func() { defer wg.Done(); u.close() }()
	}
	wg.Wait()
	// Last: the calls that ended with their upstreams have their records.
	g.closeAudit()
	return nil
}

// BeginShutdown ends long-lived streams (GET streams, subscriptions) and
// releases calls held for approval (as denials), so that an HTTP server's
// graceful shutdown only waits for calls in flight.
func (g *Gateway) BeginShutdown() {
	g.shutdownOnce.Do(func() { close(g.closingC) })
	g.approvals.Shutdown()
}

// closing is closed when the gateway shuts down.
func (g *Gateway) closing() <-chan struct{} { return g.closingC }

func (g *Gateway) newCallID() string {
	return g.callBase + "-" + strconv.FormatUint(g.callSeq.Add(1), 36)
}

// expose returns the name a client of profile p sees for a server's name.
func (st *state) expose(p *profile, server, name string) string {
	if !p.prefix {
		return name
	}
	return server + st.sep + name
}

func (st *state) prefix(p *profile, server string) string {
	if !p.prefix {
		return ""
	}
	return server + st.sep
}

// route splits an exposed name into its server and upstream-local name.
func (st *state) route(p *profile, exposed string) (server, local string, ok bool) {
	if !p.prefix {
		if len(p.servers) == 0 {
			return "", "", false
		}
		return p.servers[0], exposed, true
	}
	s, l, found := strings.Cut(exposed, st.sep)
	if !found || l == "" {
		return "", "", false
	}
	if _, in := slices.BinarySearch(p.servers, s); !in {
		return "", "", false
	}
	return s, l, true
}

// errUpstream marks failures to reach an upstream; the client sees
// CodeUpstreamUnavailable.
var errUpstream = errors.New("upstream unavailable")

// baseEnv returns the environment for a launched server.
func (g *Gateway) baseEnv() []string { return g.opts.BaseEnv }

// httpClient is shared by all HTTP upstreams. Plain-http upstreams use
// [upstream.DirectTransport]; https ones net/http's own.
var httpClient = &http.Client{
	Transport: &upstream.DirectTransport{Fallback: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}
