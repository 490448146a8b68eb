package config

import (
	"encoding/hex"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// OAuthAlgorithms are the JWT signature algorithms auth.oauth[].algorithms
// may name: asymmetric ones only. "none" is no signature, and an HMAC key
// shared with the authorization server would let anyone holding it (Sluice
// included) mint tokens.
var OAuthAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultOAuthAlgorithms are accepted when an issuer names none.
var DefaultOAuthAlgorithms = []string{"RS256", "ES256", "PS256", "EdDSA"}

// MTLSSubjects are the certificate fields auth.mtls.subject may name.
var MTLSSubjects = []string{"san-uri", "san-email", "san-dns", "cn"}

// maxSkew bounds auth.oauth[].skew: a larger tolerance keeps expired tokens
// alive.
const maxSkew = 5 * time.Minute

var (
	apiKeyIDRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)
	attrNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
)

// credentialHeaders may not carry API keys: they mean something else to
// clients, proxies and Sluice.
var credentialHeaders = map[string]bool{"Authorization": true, "Cookie": true, "Proxy-Authorization": true}

// tls checks the listener's TLS configuration.
func (v *validator) tls() {
	t := v.c.TLS
	if t == nil {
		return
	}
	if t.CertFile == "" {
		v.add("tls.cert_file", "is required: the PEM certificate (chain) of the listener")
	}
	if t.KeyFile == "" {
		v.add("tls.key_file", "is required: the PEM private key of the certificate")
	}
	switch t.MinVersion {
	case "", "1.2", "1.3":
	default:
		v.add("tls.min_version", `must be "1.2" or "1.3", not %q`, truncate(t.MinVersion, 20))
	}
}

// auth checks how callers are authenticated.
func (v *validator) auth() {
	a := v.c.Auth
	if a == nil {
		return
	}
	if len(a.OAuth) == 0 && len(a.APIKeys) == 0 && a.MTLS == nil && a.Stdio == nil {
		v.add("auth", "configure at least one of oauth, api_keys, mtls or stdio")
	}
	if a.Resource != "" {
		v.secureURL("auth.resource", a.Resource, false)
	} else if len(a.OAuth) > 0 {
		v.add("auth.resource", "is required with auth.oauth: Sluice's own URL as clients reach it (the tokens' audience), such as \"https://mcp.example.com/mcp\"")
	}
	issuers := map[string]int{}
	for i, o := range a.OAuth {
		p := indexPath("auth.oauth", i)
		if o == nil {
			v.add(p, "issuer is empty: set issuer")
			continue
		}
		if o.Issuer == "" {
			v.add(childPath(p, "issuer"), "is required: the authorization server's issuer identifier")
		} else if v.secureURL(childPath(p, "issuer"), o.Issuer, false) {
			if first, dup := issuers[o.Issuer]; dup {
				v.add(childPath(p, "issuer"), "issuer %q is already configured in auth.oauth[%d]", truncate(o.Issuer, 80), first)
			} else {
				issuers[o.Issuer] = i
			}
		}
		if o.JWKSURL != "" {
			v.secureURL(childPath(p, "jwks_url"), o.JWKSURL, true)
		}
		for j, aud := range o.Audiences {
			if strings.TrimSpace(aud) == "" {
				v.add(indexPath(childPath(p, "audiences"), j), "must not be empty")
			}
		}
		for j, s := range o.Scopes {
			if s == "" || strings.ContainsAny(s, " \t\"\\") {
				v.add(indexPath(childPath(p, "scopes"), j), "must be a scope token (no spaces, quotes or backslashes)")
			}
		}
		for j, alg := range o.Algorithms {
			ap := indexPath(childPath(p, "algorithms"), j)
			switch {
			case strings.EqualFold(alg, "none"):
				v.add(ap, `"none" is never accepted: a token without a signature proves nothing`)
			case strings.HasPrefix(strings.ToUpper(alg), "HS"):
				v.add(ap, "%q is refused: HMAC algorithms need a secret shared with the authorization server; use %s", truncate(alg, 10), strings.Join(DefaultOAuthAlgorithms, ", "))
			case !slices.Contains(OAuthAlgorithms, alg):
				v.add(ap, "must be one of %s, not %q", strings.Join(OAuthAlgorithms, ", "), truncate(alg, 20))
			}
		}
		switch {
		case o.Skew < 0:
			v.add(childPath(p, "skew"), "must not be negative")
		case time.Duration(o.Skew) > maxSkew:
			v.add(childPath(p, "skew"), "must be at most %s", maxSkew)
		}
		v.claims(childPath(p, "claims"), o.Claims)
	}
	if a.APIKeyHeader != "" {
		h := http.CanonicalHeaderKey(a.APIKeyHeader)
		switch {
		case !headerNameRE.MatchString(a.APIKeyHeader):
			v.add("auth.api_key_header", "must be an HTTP header name such as \"X-Api-Key\"")
		case credentialHeaders[h] || managedHeaders[h]:
			v.add("auth.api_key_header", "%q cannot carry API keys (keys also travel as \"Authorization: Bearer\" without this setting)", h)
		}
	}
	ids := map[string]int{}
	hashes := map[string]int{}
	for i, k := range a.APIKeys {
		p := indexPath("auth.api_keys", i)
		if k == nil {
			v.add(p, "key is empty: set id, hash and principal")
			continue
		}
		v.uniqueID(p, "auth.api_keys", i, k.ID, ids, apiKeyIDRE,
			"is required: it names the key in logs and audit",
			"must be 1 to 64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit")
		h := strings.ToLower(k.Hash)
		rest, ok := strings.CutPrefix(k.Hash, "sha256:")
		switch first, dup := hashes[h]; {
		case k.Hash == "":
			v.add(childPath(p, "hash"), "is required: the output of `sluice auth hash-key` (never the key itself)")
		case !ok || len(rest) != 64 || !isHex(rest):
			v.add(childPath(p, "hash"), "must be \"sha256:\" followed by 64 lowercase hex digits, as `sluice auth hash-key` prints")
		case dup:
			v.add(childPath(p, "hash"), "is the same key as auth.api_keys[%d]", first)
		default:
			hashes[h] = i
		}
		if k.Expires != "" {
			if _, err := time.Parse(time.RFC3339, k.Expires); err != nil {
				v.add(childPath(p, "expires"), "must be an RFC 3339 time such as \"2027-01-31T00:00:00Z\"")
			}
		}
		v.principalSpec(childPath(p, "principal"), &k.Principal)
	}
	if m := a.MTLS; m != nil {
		if m.CAFile == "" {
			v.add("auth.mtls.ca_file", "is required: the PEM CA certificates client certificates must chain to")
		}
		if v.c.TLS == nil {
			v.add("auth.mtls", "needs tls: client certificates are only presented over HTTPS")
		}
		if m.Subject != "" && !slices.Contains(MTLSSubjects, m.Subject) {
			v.add("auth.mtls.subject", "must be one of %s, not %q", strings.Join(MTLSSubjects, ", "), truncate(m.Subject, 20))
		}
		v.names("auth.mtls.groups", m.Groups)
	}
	if a.Stdio != nil {
		v.principalSpec("auth.stdio", a.Stdio)
	}
}

