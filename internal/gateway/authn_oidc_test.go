package gateway

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/sluicehq/sluice/internal/guard"
	wire "github.com/sluicehq/sluice/internal/mcp"
)

// TestOIDC runs Sluice as an OAuth 2.1 resource server in front of one
// upstream, with a real OpenID provider as the authorization server, and
// drives it with the go-sdk client.
func TestOIDC(t *testing.T) {
	op := startOIDC(t)
	upURL, upHeaders := echoUpstream(t)
	ag := startAuthGateway(t, func(base string) string {
		return `
servers:
  up: {url: "` + upURL + `"}
profiles:
  ops: {servers: [up]}
auth:
  resource: "` + base + `/mcp"
  oauth:
    - issuer: "` + op.issuer + `"
      scopes: [mcp:tools]
      skew: 1s
      claims:
        attributes: {team: org.team}
`
	}, nil)
	resource := ag.base + "/mcp"
	metaURL := ag.base + "/.well-known/oauth-protected-resource/mcp"

	t.Run("tokens accepted", func(t *testing.T) {
		tok := op.token(t, "agent", resource, "mcp:tools")
		for _, e := range []string{wire.Version20251125, wire.Version20260728} {
			t.Run(e, func(t *testing.T) {
				cs, err := connectWith(t, resource, e, withBearer(tok))
				if err != nil {
					t.Fatal(err)
				}
				if got := echo(t, cs, "hi"); got != "echo:hi" {
					t.Errorf("echo = %q", got)
				}
				want := &guard.Principal{
					Issuer: op.issuer, Subject: "agent", Name: "agent", Groups: []string{"analysts", "eng"},
					Scopes: []string{"mcp:tools"}, ClientID: "agent", Attributes: map[string]string{"team": "blue"},
				}
				if diff := cmp.Diff(want, ag.rec.last()); diff != "" {
					t.Errorf("principal (-want +got):\n%s", diff)
				}
			})
		}
		for _, h := range upHeaders.all() {
			if strings.Contains(h, tok) {
				t.Fatalf("the client's token reached the upstream")
			}
		}
	})

	t.Run("profile resource", func(t *testing.T) {
		// A token for /mcp/ops is good there, not at /mcp; one for /mcp is
		// good at every endpoint.
		ops := op.token(t, "agent", resource+"/ops", "mcp:tools")
		if _, err := connectWith(t, resource+"/ops", wire.Version20251125, withBearer(ops)); err != nil {
			t.Fatalf("token for /mcp/ops at /mcp/ops: %v", err)
		}
		r := rawPost(t, nil, resource, initBody, map[string]string{"Authorization": "Bearer " + ops})
		wantChallenge(t, r, http.StatusUnauthorized, `Bearer error="invalid_token", error_description="the token is not for this resource", scope="mcp:tools", resource_metadata="`+metaURL+`"`)
		base := op.token(t, "agent", resource, "mcp:tools")
		if _, err := connectWith(t, resource+"/ops", wire.Version20260728, withBearer(base)); err != nil {
			t.Fatalf("token for /mcp at /mcp/ops: %v", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		good := op.token(t, "agent", resource, "mcp:tools")
		tests := []struct {
			name, token, reason string
		}{
			{"another audience", op.token(t, "agent", "https://elsewhere.example/mcp", "mcp:tools"), "authn-token-audience-mismatch"},
			{"wrongly signed", resign(t, good), "authn-token-signature-invalid"},
			{"alg none", algNone(t, good), "authn-token-algorithm-refused"},
			{"HMAC signed", hmacSigned(t, good), "authn-token-algorithm-refused"},
			{"unknown issuer", withClaim(t, good, "iss", "https://evil.example"), "authn-token-issuer-unknown"},
			{"changed claims", withClaim(t, good, "sub", "admin"), "authn-token-signature-invalid"},
			{"not a JWT", "abc.def", "authn-token-malformed"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				r := rawPost(t, nil, resource, initBody, map[string]string{"Authorization": "Bearer " + tc.token})
				if r.status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401: %s", r.status, r.body)
				}
				if got := reasonOf(t, r); got != tc.reason {
					t.Errorf("reason %q, want %q", got, tc.reason)
				}
				if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
					t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
				}
				if _, err := connectWith(t, resource, wire.Version20260728, withBearer(tc.token)); err == nil {
					t.Errorf("the go-sdk client connected with a refused token")
				}
			})
		}
	})

	t.Run("expired", func(t *testing.T) {
		tok := op.token(t, "short", resource, "mcp:tools")
		cs, err := connectWith(t, resource, wire.Version20251125, withBearer(tok))
		if err != nil {
			t.Fatalf("fresh short-lived token: %v", err)
		}
		_ = cs
		// Lives 2s, plus 1s of skew; the cache must not outlive it either.
		time.Sleep(3500 * time.Millisecond)
		r := rawPost(t, nil, resource, initBody, map[string]string{"Authorization": "Bearer " + tok})
		if r.status != http.StatusUnauthorized || reasonOf(t, r) != "authn-token-expired" {
			t.Fatalf("expired token: %d %s", r.status, r.body)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		r := rawPost(t, nil, resource, initBody, nil)
		wantChallenge(t, r, http.StatusUnauthorized, `Bearer scope="mcp:tools", resource_metadata="`+metaURL+`"`)
		r = rawPost(t, nil, resource+"/ops", initBody, nil)
		wantChallenge(t, r, http.StatusUnauthorized, `Bearer scope="mcp:tools", resource_metadata="`+metaURL+`/ops"`)
		// Unknown profiles look the same to a caller without credentials.
		r = rawPost(t, nil, resource+"/nope", initBody, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("unknown profile without credentials: %d", r.status)
		}
	})

	t.Run("insufficient scope", func(t *testing.T) {
		tok := op.token(t, "agent", resource, "")
		r := rawPost(t, nil, resource, initBody, map[string]string{"Authorization": "Bearer " + tok})
		wantChallenge(t, r, http.StatusForbidden, `Bearer error="insufficient_scope", error_description="the token lacks scopes this resource requires", scope="mcp:tools", resource_metadata="`+metaURL+`"`)
	})

	t.Run("metadata", func(t *testing.T) {
		for _, tc := range []struct{ path, resource string }{
			{"/.well-known/oauth-protected-resource/mcp", resource},
			{"/.well-known/oauth-protected-resource", resource},
			{"/.well-known/oauth-protected-resource/mcp/ops", resource + "/ops"},
		} {
			resp, err := http.Get(ag.base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %v", tc.path, resp.StatusCode, err)
			}
			want := map[string]any{
				"resource":                 tc.resource,
				"authorization_servers":    []any{op.issuer},
				"scopes_supported":         []any{"mcp:tools"},
				"bearer_methods_supported": []any{"header"},
				"resource_name":            "Sluice",
			}
			if diff := cmp.Diff(want, doc); diff != "" {
				t.Errorf("%s (-want +got):\n%s", tc.path, diff)
			}
		}
		resp, err := http.Get(ag.base + "/.well-known/oauth-protected-resource/elsewhere")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("metadata of a path that is no endpoint: %d", resp.StatusCode)
		}
	})

	t.Run("session bound to principal", func(t *testing.T) {
		agent := op.token(t, "agent", resource, "mcp:tools")
		other := op.token(t, "other", resource, "mcp:tools")
		r := rawPost(t, nil, resource, initBody, map[string]string{"Authorization": "Bearer " + agent})
		sid := r.header.Get("Mcp-Session-Id")
		if r.status != http.StatusOK || sid == "" {
			t.Fatalf("initialize: %d %s", r.status, r.body)
		}
		ping := `{"jsonrpc":"2.0","id":2,"method":"ping"}`
		r = rawPost(t, nil, resource, ping, map[string]string{"Authorization": "Bearer " + other, "Mcp-Session-Id": sid})
		if r.status != http.StatusNotFound {
			t.Errorf("another principal's session id: %d %s, want 404", r.status, r.body)
		}
		// The attempt is logged for the operator, without the id: it is
		// the owner's credential for the session.
		if logs := ag.logs.String(); !strings.Contains(logs, "session id presented by another principal") || strings.Contains(logs, sid) {
			t.Errorf("gateway log: want the attempt without the session id, got:\n%s", logs)
		}
		r = rawPost(t, nil, resource, ping, map[string]string{"Authorization": "Bearer " + agent, "Mcp-Session-Id": sid})
		if r.status != http.StatusOK {
			t.Errorf("the owner's session id: %d %s", r.status, r.body)
		}
	})

	t.Run("verified tokens cached", func(t *testing.T) {
		a := ag.g.st.Load().authn
		tok := op.token(t, "agent", resource, "mcp:tools")
		cs, err := connectWith(t, resource, wire.Version20260728, withBearer(tok))
		if err != nil {
			t.Fatal(err)
		}
		echo(t, cs, "one")
		before := a.Verifications()
		for i := range 5 {
			echo(t, cs, "again"+string(rune('0'+i)))
		}
		if got := a.Verifications() - before; got != 0 {
			t.Errorf("%d signature verifications for a token already verified", got)
		}
	})

	t.Run("key rotation", func(t *testing.T) {
		old := op.token(t, "agent", resource, "mcp:tools")
		if _, err := connectWith(t, resource, wire.Version20251125, withBearer(old)); err != nil {
			t.Fatal(err)
		}
		op.rotate(t)
		tok := op.token(t, "agent", resource, "mcp:tools")
		if kid(t, tok) == kid(t, old) {
			t.Fatal("rotation kept the key id")
		}
		if r := rawPost(t, nil, resource, initBody, map[string]string{"Authorization": "Bearer " + tok}); r.status != http.StatusOK {
			t.Fatalf("token signed with the new key: %d %s", r.status, r.body)
		}
		cs, err := connectWith(t, resource, wire.Version20260728, withBearer(tok))
		if err != nil {
			t.Fatalf("token signed with the new key: %v", err)
		}
		if got := echo(t, cs, "rotated"); got != "echo:rotated" {
			t.Errorf("echo = %q", got)
		}
	})

	t.Run("go-sdk OAuth flow", func(t *testing.T) {
		h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
			PreregisteredClient: &oauthex.ClientCredentials{
				ClientID:         "agent",
				ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: "agent-secret"},
				Issuer:           op.issuer,
			},
			RedirectURL:              "http://127.0.0.1/callback",
			AuthorizationCodeFetcher: browser(t, "http://127.0.0.1/callback"),
			AcceptUnadvertisedIss:    true,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := mcp.NewClient(&mcp.Implementation{Name: "authn-test", Version: "1"}, nil)
		cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: resource, OAuthHandler: h}, nil)
		if err != nil {
			t.Fatalf("connect with the OAuth flow: %v", err)
		}
		defer cs.Close()
		if got := echo(t, cs, "flow"); got != "echo:flow" {
			t.Errorf("echo = %q", got)
		}
		p := ag.rec.last()
		if p == nil || p.Subject != "alice" || p.ClientID != "agent" {
			t.Errorf("principal after the flow = %+v, want alice through agent", p)
		}
	})
}

