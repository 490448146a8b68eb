// Package authn authenticates Sluice's downstream callers and turns each
// into a [guard.Principal]: who is calling, in which groups, with which
// scopes, through which client.
//
// Sluice is an OAuth 2.1 resource server as the MCP authorization
// specification requires ("MCP servers MUST validate that access tokens were
// issued specifically for them as the intended audience"): a bearer JWT is
// verified against its issuer's JWKS (discovered from the issuer's metadata
// when no jwks_url is configured, refreshed on a timer and, rate-limited,
// when a token names an unknown key), and its issuer, audience (Sluice's own
// resource URI, RFC 8707), expiry and not-before are checked. The protected
// resource metadata (RFC 9728) is served by [Authenticator.Metadata], at the
// root well-known URI and per endpoint path (/mcp/<profile>), and every 401
// names it in WWW-Authenticate.
//
// Besides OAuth, agents and CI may present API keys (configured as SHA-256
// hashes only, never in clear), and clients may present a certificate
// verified against a configured CA (mTLS). Over stdio the principal is
// configured: the local user.
//
// Verified tokens are cached by their SHA-256 hash until they expire (at
// most [cacheTTL]), so an agent's repeated calls cost a hash and a map look-up
// rather than a signature verification.
//
// The [Guard] (name "authn") runs in the guard chain and refuses any call
// without a verified principal, so that a transport that forgot to
// authenticate fails closed.
package authn

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/user"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

// Reason codes, the same in logs, audit, metrics and the error body.
const (
	ReasonNoCredentials      = "authn-no-credentials"
	ReasonSchemeUnsupported  = "authn-scheme-unsupported"
	ReasonCredentialConflict = "authn-credentials-conflict"
	ReasonTokenMalformed     = "authn-token-malformed"
	ReasonAlgorithmRefused   = "authn-token-algorithm-refused"
	ReasonKeyUnknown         = "authn-token-key-unknown"
	ReasonSignatureInvalid   = "authn-token-signature-invalid"
	ReasonTokenExpired       = "authn-token-expired"
	ReasonTokenNotYetValid   = "authn-token-not-yet-valid"
	ReasonIssuerUnknown      = "authn-token-issuer-unknown"
	ReasonAudienceMismatch   = "authn-token-audience-mismatch"
	ReasonClaimsInvalid      = "authn-token-claims-invalid"
	ReasonInsufficientScope  = "authn-insufficient-scope"
	ReasonIssuerUnavailable  = "authn-issuer-unavailable"
	ReasonAPIKeyUnknown      = "authn-api-key-unknown"
	ReasonAPIKeyExpired      = "authn-api-key-expired"
	ReasonCertificateInvalid = "authn-certificate-invalid"
	ReasonFailed             = "authn-failed" // an error that is not an [*Error]
	// ReasonRequired is the guard's denial of a call without a principal.
	ReasonRequired = "authn-required"
)

// OAuth error codes (RFC 6750, section 3.1) carried by [Error.Code].
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
)

// Error is why a request was not authenticated. Status is the HTTP status
// to answer with (401, 403, 400, or 503 when an issuer's keys cannot be
// had); Code the OAuth error code, empty when the request carried no
// credentials at all (RFC 6750 says a challenge to such a request carries no
// error code). Description and Reason are safe to show the caller; the cause
// behind them, which may name internals, is only reachable with
// [errors.Unwrap] and belongs in logs.
type Error struct {
	Status      int
	Code        string
	Description string
	// Scopes are the scopes the request needs, announced in the challenge's
	// scope parameter.
	Scopes []string
	Reason string

	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Reason + ": " + e.Description + ": " + e.cause.Error()
	}
	return e.Reason + ": " + e.Description
}

// Unwrap returns the internal cause, if any.
func (e *Error) Unwrap() error { return e.cause }

// ErrNoCredentials is returned by [Authenticator.Authenticate] for a request
// that carries no credentials of any configured kind.
var ErrNoCredentials = &Error{Status: http.StatusUnauthorized, Description: "authentication required", Reason: ReasonNoCredentials}

func invalidToken(reason, desc string, cause error) *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: desc, Reason: reason, cause: cause}
}

func invalidRequest(reason, desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Description: desc, Reason: reason}
}

// maxTokenLen bounds a bearer token or API key; anything longer is refused
// before it is hashed or parsed.
const maxTokenLen = 16 << 10