// secureURL checks a URL that authentication depends on: absolute, no
// query or fragment, and https unless its host is loopback (a token or a
// key set fetched in clear could be read or replaced on the way). A JWKS
// URL may have a query.
func (v *validator) secureURL(p, raw string, queryOK bool) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" || u.User != nil || u.Fragment != "" || (u.RawQuery != "" && !queryOK) {
		v.add(p, "must be an absolute URL such as \"https://auth.example.com\" (no user info or fragment%s)", map[bool]string{false: ", no query", true: ""}[queryOK])
		return false
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopbackName(u.Hostname()) {
			v.add(p, "must use https (http only for loopback hosts)")
			return false
		}
	default:
		v.add(p, "must be an https URL, not %q", truncate(u.Scheme, 20))
		return false
	}
	return true
}

func isLoopbackName(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// claims checks a claim mapping.
func (v *validator) claims(p string, m ClaimMapping) {
	for _, f := range []struct{ key, val string }{
		{"subject", m.Subject}, {"name", m.Name}, {"groups", m.Groups}, {"scopes", m.Scopes}, {"client_id", m.ClientID},
	} {
		if f.val != "" && strings.TrimSpace(f.val) != f.val {
			v.add(childPath(p, f.key), "must be a claim name without surrounding spaces")
		}
	}
	for _, name := range sortedKeys(m.Attributes) {
		ap := childPath(childPath(p, "attributes"), name)
		if !attrNameRE.MatchString(name) {
			v.add(ap, "attribute name must be a letter or '_' followed by up to 63 letters, digits or '_'")
		}
		claim := m.Attributes[name]
		if claim == "" || strings.TrimSpace(claim) != claim || strings.HasPrefix(claim, ".") || strings.HasSuffix(claim, ".") || strings.Contains(claim, "..") {
			v.add(ap, "must be a claim name or a dotted path such as \"realm_access.roles\"")
		}
	}
}

// principalSpec checks a configured principal.
func (v *validator) principalSpec(p string, s *PrincipalSpec) {
	if strings.TrimSpace(s.Subject) == "" {
		v.add(childPath(p, "subject"), "is required: who this principal is")
	}
	v.names(childPath(p, "groups"), s.Groups)
	v.names(childPath(p, "scopes"), s.Scopes)
	for _, name := range sortedKeys(s.Attributes) {
		if !attrNameRE.MatchString(name) {
			v.add(childPath(childPath(p, "attributes"), name), "attribute name must be a letter or '_' followed by up to 63 letters, digits or '_'")
		}
	}
}

// names checks a list of group or scope names: non-empty, no surrounding
// spaces.
func (v *validator) names(p string, list []string) {
	for i, g := range list {
		if g == "" || strings.TrimSpace(g) != g {
			v.add(indexPath(p, i), "must be a non-empty name without surrounding spaces")
		}
	}
}