// browser plays the user's browser in the authorization code flow: it
// follows the provider's redirects (the test provider logs in and consents
// at once) until the redirect to the client, and returns the code.
func browser(t *testing.T, redirect string) auth.AuthorizationCodeFetcher {
	return func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		jar, _ := cookiejar.New(nil)
		var final *url.URL
		hc := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), redirect) {
				final = req.URL
				return http.ErrUseLastResponse
			}
			return nil
		}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, args.URL, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		if final == nil {
			return nil, errors.New("the provider did not redirect to the client: " + resp.Status)
		}
		q := final.Query()
		if e := q.Get("error"); e != "" {
			return nil, errors.New("authorization failed: " + e + ": " + q.Get("error_description"))
		}
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
}

func wantChallenge(t *testing.T, r rawResponse, status int, challenge string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status %d, want %d: %s", r.status, status, r.body)
	}
	if got := r.header.Get("WWW-Authenticate"); got != challenge {
		t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, challenge)
	}
}

func reasonOf(t *testing.T, r rawResponse) string {
	t.Helper()
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return body.Reason
}

func splitJWT(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

func kid(t *testing.T, tok string) string {
	h, _ := splitJWT(t, tok)
	s, _ := h["kid"].(string)
	return s
}

// resign signs tok's header and claims with a key of our own.
func resign(t *testing.T, tok string) string {
	h, c := splitJWT(t, tok)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims(c))
	j.Header = h
	s, err := j.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// algNone re-encodes tok unsigned, with alg "none".
func algNone(t *testing.T, tok string) string {
	h, c := splitJWT(t, tok)
	h["alg"] = "none"
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(h) + "." + enc(c) + "."
}

// hmacSigned signs tok's claims with HS256 under a made-up secret.
func hmacSigned(t *testing.T, tok string) string {
	h, c := splitJWT(t, tok)
	j := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(c))
	j.Header["kid"] = h["kid"]
	s, err := j.SignedString([]byte("guessed"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withClaim changes one claim, keeping the original signature (which no
// longer matches).
func withClaim(t *testing.T, tok, claim string, v any) string {
	_, c := splitJWT(t, tok)
	c[claim] = v
	b, _ := json.Marshal(c)
	parts := strings.Split(tok, ".")
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}
