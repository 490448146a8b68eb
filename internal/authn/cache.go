package authn

import (
	"crypto/sha256"
	"sync"
	"time"
)

const (
	// defaultCacheSize bounds the verified-token cache. A caller that
	// floods Sluice with distinct valid tokens only evicts entries, which
	// costs verifications, never correctness.
	defaultCacheSize = 10000
	// cacheTTL bounds how long a verified token is trusted without being
	// verified again, whatever its expiry, so that an issuer's key
	// revocation takes effect within it.
	cacheTTL = 5 * time.Minute
)

// tokenCache holds verified tokens by the SHA-256 of the token, so that an
// agent's repeated calls with the same token cost a hash and a look-up. The
// token itself is never stored.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[sha256.Size]byte]cached
}

type cached struct {
	e     *entry
	until time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[sha256.Size]byte]cached)}
}

// get returns the entry of a token verified before and still valid at now.
func (c *tokenCache) get(sum [sha256.Size]byte, now time.Time) *entry {
	c.mu.RLock()
	x, ok := c.entries[sum]
	c.mu.RUnlock()
	if !ok || !now.Before(x.until) {
		return nil
	}
	return x.e
}

// put caches e until the token expires or [cacheTTL] passes, whichever is
// first.
func (c *tokenCache) put(sum [sha256.Size]byte, e *entry, now time.Time) {
	until := now.Add(cacheTTL)
	if !e.exp.IsZero() && e.exp.Before(until) {
		until = e.exp
	}
	if !now.Before(until) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, x := range c.entries {
			if !now.Before(x.until) {
				delete(c.entries, k)
			}
		}
		// Still full: drop arbitrary entries (map order) to make room.
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[sum] = cached{e: e, until: until}
}

// len reports the number of cached tokens (tests).
func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
