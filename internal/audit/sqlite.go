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
// The columns that queries filter on are generated from the body, not
// stored beside it: they cannot say something the chained body does not.
type SQLite struct {
	db     *sql.DB
	path   string
	insert *sql.Stmt
	unlock func()
}

// SQLiteOptions configure [OpenSQLite].
type SQLiteOptions struct {
	// Sync makes every batch fsync before it is acknowledged
	// (synchronous=FULL), so that an acknowledged event survives a power
	// loss too.
	Sync bool
	// ReadOnly opens an existing database for queries and verification.
	ReadOnly bool
}

var _ Store = (*SQLite)(nil)

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS audit_records (
	seq INTEGER PRIMARY KEY,
	written INTEGER NOT NULL,
	prev BLOB NOT NULL,
	hash BLOB NOT NULL,
	body TEXT NOT NULL,
	time TEXT GENERATED ALWAYS AS (json_extract(body, '$.time')) VIRTUAL,
	principal TEXT GENERATED ALWAYS AS (json_extract(body, '$.principal.sub')) VIRTUAL,
	server TEXT GENERATED ALWAYS AS (json_extract(body, '$.server')) VIRTUAL,
	method TEXT GENERATED ALWAYS AS (json_extract(body, '$.method')) VIRTUAL,
	name TEXT GENERATED ALWAYS AS (json_extract(body, '$.name')) VIRTUAL,
	outcome TEXT GENERATED ALWAYS AS (json_extract(body, '$.outcome')) VIRTUAL,
	reason TEXT GENERATED ALWAYS AS (json_extract(body, '$.reason')) VIRTUAL
);
CREATE INDEX IF NOT EXISTS audit_records_time ON audit_records(time);
CREATE INDEX IF NOT EXISTS audit_records_principal ON audit_records(principal);
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
		unlock, err := lockWriter(path)
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
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("audit database: %w", err)
	}
	// One connection: the writer is one goroutine, and SQLite serialises
	// writers anyway.
	db.SetMaxOpenConns(1)
	s := &SQLite{db: db, path: path}
	if !opts.ReadOnly {
		if _, err := db.Exec(sqliteSchema); err != nil {
			db.Close()
			return nil, fmt.Errorf("audit database %s: %w", path, err)
		}
		s.insert, err = db.Prepare(`INSERT INTO audit_records (seq, written, prev, hash, body) VALUES (?, ?, ?, ?, ?)`)
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
	ins := tx.StmtContext(ctx, s.insert)
	for i := range recs {
		r := &recs[i]
		if _, err := ins.ExecContext(ctx, int64(r.Seq), r.Time, r.Prev[:], r.Hash[:], r.Body); err != nil {
			tx.Rollback()
			return err
		}
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
	err := s.db.QueryRowContext(ctx, `SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
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
	var out []Checkpoint
	for rows.Next() {
		var (
			c    Checkpoint
			seq  int64
			hash []byte
		)
		if err := rows.Scan(&c.Kind, &seq, &hash, &c.Time, &c.KeyID, &c.Sig); err != nil {
			return nil, err
		}
		c.Seq = uint64(seq)
		copy(c.Hash[:], hash)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Query implements [Store].
func (s *SQLite) Query(ctx context.Context, f Filter, fn func(Record) error) error {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.Principal != "" {
		add("principal = ?", f.Principal)
	}
	if f.Server != "" {
		add("server = ?", f.Server)
	}
	if f.Name != "" {
		add("name = ?", f.Name)
	}
	if f.Method != "" {
		add("method = ?", f.Method)
	}
	if f.Outcome != "" {
		add("outcome = ?", f.Outcome)
	}
	if f.Reason != "" {
		add("EXISTS (SELECT 1 FROM json_each(body, '$.decisions') WHERE json_extract(value, '$.reason') = ?)", f.Reason)
	}
	if !f.Since.IsZero() {
		add("time >= ?", FormatTime(f.Since))
	}
	if !f.Until.IsZero() {
		add("time < ?", FormatTime(f.Until))
	}
	if f.Contains != "" {
		add("instr(body, ?) > 0", f.Contains)
	}
	if f.AfterSeq > 0 {
		add("seq > ?", int64(f.AfterSeq))
	}
	q := `SELECT seq, written, prev, hash, body FROM audit_records`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if f.Limit > 0 {
		q = `SELECT * FROM (` + q + fmt.Sprintf(` ORDER BY seq DESC LIMIT %d) ORDER BY seq`, f.Limit)
	} else {
		q += ` ORDER BY seq`
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		seq        int64
		prev, hash []byte
		body       sql.RawBytes
	)
	for rows.Next() {
		var r Record
		if err := rows.Scan(&seq, &r.Time, &prev, &hash, &body); err != nil {
			return err
		}
		r.Seq = uint64(seq)
		copy(r.Prev[:], prev)
		copy(r.Hash[:], hash)
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
	}
	err := s.db.Close()
	if s.unlock != nil {
		s.unlock()
	}
	return err
}
