package audit

import (
	"context"
	"errors"
	"time"
)

// Sink stores chained records. The [Log] writes every batch to each of
// its sinks, in order, from one goroutine.
type Sink interface {
	// Name says which sink this is in logs and errors ("sqlite", "jsonl
	// /var/log/sluice/audit.jsonl", ...).
	Name() string
	// Write stores a batch of records and the checkpoints that sign them,
	// atomically where the store can: after an error, the [Log] treats
	// the whole batch as not written.
	Write(ctx context.Context, recs []Record, cps []Checkpoint) error
	Close() error
}

// Store is a sink that can be read back: the primary sink, from which the
// [Log] continues the chain after a restart, and which `sluice audit`
// queries and verifies.
type Store interface {
	Sink
	Source
	// Head returns the last record's sequence number and hash (zero when
	// the store is empty) and the last checkpoint's sequence number.
	Head(ctx context.Context) (seq uint64, hash [32]byte, signed uint64, err error)
	// Query calls fn for each record that f selects, in sequence order.
	Query(ctx context.Context, f Filter, fn func(Record) error) error
	// Purge deletes the records up to and including cp.Seq and stores cp,
	// a signed [KindRetention] checkpoint, in one transaction.
	Purge(ctx context.Context, cp Checkpoint) error
	// LastCheckpoint returns the checkpoint (of any kind) with the highest
	// sequence number, or ok false when there is none.
	LastCheckpoint(ctx context.Context) (cp Checkpoint, ok bool, err error)
	// RetentionPoint returns the last signed checkpoint whose record was
	// written before cutoff, or ok false.
	RetentionPoint(ctx context.Context, cutoff time.Time) (cp Checkpoint, ok bool, err error)
}

// Source is a stored chain as [Verify] reads it.
type Source interface {
	// Records calls fn for each record in the order the store keeps them
	// (sequence order for databases, line order for files).
	Records(ctx context.Context, fn func(Record) error) error
	// Checkpoints returns every checkpoint kept, retention ones included.
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
}

// Filter selects records for [Store.Query]. Zero fields select everything.
type Filter struct {
	Principal string
	Server    string
	// Name is the tool or prompt name, or resource URI.
	Name    string
	Method  string
	Outcome string
	Reason  string
	// Since and Until bound the event's time (Until exclusive).
	Since, Until time.Time
	// Contains selects events whose body contains this text (an HMAC
	// token from `sluice audit hash`).
	Contains string
	// AfterSeq selects records after this sequence number.
	AfterSeq uint64
	// Limit keeps the last Limit records selected (0: all).
	Limit int
}

// ErrClosed is returned by a [Log] that has been closed.
var ErrClosed = errors.New("audit log closed")
