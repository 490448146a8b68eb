package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// SQLite is the embedded [Store]: one database file, in WAL mode. A
// committed batch survives a crash of the process (kill -9); with
// synchronous=NORMAL a power loss may cost the last batches, which
// [SQLiteOptions.Sync] trades for an fsync per batch.
//
// A record is its chain fields and its body, nothing beside: a query
// filters on the body itself (see [SQLite.Query]), so no column can say
// something the chained body does not.
type SQLite struct {
	db         *sql.DB
	path       string
	insert     *sql.Stmt // one record
	insertMany *sql.Stmt // insertChunk records
	unlock     func()
	args       []any
}

// insertChunk is how many records one INSERT statement writes in a batch:
// a statement per record costs more than the records.
const insertChunk = 128

func insertSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_records (seq, written, link, body) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`(?, ?, ?, ?)`)
	}
	return b.String()
}

// SQLiteOptions configure [OpenSQLite].
type SQLiteOptions struct {
	// Sync makes every batch fsync before it is acknowledged
	// (synchronous=FULL), so that an acknowledged event survives a power
	// loss too.
	Sync bool
	// ReadOnly opens an existing database for queries and verification.
	ReadOnly bool
	// NoWait fails at once, with [ErrInUse], when another process writes
	// the database, instead of waiting for it to stop.
	NoWait bool
}

// ErrInUse reports a database another Sluice process is writing.
var ErrInUse = errors.New("audit database in use")

var _ Store = (*SQLite)(nil)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS audit_records (
	seq INTEGER PRIMARY KEY,
	written INTEGER NOT NULL,
	link BLOB NOT NULL,
	body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_written ON audit_records(written);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
	kind TEXT NOT NULL,
	seq INTEGER NOT NULL,
	hash BLOB NOT NULL,
	time INTEGER NOT NULL,
	key_id TEXT NOT NULL,
	sig BLOB NOT NULL,
	PRIMARY KEY (kind, seq)
);
`

// OpenSQLite opens (creating when needed) the audit database at path.
func OpenSQLite(path string, opts SQLiteOptions) (*SQLite, error) {
	if !opts.ReadOnly {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("audit database: %w", err)
		}
		wait := lockWait
		if opts.NoWait {
			wait = 0
		}
		unlock, err := lockWriter(path, wait)
		if err != nil {
			return nil, err
		}
		s, err := openSQLite(path, opts)
		if err != nil {
			unlock()
			return nil, err
		}
		s.unlock = unlock
		return s, nil
	}
	return openSQLite(path, opts)
}

func openSQLite(path string, opts SQLiteOptions) (*SQLite, error) {
	if !opts.ReadOnly {
		// Created private before SQLite opens it: its WAL and shared
		// memory files take the database file's permissions.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit database: %w", err)
		}
		f.Close()
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("audit database: %w", err)
	}
	sync := "NORMAL"
	if opts.Sync {
		sync = "FULL"
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+sync+")")
	if opts.ReadOnly {
		q.Add("mode", "ro")
		// Pages read through a memory map, not a system call each:
		// verification reads every page.
		q.Add("_pragma", "mmap_size(1073741824)")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("audit database: %w", err)
	}
	// One connection to write: the writer is one goroutine, and SQLite
	// serialises writers anyway. Readers (verify) use several.
	db.SetMaxOpenConns(1)
	if opts.ReadOnly {
		db.SetMaxOpenConns(8)
		db.SetMaxIdleConns(8)
	}
	s := &SQLite{db: db, path: path}
	if !opts.ReadOnly {
		if _, err := db.Exec(sqliteSchema); err != nil {
			db.Close()
			return nil, fmt.Errorf("audit database %s: %w", path, err)
		}
		s.insert, err = db.Prepare(insertSQL(1))
		if err == nil {
			s.insertMany, err = db.Prepare(insertSQL(insertChunk))
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("audit database %s: %w", path, err)
		}
	} else if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit database %s: %w", path, err)
	}
	return s, nil
}

// Name implements [Sink].
func (s *SQLite) Name() string { return "sqlite " + s.path }

// DB returns the database (tests tamper with it).
func (s *SQLite) DB() *sql.DB { return s.db }

// Write implements [Sink].
func (s *SQLite) Write(ctx context.Context, recs []Record, cps []Checkpoint) error {
	if s.insert == nil {
		return errors.New("audit database opened read-only")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for len(recs) > 0 {
		n, stmt := 1, s.insert
		if len(recs) >= insertChunk {
			n, stmt = insertChunk, s.insertMany
		}
		args := s.args[:0]
		for i := range recs[:n] {
			r := &recs[i]
			args = append(args, int64(r.Seq), r.Time, link(r), r.Body)
		}
		_, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		clear(args)
		s.args = args[:0]
		if err != nil {
			tx.Rollback()
			return err
		}
		recs = recs[n:]
	}
	for _, c := range cps {
		if err := insertCheckpoint(ctx, tx, c); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func insertCheckpoint(ctx context.Context, tx *sql.Tx, c Checkpoint) error {
	_, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO audit_checkpoints (kind, seq, hash, time, key_id, sig) VALUES (?, ?, ?, ?, ?, ?)`,
		c.Kind, int64(c.Seq), c.Hash[:], c.Time, c.KeyID, c.Sig)
	return err
}

