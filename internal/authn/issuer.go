package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

// DefaultSkew is the clock skew tolerated on exp, nbf and iat.
const DefaultSkew = 30 * time.Second

const (
	// discoveryRetry is the least time between two attempts to discover an
	// issuer that could not be reached.
	discoveryRetry = 10 * time.Second
	// refreshInterval is how often an issuer's JWKS is fetched again.
	refreshInterval = time.Hour
	// unknownKeyRefresh is the least time between two fetches of a JWKS
	// caused by a token naming a key Sluice does not know (rotation), so
	// that forged key ids cannot make Sluice hammer the issuer.
	unknownKeyRefresh = 30 * time.Second
	// fetchTimeout bounds one metadata or JWKS fetch.
	fetchTimeout = 10 * time.Second
	// maxMetadataBytes bounds an issuer's metadata document.
	maxMetadataBytes = 1 << 20
)

// issuer is one configured authorization server.
type issuer struct {
	name      string
	jwksURL   string // configured or discovered
	algs      []string
	scopes    []string // required of every token
	audiences map[string]bool
	skew      time.Duration
	claims    config.ClaimMapping

	client *http.Client
	bg     context.Context

	mu      sync.Mutex
	kf      keyfunc.Keyfunc // nil until the JWKS location is known
	lastTry time.Time
	lastErr error
}

// newIssuer prepares an issuer and tries to fetch its keys. A failure to
// reach the issuer is logged, not returned: it is retried on demand.
func (a *Authenticator) newIssuer(ctx, bg context.Context, oc *config.OAuthIssuer) (*issuer, error) {
	if oc == nil || oc.Issuer == "" {
		return nil, errors.New("issuer is required")
	}
	is := &issuer{
		name:      oc.Issuer,
		jwksURL:   oc.JWKSURL,
		algs:      oc.Algorithms,
		scopes:    oc.Scopes,
		audiences: map[string]bool{},
		skew:      time.Duration(oc.Skew),
		claims:    oc.Claims,
		client:    a.client,
		bg:        bg,
	}
	if len(is.algs) == 0 {
		is.algs = config.DefaultOAuthAlgorithms
	}
	for _, alg := range is.algs {
		if !slices.Contains(config.OAuthAlgorithms, alg) {
			return nil, fmt.Errorf("algorithm %q is not accepted", alg)
		}
	}
	if is.skew <= 0 {
		is.skew = DefaultSkew
	}
	if a.res.base != "" {
		is.audiences[strings.TrimSuffix(a.res.base, "/")] = true
	}
	for _, aud := range oc.Audiences {
		is.audiences[strings.TrimSuffix(aud, "/")] = true
	}
	if _, err := is.keys(ctx); err != nil {
		a.logger.Warn("authorization server not reachable; its tokens are refused until it is", "issuer", is.name, "err", err)
	}
	return is, nil
}

// keys returns the issuer's key function, discovering the JWKS location and
// fetching the keys first when that has not succeeded yet (at most every
// [discoveryRetry]).
func (is *issuer) keys(ctx context.Context) (keyfunc.Keyfunc, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.kf != nil {
		return is.kf, nil
	}
	if !is.lastTry.IsZero() && time.Since(is.lastTry) < discoveryRetry {
		return nil, is.lastErr
	}
	is.lastTry = time.Now()
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if is.jwksURL == "" {
		u, err := discoverJWKS(ctx, is.client, is.name)
		if err != nil {
			is.lastErr = err
			return nil, err
		}
		is.jwksURL = u
	}
	// Fetch once ourselves so that an unreachable JWKS is an error now
	// rather than an empty key set later.
	if err := probe(ctx, is.client, is.jwksURL); err != nil {
		is.lastErr = err
		return nil, err
	}
	fail := false
	kf, err := keyfunc.NewDefaultOverrideCtx(is.bg, []string{is.jwksURL}, keyfunc.Override{
		Client:                    is.client,
		HTTPTimeout:               fetchTimeout,
		NoErrorReturnFirstHTTPReq: &fail,
		RefreshInterval:           refreshInterval,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(unknownKeyRefresh), 1),
		// A token with an unknown key waits for a refresh only when one is
		// allowed now (the limiter refuses at once a wait past this).
		RateLimitWaitMax: time.Second,
		RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
			return func(context.Context, error) {}
		},
	})
	if err != nil {
		is.lastErr = fmt.Errorf("jwks %s: %w", is.jwksURL, err)
		return nil, is.lastErr
	}
	is.kf = kf
	is.lastErr = nil
	return kf, nil
}

