package config

// Auth configures how downstream callers are authenticated. Several methods
// may be configured at once; a request is accepted when one of them
// verifies it. With Auth configured, Sluice may listen on non-loopback
// addresses.
type Auth struct {
	// Resource is Sluice's own resource URI (RFC 8707), e.g.
	// "https://mcp.example.com/mcp"; bearer tokens must name it as their
	// audience, and the protected resource metadata (RFC 9728) announces it.
	Resource string `yaml:"resource,omitempty"`
	// OAuth lists the authorization servers whose access tokens are accepted.
	OAuth []*OAuthIssuer `yaml:"oauth,omitempty"`
	// APIKeys are keys for agents and CI, stored as hashes only.
	APIKeys []*APIKey `yaml:"api_keys,omitempty"`
	// APIKeyHeader names a header that may carry an API key besides
	// "Authorization: Bearer" (e.g. "X-Api-Key"); empty means bearer only.
	APIKeyHeader string `yaml:"api_key_header,omitempty"`
	// MTLS accepts client certificates; needs tls to be configured.
	MTLS *MTLS `yaml:"mtls,omitempty"`
	// Stdio is the principal of `sluice stdio` (the local user).
	Stdio *PrincipalSpec `yaml:"stdio,omitempty"`
}

// OAuthIssuer is one OAuth 2.1 authorization server whose JWT access tokens
// Sluice verifies as a resource server.
type OAuthIssuer struct {
	Issuer string `yaml:"issuer"`
	// JWKSURL is where the issuer's signing keys are; discovered from the
	// issuer's metadata when empty.
	JWKSURL string `yaml:"jwks_url,omitempty"`
	// Audiences accepted besides auth.resource.
	Audiences []string `yaml:"audiences,omitempty,flow"`
	// Scopes every token must carry (announced in scopes_supported and in
	// insufficient_scope errors).
	Scopes []string `yaml:"scopes,omitempty,flow"`
	// Algorithms accepted; default RS256, ES256, PS256, EdDSA. "none" and
	// HMAC algorithms are refused.
	Algorithms []string `yaml:"algorithms,omitempty,flow"`
	// Skew tolerated on exp, nbf and iat; default 30s.
	Skew Duration `yaml:"skew,omitempty"`
	// Claims maps principal fields to token claims.
	Claims ClaimMapping `yaml:"claims,omitempty"`
}

// ClaimMapping names the token claims a principal's fields come from.
type ClaimMapping struct {
	Subject  string `yaml:"subject,omitempty"`   // default "sub"
	Name     string `yaml:"name,omitempty"`      // default "name", then "preferred_username", then "email"
	Groups   string `yaml:"groups,omitempty"`    // default "groups"
	Scopes   string `yaml:"scopes,omitempty"`    // default "scope" (space-separated) or "scp"
	ClientID string `yaml:"client_id,omitempty"` // default "client_id", then "azp"
	// Attributes maps attribute names to claim names (dotted paths allowed).
	Attributes map[string]string `yaml:"attributes,omitempty"`
}

// APIKey is one API key, stored as a hash.
type APIKey struct {
	// ID names the key in logs and audit (never the key itself).
	ID string `yaml:"id"`
	// Hash is "sha256:<hex>" of the key; `sluice auth hash-key` prints it.
	Hash string `yaml:"hash"`
	// Principal the key stands for.
	Principal PrincipalSpec `yaml:"principal"`
	// Expires, when set, is an RFC 3339 time after which the key is refused.
	Expires string `yaml:"expires,omitempty"`
}

// PrincipalSpec describes a principal in configuration.
type PrincipalSpec struct {
	Subject    string            `yaml:"subject"`
	Name       string            `yaml:"name,omitempty"`
	Groups     []string          `yaml:"groups,omitempty,flow"`
	Scopes     []string          `yaml:"scopes,omitempty,flow"`
	Attributes map[string]string `yaml:"attributes,omitempty"`
}

// MTLS configures client certificate authentication.
type MTLS struct {
	// CAFile holds the PEM certificates client certificates must chain to.
	CAFile string `yaml:"ca_file"`
	// Subject says which certificate field becomes the principal's subject:
	// "san-uri", "san-email", "san-dns" or "cn" (default: the first of
	// those present, in that order).
	Subject string `yaml:"subject,omitempty"`
	// Groups are given to every certificate principal.
	Groups []string `yaml:"groups,omitempty,flow"`
}

// TLS configures HTTPS on the listener.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// MinVersion is "1.2" or "1.3" (default "1.2").
	MinVersion string `yaml:"min_version,omitempty"`
}
