package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

// SQLite is the embedded [Store]: one database file, in WAL mode. A
// committed batch survives a crash of the process (kill -9); with
// synchronous=NORMAL a power loss may cost the last batches, which
// [SQLiteOptions.Sync] trades for an fsync per batch.
//
// Write times never decrease along the chain (see [Log]), so a time range
// is a range of sequence numbers: the table needs no index on them.
//
// A record is its chain fields and its body, nothing beside: a query
// filters on the body itself (see [SQLite.Query]), so no column can say
// something the chained body does not.
type SQLite struct {
	sqlStore
	db   *sql.DB
	path string
	// inserts[k] inserts 1<<k records; nil when read-only.
	inserts [insertSizes]*sql.Stmt
	unlock  func()
	args    []any
}

// A batch is inserted by statements of 128 records, then one each of the
// powers of two that make up the rest: a statement per record costs more
// than the records, and the rest of a batch is often most of it (a batch
// holds what 200 ms brought).
const insertSizes = 8

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
	if !opts.ReadOnly {
		// Each multi-row INSERT keeps a statement journal (the pages it
		// changes, to undo it alone); past 64 KiB SQLite spills it to a
		// temporary file, a third of a batch's writes. In memory, it is
		// a copy: a statement's pages are bounded by its 128 records at most.
		q.Add("_pragma", "temp_store(MEMORY)")
	}
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
	s.sqlStore = sqlStore{
		d:       sqliteDialect,
		row:     func(ctx context.Context, q string, args ...any) scanner { return db.QueryRowContext(ctx, q, args...) },
		records: s.query,
		cps: func(ctx context.Context, q string, args ...any) ([]Checkpoint, error) {
			rows, err := db.QueryContext(ctx, q, args...)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return scanCheckpoints(rows)
		},
		tx: func(ctx context.Context, fn func(execFunc) error) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			if err := fn(func(q string, args ...any) error {
				_, err := tx.ExecContext(ctx, q, args...)
				return err
			}); err != nil {
				tx.Rollback()
				return err
			}
			return tx.Commit()
		},
	}
	if !opts.ReadOnly {
		if _, err := db.Exec(sqliteSchema); err != nil {
			db.Close()
			return nil, fmt.Errorf("audit database %s: %w", path, err)
		}
		for k := range s.inserts {
			if s.inserts[k], err = db.Prepare(insertSQL(1 << k)); err != nil {
				break
			}
		}
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("audit database %s: %w", path, err)
		}
	} else if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit database %s: %w", path, err)
	}
	// Databases made before write times were kept in order have an index
	// on them, and are queried by it.
	var indexed int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'audit_records_written'`).Scan(&indexed); err != nil {
		db.Close()
		return nil, fmt.Errorf("audit database %s: %w", path, err)
	}
	if indexed == 0 {
		s.seqRange = s.timeToSeq
	}
	return s, nil
}

// timeToSeq narrows f's time range to the sequence numbers it covers.
func (s *SQLite) timeToSeq(ctx context.Context, f *Filter) error {
	if !f.Since.IsZero() {
		first, err := s.firstWrittenAt(ctx, f.Since.UnixNano())
		if err != nil {
			return err
		}
		f.AfterSeq = max(f.AfterSeq, first-1)
	}
	if !f.Until.IsZero() {
		end, err := s.firstWrittenAt(ctx, f.Until.UnixNano())
		if err != nil {
			return err
		}
		f.beforeSeq = end
	}
	return nil
}

// Name implements [Sink].
func (s *SQLite) Name() string { return "sqlite " + s.path }

// DB returns the database (tests tamper with it).
func (s *SQLite) DB() *sql.DB { return s.db }

// Write implements [Sink].
func (s *SQLite) Write(ctx context.Context, recs []Record, cps []Checkpoint) error {
	if s.inserts[0] == nil {
		return errors.New("audit database opened read-only")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for len(recs) > 0 {
		k := min(bits.Len(uint(len(recs)))-1, insertSizes-1)
		n, stmt := 1<<k, s.inserts[k]
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
	exec := func(q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
	for _, c := range cps {
		if err := s.upsertCheckpoint(exec, c); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

var sqliteDialect = dialect{
	placeholder: func(int) string { return "?" },
	contains:    "instr(body, %s) > 0",
	text:        func(s string) any { return s },
	noRows:      sql.ErrNoRows,
}

func (s *SQLite) query(ctx context.Context, q string, args []any, borrow bool, fn func(Record) error) error {
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
		r.Body = []byte(body)
		if !borrow {
			r.Body = slices.Clone(r.Body)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Close implements [Sink].
func (s *SQLite) Close() error {
	for _, st := range s.inserts {
		if st != nil {
			st.Close()
		}
	}
	err := s.db.Close()
	if s.unlock != nil {
		s.unlock()
	}
	return err
}
