package authn

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

func TestBearer(t *testing.T) {
	tests := []struct {
		header, tok, reason string
	}{
		{"Bearer abc.def-ghi_jkl~mno+/=", "abc.def-ghi_jkl~mno+/=", ""},
		{"bearer abc", "abc", ""},
		{"BEARER   abc", "abc", ""},
		{"Basic abc", "", ReasonSchemeUnsupported},
		{"Bearer", "", ReasonTokenMalformed},
		{"Bearer ", "", ReasonTokenMalformed},
		{"Bearer a b", "", ReasonTokenMalformed},
		{"Bearer a\"b", "", ReasonTokenMalformed},
		{"Bearer " + strings.Repeat("a", maxTokenLen+1), "", ReasonTokenMalformed},
	}
	for _, tt := range tests {
		tok, err := bearer(tt.header)
		reason := ""
		if err != nil {
			reason = asError(err).Reason
		}
		if tok != tt.tok || reason != tt.reason {
			t.Errorf("bearer(%.40q) = %q, %q; want %q, %q", tt.header, tok, reason, tt.tok, tt.reason)
		}
	}
}

func TestClaimMapping(t *testing.T) {
	claims := jwt.MapClaims{
		"sub": "u-1", "preferred_username": "ada", "email": "ada@example.com",
		"scope": "read write", "azp": "cli", "groups": []any{"a", "b", 3},
		"realm_access": map[string]any{"roles": []any{"admin", "dev"}},
		"level":        float64(3), "active": true, "weird": map[string]any{"x": 1.0},
		"roles": "r1 r2", "scp": []any{"s1"}, "uid": "alt-subject", "tenant.id": "exact",
	}
	tests := []struct {
		name string
		m    config.ClaimMapping
		want *guard.Principal
	}{
		{"defaults", config.ClaimMapping{}, &guard.Principal{
			Issuer: "https://login.example.com", Subject: "u-1", Name: "ada", Groups: []string{"a", "b"}, Scopes: []string{"read", "write"}, ClientID: "cli",
		}},
		{"mapped", config.ClaimMapping{
			Subject: "uid", Name: "email", Groups: "realm_access.roles", Scopes: "scp", ClientID: "azp",
			Attributes: map[string]string{"level": "level", "active": "active", "weird": "weird", "roles": "realm_access.roles", "tenant": "tenant.id", "missing": "nope.nope"},
		}, &guard.Principal{
			Issuer: "https://login.example.com", Subject: "alt-subject", Name: "ada@example.com", Groups: []string{"admin", "dev"}, Scopes: []string{"s1"}, ClientID: "cli",
			Attributes: map[string]string{"level": "3", "active": "true", "weird": `{"x":1}`, "roles": "admin,dev", "tenant": "exact"},
		}},
		{"space separated groups", config.ClaimMapping{Groups: "roles"}, &guard.Principal{
			Issuer: "https://login.example.com", Subject: "u-1", Name: "ada", Groups: []string{"r1", "r2"}, Scopes: []string{"read", "write"}, ClientID: "cli",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := &issuer{name: "https://login.example.com", claims: tt.m}
			got, err := is.principal(claims)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if _, err := (&issuer{}).principal(jwt.MapClaims{"name": "no subject"}); err == nil {
		t.Error("a token without a subject was mapped")
	}
}

func TestResource(t *testing.T) {
	tests := []struct {
		resource, path, forPath, metadata string
	}{
		{"https://mcp.example.com/mcp", "/mcp", "https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://mcp.example.com/mcp", "/mcp/ops", "https://mcp.example.com/mcp/ops", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/ops"},
		{"https://mcp.example.com/mcp", "/mcp/default", "https://mcp.example.com/mcp", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"},
		{"https://mcp.example.com", "/mcp", "https://mcp.example.com", "https://mcp.example.com/.well-known/oauth-protected-resource"},
		{"https://mcp.example.com", "/mcp/ops", "https://mcp.example.com/mcp/ops", "https://mcp.example.com/.well-known/oauth-protected-resource/mcp/ops"},
		{"https://gw.example.com/sluice/mcp", "/mcp/ops", "https://gw.example.com/sluice/mcp/ops", "https://gw.example.com/.well-known/oauth-protected-resource/sluice/mcp/ops"},
	}
	for _, tt := range tests {
		r, err := newResource(tt.resource)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.forPath(tt.path); got != tt.forPath {
			t.Errorf("%s forPath(%s) = %s, want %s", tt.resource, tt.path, got, tt.forPath)
		}
		if got := r.metadataURL(tt.path); got != tt.metadata {
			t.Errorf("%s metadataURL(%s) = %s, want %s", tt.resource, tt.path, got, tt.metadata)
		}
	}
	for _, bad := range []string{"mcp.example.com/mcp", "ftp://x/mcp", "https://x/mcp?a=b", "https://x/mcp#f", "https://u@x/mcp"} {
		if _, err := newResource(bad); err == nil {
			t.Errorf("newResource(%q) accepted", bad)
		}
	}
}

// TestMetadataPaths serves the metadata handler of an authenticator with
// an issuer (not contacted: its keys are only fetched for tokens).
func TestMetadataPaths(t *testing.T) {
	a := &Authenticator{issuerSeq: []*issuer{{name: "https://issuer.example"}}, scopes: []string{"mcp"}}
	a.res, _ = newResource("https://gw.example.com/sluice/mcp")
	h := a.Metadata()
	tests := []struct {
		method, path string
		status       int
		resource     string
	}{
		{"GET", "/.well-known/oauth-protected-resource", 200, "https://gw.example.com/sluice/mcp"},
		{"GET", "/.well-known/oauth-protected-resource/sluice/mcp", 200, "https://gw.example.com/sluice/mcp"},
		{"GET", "/.well-known/oauth-protected-resource/sluice/mcp/ops", 200, "https://gw.example.com/sluice/mcp/ops"},
		{"GET", "/.well-known/oauth-protected-resource/mcp/ops", 200, "https://gw.example.com/sluice/mcp/ops"},
		{"HEAD", "/.well-known/oauth-protected-resource/mcp", 200, ""},
		{"GET", "/.well-known/oauth-protected-resource/other", 404, ""},
		{"GET", "/.well-known/oauth-protected-resource/mcp/Bad..", 404, ""},
		{"GET", "/.well-known/oauth-protected-resourcex", 404, ""},
		{"POST", "/.well-known/oauth-protected-resource", 405, ""},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, rec.Code, tt.status)
			continue
		}
		if tt.resource != "" && !strings.Contains(rec.Body.String(), `"resource":"`+tt.resource+`"`) {
			t.Errorf("%s %s: %s, want resource %s", tt.method, tt.path, rec.Body.String(), tt.resource)
		}
	}
}

func TestChallenge(t *testing.T) {
	a := &Authenticator{issuerSeq: []*issuer{{name: "https://issuer.example"}}, scopes: []string{"mcp:tools", "mcp:read"}}
	a.res, _ = newResource("https://mcp.example.com/mcp")
	meta := `resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"`
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"no credentials", ErrNoCredentials, `Bearer scope="mcp:tools mcp:read", ` + meta},
		{"invalid token", invalidToken(ReasonTokenExpired, `the "token" \ has expired`+"\n", nil), `Bearer error="invalid_token", error_description="the \"token\" \\ has expired", scope="mcp:tools mcp:read", ` + meta},
		{"insufficient scope", &Error{Status: 403, Code: CodeInsufficientScope, Description: "more", Scopes: []string{"mcp:admin"}}, `Bearer error="insufficient_scope", error_description="more", scope="mcp:admin", ` + meta},
		{"unavailable", &Error{Status: 503}, ""},
		{"other error", errors.New("boom"), `Bearer error="invalid_token", error_description="authentication failed", scope="mcp:tools mcp:read", ` + meta},
	}
	for _, tt := range tests {
		if got := a.Challenge("/mcp", tt.err); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestTokenCache(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	c := newTokenCache(2)
	key := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	e := func(exp time.Duration) *entry {
		return &entry{exp: now.Add(exp), principal: &guard.Principal{Subject: "s"}}
	}
	c.put(key("a"), e(time.Minute), now)
	c.put(key("expired"), e(-time.Second), now)
	if c.get(key("a"), now) == nil || c.get(key("expired"), now) != nil {
		t.Fatal("cache does not hold what it should")
	}
	if c.get(key("a"), now.Add(time.Minute)) != nil {
		t.Error("a token is trusted at its expiry")
	}
	c.put(key("long"), e(time.Hour), now)
	if c.get(key("long"), now.Add(cacheTTL)) != nil {
		t.Error("a token is trusted past the cache TTL")
	}
	c.put(key("b"), e(time.Minute), now)
	c.put(key("c"), e(time.Minute), now)
	if c.len() > 2 {
		t.Errorf("cache holds %d entries, bound 2", c.len())
	}
	if c.get(key("c"), now) == nil {
		t.Error("the newest entry was evicted")
	}
}

func TestCertSubject(t *testing.T) {
	u, _ := url.Parse("spiffe://td/agent")
	full := &x509.Certificate{Subject: pkix.Name{CommonName: "cn"}, URIs: []*url.URL{u}, EmailAddresses: []string{"a@b"}, DNSNames: []string{"d.example"}}
	cnOnly := &x509.Certificate{Subject: pkix.Name{CommonName: "cn"}}
	tests := []struct {
		c     *x509.Certificate
		field string
		want  string
	}{
		{full, "", "spiffe://td/agent"},
		{full, SubjectSANEmail, "a@b"},
		{full, SubjectSANDNS, "d.example"},
		{full, SubjectCN, "cn"},
		{cnOnly, "", "cn"},
		{cnOnly, SubjectSANURI, ""},
	}
	for _, tt := range tests {
		if got := certSubject(tt.c, tt.field); got != tt.want {
			t.Errorf("certSubject(%q) = %q, want %q", tt.field, got, tt.want)
		}
	}
}

func TestGuardFailsClosed(t *testing.T) {
	reached := 0
	h := Guard{}.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		reached++
		return &guard.Result{}, nil
	}))
	for _, p := range []*guard.Principal{nil, {}} {
		c := &guard.Call{ID: "c1", Principal: p}
		_, err := h.Handle(context.Background(), c)
		var de *guard.DeniedError
		if !errors.As(err, &de) || de.Decision.Reason != ReasonRequired {
			t.Errorf("principal %+v: err %v, want a denial %s", p, err, ReasonRequired)
		}
	}
	if _, err := h.Handle(context.Background(), &guard.Call{Principal: &guard.Principal{Subject: "s"}}); err != nil || reached != 1 {
		t.Errorf("a call with a principal: err %v, reached %d", err, reached)
	}
}

