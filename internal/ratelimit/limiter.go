package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Limit is the shape of a token bucket: it refills at Rate tokens per
// second up to Burst tokens, and a call takes one token.
type Limit struct {
	Rate  float64
	Burst int
}

// Verdict is a [Limiter]'s answer for one call.
type Verdict struct {
	OK bool
	// RetryAfter is, when OK is false, how long until the bucket holds a
	// token again.
	RetryAfter time.Duration
}

// Limiter keeps token buckets by key. The parameters of a bucket travel
// with each request rather than living in the limiter, so a limiter shared
// by several gateway replicas (a Redis script, for instance) needs no
// configuration of its own and follows a reload at once.
//
// Allow takes one token from the bucket key, creating it full when it does
// not exist, or reports how long until it could. A denied call takes
// nothing. Implementations must be safe for concurrent use; now is the
// caller's clock, which a shared implementation may replace by its own.
// An error means the limiter could not decide (a store that is down).
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit, now time.Time) (Verdict, error)
}

// errLimit is returned for a Limit that cannot make a bucket.
var errLimit = errors.New("ratelimit: rate and burst must be positive")

// Defaults of [MemoryOptions].
const (
	DefaultMaxKeys    = 1 << 17
	DefaultSweepEvery = time.Second
)

// numShards spreads keys over independent locks so that concurrent calls
// rarely wait on each other.
const numShards = 64

// evictSample is how many buckets are looked at to pick one to evict when
// a shard is full of buckets that are still refilling.
const evictSample = 8

// MemoryOptions configures [NewMemory].
type MemoryOptions struct {
	// MaxKeys bounds the number of buckets held; zero means
	// DefaultMaxKeys. See [Memory] for what happens beyond it.
	MaxKeys int
	// SweepEvery is the least time between two sweeps of one shard for
	// buckets that have refilled; zero means DefaultSweepEvery.
	SweepEvery time.Duration
}

// Memory is a [Limiter] held in this process's memory.
//
// Buckets are spread over shards, each a map under its own mutex, by a
// seeded hash of the key. Memory is bounded: each shard holds at most
// MaxKeys/64 buckets (about 100 bytes each with a short key). A bucket
// that has refilled to its burst is the same as one that does not exist,
// so when a new key finds its shard full, the shard is first swept of
// refilled buckets (at most once per SweepEvery, which keeps a flood of
// new keys from making every call sweep); dropping them changes no
// decision. If the shard is still full, the bucket closest to being full
// among a few looked at is evicted: its key starts again with a full
// bucket, so a limit becomes lenient only for keys beyond MaxKeys that are
// all active at once. [Memory.Evicted] counts those evictions, for a
// metric that tells MaxKeys is too small.
type Memory struct {
	seed       maphash.Seed
	base       time.Time // bucket times are nanoseconds since base
	perShard   int
	sweepEvery int64
	evicted    atomic.Uint64
	shards     [numShards]shard
}

var _ Limiter = (*Memory)(nil)

type shard struct {
	mu        sync.Mutex
	buckets   map[string]bucket
	nextSweep int64
	_         [40]byte // keep shards on separate cache lines
}

// bucket is one key's state, stored by value so a new key costs no
// allocation beyond the map's own.
type bucket struct {
	tokens float64
	last   int64 // when tokens was computed
	full   int64 // when the bucket will be full again if left alone
}

// NewMemory returns an empty in-memory limiter.
func NewMemory(opts MemoryOptions) *Memory {
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.SweepEvery <= 0 {
		opts.SweepEvery = DefaultSweepEvery
	}
	m := &Memory{
		seed:       maphash.MakeSeed(),
		base:       time.Now(),
		perShard:   max(1, opts.MaxKeys/numShards),
		sweepEvery: int64(opts.SweepEvery),
	}
	for i := range m.shards {
		m.shards[i].buckets = map[string]bucket{}
	}
	return m
}

// Allow implements [Limiter]. It never fails for a valid Limit.
func (m *Memory) Allow(_ context.Context, key string, l Limit, now time.Time) (Verdict, error) {
	if !(l.Rate > 0) || l.Burst <= 0 || math.IsInf(l.Rate, 0) {
		return Verdict{}, errLimit
	}
	t := int64(now.Sub(m.base))
	burst := float64(l.Burst)
	nsPerToken := 1e9 / l.Rate

	s := &m.shards[maphash.String(m.seed, key)%numShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.buckets[key]
	if !ok {
		if len(s.buckets) >= m.perShard {
			m.makeRoom(s, t)
		}
		b = bucket{tokens: burst, last: t}
	} else if t > b.last {
		b.tokens = min(burst, b.tokens+float64(t-b.last)/nsPerToken)
		b.last = t
	} else {
		// A caller that read the clock before another one updated the
		// bucket: refill nothing rather than go back in time.
		b.tokens = min(burst, b.tokens)
	}
	var v Verdict
	if b.tokens >= 1 {
		b.tokens--
		v.OK = true
	} else {
		v.RetryAfter = time.Duration(nanos((1 - b.tokens) * nsPerToken))
	}
	b.full = b.last + nanos((burst-b.tokens)*nsPerToken)
	s.buckets[key] = b
	return v, nil
}

// maxNanos caps durations computed from a rate (a few calls a day with a
// large burst is centuries), well clear of int64 overflow when added to a
// bucket time.
const maxNanos = int64(1) << 61

// nanos rounds f nanoseconds up to an int64, capped at maxNanos.
func nanos(f float64) int64 {
	if !(f < float64(maxNanos)) {
		return maxNanos
	}
	return int64(math.Ceil(f))
}

// makeRoom frees at least one place in a full shard; see [Memory].
func (m *Memory) makeRoom(s *shard, t int64) {
	if t >= s.nextSweep {
		s.nextSweep = t + m.sweepEvery
		for k, b := range s.buckets {
			if b.full <= t {
				delete(s.buckets, k)
			}
		}
		if len(s.buckets) < m.perShard {
			return
		}
	}
	victim, soonest, n := "", int64(math.MaxInt64), 0
	for k, b := range s.buckets {
		if b.full < soonest {
			victim, soonest = k, b.full
		}
		if n++; n == evictSample {
			break
		}
	}
	delete(s.buckets, victim)
	m.evicted.Add(1)
}

// Len returns the number of buckets held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Evicted returns how many buckets were dropped before they had refilled
// because MaxKeys was reached.
func (m *Memory) Evicted() uint64 { return m.evicted.Load() }
