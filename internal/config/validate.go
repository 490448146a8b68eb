package config

import (
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

var (
	serverNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	profileNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// maxSeparatorLen is the longest namespace separator accepted.
const maxSeparatorLen = 8

// managedHeaders are set by the gateway itself on upstream requests; a
// configured value would break the transport or the protocol.
var managedHeaders = map[string]bool{
	"Host":                 true,
	"Content-Length":       true,
	"Content-Type":         true,
	"Connection":           true,
	"Transfer-Encoding":    true,
	"Upgrade":              true,
	"Te":                   true,
	"Trailer":              true,
	"Keep-Alive":           true,
	"Accept":               true,
	"Last-Event-Id":        true,
	"Mcp-Session-Id":       true,
	"Mcp-Protocol-Version": true,
	"Mcp-Method":           true,
	"Mcp-Name":             true,
}

// Validate reports every problem with c, each a [*Problem] with its YAML
// path and, for a parsed configuration, its line; the problems are joined
// with [errors.Join]. It does not change c. Values left empty or zero are
// valid where [Config.ApplyDefaults] has a default for them.
func (c *Config) Validate() error {
	return joinProblems(c.validate())
}

func (c *Config) validate() []*Problem {
	v := &validator{c: c}
	v.listen()
	v.log()
	v.limits()
	v.http()
	v.namespace()
	if len(c.Servers) == 0 && !c.embedded {
		v.add("servers", "at least one server is required")
	}
	for _, name := range c.ServerNames() {
		v.server(name, c.Servers[name])
	}
	for _, name := range c.ProfileNames() {
		v.profile(name, c.Profiles[name])
	}
	v.tls()
	v.auth()
	v.policy()
	v.rateLimits()
	v.methods()
	v.controls()
	v.approval()
	v.audit()
	v.lineage()
	v.dlp()
	v.minimize()
	sortProblems(v.problems)
	return v.problems
}

type validator struct {
	c        *Config
	problems []*Problem
}

func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, v.c.problem(path, format, args...))
}

func (v *validator) listen() {
	l := v.c.Listen
	if l == "" {
		return
	}
	host, port, err := net.SplitHostPort(l)
	if err != nil {
		v.add("listen", "must be host:port, such as %q", DefaultListen)
		return
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
		v.add("listen", "port %q must be a number from 0 to 65535", truncate(port, 20))
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		v.add("listen", "host %q is neither an IP address nor a host name", truncate(host, 64))
	}
}

func (v *validator) log() {
	switch v.c.Log.Level {
	case "", LogDebug, LogInfo, LogWarn, LogError:
	default:
		v.add("log.level", "must be debug, info, warn or error, not %q", truncate(v.c.Log.Level, 20))
	}
	switch v.c.Log.Format {
	case "", LogText, LogJSON:
	default:
		v.add("log.format", "must be text or json, not %q", truncate(v.c.Log.Format, 20))
	}
}

func (v *validator) limits() {
	l := v.c.Limits
	if l.MaxMessageBytes < 0 {
		v.add("limits.max_message_bytes", "must be positive")
	}
	if l.MaxDepth < 0 || l.MaxDepth > 10000 {
		v.add("limits.max_depth", "must be from 1 to 10000")
	}
	if l.CallTimeout < 0 {
		v.add("limits.call_timeout", "must not be negative")
	}
	if l.ShutdownTimeout < 0 {
		v.add("limits.shutdown_timeout", "must not be negative")
	}
	if l.SessionIdle < 0 {
		v.add("limits.session_idle", "must not be negative")
	}
}

