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
	sqlStore
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
	pool := p.pool
	p.sqlStore = sqlStore{
		d:       postgresDialect,
		row:     func(ctx context.Context, q string, args ...any) scanner { return pool.QueryRow(ctx, q, args...) },
		records: p.query,
		cps: func(ctx context.Context, q string, args ...any) ([]Checkpoint, error) {
			rows, err := pool.Query(ctx, q, args...)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return scanCheckpoints(rows)
		},
		tx: func(ctx context.Context, fn func(execFunc) error) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
				return fn(func(q string, args ...any) error {
					_, err := tx.Exec(ctx, q, args...)
					return err
				})
			})
		},
	}
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
	exec := func(q string, args ...any) error {
		_, err := tx.Exec(ctx, q, args...)
		return err
	}
	for _, c := range cps {
		if err := p.upsertCheckpoint(exec, c); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

var postgresDialect = dialect{
	placeholder: func(i int) string { return fmt.Sprintf("$%d", i) },
	contains:    "position(%s::bytea in body) > 0",
	text:        func(s string) any { return []byte(s) },
	noRows:      pgx.ErrNoRows,
}

func (p *Postgres) query(ctx context.Context, q string, args []any, _ bool, fn func(Record) error) error {
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

// Close implements [Sink].
func (p *Postgres) Close() error {
	if p.pool != nil {
		p.pool.Close()
	}
	if p.lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Released before the connection goes: the server frees a dead
		// connection's locks only once its backend has exited, and the
		// next writer may ask before that.
		_, uerr := p.lock.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(writerLockKey))
		return errors.Join(uerr, p.lock.Close(ctx))
	}
	return nil
}
