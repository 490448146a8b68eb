package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// dialect is what differs between the SQL of the stores.
type dialect struct {
	placeholder func(i int) string // the i-th parameter, from 1
	contains    string             // "body contains %s", %s a placeholder
	text        func(string) any   // a text searched for in the body, as a parameter
	noRows      error              // the driver's error for a query of one row that found none
}

// queryFiltered runs f over a store's records table with query. The
// conditions on the event's members are found first as text in the body
// (its members are written in a fixed form), then checked exactly on the
// decoded event, so that text inside recorded arguments cannot make a
// record match.
func queryFiltered(ctx context.Context, f Filter, d dialect, query func(context.Context, string, []any, bool, func(Record) error) error, fn func(Record) error) error {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, d.placeholder(len(args))))
	}
	for _, m := range f.members() {
		add(d.contains, d.text(m))
	}
	if !f.Since.IsZero() {
		add("written >= %s", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		add("written < %s", f.Until.UnixNano())
	}
	if f.Contains != "" {
		add(d.contains, d.text(f.Contains))
	}
	if len(f.ContainsAny) > 0 {
		var alts []string
		for _, t := range f.ContainsAny {
			args = append(args, d.text(t))
			alts = append(alts, fmt.Sprintf(d.contains, d.placeholder(len(args))))
		}
		where = append(where, "("+strings.Join(alts, " OR ")+")")
	}
	if f.AfterSeq > 0 {
		add("seq > %s", int64(f.AfterSeq))
	}
	if f.beforeSeq > 0 {
		add("seq < %s", int64(f.beforeSeq))
	}
	q := `SELECT seq, written, link, body FROM audit_records`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += ` ORDER BY seq`
	exact := f.exact()
	if f.Limit > 0 && exact {
		q = `SELECT * FROM (` + q + fmt.Sprintf(` DESC LIMIT %d) AS newest ORDER BY seq`, f.Limit)
	} else if f.Limit > 0 {
		// Which records are the last Limit that match is only known after
		// the exact check: keep a window of them.
		var last []Record
		err := query(ctx, q+" DESC", args, false, func(r Record) error {
			if len(last) < f.Limit && f.match(r) {
				last = append(last, r)
			}
			if len(last) == f.Limit {
				return errEnough
			}
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return err
		}
		slices.Reverse(last)
		for _, r := range last {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	return query(ctx, q, args, false, func(r Record) error {
		if !exact && !f.match(r) {
			return nil
		}
		return fn(r)
	})
}

var errEnough = errors.New("enough records")

// link is how a record's chain hashes are stored: the previous record's
// hash, then its own.
func link(r *Record) []byte {
	b := make([]byte, 64)
	copy(b, r.Prev[:])
	copy(b[32:], r.Hash[:])
	return b
}

// unlink fills r's hashes from a stored link.
func unlink(r *Record, b []byte) {
	if len(b) == 64 {
		copy(r.Prev[:], b[:32])
		copy(r.Hash[:], b[32:])
	}
}

// rows is what database/sql's and pgx's result sets have in common.
type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// scanCheckpoints reads rows of (kind, seq, hash, time, key_id, sig).
func scanCheckpoints(rs rows) ([]Checkpoint, error) {
	var out []Checkpoint
	for rs.Next() {
		var (
			c    Checkpoint
			seq  int64
			hash []byte
		)
		if err := rs.Scan(&c.Kind, &seq, &hash, &c.Time, &c.KeyID, &c.Sig); err != nil {
			return nil, err
		}
		c.Seq = uint64(seq)
		copy(c.Hash[:], hash)
		out = append(out, c)
	}
	return out, rs.Err()
}

// scanner is a row of a driver (database/sql's *Row, pgx's Row).
type scanner interface{ Scan(dest ...any) error }

// sqlStore is what the SQL stores share: the statements over the chain's
// tables, run through each store's driver. [SQLite] and [Postgres] embed
// one and add how they write records.
type sqlStore struct {
	d dialect
	// row runs a query of one row; records runs one of records (seq,
	// written, link, body); cps one of checkpoints.
	row func(ctx context.Context, q string, args ...any) scanner
	// With borrow, a record's Body is valid only during fn (no copy).
	records func(ctx context.Context, q string, args []any, borrow bool, fn func(Record) error) error
	cps     func(ctx context.Context, q string, args ...any) ([]Checkpoint, error)
	// tx runs fn in a transaction, committed when fn returns nil.
	tx func(ctx context.Context, fn func(exec execFunc) error) error
	// seqRange, where set, turns a time range into sequence numbers:
	// records are written in time order (see [SQLite]), and a store
	// without an index on the write time is read by sequence number.
	seqRange func(ctx context.Context, f *Filter) error
}

// execFunc runs a statement in a transaction.
type execFunc func(q string, args ...any) error

// p is the i-th placeholder.
func (s *sqlStore) p(i int) string { return s.d.placeholder(i) }

// upsertCheckpoint stores c, replacing a checkpoint of its kind and seq.
func (s *sqlStore) upsertCheckpoint(exec execFunc, c Checkpoint) error {
	return exec(fmt.Sprintf(`INSERT INTO audit_checkpoints (kind, seq, hash, time, key_id, sig) VALUES (%s, %s, %s, %s, %s, %s)
		ON CONFLICT (kind, seq) DO UPDATE SET hash = excluded.hash, time = excluded.time, key_id = excluded.key_id, sig = excluded.sig`,
		s.p(1), s.p(2), s.p(3), s.p(4), s.p(5), s.p(6)),
		c.Kind, int64(c.Seq), c.Hash[:], c.Time, c.KeyID, c.Sig)
}

// Head implements [Store].
func (s *sqlStore) Head(ctx context.Context) (uint64, [32]byte, uint64, error) {
	var (
		seq, signed int64
		lnk         []byte
		h           [32]byte
	)
	err := s.row(ctx, `SELECT seq, link FROM audit_records ORDER BY seq DESC LIMIT 1`).Scan(&seq, &lnk)
	switch {
	case errors.Is(err, s.d.noRows):
		// Everything may have been purged: the chain goes on from the
		// retention point.
		var hash []byte
		err = s.row(ctx, `SELECT seq, hash FROM audit_checkpoints WHERE kind = `+s.p(1)+` ORDER BY seq DESC LIMIT 1`, KindRetention).Scan(&seq, &hash)
		if errors.Is(err, s.d.noRows) {
			return 0, h, 0, nil
		}
		copy(h[:], hash)
	case err == nil:
		var r Record
		unlink(&r, lnk)
		h = r.Hash
	}
	if err != nil {
		return 0, h, 0, err
	}
	if err := s.row(ctx, `SELECT coalesce(max(seq), 0) FROM audit_checkpoints`).Scan(&signed); err != nil {
		return 0, h, 0, err
	}
	return uint64(seq), h, uint64(signed), nil
}

// Records implements [Source].
func (s *sqlStore) Records(ctx context.Context, fn func(Record) error) error {
	return s.Query(ctx, Filter{}, fn)
}

// Query implements [Store] (see [queryFiltered]).
func (s *sqlStore) Query(ctx context.Context, f Filter, fn func(Record) error) error {
	if s.seqRange != nil && (!f.Since.IsZero() || !f.Until.IsZero()) {
		if err := s.seqRange(ctx, &f); err != nil {
			return err
		}
	}
	return queryFiltered(ctx, f, s.d, s.records, fn)
}

// firstWrittenAt returns the sequence number of the first record written
// at t or later (one past the last record when there is none), by binary
// search: the store's write times must not decrease along the chain.
func (s *sqlStore) firstWrittenAt(ctx context.Context, t int64) (uint64, error) {
	var lo, hi int64
	if err := s.row(ctx, `SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) FROM audit_records`).Scan(&lo, &hi); err != nil {
		return 0, err
	}
	hi++
	for lo < hi {
		mid := lo + (hi-lo)/2
		var seq, written int64
		if err := s.row(ctx, `SELECT seq, written FROM audit_records WHERE seq >= `+s.p(1)+` ORDER BY seq LIMIT 1`, mid).Scan(&seq, &written); err != nil {
			return 0, err
		}
		if written >= t {
			hi = mid
		} else {
			lo = seq + 1
		}
	}
	return uint64(lo), nil
}

const checkpointColumns = `kind, seq, hash, time, key_id, sig`

// Checkpoints implements [Source].
func (s *sqlStore) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	return s.cps(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints ORDER BY seq, kind`)
}

// LastCheckpoint implements [Store].
func (s *sqlStore) LastCheckpoint(ctx context.Context) (Checkpoint, bool, error) {
	return first(s.cps(ctx, `SELECT `+checkpointColumns+` FROM audit_checkpoints ORDER BY seq DESC, kind LIMIT 1`))
}

// RetentionPoint implements [Store].
func (s *sqlStore) RetentionPoint(ctx context.Context, cutoff time.Time) (Checkpoint, bool, error) {
	return first(s.cps(ctx, `SELECT c.kind, c.seq, c.hash, c.time, c.key_id, c.sig FROM audit_checkpoints c JOIN audit_records r ON r.seq = c.seq
		WHERE c.kind = `+s.p(1)+` AND r.written < `+s.p(2)+` ORDER BY c.seq DESC LIMIT 1`, KindCheckpoint, cutoff.UnixNano()))
}

func first(cps []Checkpoint, err error) (Checkpoint, bool, error) {
	if err != nil || len(cps) == 0 {
		return Checkpoint{}, false, err
	}
	return cps[0], true, nil
}

// Purge implements [Store].
func (s *sqlStore) Purge(ctx context.Context, cp Checkpoint) error {
	return s.tx(ctx, func(exec execFunc) error {
		if err := s.upsertCheckpoint(exec, cp); err != nil {
			return err
		}
		if err := exec(`DELETE FROM audit_records WHERE seq <= `+s.p(1), int64(cp.Seq)); err != nil {
			return err
		}
		// Checkpoints of purged records prove nothing any more; the
		// retention checkpoint stands for them.
		if err := exec(`DELETE FROM audit_checkpoints WHERE kind = `+s.p(1)+` AND seq <= `+s.p(2), KindCheckpoint, int64(cp.Seq)); err != nil {
			return err
		}
		return exec(`DELETE FROM audit_checkpoints WHERE kind = `+s.p(1)+` AND seq < `+s.p(2), KindRetention, int64(cp.Seq))
	})
}

// seqBounds and recordsIn let [Verify] read ranges of records on several
// connections at once.
func (s *sqlStore) seqBounds(ctx context.Context) (lo, hi uint64, err error) {
	var a, b int64
	err = s.row(ctx, `SELECT coalesce(min(seq), 1), coalesce(max(seq), 0) FROM audit_records`).Scan(&a, &b)
	return uint64(a), uint64(b), err
}

func (s *sqlStore) recordsIn(ctx context.Context, lo, hi uint64, fn func(Record) error) error {
	return s.records(ctx, `SELECT seq, written, link, body FROM audit_records WHERE seq BETWEEN `+s.p(1)+` AND `+s.p(2)+` ORDER BY seq`,
		[]any{int64(lo), int64(hi)}, true, fn)
}