func (v *validator) http() {
	for i, o := range v.c.HTTP.AllowedOrigins {
		p := indexPath("http.allowed_origins", i)
		u, err := url.Parse(o)
		switch {
		case o == "":
			v.add(p, "must not be empty")
		case o == "*" || strings.Contains(o, "*"):
			v.add(p, "wildcards are not supported; list each origin")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" ||
			u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
			v.add(p, "must be an origin such as \"https://app.example.com\" (scheme, host and optional port, no path)")
		}
	}
	for i, h := range v.c.HTTP.AllowedHosts {
		p := indexPath("http.allowed_hosts", i)
		if h == "" {
			v.add(p, "must not be empty")
			continue
		}
		const hostMsg = "must be a host name or IP address with an optional port, such as \"mcp.internal:8787\""
		if strings.ContainsAny(h, "/@?# ") {
			v.add(p, hostMsg)
			continue
		}
		host := h
		if hh, port, err := net.SplitHostPort(h); err == nil {
			host = hh
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || strconv.FormatUint(n, 10) != port {
				v.add(p, "port %q must be a number from 0 to 65535", truncate(port, 20))
				continue
			}
		}
		if net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")) == nil && !validHostname(host) {
			v.add(p, hostMsg)
		}
	}
}

func (v *validator) namespace() {
	s := v.c.Namespace.Separator
	switch {
	case s == "":
	case len(s) > maxSeparatorLen:
		v.add("namespace.separator", "must be at most %d bytes", maxSeparatorLen)
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		v.add("namespace.separator", "must not contain white space or control characters")
	}
}

func (v *validator) separator() string {
	if s := v.c.Namespace.Separator; s != "" {
		return s
	}
	return DefaultSeparator
}

func (v *validator) server(name string, s *Server) {
	p := childPath("servers", name)
	if !serverNameRE.MatchString(name) {
		v.add(p, "server name must be 1 to 64 letters, digits, '_' or '-', starting with a letter or digit")
	} else if sep := v.separator(); strings.Index(name+sep, sep) != len(name) {
		// A namespaced tool name is name+sep+tool and is split at the first
		// sep, so sep must first occur right after the name.
		v.add(p, "server name must not contain the namespace separator %q, nor end with part of it", sep)
	}
	if s == nil {
		v.add(p, "server is empty: set command or url")
		return
	}
	hasCmd, hasURL := len(s.Command) > 0, s.URL != ""
	switch {
	case hasCmd && hasURL:
		v.add(p, "set either command or url, not both")
	case !hasCmd && !hasURL:
		v.add(p, "set command (a stdio server) or url (a remote server)")
	}
	switch s.Transport {
	case "":
	case TransportStdio:
		if !hasCmd {
			v.add(childPath(p, "transport"), "transport %q needs command", s.Transport)
		}
	case TransportStreamableHTTP, TransportSSE:
		if !hasURL {
			v.add(childPath(p, "transport"), "transport %q needs url", s.Transport)
		}
	default:
		v.add(childPath(p, "transport"), "must be stdio, streamable-http or sse, not %q", truncate(s.Transport, 20))
	}
	switch s.Era {
	case "", EraAuto, EraLegacy:
	case EraModern:
		if s.Transport == TransportSSE {
			v.add(childPath(p, "era"), "the sse transport exists only in the legacy era")
		}
	default:
		v.add(childPath(p, "era"), "must be auto, legacy or modern, not %q", truncate(s.Era, 20))
	}
	if hasCmd {
		if s.Command[0] == "" {
			v.add(indexPath(childPath(p, "command"), 0), "program must not be empty")
		}
		for i, a := range s.Command {
			if strings.IndexByte(a, 0) >= 0 {
				v.add(indexPath(childPath(p, "command"), i), "must not contain a NUL byte")
			}
		}
	}
	if hasURL {
		v.url(childPath(p, "url"), s.URL)
	}
	if len(s.Env) > 0 && !hasCmd {
		v.add(childPath(p, "env"), "env is only for servers with a command")
	}
	for _, k := range sortedKeys(s.Env) {
		kp := childPath(childPath(p, "env"), k)
		if k == "" || strings.ContainsAny(k, "=\x00") {
			v.add(kp, "environment variable name must be non-empty without '=' or NUL")
		}
		if strings.IndexByte(s.Env[k], 0) >= 0 {
			v.add(kp, "value must not contain a NUL byte")
		}
	}
	if s.Dir != "" {
		if !hasCmd {
			v.add(childPath(p, "dir"), "dir is only for servers with a command")
		}
		if strings.IndexByte(s.Dir, 0) >= 0 {
			v.add(childPath(p, "dir"), "must not contain a NUL byte")
		}
	}
	if len(s.Headers) > 0 && !hasURL {
		v.add(childPath(p, "headers"), "headers are only for servers with a url")
	}
	canon := make(map[string]string, len(s.Headers))
	for _, k := range sortedKeys(s.Headers) {
		kp := childPath(childPath(p, "headers"), k)
		if !validHeaderName(k) {
			v.add(kp, "not a valid HTTP header name")
			continue
		}
		ck := http.CanonicalHeaderKey(k)
		if managedHeaders[ck] {
			v.add(kp, "header %s is set by the gateway and cannot be configured", ck)
		}
		if other, dup := canon[ck]; dup {
			v.add(kp, "same header as %q (header names are case-insensitive)", other)
		}
		canon[ck] = k
		if strings.ContainsAny(s.Headers[k], "\r\n\x00") {
			v.add(kp, "value must not contain line breaks or NUL bytes")
		}
	}
	if s.Timeout < 0 {
		v.add(childPath(p, "timeout"), "must not be negative")
	}
	rp := childPath(p, "restart")
	if s.Restart.InitialBackoff < 0 {
		v.add(childPath(rp, "initial_backoff"), "must not be negative")
	}
	if s.Restart.MaxBackoff < 0 {
		v.add(childPath(rp, "max_backoff"), "must not be negative")
	}
	if s.Restart.MaxBackoff > 0 && s.Restart.MaxBackoff < s.Restart.InitialBackoff {
		v.add(childPath(rp, "max_backoff"), "must be at least initial_backoff (%s)", s.Restart.InitialBackoff)
	}
	v.tools(childPath(p, "tools"), s.Tools)
}

