package authn

import (
	"context"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

// BenchmarkAuthenticate measures the per-request cost of authentication on
// the paths a busy agent takes: an API key, and a JWT already verified
// (served from the cache, no signature verification).
func BenchmarkAuthenticate(b *testing.B) {
	const key = "bench-key-0123456789abcdef"
	a, err := New(context.Background(), &config.Auth{
		APIKeys: []*config.APIKey{{ID: "k", Hash: HashKey(key), Principal: config.PrincipalSpec{Subject: "s"}}},
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	a.res, _ = newResource("https://mcp.example.com/mcp")
	is := &issuer{name: "https://issuer.example", audiences: map[string]bool{"https://mcp.example.com/mcp": true}}
	a.issuers[is.name] = is
	// A token of realistic size (about 1 KB), verified once before.
	tok := strings.Repeat("a", 300) + "." + strings.Repeat("b", 600) + "." + strings.Repeat("c", 342)
	a.cache.put(sha256.Sum256([]byte(tok)), &entry{
		issuer: is, aud: []string{"https://mcp.example.com/mcp"},
		principal: &guard.Principal{Subject: "u"}, exp: time.Now().Add(time.Hour),
	}, time.Now())

	for _, bc := range []struct{ name, authz string }{
		{"api-key", "Bearer " + key},
		{"cached-jwt", "Bearer " + tok},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			r.Header.Set("Authorization", bc.authz)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Authenticate(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