// Authenticator verifies the credentials of downstream requests. It is safe
// for concurrent use. Build it with [New] and release it with Close.
type Authenticator struct {
	logger *slog.Logger
	res    resource
	now    func() time.Time

	issuers   map[string]*issuer // by exact "iss" value
	issuerSeq []*issuer          // in configuration order
	algs      []string           // union of the issuers' algorithms, for the parser
	scopes    []string           // union of the issuers' required scopes

	keys      map[[sha256.Size]byte]*apiKey
	keyHeader string // canonical header name, or ""

	mtls *mtlsVerifier
	tls  *config.TLS

	stdio *guard.Principal
	cache *tokenCache

	cancel context.CancelFunc
	client *http.Client

	verifications atomic.Int64
}

// New builds an Authenticator from a validated configuration: it loads the
// API key hashes and the mTLS CA, and for each OAuth issuer discovers its
// JWKS URL (when not configured) and fetches its keys. ctx bounds that
// start-up work; keys keep being refreshed in the background until Close.
//
// An issuer that cannot be reached at start-up does not stop Sluice:
// discovery is retried when one of its tokens arrives (at most every
// [discoveryRetry]), and meanwhile its tokens are refused with 503. Keys
// and callers configured otherwise keep working.
func New(ctx context.Context, auth *config.Auth, tlsCfg *config.TLS, logger *slog.Logger) (*Authenticator, error) {
	if auth == nil {
		return nil, errors.New("authn: no auth configuration")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{
		logger:  logger,
		now:     time.Now,
		issuers: map[string]*issuer{},
		keys:    map[[sha256.Size]byte]*apiKey{},
		tls:     tlsCfg,
		cache:   newTokenCache(defaultCacheSize),
		client:  newHTTPClient(),
	}
	var errs []error
	if auth.Resource != "" {
		res, err := newResource(auth.Resource)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.resource: %w", err))
		}
		a.res = res
	}
	if len(auth.OAuth) > 0 && auth.Resource == "" {
		errs = append(errs, errors.New("auth.resource: required with auth.oauth"))
	}
	if err := a.loadAPIKeys(auth); err != nil {
		errs = append(errs, err)
	}
	if auth.MTLS != nil {
		if tlsCfg == nil {
			errs = append(errs, errors.New("auth.mtls: needs tls"))
		}
		m, err := newMTLSVerifier(auth.MTLS)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.mtls: %w", err))
		}
		a.mtls = m
	}
	a.stdio = stdioPrincipal(auth.Stdio)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	for i, oc := range auth.OAuth {
		is, err := a.newIssuer(ctx, bg, oc)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.oauth[%d]: %w", i, err))
			continue
		}
		if a.issuers[is.name] != nil {
			errs = append(errs, fmt.Errorf("auth.oauth[%d]: issuer %q configured twice", i, is.name))
			continue
		}
		a.issuers[is.name] = is
		a.issuerSeq = append(a.issuerSeq, is)
		for _, alg := range is.algs {
			if !contains(a.algs, alg) {
				a.algs = append(a.algs, alg)
			}
		}
		for _, s := range is.scopes {
			if !contains(a.scopes, s) {
				a.scopes = append(a.scopes, s)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close stops the background key refreshes and releases idle connections.
func (a *Authenticator) Close() error {
	if a.cancel != nil {
		a.cancel()
	}
	a.client.CloseIdleConnections()
	return nil
}

// Authenticate verifies the credentials of r and returns its principal.
// The principal may be shared with other requests of the same caller:
// treat it as read-only. Errors are [*Error] values, [ErrNoCredentials]
// when r carries none; pass them to [Authenticator.WriteChallenge].
//
// An API key may come in "Authorization: Bearer" or in the configured
// header; a bearer token that is not a known key is verified as a JWT when
// OAuth is configured. A client certificate is used only when the request
// carries no other credentials, so that a request naming a token is judged
// by that token. Two credentials at once are refused (RFC 6750, section
// 2: a client must not use more than one method).
func (a *Authenticator) Authenticate(r *http.Request) (*guard.Principal, error) {
	authz := r.Header.Values("Authorization")
	var keyHdr []string
	if a.keyHeader != "" {
		keyHdr = r.Header.Values(a.keyHeader)
	}
	switch {
	case len(authz) > 1 || len(keyHdr) > 1 || (len(authz) == 1 && len(keyHdr) == 1):
		return nil, invalidRequest(ReasonCredentialConflict, "more than one credential in the request")
	case len(keyHdr) == 1:
		if keyHdr[0] == "" || len(keyHdr[0]) > maxTokenLen {
			return nil, invalidToken(ReasonAPIKeyUnknown, "unknown API key", nil)
		}
		return a.apiKey(sha256.Sum256([]byte(keyHdr[0])))
	case len(authz) == 1:
		tok, err := bearer(authz[0])
		if err != nil {
			return nil, err
		}
		return a.bearerToken(r, tok)
	}
	if a.mtls != nil && r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return a.mtls.principal(r.TLS, a.now())
	}
	return nil, ErrNoCredentials
}

// bearer extracts the token of an "Authorization: Bearer <token>" header
// value (RFC 6750, section 2.1; the scheme is case-insensitive).
func bearer(h string) (string, error) {
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", &Error{Status: http.StatusUnauthorized, Description: "only the Bearer scheme is supported", Reason: ReasonSchemeUnsupported}
	}
	tok = strings.TrimLeft(tok, " ")
	switch {
	case tok == "":
		return "", invalidRequest(ReasonTokenMalformed, "empty bearer token")
	case len(tok) > maxTokenLen:
		return "", invalidToken(ReasonTokenMalformed, "bearer token too long", nil)
	}
	for i := 0; i < len(tok); i++ {
		// token68 characters (RFC 7235, section 2.1).
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0) {
			return "", invalidToken(ReasonTokenMalformed, "malformed bearer token", nil)
		}
	}
	return tok, nil
}

