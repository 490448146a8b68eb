package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

// startIssuer runs the command until the test ends and returns its URL and
// the token it wrote.
func startIssuer(t *testing.T, args ...string) (url, token string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "jwt")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, append([]string{"-token-file", tokenFile}, args...), pw)
		pw.CloseWithError(err)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v", err)
	}
	go io.Copy(io.Discard, pr)
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("first line %q, want the listening line", line)
	}
	fi, err := os.Stat(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return url, strings.TrimSpace(string(b))
}

// authenticator builds Sluice's own authenticator from an auth section.
func authenticator(t *testing.T, authYAML string) *authn.Authenticator {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	doc := "servers:\n  upstream: {url: http://127.0.0.1:1/mcp}\n" + authYAML
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := authn.New(t.Context(), cfg.Auth, cfg.TLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func authenticate(a *authn.Authenticator, resource, token string) (*guard.Principal, error) {
	r := httptest.NewRequest(http.MethodPost, resource, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return a.Authenticate(r)
}

// TestSluiceAcceptsTheToken checks the token against Sluice's own verifier,
// with the key set's location configured and discovered, and that the same
// verifier refuses a token for another audience.
func TestSluiceAcceptsTheToken(t *testing.T) {
	const resource = "http://127.0.0.1:8787/mcp"
	url, token := startIssuer(t, "-audience", resource, "-subject", "agent-7", "-groups", "bench-agents, ops")
	otherURL, otherAudience := startIssuer(t, "-audience", "http://127.0.0.1:9999/mcp")

	for _, tc := range []struct{ name, oauth string }{
		{"jwks_url", fmt.Sprintf("{issuer: %q, jwks_url: %q}", url, url+"/jwks.json")},
		{"discovered", fmt.Sprintf("{issuer: %q}", url)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := authenticator(t, fmt.Sprintf("auth:\n  resource: %s\n  oauth:\n    - %s\n    - {issuer: %q}\n", resource, tc.oauth, otherURL))
			p, err := authenticate(a, resource, token)
			if err != nil {
				t.Fatalf("authenticate: %v", err)
			}
			want := struct {
				Issuer, Subject, ClientID string
				Groups, Scopes            []string
			}{url, "agent-7", "sluice-bench-load", []string{"bench-agents", "ops"}, []string{"mcp:tools"}}
			got := want
			got.Issuer, got.Subject, got.ClientID, got.Groups, got.Scopes = p.Issuer, p.Subject, p.ClientID, p.Groups, p.Scopes
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			// Verified once; the next calls are served from the cache.
			for range 3 {
				if _, err := authenticate(a, resource, token); err != nil {
					t.Fatal(err)
				}
			}
			if n := a.Verifications(); n != 1 {
				t.Errorf("%d verifications, want 1", n)
			}
			if _, err := authenticate(a, resource, otherAudience); err == nil {
				t.Error("a token for another audience was accepted")
			}
		})
	}
}

func TestServesMetadata(t *testing.T) {
	url, _ := startIssuer(t, "-audience", "http://127.0.0.1:8787/mcp")
	get := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s: %s, %q", path, resp.Status, resp.Header.Get("Content-Type"))
		}
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	meta := get("/.well-known/oauth-authorization-server")
	if meta["issuer"] != url || meta["jwks_uri"] != url+"/jwks.json" {
		t.Errorf("metadata %v: want issuer %s and its jwks_uri", meta, url)
	}
	keys, _ := get("/jwks.json")["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("key set holds %d keys, want 1", len(keys))
	}
	k := keys[0].(map[string]any)
	for _, private := range []string{"d", "p", "q"} {
		if _, ok := k[private]; ok {
			t.Errorf("the key set publishes the private parameter %q", private)
		}
	}
	resp, err := http.Post(url+"/jwks.json", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s, want 405", resp.Status)
	}
}

func TestParseFlags(t *testing.T) {
	base := []string{"-audience", "http://127.0.0.1:1/mcp", "-token-file", "t"}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"good", base, ""},
		{"localhost", append([]string{"-addr", "localhost:0"}, base...), ""},
		{"no audience", []string{"-token-file", "t"}, "-audience is required"},
		{"no token file", []string{"-audience", "x"}, "-token-file is required"},
		{"not loopback", append([]string{"-addr", "0.0.0.0:0"}, base...), "not a loopback address"},
		{"bad address", append([]string{"-addr", "nowhere"}, base...), "-addr"},
		{"no ttl", append([]string{"-ttl", "0s"}, base...), "-ttl must be positive"},
		{"empty subject", append([]string{"-subject", ""}, base...), "-subject must not be empty"},
		{"stray argument", append(base, "more"), "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("parseFlags: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("parseFlags: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestTokenExpires checks the claims that bound the token's life.
func TestTokenExpires(t *testing.T) {
	s, err := newSigner()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	c := &options{audience: "http://127.0.0.1:1/mcp", subject: "a", ttl: 90 * time.Second}
	tok, err := s.token(c, "http://127.0.0.1:2", now)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	var hdr, claims map[string]any
	for i, v := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatal(err)
		}
	}
	if hdr["alg"] != "ES256" || hdr["kid"] != s.kid {
		t.Errorf("header %v: want ES256 and kid %s", hdr, s.kid)
	}
	if claims["iat"] != float64(now.Unix()) || claims["exp"] != float64(now.Unix()+90) {
		t.Errorf("claims %v: want iat %d and exp 90 s later", claims, now.Unix())
	}
}