// url checks an upstream URL without ever quoting it: it may hold
// credentials expanded from the environment.
func (v *validator) url(p, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		v.add(p, "not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		v.add(p, "must be an http or https URL")
	case u.Hostname() == "":
		v.add(p, "must have a host")
	case u.Fragment != "":
		v.add(p, "must not have a fragment")
	}
}

func (v *validator) tools(p string, f ToolFilter) {
	check := func(kind string, globs []string) {
		for i, g := range globs {
			gp := indexPath(childPath(p, kind), i)
			if g == "" {
				v.add(gp, "glob must not be empty")
				continue
			}
			if _, err := path.Match(g, ""); err != nil {
				v.add(gp, "invalid glob %q", truncate(g, 64))
			}
		}
	}
	check("allow", f.Allow)
	check("deny", f.Deny)
}

func (v *validator) profile(name string, pr *Profile) {
	p := childPath("profiles", name)
	if !profileNameRE.MatchString(name) {
		v.add(p, "profile name must be 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit")
	}
	if pr == nil {
		return
	}
	seen := make(map[string]bool, len(pr.Servers))
	for i, s := range pr.Servers {
		sp := indexPath(childPath(p, "servers"), i)
		switch {
		case seen[s]:
			v.add(sp, "server %q is listed twice", truncate(s, 64))
		case !hasKey(v.c.Servers, s):
			v.add(sp, "no server named %q", truncate(s, 64))
		}
		seen[s] = true
	}
	v.tools(childPath(p, "tools"), pr.Tools)
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// validHostname reports whether h is a DNS host name: dot-separated labels
// of letters, digits and hyphens, not starting or ending with a hyphen.
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validHeaderName reports whether k is an HTTP token (RFC 9110, section 5.1).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