// bearerToken authenticates a bearer token: an API key when its hash is
// configured, else a JWT from a configured issuer.
func (a *Authenticator) bearerToken(r *http.Request, tok string) (*guard.Principal, error) {
	sum := sha256.Sum256([]byte(tok))
	if k := a.keys[sum]; k != nil {
		return a.apiKey(sum)
	}
	if len(a.issuers) == 0 || strings.Count(tok, ".") != 2 {
		if len(a.keys) > 0 {
			return nil, invalidToken(ReasonAPIKeyUnknown, "unknown API key", nil)
		}
		return nil, invalidToken(ReasonTokenMalformed, "the bearer token is not a JWT", nil)
	}
	now := a.now()
	if e := a.cache.get(sum, now); e != nil {
		if !a.audienceOK(e.issuer, e.aud, r.URL.Path) {
			return nil, invalidToken(ReasonAudienceMismatch, "the token is not for this resource", nil)
		}
		return e.principal, nil
	}
	e, err := a.verifyJWT(r.Context(), tok, now)
	if err != nil {
		return nil, err
	}
	if !a.audienceOK(e.issuer, e.aud, r.URL.Path) {
		return nil, invalidToken(ReasonAudienceMismatch, "the token is not for this resource", nil)
	}
	if missing := e.issuer.missingScopes(e.principal.Scopes); missing {
		return nil, &Error{
			Status:      http.StatusForbidden,
			Code:        CodeInsufficientScope,
			Description: "the token lacks scopes this resource requires",
			Scopes:      e.issuer.scopes,
			Reason:      ReasonInsufficientScope,
		}
	}
	a.cache.put(sum, e, now)
	return e.principal, nil
}

// Verifications reports how many JWT signatures have been verified, for
// tests and metrics: with the cache, a token is verified once.
func (a *Authenticator) Verifications() int64 { return a.verifications.Load() }

// StdioPrincipal is the principal of calls made over stdio: auth.stdio
// when configured, else the operating-system user running Sluice.
func (a *Authenticator) StdioPrincipal() *guard.Principal { return a.stdio }

// StdioPrincipal is the principal of calls over stdio for an auth
// configuration that may be nil: auth.stdio when configured, else the
// operating-system user running Sluice (who launched it, and owns its
// stdin).
func StdioPrincipal(auth *config.Auth) *guard.Principal {
	if auth == nil {
		return stdioPrincipal(nil)
	}
	return stdioPrincipal(auth.Stdio)
}

func stdioPrincipal(spec *config.PrincipalSpec) *guard.Principal {
	if spec != nil {
		return principalFromSpec(spec, IssuerStdio, "")
	}
	name := "local"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	return &guard.Principal{Issuer: IssuerStdio, Subject: name, Name: name}
}

// Issuers of principals that no OAuth authorization server vouched for
// ([guard.Principal.Issuer]); OAuth issuers are URLs, so these never
// collide with one.
const (
	IssuerAPIKey = "api-key"
	IssuerMTLS   = "mtls"
	IssuerStdio  = "stdio"
)

func principalFromSpec(s *config.PrincipalSpec, iss, clientID string) *guard.Principal {
	p := &guard.Principal{
		Issuer:   iss,
		Subject:  s.Subject,
		Name:     s.Name,
		Groups:   append([]string(nil), s.Groups...),
		Scopes:   append([]string(nil), s.Scopes...),
		ClientID: clientID,
	}
	if p.Name == "" {
		p.Name = p.Subject
	}
	if len(s.Attributes) > 0 {
		p.Attributes = make(map[string]string, len(s.Attributes))
		for k, v := range s.Attributes {
			p.Attributes[k] = v
		}
	}
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