// Head implements [Store].
func (s *SQLite) Head(ctx context.Context) (uint64, [32]byte, uint64, error) {
	var (
		seq    int64
		hash   []byte
		signed sql.NullInt64
		h      [32]byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT seq, substr(link, 33) FROM audit_records ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		// Everything may have been purged: the chain goes on from the
		// retention point.
		err = s.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_checkpoints WHERE kind = ? ORDER BY seq DESC LIMIT 1`, KindRetention).Scan(&seq, &hash)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, h, 0, nil
		}
	}
	if err != nil {
		return 0, h, 0, err
	}
	copy(h[:], hash)
	if err := s.db.QueryRowContext(ctx, `SELECT max(seq) FROM audit_checkpoints`).Scan(&signed); err != nil {
		return 0, h, 0, err
	}
	return uint64(seq), h, uint64(signed.Int64), nil
}

// Records implements [Source].
func (s *SQLite) Records(ctx context.Context, fn func(Record) error) error {
	return s.Query(ctx, Filter{}, fn)
}

// Checkpoints implements [Source].
func (s *SQLite) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, seq, hash, time, key_id, sig FROM audit_checkpoints ORDER BY seq, kind`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanCheckpoints(rows)
}

// Query implements [Store] (see [queryFiltered]).
func (s *SQLite) Query(ctx context.Context, f Filter, fn func(Record) error) error {
	return queryFiltered(ctx, f, sqliteDialect, s.query, fn)
}

var sqliteDialect = dialect{
	placeholder: func(int) string { return "?" },
	contains:    "instr(body, %s) > 0",
	text:        func(s string) any { return s },
}

// seqBounds and recordsIn let [Verify] read ranges of records on several
// connections at once.
func (s *SQLite) seqBounds(ctx context.Context) (lo, hi uint64, err error) {
	var a, b sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT min(seq), max(seq) FROM audit_records`).Scan(&a, &b)
	if err != nil || !a.Valid {
		return 1, 0, err
	}
	return uint64(a.Int64), uint64(b.Int64), nil
}

func (s *SQLite) recordsIn(ctx context.Context, lo, hi uint64, fn func(Record) error) error {
	return s.query(ctx, `SELECT seq, written, link, body FROM audit_records WHERE seq BETWEEN ? AND ? ORDER BY seq`, []any{int64(lo), int64(hi)}, fn)
}

func (s *SQLite) query(ctx context.Context, q string, args []any, fn func(Record) error) error {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		seq       int64
		lnk, body sql.RawBytes
	)
	for rows.Next() {
		var r Record
		if err := rows.Scan(&seq, &r.Time, &lnk, &body); err != nil {
			return err
		}
		r.Seq = uint64(seq)
		unlink(&r, lnk)
		r.Body = slices.Clone([]byte(body))
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// LastCheckpoint implements [Store].
func (s *SQLite) LastCheckpoint(ctx context.Context) (Checkpoint, bool, error) {
	var (
		c    Checkpoint
		seq  int64
		hash []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT kind, seq, hash, time, key_id, sig FROM audit_checkpoints ORDER BY seq DESC, kind LIMIT 1`).
		Scan(&c.Kind, &seq, &hash, &c.Time, &c.KeyID, &c.Sig)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	c.Seq = uint64(seq)
	copy(c.Hash[:], hash)
	return c, true, nil
}

// RetentionPoint implements [Store].
func (s *SQLite) RetentionPoint(ctx context.Context, cutoff time.Time) (Checkpoint, bool, error) {
	var (
		c    Checkpoint
		seq  int64
		hash []byte
	)
	err := s.db.QueryRowContext(ctx, `SELECT c.seq, c.hash FROM audit_checkpoints c JOIN audit_records r ON r.seq = c.seq
		WHERE c.kind = ? AND r.written < ? ORDER BY c.seq DESC LIMIT 1`, KindCheckpoint, cutoff.UnixNano()).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	c.Seq = uint64(seq)
	copy(c.Hash[:], hash)
	return c, true, nil
}

// Purge implements [Store].
func (s *SQLite) Purge(ctx context.Context, cp Checkpoint) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := insertCheckpoint(ctx, tx, cp); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_records WHERE seq <= ?`, int64(cp.Seq)); err != nil {
		tx.Rollback()
		return err
	}
	// Checkpoints of purged records prove nothing any more; the retention
	// checkpoint stands for them.
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE kind = ? AND seq <= ?`, KindCheckpoint, int64(cp.Seq)); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit_checkpoints WHERE kind = ? AND seq < ?`, KindRetention, int64(cp.Seq)); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close implements [Sink].
func (s *SQLite) Close() error {
	if s.insert != nil {
		s.insert.Close()
		s.insertMany.Close()
	}
	err := s.db.Close()
	if s.unlock != nil {
		s.unlock()
	}
	return err
}
