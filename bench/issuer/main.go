// Command issuer is the authorization server of Sluice's benchmarks: it
// signs one JWT access token and serves the key that verifies it, on
// loopback, so that a benchmark can measure Sluice's OAuth path without an
// identity provider.
//
// At start it makes a fresh ES256 key, listens, signs a token for -audience
// (Sluice's resource URI) with the issuer set to its own URL, and writes the
// token to -token-file (mode 0600; the token is a credential and never goes
// to the command line or the log). Then it prints
//
//	listening on http://127.0.0.1:PORT
//
// to standard error and serves, until SIGINT or SIGTERM:
//
//	/jwks.json                                   the key set (RFC 7517)
//	/.well-known/oauth-authorization-server      issuer and jwks_uri (RFC 8414)
//
// Usage:
//
//	issuer -audience http://127.0.0.1:8787/mcp -token-file /tmp/jwt [-addr 127.0.0.1:0]
//	       [-subject bench-agent] [-groups bench-agents] [-scopes mcp:tools] [-ttl 1h]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "issuer:", err)
		os.Exit(1)
	}
}

type options struct {
	addr      string
	audience  string
	tokenFile string
	subject   string
	groups    []string
	scopes    string
	clientID  string
	ttl       time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("issuer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c options
	var groups string
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "loopback `ADDR` to serve the key set on")
	fs.StringVar(&c.audience, "audience", "", "the token's aud: Sluice's resource URI, such as http://127.0.0.1:8787/mcp")
	fs.StringVar(&c.tokenFile, "token-file", "", "write the signed token to `FILE` (mode 0600)")
	fs.StringVar(&c.subject, "subject", "bench-agent", "the token's sub")
	fs.StringVar(&groups, "groups", "bench-agents", "the token's groups claim, comma-separated")
	fs.StringVar(&c.scopes, "scopes", "mcp:tools", "the token's scope claim, space-separated")
	fs.StringVar(&c.clientID, "client-id", "sluice-bench-load", "the token's client_id")
	fs.DurationVar(&c.ttl, "ttl", time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for g := range strings.SplitSeq(groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			c.groups = append(c.groups, g)
		}
	}
	switch {
	case c.audience == "":
		return nil, errors.New("-audience is required")
	case c.tokenFile == "":
		return nil, errors.New("-token-file is required")
	case c.subject == "":
		return nil, errors.New("-subject must not be empty")
	case c.ttl <= 0:
		return nil, errors.New("-ttl must be positive")
	}
	host, _, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("-addr: %w", err)
	}
	// The key set is served in clear, which Sluice accepts from loopback
	// hosts only; anything else would be a key set anyone could replace.
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("-addr %s: not a loopback address", c.addr)
	}
	return &c, nil
}

// signer holds the key that signs the token, and its public half as a JWK.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
	jwk map[string]string
}

func newSigner() (*signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pt, err := key.PublicKey.Bytes() // 0x04 || X || Y, 32 bytes each
	if err != nil {
		return nil, err
	}
	if len(pt) != 65 || pt[0] != 4 {
		return nil, fmt.Errorf("unexpected P-256 point encoding of %d bytes", len(pt))
	}
	b64 := base64.RawURLEncoding.EncodeToString
	x, y := b64(pt[1:33]), b64(pt[33:])
	// The kid is the JWK thumbprint (RFC 7638), so a new key is a new kid.
	thumb := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	kid := b64(thumb[:])
	return &signer{
		key: key,
		kid: kid,
		jwk: map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"},
	}, nil
}

// token signs an access token as an OAuth 2.1 authorization server would
// issue it for Sluice (RFC 9068 claims, plus groups).
func (s *signer) token(c *options, issuer string, now time.Time) (string, error) {
	claims := jwt.MapClaims{
		"iss":       issuer,
		"sub":       c.subject,
		"aud":       c.audience,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(c.ttl).Unix(),
		"client_id": c.clientID,
		"scope":     c.scopes,
		"groups":    c.groups,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.kid
	t.Header["typ"] = "at+jwt"
	return t.SignedString(s.key)
}

func (s *signer) handler(issuer string) http.Handler {
	keys, _ := json.Marshal(map[string]any{"keys": []map[string]string{s.jwk}})
	meta, _ := json.Marshal(map[string]any{
		"issuer":                                issuer,
		"jwks_uri":                              issuer + "/jwks.json",
		"response_types_supported":              []string{"code"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
	})
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/jwks.json", serve(keys))
	mux.Handle("/.well-known/oauth-authorization-server", serve(meta))
	return mux
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	s, err := newSigner()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	issuer := "http://" + ln.Addr().String()
	tok, err := s.token(c, issuer, time.Now())
	if err != nil {
		return err
	}
	// The file is complete before the listening line announces it.
	if err := writeSecret(c.tokenFile, tok+"\n"); err != nil {
		return err
	}
	hs := &http.Server{Handler: s.handler(issuer), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "listening on %s\n", issuer)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}

// writeSecret writes content to a new file only its owner can read, through
// a temporary name, so that a reader never sees half a token.
func writeSecret(path, content string) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