// discoverJWKS reads the issuer's authorization server metadata (RFC 8414,
// then OpenID Connect Discovery) and returns its jwks_uri. The metadata's
// issuer must be the configured one (RFC 8414, section 3.3).
func discoverJWKS(ctx context.Context, client *http.Client, iss string) (string, error) {
	u, err := url.Parse(iss)
	if err != nil {
		return "", err
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	candidates := []string{
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path,
		strings.TrimSuffix(iss, "/") + "/.well-known/openid-configuration",
	}
	var errs []error
	for _, c := range candidates {
		var meta struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(ctx, client, c, &meta); err != nil {
			errs = append(errs, err)
			continue
		}
		if meta.Issuer != iss {
			errs = append(errs, fmt.Errorf("%s: metadata names issuer %q", c, meta.Issuer))
			continue
		}
		if meta.JWKSURI == "" {
			errs = append(errs, fmt.Errorf("%s: no jwks_uri", c))
			continue
		}
		return meta.JWKSURI, nil
	}
	return "", fmt.Errorf("discovering %s: %w", iss, errors.Join(errs...))
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: %w", u, err)
	}
	return nil
}

func probe(ctx context.Context, client *http.Client, u string) error {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, client, u, &set); err != nil {
		return err
	}
	if len(set.Keys) == 0 {
		return fmt.Errorf("%s: no keys", u)
	}
	return nil
}

func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: fetchTimeout,
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			TLSHandshakeTimeout: 5 * time.Second,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		},
		// Metadata and keys are fetched from where they are configured or
		// announced, never from wherever a redirect points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// missingScopes reports whether granted lacks one of the issuer's required
// scopes.
func (is *issuer) missingScopes(granted []string) bool {
	for _, s := range is.scopes {
		if !slices.Contains(granted, s) {
			return true
		}
	}
	return false
}

// entry is a verified token: what the cache holds.
type entry struct {
	issuer    *issuer
	aud       []string
	principal *guard.Principal
	exp       time.Time
}

