package config

import (
	"bytes"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Transports an upstream server can be reached over.
const (
	TransportStdio          = "stdio"           // a command Sluice launches, JSON-RPC over its stdin and stdout
	TransportStreamableHTTP = "streamable-http" // Streamable HTTP, both eras
	TransportSSE            = "sse"             // the legacy HTTP+SSE transport (2024-11-05)
)

// Eras of the MCP protocol an upstream server speaks.
const (
	EraAuto   = "auto"   // detect: try server/discover, fall back to initialize
	EraLegacy = "legacy" // initialize handshake and sessions (2025-03-26 to 2025-11-25)
	EraModern = "modern" // no sessions, server/discover (2026-07-28)
)

// Log levels and formats.
const (
	LogDebug = "debug"
	LogInfo  = "info"
	LogWarn  = "warn"
	LogError = "error"

	LogText = "text"
	LogJSON = "json"
)

// Defaults applied to values that a configuration leaves out or sets to zero.
const (
	DefaultListen          = "127.0.0.1:8787"
	DefaultLogLevel        = LogInfo
	DefaultLogFormat       = LogText
	DefaultMaxMessageBytes = 4 << 20
	DefaultMaxDepth        = 64
	DefaultCallTimeout     = Duration(60 * time.Second)
	DefaultShutdownTimeout = Duration(10 * time.Second)
	DefaultSessionIdle     = Duration(30 * time.Minute)
	DefaultSeparator       = "__"
	DefaultInitialBackoff  = Duration(500 * time.Millisecond)
	DefaultMaxBackoff      = Duration(30 * time.Second)
)

// Config is a whole Sluice configuration.
type Config struct {
	Listen    string              `yaml:"listen,omitempty"`
	Log       Log                 `yaml:"log,omitempty"`
	Limits    Limits              `yaml:"limits,omitempty"`
	HTTP      HTTP                `yaml:"http,omitempty"`
	Namespace Namespace           `yaml:"namespace,omitempty"`
	Servers   map[string]*Server  `yaml:"servers,omitempty"`
	Profiles  map[string]*Profile `yaml:"profiles,omitempty"`

	TLS        *TLS         `yaml:"tls,omitempty"`         // HTTPS on the listener
	Auth       *Auth        `yaml:"auth,omitempty"`        // who is calling
	Policy     *Policy      `yaml:"policy,omitempty"`      // who may call what
	RateLimits []*RateLimit `yaml:"rate_limits,omitempty"` // how often
	Controls   Controls     `yaml:"controls,omitempty"`    // strict API controls
	Approval   *Approval    `yaml:"approval,omitempty"`    // how held calls are approved
	Audit      *Audit       `yaml:"audit,omitempty"`       // what is recorded, where
	Lineage    *Lineage     `yaml:"lineage,omitempty"`     // labels on data, toxic flows
	DLP        *DLP         `yaml:"dlp,omitempty"`         // secrets and personal data
	Minimize   *Minimize    `yaml:"minimize,omitempty"`    // caps and projections on results

	// DataDir holds what Sluice keeps between runs (the audit database and
	// keys). Default: $SLUICE_DATA_DIR, else $XDG_DATA_HOME/sluice, else
	// ~/.local/share/sluice.
	DataDir string `yaml:"data_dir,omitempty"`

	// Source says where the configuration came from: the file name given to
	// [Load] or [Parse], or "(default)" for [Default]. Errors are prefixed
	// with it.
	Source string `yaml:"-"`

	lines     map[string]int    // YAML path -> line, filled by Parse
	templates map[string]string // YAML path -> value before ${VAR} expansion, for values that had references
	embedded  bool              // built by Default
}

// Log configures Sluice's own log.
type Log struct {
	Level  string `yaml:"level,omitempty"`  // debug, info, warn or error
	Format string `yaml:"format,omitempty"` // text or json
}

// Limits bound the resources one message or call may use.
type Limits struct {
	MaxMessageBytes int64    `yaml:"max_message_bytes,omitempty"` // largest JSON-RPC message accepted, either way
	MaxDepth        int      `yaml:"max_depth,omitempty"`         // deepest JSON nesting accepted
	CallTimeout     Duration `yaml:"call_timeout,omitempty"`      // per call, unless a server overrides it
	ShutdownTimeout Duration `yaml:"shutdown_timeout,omitempty"`  // time given to in-flight calls on shutdown
	SessionIdle     Duration `yaml:"session_idle,omitempty"`      // a legacy session unused this long is closed
}

// HTTP configures the checks on downstream HTTP requests. Loopback origins
// and hosts are always accepted; these lists add to them.
type HTTP struct {
	AllowedOrigins []string `yaml:"allowed_origins,omitempty"` // e.g. "https://app.example.com"
	AllowedHosts   []string `yaml:"allowed_hosts,omitempty"`   // Host header values, e.g. "mcp.internal:8787"
}

// Namespace configures how tool names of several servers are kept apart.
type Namespace struct {
	// Separator goes between a server's name and its own tool name, as in
	// "fs__read_file". Names are namespaced only when more than one server is
	// exposed at an endpoint.
	Separator string `yaml:"separator,omitempty"`
}

// Server is one upstream MCP server: either a command Sluice launches
// (stdio) or a URL it connects to.
type Server struct {
	Command   []string          `yaml:"command,omitempty,flow"` // argv of a stdio server
	Env       map[string]string `yaml:"env,omitempty"`          // added to the child's minimal base environment; secret
	Dir       string            `yaml:"dir,omitempty"`          // working directory of the child
	URL       string            `yaml:"url,omitempty"`          // endpoint of a remote server
	Transport string            `yaml:"transport,omitempty"`    // one of the Transport constants; inferred when empty
	Era       string            `yaml:"era,omitempty"`          // one of the Era constants
	Headers   map[string]string `yaml:"headers,omitempty"`      // sent to a remote server; secret
	Shared    bool              `yaml:"shared,omitempty"`       // one upstream connection for all callers
	Timeout   Duration          `yaml:"timeout,omitempty"`      // per-call timeout; zero means limits.call_timeout
	Restart   Restart           `yaml:"restart,omitempty"`      // supervision of a stdio server
	Tools     ToolFilter        `yaml:"tools,omitempty"`        // over the server's own tool names
	// Methods filters the JSON-RPC methods of requests this server sends
	// towards clients (e.g. deny sampling/createMessage).
	Methods MethodFilter `yaml:"methods,omitempty"`
}

// Restart configures how a stdio server that exits is restarted: after
// InitialBackoff, doubling up to MaxBackoff.
type Restart struct {
	InitialBackoff Duration `yaml:"initial_backoff,omitempty"`
	MaxBackoff     Duration `yaml:"max_backoff,omitempty"`
}

// ToolFilter selects tools by name with [path.Match] globs. A tool is kept
// when Allow is empty or one of its globs matches, and no Deny glob matches.
type ToolFilter struct {
	Allow []string `yaml:"allow,omitempty,flow"`
	Deny  []string `yaml:"deny,omitempty,flow"`
}

// Profile is a named view of the servers, served at /mcp/<name>.
type Profile struct {
	Servers []string   `yaml:"servers,omitempty,flow"` // names from Config.Servers; empty means all
	Tools   ToolFilter `yaml:"tools,omitempty"`        // over the names the profile exposes
	// Methods filters the JSON-RPC methods callers of the profile may use,
	// and servers' requests towards them.
	Methods MethodFilter `yaml:"methods,omitempty"`
}

// MethodFilter selects JSON-RPC methods with [path.Match] globs
// ("resources/*"). A method is allowed when Allow is empty or one of its
// globs matches, and no Deny glob matches. Methods every session needs
// (initialize, ping, notifications, server/discover) are always allowed.
type MethodFilter struct {
	Allow []string `yaml:"allow,omitempty,flow"`
	Deny  []string `yaml:"deny,omitempty,flow"`
}

// ServerNames returns the names of the configured servers, sorted.
func (c *Config) ServerNames() []string {
	return slices.Sorted(maps.Keys(c.Servers))
}

// ProfileNames returns the names of the configured profiles, sorted.
func (c *Config) ProfileNames() []string {
	return slices.Sorted(maps.Keys(c.Profiles))
}

// ApplyDefaults fills in every value that is left empty or zero and has a
// default, and infers each server's transport from command or url. [Parse]
// and [Default] call it; code that builds a Config by hand may too.
func (c *Config) ApplyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Format == "" {
		c.Log.Format = DefaultLogFormat
	}
	if c.Limits.MaxMessageBytes == 0 {
		c.Limits.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.Limits.MaxDepth == 0 {
		c.Limits.MaxDepth = DefaultMaxDepth
	}
	if c.Limits.CallTimeout == 0 {
		c.Limits.CallTimeout = DefaultCallTimeout
	}
	if c.Limits.SessionIdle == 0 {
		c.Limits.SessionIdle = DefaultSessionIdle
	}
	if c.Limits.ShutdownTimeout == 0 {
		c.Limits.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Namespace.Separator == "" {
		c.Namespace.Separator = DefaultSeparator
	}
	for name, s := range c.Servers {
		if s == nil {
			s = &Server{}
			c.Servers[name] = s
		}
		if s.Transport == "" {
			switch {
			case len(s.Command) > 0 && s.URL == "":
				s.Transport = TransportStdio
			case s.URL != "" && len(s.Command) == 0:
				s.Transport = TransportStreamableHTTP
			}
		}
		if s.Era == "" {
			s.Era = EraAuto
		}
		if s.Transport == TransportStdio {
			if s.Restart.InitialBackoff == 0 {
				s.Restart.InitialBackoff = DefaultInitialBackoff
			}
			if s.Restart.MaxBackoff == 0 {
				s.Restart.MaxBackoff = max(DefaultMaxBackoff, s.Restart.InitialBackoff)
			}
		}
	}
	for name, p := range c.Profiles {
		if p == nil {
			c.Profiles[name] = &Profile{}
		}
	}
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	d := *c
	d.HTTP.AllowedOrigins = slices.Clone(c.HTTP.AllowedOrigins)
	d.HTTP.AllowedHosts = slices.Clone(c.HTTP.AllowedHosts)
	if c.Servers != nil {
		d.Servers = make(map[string]*Server, len(c.Servers))
		for name, s := range c.Servers {
			d.Servers[name] = s.clone()
		}
	}
	if c.Profiles != nil {
		d.Profiles = make(map[string]*Profile, len(c.Profiles))
		for name, p := range c.Profiles {
			if p == nil {
				d.Profiles[name] = nil
				continue
			}
			q := *p
			q.Servers = slices.Clone(p.Servers)
			q.Tools = p.Tools.clone()
			d.Profiles[name] = &q
		}
	}
	if c.Audit != nil {
		a := *c.Audit
		a.Sensitive = slices.Clone(c.Audit.Sensitive)
		a.Sinks = make([]*AuditSink, len(c.Audit.Sinks))
		for i, s := range c.Audit.Sinks {
			if s != nil {
				t := *s
				a.Sinks[i] = &t
			}
		}
		if c.Audit.Sinks == nil {
			a.Sinks = nil
		}
		d.Audit = &a
	}
	d.lines = maps.Clone(c.lines)
	d.templates = maps.Clone(c.templates)
	return &d
}

func (s *Server) clone() *Server {
	if s == nil {
		return nil
	}
	t := *s
	t.Command = slices.Clone(s.Command)
	t.Env = maps.Clone(s.Env)
	t.Headers = maps.Clone(s.Headers)
	t.Tools = s.Tools.clone()
	return &t
}

func (f ToolFilter) clone() ToolFilter {
	return ToolFilter{Allow: slices.Clone(f.Allow), Deny: slices.Clone(f.Deny)}
}

// RedactedValue is what replaces a secret in [Config.Redacted].
const RedactedValue = "REDACTED"

// Redacted returns a copy of c that is safe to log: the values of every
// server's env and headers and the audit HMAC key are replaced by
// [RedactedValue], a URL's password and
// query values are hidden, and values that came from ${VAR} references show
// the reference instead of the variable's value.
func (c *Config) Redacted() *Config {
	d := c.Clone()
	for name, s := range d.Servers {
		if s == nil {
			continue
		}
		p := childPath("servers", name)
		for i := range s.Command {
			if t, ok := c.templates[indexPath(childPath(p, "command"), i)]; ok {
				s.Command[i] = t
			}
		}
		if t, ok := c.templates[childPath(p, "dir")]; ok {
			s.Dir = t
		}
		if t, ok := c.templates[childPath(p, "url")]; ok {
			s.URL = t
		} else {
			s.URL = redactURL(s.URL)
		}
		for k := range s.Env {
			s.Env[k] = RedactedValue
		}
		for k := range s.Headers {
			s.Headers[k] = RedactedValue
		}
	}
	if d.Audit != nil && d.Audit.HMACKey != "" {
		d.Audit.HMACKey = RedactedValue
	}
	if d.Audit != nil {
		for _, s := range d.Audit.Sinks {
			if s != nil && s.DSN != "" {
				s.DSN = RedactedValue
			}
		}
	}
	d.templates = nil
	return d
}

// redactURL hides the password and the query values of a URL, which often
// carry credentials. A value that does not parse is hidden whole.
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return RedactedValue
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), RedactedValue)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{RedactedValue}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// String returns c as YAML with its secrets redacted (see [Config.Redacted]).
func (c *Config) String() string {
	b, err := c.Redacted().marshal(false)
	if err != nil {
		return "<config: " + err.Error() + ">"
	}
	return string(b)
}

