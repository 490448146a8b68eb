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
	// Reason matches the settling reason or that of any decision.
	// Name is the tool or prompt name, or resource URI.
	Name    string
	Method  string
	Outcome string
	Reason  string
	// Since and Until bound the time the record was written (Until
	// exclusive).
	Since, Until time.Time
	// Contains selects events whose body contains this text (an HMAC
	// token from `sluice audit hash`).
	Contains string
	// ContainsAny selects events whose body contains one of these (the
	// tokens of a value's forms).
	ContainsAny []string
	// AfterSeq selects records after this sequence number.
	AfterSeq uint64
	// beforeSeq, when not zero, selects records before this sequence
	// number (a time range turned into sequence numbers).
	beforeSeq uint64
	// Limit keeps the last Limit records selected (0: all).
	Limit int
}

// members are the body members, as the body writes them, that a record
// matching f must hold (a first, textual test).
func (f *Filter) members() []string {
	var out []string
	for _, m := range []struct{ k, v string }{{"sub", f.Principal}, {"server", f.Server}, {"name", f.Name}, {"method", f.Method}, {"outcome", f.Outcome}, {"reason", f.Reason}} {
		if m.v != "" {
			out = append(out, string(appendStr(nil, m.k, m.v)[1:]))
		}
	}
	return out
}

// exact reports whether the textual test is all of f.
func (f *Filter) exact() bool {
	return f.Principal == "" && f.Server == "" && f.Name == "" && f.Method == "" && f.Outcome == "" && f.Reason == ""
}

// match checks the conditions on the event's members on its decoded body.
func (f *Filter) match(r Record) bool {
	if f.exact() {
		return true
	}
	v, err := ParseView(r.Body)
	if err != nil {
		return false
	}
	switch {
	case f.Principal != "" && v.Subject() != f.Principal,
		f.Server != "" && v.Server != f.Server,
		f.Name != "" && v.Name != f.Name,
		f.Method != "" && v.Method != f.Method,
		f.Outcome != "" && v.Outcome != f.Outcome:
		return false
	case f.Reason != "" && v.Reason != f.Reason:
		for _, d := range v.Decisions {
			if d.Reason == f.Reason {
				return true
			}
		}
		return false
	}
	return true
}

// ErrClosed is returned by a [Log] that has been closed.
var ErrClosed = errors.New("audit log closed")