// verifyJWT verifies tok's signature, issuer, expiry and not-before, and
// maps its claims to a principal. The audience, which depends on the
// endpoint, is checked by the caller.
func (a *Authenticator) verifyJWT(ctx context.Context, tok string, now time.Time) (*entry, error) {
	unverified, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		return nil, invalidToken(ReasonTokenMalformed, "malformed token", err)
	}
	alg, _ := unverified.Header["alg"].(string)
	if !slices.Contains(a.algs, alg) {
		return nil, invalidToken(ReasonAlgorithmRefused, "the token's signature algorithm is not accepted", fmt.Errorf("alg %q", alg))
	}
	issName, _ := unverified.Claims.(jwt.MapClaims)["iss"].(string)
	is := a.issuers[issName]
	if is == nil {
		return nil, invalidToken(ReasonIssuerUnknown, "the token's issuer is not trusted", fmt.Errorf("iss %q", issName))
	}
	if !slices.Contains(is.algs, alg) {
		return nil, invalidToken(ReasonAlgorithmRefused, "the token's signature algorithm is not accepted", fmt.Errorf("alg %q for issuer %s", alg, is.name))
	}
	kf, err := is.keys(ctx)
	if err != nil {
		return nil, &Error{Status: http.StatusServiceUnavailable, Description: "the token's issuer cannot be reached", Reason: ReasonIssuerUnavailable, cause: err}
	}
	p := jwt.NewParser(
		jwt.WithValidMethods(is.algs),
		jwt.WithIssuer(is.name),
		jwt.WithLeeway(is.skew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	a.verifications.Add(1)
	claims := jwt.MapClaims{}
	t, err := p.ParseWithClaims(tok, claims, kf.KeyfuncCtx(ctx))
	switch {
	case err == nil && t.Valid:
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, invalidToken(ReasonTokenExpired, "the token has expired", err)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return nil, invalidToken(ReasonTokenNotYetValid, "the token is not valid yet", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable) && errors.Is(err, keyfunc.ErrKeyfunc):
		return nil, invalidToken(ReasonKeyUnknown, "the token's signing key is unknown", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return nil, invalidToken(ReasonSignatureInvalid, "the token's signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, invalidToken(ReasonTokenMalformed, "malformed token", err)
	default:
		return nil, invalidToken(ReasonClaimsInvalid, "the token's claims are invalid", err)
	}
	aud, err := claims.GetAudience()
	if err != nil || len(aud) == 0 {
		return nil, invalidToken(ReasonAudienceMismatch, "the token is not for this resource", err)
	}
	exp, _ := claims.GetExpirationTime()
	pr, err := is.principal(claims)
	if err != nil {
		return nil, invalidToken(ReasonClaimsInvalid, "the token's claims are invalid", err)
	}
	return &entry{issuer: is, aud: aud, principal: pr, exp: exp.Time}, nil
}

// principal maps a verified token's claims to a principal as the issuer's
// claim mapping says.
func (is *issuer) principal(claims jwt.MapClaims) (*guard.Principal, error) {
	m := is.claims
	p := &guard.Principal{Issuer: is.name}
	p.Subject = claimString(claims, or(m.Subject, "sub"))
	if p.Subject == "" {
		return nil, fmt.Errorf("no subject claim %q", or(m.Subject, "sub"))
	}
	if m.Name != "" {
		p.Name = claimString(claims, m.Name)
	} else {
		for _, c := range []string{"name", "preferred_username", "email"} {
			if p.Name = claimString(claims, c); p.Name != "" {
				break
			}
		}
	}
	if p.Name == "" {
		p.Name = p.Subject
	}
	p.Groups = claimList(claims, or(m.Groups, "groups"))
	if m.Scopes != "" {
		p.Scopes = claimList(claims, m.Scopes)
	} else if p.Scopes = claimList(claims, "scope"); len(p.Scopes) == 0 {
		p.Scopes = claimList(claims, "scp")
	}
	if m.ClientID != "" {
		p.ClientID = claimString(claims, m.ClientID)
	} else if p.ClientID = claimString(claims, "client_id"); p.ClientID == "" {
		p.ClientID = claimString(claims, "azp")
	}
	for attr, path := range m.Attributes {
		v, ok := lookupClaim(claims, path)
		if !ok {
			continue
		}
		if p.Attributes == nil {
			p.Attributes = make(map[string]string, len(m.Attributes))
		}
		p.Attributes[attr] = stringify(v)
	}
	return p, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lookupClaim follows a dotted path ("realm_access.roles") into nested
// claims; an exact top-level claim of that name wins.
func lookupClaim(claims map[string]any, path string) (any, bool) {
	if v, ok := claims[path]; ok {
		return v, true
	}
	var cur any = map[string]any(claims)
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func claimString(claims map[string]any, path string) string {
	v, ok := lookupClaim(claims, path)
	if !ok {
		return ""
	}
	switch v := v.(type) {
	case string:
		return v
	case float64, bool, json.Number:
		return stringify(v)
	}
	return ""
}

// claimList reads a claim that is a list: a JSON array of strings or a
// space-separated string (as "scope" is, RFC 8693 section 4.2).
func claimList(claims map[string]any, path string) []string {
	v, ok := lookupClaim(claims, path)
	if !ok {
		return nil
	}
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// stringify renders a claim value as an attribute: strings as they are,
// numbers and booleans as JSON, lists of strings joined by commas, anything
// else as compact JSON.
func stringify(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	case []any:
		parts := make([]string, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				b, _ := json.Marshal(v)
				return string(b)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ",")
	}
	b, _ := json.Marshal(v)
	return string(b)
}
