package authn

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

// HashPrefix starts every configured API key hash.
const HashPrefix = "sha256:"

// HashKey returns the configuration form of an API key: "sha256:" and the
// hex SHA-256 of the key. Keys are random and long, so a fast hash is
// enough; a salt or a slow hash would protect only guessable secrets.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return HashPrefix + hex.EncodeToString(sum[:])
}

// ParseHash decodes a configured "sha256:<hex>" hash.
func ParseHash(h string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	rest, ok := strings.CutPrefix(h, HashPrefix)
	if !ok {
		return sum, errors.New(`must start with "sha256:"`)
	}
	b, err := hex.DecodeString(rest)
	if err != nil || len(b) != sha256.Size {
		return sum, errors.New(`must be "sha256:" followed by 64 hex digits`)
	}
	copy(sum[:], b)
	return sum, nil
}

// apiKey is one configured key.
type apiKey struct {
	id        string
	principal *guard.Principal
	expires   time.Time // zero: never
}

func (a *Authenticator) loadAPIKeys(auth *config.Auth) error {
	var errs []error
	for i, k := range auth.APIKeys {
		if k == nil {
			errs = append(errs, fmt.Errorf("auth.api_keys[%d]: empty", i))
			continue
		}
		sum, err := ParseHash(k.Hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("auth.api_keys[%d].hash: %w", i, err))
			continue
		}
		if a.keys[sum] != nil {
			errs = append(errs, fmt.Errorf("auth.api_keys[%d].hash: same key as %q", i, a.keys[sum].id))
			continue
		}
		// The key names the agent or job that holds it: its client id.
		ak := &apiKey{id: k.ID, principal: principalFromSpec(&k.Principal, IssuerAPIKey, k.ID)}
		if k.Expires != "" {
			t, err := time.Parse(time.RFC3339, k.Expires)
			if err != nil {
				errs = append(errs, fmt.Errorf("auth.api_keys[%d].expires: %w", i, err))
				continue
			}
			ak.expires = t
		}
		a.keys[sum] = ak
	}
	if auth.APIKeyHeader != "" {
		a.keyHeader = http.CanonicalHeaderKey(auth.APIKeyHeader)
	}
	return errors.Join(errs...)
}

// apiKey authenticates the key whose hash is sum.
func (a *Authenticator) apiKey(sum [sha256.Size]byte) (*guard.Principal, error) {
	k := a.keys[sum]
	if k == nil {
		return nil, invalidToken(ReasonAPIKeyUnknown, "unknown API key", nil)
	}
	if !k.expires.IsZero() && !a.now().Before(k.expires) {
		return nil, invalidToken(ReasonAPIKeyExpired, "the API key has expired", fmt.Errorf("key %s", k.id))
	}
	return k.principal, nil
}
