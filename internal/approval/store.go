package approval

import (
	"context"
	"sync"
	"time"
)

// Grant is a granted approval: the exact call of a [Binding] may proceed
// until Expires.
type Grant struct {
	// ID names the approval in decisions and audit.
	ID string
	// Approver is the subject of the approver, or "client" when the human
	// at the calling client approved.
	Approver string
	Expires  time.Time
	// Denied marks an approver's denial, kept for [DeniedFor] so that the
	// same exact call, sent again at once (an agent retrying, or a client
	// that repeats a request answered 403), is refused without asking the
	// approvers again. Reason is the approver's reason.
	Denied bool
	Reason string
}

// DeniedFor is how long an approver's denial refuses the same exact call.
// A call with changed arguments is a different call and is asked about.
const DeniedFor = time.Minute

// Store keeps granted approvals by [Binding.Key]. The in-memory store
// [New] uses by default serves one process; a store shared by replicas
// implements the same interface.
type Store interface {
	// Put records g under key, replacing an earlier grant.
	Put(ctx context.Context, key string, g Grant) error
	// Get returns the grant under key if it has not expired at now.
	Get(ctx context.Context, key string, now time.Time) (Grant, bool, error)
}

// DefaultMaxGrants bounds the in-memory store.
const DefaultMaxGrants = 10000

// MemoryStore is a bounded in-memory [Store]. When it is full, expired
// grants are dropped first, then the one closest to expiry.
type MemoryStore struct {
	mu  sync.Mutex
	max int
	m   map[string]Grant
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns a store holding at most max grants
// ([DefaultMaxGrants] when max <= 0).
func NewMemoryStore(max int) *MemoryStore {
	if max <= 0 {
		max = DefaultMaxGrants
	}
	return &MemoryStore{max: max, m: map[string]Grant{}}
}

// Put implements [Store].
func (s *MemoryStore) Put(_ context.Context, key string, g Grant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; !ok && len(s.m) >= s.max {
		now := time.Now()
		for k, old := range s.m {
			if !now.Before(old.Expires) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= s.max {
			var victim string
			var soonest time.Time
			for k, old := range s.m {
				if victim == "" || old.Expires.Before(soonest) {
					victim, soonest = k, old.Expires
				}
			}
			delete(s.m, victim)
		}
	}
	s.m[key] = g
	return nil
}

// Get implements [Store].
func (s *MemoryStore) Get(_ context.Context, key string, now time.Time) (Grant, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.m[key]
	if !ok {
		return Grant{}, false, nil
	}
	if !now.Before(g.Expires) {
		delete(s.m, key)
		return Grant{}, false, nil
	}
	return g, true, nil
}

// Len returns how many grants the store holds, expired ones included.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}
