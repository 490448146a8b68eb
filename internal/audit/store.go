package audit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// dialect is what differs between the SQL of the stores.
type dialect struct {
	placeholder func(i int) string // the i-th parameter, from 1
	contains    string             // "body contains %s", %s a placeholder
	text        func(string) any   // a text searched for in the body, as a parameter
}

// queryFiltered runs f over a store's records table with query. The
// conditions on the event's members are found first as text in the body
// (its members are written in a fixed form), then checked exactly on the
// decoded event, so that text inside recorded arguments cannot make a
// record match.
func queryFiltered(ctx context.Context, f Filter, d dialect, query func(context.Context, string, []any, func(Record) error) error, fn func(Record) error) error {
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
	if f.AfterSeq > 0 {
		add("seq > %s", int64(f.AfterSeq))
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
		err := query(ctx, q+" DESC", args, func(r Record) error {
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
	return query(ctx, q, args, func(r Record) error {
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
