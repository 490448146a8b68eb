package authn

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// WellKnownPath is where the protected resource metadata (RFC 9728) is
// served; per-endpoint documents add the endpoint's path after it.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// profileRE is the syntax of profile names (as config validates them).
var profileRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// resource is Sluice's resource identifier (RFC 8707) and what derives from
// it. Each endpoint is a resource of its own: /mcp is auth.resource, and
// /mcp/<profile> is auth.resource with "/<profile>" appended when it ends in
// /mcp (else with "/mcp/<profile>"), so that a client that asks for a token
// for the exact URL it connects to gets one Sluice accepts there.
type resource struct {
	base          string // auth.resource as configured
	origin        string // scheme://host[:port]
	basePath      string // path of base, without a trailing slash
	profilePrefix string // profile resources are profilePrefix + name
}

func newResource(raw string) (resource, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" || u.RawQuery != "" || u.User != nil {
		return resource{}, errors.New("must be an absolute http or https URL without query or fragment")
	}
	trimmed := strings.TrimSuffix(raw, "/")
	return resource{
		base:          raw,
		origin:        u.Scheme + "://" + u.Host,
		basePath:      strings.TrimSuffix(u.EscapedPath(), "/"),
		profilePrefix: strings.TrimSuffix(trimmed, "/mcp") + "/mcp/",
	}, nil
}

// profileOf returns the profile an endpoint path names: "" for /mcp (and
// /mcp/default, as the gateway has it), the name for /mcp/<name>, and
// ok=false for paths that are not endpoints.
func profileOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/mcp")
	if !ok {
		return "", false
	}
	rest = strings.Trim(rest, "/")
	if rest == "" || rest == "default" {
		return "", true
	}
	if !profileRE.MatchString(rest) {
		return "", false
	}
	return rest, true
}

// forPath returns the resource identifier of the endpoint at path.
func (r resource) forPath(path string) string {
	if p, ok := profileOf(path); ok && p != "" {
		return r.profilePrefix + p
	}
	return r.base
}

// metadataURL returns the URL of the metadata document for the endpoint at
// path: the well-known prefix inserted between the resource's host and
// path (RFC 9728, section 3.1).
func (r resource) metadataURL(path string) string {
	res := r.forPath(path)
	p := strings.TrimSuffix(strings.TrimPrefix(res, r.origin), "/")
	return r.origin + WellKnownPath + p
}

// audienceOK reports whether a token with audiences aud may be used at the
// endpoint at path: one of them must be auth.resource, one of the issuer's
// extra audiences, or the endpoint's own resource identifier.
func (a *Authenticator) audienceOK(is *issuer, aud []string, path string) bool {
	prof, _ := profileOf(path)
	for _, x := range aud {
		x = strings.TrimSuffix(x, "/")
		if is.audiences[x] {
			return true
		}
		if prof != "" && len(x) == len(a.res.profilePrefix)+len(prof) &&
			strings.HasPrefix(x, a.res.profilePrefix) && x[len(a.res.profilePrefix):] == prof {
			return true
		}
	}
	return false
}

// metadataDoc is the protected resource metadata (RFC 9728, section 2).
type metadataDoc struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers,omitempty"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
}

// Metadata returns the handler of the protected resource metadata, to be
// mounted at [WellKnownPath] and below it. It answers the root document,
// one per endpoint (/mcp, /mcp/<profile>) and, when auth.resource has a
// path prefix of its own (a reverse proxy's), the same under that prefix.
// Any syntactically valid profile gets a document, so the answer tells
// nothing about which profiles exist. Without OAuth issuers there is no
// authorization server to announce, and it answers 404.
func (a *Authenticator) Metadata() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		suffix, ok := strings.CutPrefix(r.URL.Path, WellKnownPath)
		if !ok || len(a.issuerSeq) == 0 || (suffix != "" && suffix[0] != '/') {
			http.NotFound(w, r)
			return
		}
		var endpoint string
		switch suffix = strings.TrimSuffix(suffix, "/"); {
		case suffix == "" || suffix == a.res.basePath:
			endpoint = "/mcp"
		default:
			if _, ok := profileOf(suffix); ok {
				endpoint = suffix
				break
			}
			// Under the resource's own prefix: /<prefix>/mcp/<profile>.
			prefix := strings.TrimSuffix(a.res.basePath, "/mcp")
			rest, ok := strings.CutPrefix(suffix, prefix)
			if _, isEndpoint := profileOf(rest); !ok || prefix == "" || !isEndpoint {
				http.NotFound(w, r)
				return
			}
			endpoint = rest
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		doc := metadataDoc{
			Resource:               a.res.forPath(endpoint),
			ScopesSupported:        a.scopes,
			BearerMethodsSupported: []string{"header"},
			ResourceName:           "Sluice",
		}
		for _, is := range a.issuerSeq {
			doc.AuthorizationServers = append(doc.AuthorizationServers, is.name)
		}
		body, err := json.Marshal(doc)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=3600")
		// The document is public; browser-based clients must be able to read it.
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodHead {
			return
		}
		w.Write(body)
	})
}

// Challenge returns the WWW-Authenticate value for err at the endpoint at
// path, or "" when none is due (a 503).
func (a *Authenticator) Challenge(path string, err error) string {
	e := asError(err)
	if e.Status != http.StatusUnauthorized && e.Status != http.StatusForbidden && e.Status != http.StatusBadRequest {
		return ""
	}
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	param := func(k, v string) {
		b.WriteString(sep)
		b.WriteString(k)
		b.WriteString(`="`)
		for i := 0; i < len(v); i++ {
			switch c := v[i]; {
			case c == '"' || c == '\\':
				b.WriteByte('\\')
				b.WriteByte(c)
			case c < 0x20 || c == 0x7f:
				// Never emit control characters into a header.
			default:
				b.WriteByte(c)
			}
		}
		b.WriteByte('"')
		sep = ", "
	}
	if e.Code != "" {
		param("error", e.Code)
	}
	if e.Code != "" && e.Description != "" {
		param("error_description", e.Description)
	}
	scopes := e.Scopes
	if len(scopes) == 0 && e.Status == http.StatusUnauthorized {
		scopes = a.scopes
	}
	if len(scopes) > 0 {
		param("scope", strings.Join(scopes, " "))
	}
	if len(a.issuerSeq) > 0 {
		param("resource_metadata", a.res.metadataURL(path))
	}
	return b.String()
}

// WriteChallenge answers a request that failed authentication: the status of
// err, a WWW-Authenticate challenge naming the protected resource metadata
// of r's endpoint (and, for insufficient_scope, the scopes needed), and a
// small JSON body with the OAuth error and Sluice's reason code. Nothing of
// err's internal cause is written.
func (a *Authenticator) WriteChallenge(w http.ResponseWriter, r *http.Request, err error) {
	e := asError(err)
	h := w.Header()
	if c := a.Challenge(r.URL.Path, e); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(int(discoveryRetry.Seconds())))
	}
	code := e.Code
	if code == "" {
		code = "unauthorized"
		if e.Status == http.StatusServiceUnavailable {
			code = "temporarily_unavailable"
		}
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
		Reason      string `json:"reason"`
	}{code, e.Description, e.Reason})
	body = append(body, '\n')
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.Status)
	w.Write(body)
}

// ReasonOf is the reason code of an authentication failure, as its
// challenge carries it.
func ReasonOf(err error) string { return asError(err).Reason }

// asError returns err as an *Error; any other error becomes a plain 401.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) && e.Status != 0 {
		return e
	}
	return invalidToken(ReasonFailed, "authentication failed", err)
}
