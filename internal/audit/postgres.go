package audit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a [Store] in a PostgreSQL database, for deployments where
// several places read the log or the machine's disk is not where it should
// live. The tables are those of [SQLite], with BYTEA for the chain and the
// bodies (kept byte for byte). One Sluice writes a database at a time: a
// session-level advisory lock, which PostgreSQL releases when the
// connection goes, as it does when the process dies.
type Postgres struct {
	pool *pgxpool.Pool
	lock *pgx.Conn // holds the writer's advisory lock
	name string
}

var _ Store = (*Postgres)(nil)

// PostgresOptions configure [OpenPostgres].
type PostgresOptions struct {
	// ReadOnly opens the database for queries and verification: no schema
	// is created and no writer's lock taken.
	ReadOnly bool
	// NoWait fails at once, with [ErrInUse], when another Sluice writes
	// the database.
	NoWait bool
}

// writerLockKey is the advisory lock key of the audit writer.
const writerLockKey = 0x5c1ce_a0d17

const postgresSchema = `
CREATE TABLE IF NOT EXISTS audit_records (
	seq BIGINT PRIMARY KEY,
	written BIGINT NOT NULL,
	link BYTEA NOT NULL,
	body BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_records_written ON audit_records (written);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
	kind TEXT NOT NULL,
	seq BIGINT NOT NULL,
	hash BYTEA NOT NULL,
	time BIGINT NOT NULL,
	key_id TEXT NOT NULL,
	sig BYTEA NOT NULL,
	PRIMARY KEY (kind, seq)
);
`

// OpenPostgres connects to the database at dsn (a PostgreSQL URL or
// keyword/value string), creating the tables when needed.
func OpenPostgres(ctx context.Context, dsn string, opts PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The DSN may hold a password: never quote it.
		return nil, errors.New("audit postgres: the dsn does not parse")
	}
	cfg.MaxConns = 8
	p := &Postgres{name: "postgres " + redactDSN(cfg.ConnConfig)}
	if !opts.ReadOnly {
		wait := lockWait
		if opts.NoWait {
			wait = 0
		}
		if p.lock, err = pgLock(ctx, cfg.ConnConfig, wait, p.name); err != nil {
			return nil, err
		}
	}
	p.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = p.pool.Ping(ctx)
	}
	if err == nil && !opts.ReadOnly {
		_, err = p.pool.Exec(ctx, postgresSchema)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("audit %s: %w", p.name, err)
	}
	return p, nil
}

