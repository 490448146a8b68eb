package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestPostgres runs the store's suite on a real PostgreSQL server: the
// chain verifies, every kind of tampering is named as on SQLite, retention
// keeps what remains verifiable, the chain goes on after a restart,
// queries filter, and a second writer is kept out.
func TestPostgres(t *testing.T) {
	base := testenv.Postgres(t)
	var n atomic.Int32
	// newDB creates a database of its own for a subtest.
	newDB := func(t *testing.T) string {
		t.Helper()
		name := fmt.Sprintf("t%d", n.Add(1))
		conn, err := pgx.Connect(context.Background(), base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		return strings.Replace(base, "/postgres?", "/"+name+"?", 1)
	}
	// writePG writes n events with a checkpoint every 10 records.
	writePG := func(t *testing.T, dsn string, n int, opts LogOptions) *Signer {
		t.Helper()
		st, err := OpenPostgres(context.Background(), dsn, PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if opts.Signer == nil {
			opts.Signer = testSigner(t)
		}
		opts.Primary, opts.Journal = st, t.TempDir()+"/journal"
		if opts.CheckpointEvery == 0 {
			opts.CheckpointEvery, opts.CheckpointInterval = 10, time.Hour
		}
		l, err := OpenLog(context.Background(), opts)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= n; i++ {
			if err := l.Append(testEvent(i).Body(), true); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return opts.Signer
	}
	verifyPG := func(t *testing.T, dsn string, signer *Signer) *Report {
		t.Helper()
		st, err := OpenPostgres(context.Background(), dsn, PostgresOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		rep, err := Verify(context.Background(), st, signer.Public())
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	execPG := func(t *testing.T, dsn string, stmts ...string) {
		t.Helper()
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, s := range stmts {
			if _, err := conn.Exec(context.Background(), s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}

	t.Run("clean-and-continued", func(t *testing.T) {
		dsn := newDB(t)
		signer := writePG(t, dsn, 55, LogOptions{})
		writePG(t, dsn, 5, LogOptions{Signer: signer})
		rep := verifyPG(t, dsn, signer)
		if !rep.OK() || rep.Records != 60 || rep.Last != 60 || rep.Signed != 60 {
			t.Fatalf("%+v", rep)
		}
	})

	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			dsn := newDB(t)
			signer := writePG(t, dsn, 95, LogOptions{})
			stmts := tc.stmts
			if tc.postgres != nil {
				stmts = tc.postgres
			}
			execPG(t, dsn, stmts...)
			tc.check(t, verifyPG(t, dsn, signer))
		})
	}

	t.Run("rewritten-chain", func(t *testing.T) {
		dsn := newDB(t)
		signer := writePG(t, dsn, 95, LogOptions{})
		st, err := OpenPostgres(context.Background(), dsn, PostgresOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		recs := rewriteChain(t, st)
		st.Close()
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, r := range recs {
			if _, err := conn.Exec(context.Background(), `UPDATE audit_records SET link = $1, body = $2 WHERE seq = $3`,
				append(r.Prev[:], r.Hash[:]...), r.Body, int64(r.Seq)); err != nil {
				t.Fatal(err)
			}
		}
		checkRewritten(t, verifyPG(t, dsn, signer))
	})

	t.Run("retention", func(t *testing.T) {
		dsn := newDB(t)
		signer := writePG(t, dsn, 95, LogOptions{})
		writePG(t, dsn, 10, LogOptions{Signer: signer, Retention: time.Nanosecond})
		rep := verifyPG(t, dsn, signer)
		if !rep.OK() || rep.Purged != 95 || rep.First != 96 || rep.Last != 105 {
			t.Fatalf("after retention: %+v", rep)
		}
	})

	t.Run("query", func(t *testing.T) {
		dsn := newDB(t)
		writePG(t, dsn, 20, LogOptions{})
		st, err := OpenPostgres(context.Background(), dsn, PostgresOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		count := func(f Filter) (n int, last uint64) {
			if err := st.Query(context.Background(), f, func(r Record) error { n++; last = r.Seq; return nil }); err != nil {
				t.Fatal(err)
			}
			return n, last
		}
		if n, _ := count(Filter{Principal: "alice"}); n != 10 {
			t.Errorf("alice: %d records, want 10", n)
		}
		if n, last := count(Filter{Principal: "bob", Limit: 3}); n != 3 || last != 19 {
			t.Errorf("bob's newest 3: %d records, last %d", n, last)
		}
		if n, _ := count(Filter{Contains: `"customer":7}`}); n != 1 {
			t.Errorf("contains: %d records, want 1", n)
		}
	})

	t.Run("one-writer", func(t *testing.T) {
		dsn := newDB(t)
		st, err := OpenPostgres(context.Background(), dsn, PostgresOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = OpenPostgres(context.Background(), dsn, PostgresOptions{NoWait: true})
		if !errors.Is(err, ErrInUse) {
			t.Errorf("a second writer: %v, want ErrInUse", err)
		}
		st.Close()
		st2, err := OpenPostgres(context.Background(), dsn, PostgresOptions{NoWait: true})
		if err != nil {
			t.Fatalf("after the first writer closed: %v", err)
		}
		st2.Close()
	})
}