// TestNewRefuses checks what New refuses even after validation passed (the
// files it reads).
func TestNewRefuses(t *testing.T) {
	ctx := context.Background()
	for name, auth := range map[string]*config.Auth{
		"bad hash":      {APIKeys: []*config.APIKey{{ID: "k", Hash: "md5:00"}}},
		"missing CA":    {MTLS: &config.MTLS{CAFile: "/nonexistent/ca.pem"}},
		"oauth, no aud": {OAuth: []*config.OAuthIssuer{{Issuer: "https://issuer.example"}}},
		"HMAC":          {Resource: "https://x/mcp", OAuth: []*config.OAuthIssuer{{Issuer: "https://issuer.example", Algorithms: []string{"HS256"}}}},
	} {
		if a, err := New(ctx, auth, &config.TLS{}, nil); err == nil {
			a.Close()
			t.Errorf("%s: New accepted", name)
		}
	}
}

// FuzzAuthenticate feeds arbitrary credentials to an authenticator with API
// keys (no network): it must never panic, and only the configured key may
// authenticate.
func FuzzAuthenticate(f *testing.F) {
	const key = "fuzz-key-0123456789abcdef"
	a, err := New(context.Background(), &config.Auth{
		APIKeyHeader: "X-Api-Key",
		APIKeys:      []*config.APIKey{{ID: "k", Hash: HashKey(key), Principal: config.PrincipalSpec{Subject: "s"}}},
	}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	for _, s := range []string{"Bearer " + key, "Bearer a.b.c", "bearer", "Basic x", "", "Bearer \x00", key} {
		f.Add(s, "")
		f.Add("", s)
	}
	f.Fuzz(func(t *testing.T, authz, apiKey string) {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		if authz != "" {
			r.Header.Set("Authorization", authz)
		}
		if apiKey != "" {
			r.Header.Set("X-Api-Key", apiKey)
		}
		p, err := a.Authenticate(r)
		if err == nil {
			ok := (apiKey == "" && len(authz) > 7 && strings.TrimLeft(authz[7:], " ") == key && strings.EqualFold(authz[:7], "bearer ")) ||
				(authz == "" && apiKey == key)
			if !ok || p.Subject != "s" {
				t.Fatalf("authenticated %q / %q as %+v", authz, apiKey, p)
			}
			return
		}
		e := asError(err)
		if e.Status != 400 && e.Status != 401 {
			t.Fatalf("status %d for %q / %q", e.Status, authz, apiKey)
		}
		_ = a.Challenge("/mcp", err)
	})
}