// pgLock takes the writer's advisory lock on a connection of its own,
// retrying until wait has passed.
func pgLock(ctx context.Context, cc *pgx.ConnConfig, wait time.Duration, name string) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cc.Copy())
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", name, err)
	}
	deadline := time.Now().Add(wait)
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(writerLockKey)).Scan(&ok); err != nil {
			conn.Close(ctx)
			return nil, fmt.Errorf("audit %s: %w", name, err)
		}
		if ok {
			return conn, nil
		}
		if time.Now().After(deadline) {
			conn.Close(ctx)
			return nil, fmt.Errorf("audit %s is written by another Sluice process: %w", name, ErrInUse)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redactDSN names a database without its password.
func redactDSN(cc *pgx.ConnConfig) string {
	u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", cc.Host, cc.Port), Path: "/" + cc.Database}
	if cc.User != "" {
		u.User = url.User(cc.User)
	}
	return u.String()
}

// Name implements [Sink].
func (p *Postgres) Name() string { return p.name }

// Pool returns the connection pool (tests tamper with the tables).
func (p *Postgres) Pool() *pgxpool.Pool { return p.pool }

// Write implements [Sink]: the records by COPY and the checkpoints, in one
// transaction.
func (p *Postgres) Write(ctx context.Context, recs []Record, cps []Checkpoint) error {
	if p.lock == nil {
		return errors.New("audit database opened read-only")
	}
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if len(recs) > 0 {
		rows := make([][]any, len(recs))
		for i := range recs {
			r := &recs[i]
			rows[i] = []any{int64(r.Seq), r.Time, link(r), r.Body}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_records"}, []string{"seq", "written", "link", "body"}, pgx.CopyFromRows(rows)); err != nil {
			return err
		}
	}
	for _, c := range cps {
		if err := pgCheckpoint(ctx, tx, c); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

func pgCheckpoint(ctx context.Context, tx pgx.Tx, c Checkpoint) error {
	_, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (kind, seq, hash, time, key_id, sig) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (kind, seq) DO UPDATE SET hash = EXCLUDED.hash, time = EXCLUDED.time, key_id = EXCLUDED.key_id, sig = EXCLUDED.sig`,
		c.Kind, int64(c.Seq), c.Hash[:], c.Time, c.KeyID, c.Sig)
	return err
}

// Head implements [Store].
func (p *Postgres) Head(ctx context.Context) (uint64, [32]byte, uint64, error) {
	var (
		seq    int64
		lnk    []byte
		signed *int64
		h      [32]byte
	)
	err := p.pool.QueryRow(ctx, `SELECT seq, link FROM audit_records ORDER BY seq DESC LIMIT 1`).Scan(&seq, &lnk)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		var hash []byte
		err = p.pool.QueryRow(ctx, `SELECT seq, hash FROM audit_checkpoints WHERE kind = $1 ORDER BY seq DESC LIMIT 1`, KindRetention).Scan(&seq, &hash)
		if errors.Is(err, pgx.ErrNoRows) {
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
	if err := p.pool.QueryRow(ctx, `SELECT max(seq) FROM audit_checkpoints`).Scan(&signed); err != nil {
		return 0, h, 0, err
	}
	var s uint64
	if signed != nil {
		s = uint64(*signed)
	}
	return uint64(seq), h, s, nil
}

// Records implements [Source].
func (p *Postgres) Records(ctx context.Context, fn func(Record) error) error {
	return p.Query(ctx, Filter{}, fn)
}

// Checkpoints implements [Source].
func (p *Postgres) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	return p.checkpoints(ctx, `SELECT kind, seq, hash, time, key_id, sig FROM audit_checkpoints ORDER BY seq, kind`)
}

func (p *Postgres) checkpoints(ctx context.Context, q string, args ...any) ([]Checkpoint, error) {
	rows, err := p.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanCheckpoints(rows)
}

// LastCheckpoint implements [Store].
func (p *Postgres) LastCheckpoint(ctx context.Context) (Checkpoint, bool, error) {
	cps, err := p.checkpoints(ctx, `SELECT kind, seq, hash, time, key_id, sig FROM audit_checkpoints ORDER BY seq DESC, kind LIMIT 1`)
	if err != nil || len(cps) == 0 {
		return Checkpoint{}, false, err
	}
	return cps[0], true, nil
}

// RetentionPoint implements [Store].
func (p *Postgres) RetentionPoint(ctx context.Context, cutoff time.Time) (Checkpoint, bool, error) {
	cps, err := p.checkpoints(ctx, `SELECT c.kind, c.seq, c.hash, c.time, c.key_id, c.sig FROM audit_checkpoints c JOIN audit_records r ON r.seq = c.seq
		WHERE c.kind = $1 AND r.written < $2 ORDER BY c.seq DESC LIMIT 1`, KindCheckpoint, cutoff.UnixNano())
	if err != nil || len(cps) == 0 {
		return Checkpoint{}, false, err
	}
	return cps[0], true, nil
}

// Purge implements [Store].
func (p *Postgres) Purge(ctx context.Context, cp Checkpoint) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if err := pgCheckpoint(ctx, tx, cp); err != nil {
		return err
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM audit_records WHERE seq <= $1`, []any{int64(cp.Seq)}},
		{`DELETE FROM audit_checkpoints WHERE kind = $1 AND seq <= $2`, []any{KindCheckpoint, int64(cp.Seq)}},
		{`DELETE FROM audit_checkpoints WHERE kind = $1 AND seq < $2`, []any{KindRetention, int64(cp.Seq)}},
	} {
		if _, err := tx.Exec(ctx, q.sql, q.args...); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// Query implements [Store] (see [queryFiltered]).
func (p *Postgres) Query(ctx context.Context, f Filter, fn func(Record) error) error {
	return queryFiltered(ctx, f, postgresDialect, p.query, fn)
}

var postgresDialect = dialect{
	placeholder: func(i int) string { return fmt.Sprintf("$%d", i) },
	contains:    "position(%s::bytea in body) > 0",
	text:        func(s string) any { return []byte(s) },
}

func (p *Postgres) query(ctx context.Context, q string, args []any, fn func(Record) error) error {
	rows, err := p.pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var (
		seq       int64
		lnk, body []byte
	)
	for rows.Next() {
		var r Record
		if err := rows.Scan(&seq, &r.Time, &lnk, &body); err != nil {
			return err
		}
		r.Seq = uint64(seq)
		unlink(&r, lnk)
		r.Body = append([]byte(nil), body...)
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// seqBounds and recordsIn let [Verify] read ranges on several connections.
func (p *Postgres) seqBounds(ctx context.Context) (lo, hi uint64, err error) {
	var a, b *int64
	if err := p.pool.QueryRow(ctx, `SELECT min(seq), max(seq) FROM audit_records`).Scan(&a, &b); err != nil || a == nil {
		return 1, 0, err
	}
	return uint64(*a), uint64(*b), nil
}

func (p *Postgres) recordsIn(ctx context.Context, lo, hi uint64, fn func(Record) error) error {
	return p.query(ctx, `SELECT seq, written, link, body FROM audit_records WHERE seq BETWEEN $1 AND $2 ORDER BY seq`, []any{int64(lo), int64(hi)}, fn)
}

// Close implements [Sink].
func (p *Postgres) Close() error {
	if p.pool != nil {
		p.pool.Close()
	}
	if p.lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.lock.Close(ctx)
	}
	return nil
}