// GoString is like String, so that %#v never prints a secret either.
func (c *Config) GoString() string { return c.String() }

// LogValue implements [slog.LogValuer] so that a logged Config is redacted.
func (c *Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// String returns s as YAML with the values of env and headers redacted.
func (s *Server) String() string {
	c := &Config{Servers: map[string]*Server{"server": s}}
	b, err := encodeYAML(c.Redacted().Servers["server"])
	if err != nil {
		return "<server: " + err.Error() + ">"
	}
	return strings.TrimSuffix(string(b), "\n")
}

// GoString is like String, so that %#v never prints a secret either.
func (s *Server) GoString() string { return s.String() }

// LogValue implements [slog.LogValuer] so that a logged Server is redacted.
func (s *Server) LogValue() slog.Value { return slog.StringValue(s.String()) }

// Marshal returns c as YAML that [Parse] reads back into an equal Config:
// a literal "${" in a value that Parse expands is written as "$${". The
// output holds every secret in clear; use [Config.String] for display.
func (c *Config) Marshal() ([]byte, error) { return c.marshal(true) }

func (c *Config) marshal(escape bool) ([]byte, error) {
	d := c
	if escape {
		d = c.Clone()
		for _, s := range d.Servers {
			if s == nil {
				continue
			}
			for i := range s.Command {
				s.Command[i] = escapeRefs(s.Command[i])
			}
			s.Dir = escapeRefs(s.Dir)
			s.URL = escapeRefs(s.URL)
			for k, v := range s.Env {
				s.Env[k] = escapeRefs(v)
			}
			for k, v := range s.Headers {
				s.Headers[k] = escapeRefs(v)
			}
		}
	}
	return encodeYAML(d)
}

// encodeYAML writes v as YAML indented by two spaces.
func encodeYAML(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
