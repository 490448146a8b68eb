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

	const edit = `UPDATE audit_records SET body = convert_to(replace(convert_from(body, 'UTF8'), '"bob"', '"mallory"'), 'UTF8') WHERE seq = 41`
	for _, tc := range []struct {
		name  string
		stmts []string
		kind  string
		seq   uint64
	}{
		{"change-a-field", []string{edit}, ProblemChanged, 41},
		{"delete-an-event", []string{`DELETE FROM audit_records WHERE seq = 41`}, ProblemRemoved, 41},
		{"insert-one", []string{
			`UPDATE audit_records SET seq = seq + 1000 WHERE seq > 41`,
			`UPDATE audit_records SET seq = seq - 999 WHERE seq > 1000`,
			`INSERT INTO audit_records SELECT 42, written, link, body FROM audit_records WHERE seq = 41`}, ProblemInserted, 42},
		{"reorder-two", []string{
			`UPDATE audit_records SET seq = 1000 WHERE seq = 41`,
			`UPDATE audit_records SET seq = 41 WHERE seq = 42`,
			`UPDATE audit_records SET seq = 42 WHERE seq = 1000`}, ProblemReordered, 41},
		{"truncate-the-tail", []string{`DELETE FROM audit_records WHERE seq > 83`}, ProblemTruncated, 84},
		{"swap-a-signature", []string{`UPDATE audit_checkpoints SET sig = (SELECT sig FROM audit_checkpoints WHERE seq = 20) WHERE seq = 30`}, ProblemSignature, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := newDB(t)
			signer := writePG(t, dsn, 95, LogOptions{})
			execPG(t, dsn, tc.stmts...)
			rep := verifyPG(t, dsn, signer)
			if rep.OK() {
				t.Fatal("tampering not detected")
			}
			if p := rep.Problems[0]; p.Kind != tc.kind || p.Seq != tc.seq {
				t.Errorf("first problem %v, want %s at seq %d", p, tc.kind, tc.seq)
			}
		})
	}

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
