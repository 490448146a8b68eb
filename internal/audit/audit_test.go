package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

func testSigner(t testing.TB) *Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(priv)
}

func testEvent(i int) *Event {
	return &Event{
		ID:        fmt.Sprintf("call-%d", i),
		Time:      time.Date(2026, 12, 3, 10, 0, 0, i*1000, time.UTC),
		Kind:      "call",
		Principal: &Principal{Issuer: "api-key", Subject: []string{"alice", "bob"}[i%2], Groups: []string{"analysts"}},
		Server:    "crm",
		Era:       "legacy",
		Direction: "to-server",
		Method:    "tools/call",
		Name:      "lookup",
		RequestID: jsontext.Value(fmt.Sprint(i)),
		Outcome:   "ok",
		Reason:    "allowlist-allowed",
		Decisions: []Decision{{Guard: "allowlist", Rule: "*", Reason: "allowlist-allowed", Effect: "allow", Mode: "enforce"}},
		Args:      jsontext.Value(fmt.Sprintf(`{"customer":%d}`, i)),
	}
}

// writeLog writes n events through a Log with a checkpoint every 10
// records into a new SQLite store and, when jsonl is set, a JSON Lines
// file beside it.
func writeLog(t *testing.T, n int, jsonl string) (path string, signer *Signer) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "audit.db")
	signer = testSigner(t)
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	opts := LogOptions{Primary: st, Signer: signer, CheckpointEvery: 10, CheckpointInterval: time.Hour, IngestBatch: 7}
	if jsonl != "" {
		j, err := OpenJSONL(jsonl, 0, 0, signer)
		if err != nil {
			t.Fatal(err)
		}
		opts.Others = []Sink{j}
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
	return path, signer
}

func verifySQLite(t *testing.T, path string, pub ed25519.PublicKey) *Report {
	t.Helper()
	st, err := OpenSQLite(path, SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := Verify(context.Background(), st, pub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestVerifyClean(t *testing.T) {
	path, signer := writeLog(t, 95, "")
	rep := verifySQLite(t, path, signer.Public())
	if !rep.OK() {
		t.Fatalf("clean log: %v", rep.Problems)
	}
	if rep.Records != 95 || rep.First != 1 || rep.Last != 95 || rep.Signed != 95 || rep.Unsigned != 0 {
		t.Errorf("report %+v", rep)
	}
	// Another key does not verify the checkpoints.
	rep = verifySQLite(t, path, testSigner(t).Public())
	if rep.OK() || rep.Problems[0].Kind != ProblemSignature {
		t.Errorf("a foreign key verified: %v", rep.Problems)
	}
}

// TestLogContinuesChain reopens a store and appends: the chain goes on
// from where it was, across the restart.
func TestLogContinuesChain(t *testing.T) {
	path, signer := writeLog(t, 12, "")
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	for i := 13; i <= 20; i++ {
		if err := l.Append(testEvent(i).Body(), true); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	rep := verifySQLite(t, path, signer.Public())
	if !rep.OK() || rep.Last != 20 {
		t.Fatalf("after a restart: %+v", rep)
	}
}

// exec runs SQL statements against the database at path, as somebody with
// write access to the file would.
func exec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, s := range stmts {
		if _, err := st.DB().Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// tamperCase is one way of tampering with a stored log of 95 records
// (checkpoints every 10), and the first problem verify must report. The
// same cases run on SQLite and on PostgreSQL; postgres holds the
// statements where its SQL differs.
type tamperCase struct {
	name     string
	stmts    []string
	postgres []string
	kind     string
	seq      uint64
	event    string
	detail   string
}

var tamperCases = []tamperCase{
	{name: "change-a-field", stmts: []string{`UPDATE audit_records SET body = replace(body, '"bob"', '"mallory"') WHERE seq = 41`},
		postgres: []string{`UPDATE audit_records SET body = convert_to(replace(convert_from(body, 'UTF8'), '"bob"', '"mallory"'), 'UTF8') WHERE seq = 41`},
		kind:     ProblemChanged, seq: 41, event: "call-41"},
	{name: "change-the-time", stmts: []string{`UPDATE audit_records SET written = written + 1 WHERE seq = 41`},
		kind: ProblemChanged, seq: 41, event: "call-41"},
	{name: "delete-an-event", stmts: []string{`DELETE FROM audit_records WHERE seq = 41`},
		kind: ProblemRemoved, seq: 41, detail: "record 41 is missing"},
	{name: "delete-three", stmts: []string{`DELETE FROM audit_records WHERE seq BETWEEN 41 AND 43`},
		kind: ProblemRemoved, seq: 41, detail: "records 41 to 43"},
	{name: "insert-one", stmts: []string{
		`UPDATE audit_records SET seq = seq + 1000 WHERE seq > 41`,
		`UPDATE audit_records SET seq = seq - 999 WHERE seq > 1000`,
		`INSERT INTO audit_records SELECT 42, written, link, body FROM audit_records WHERE seq = 41`},
		kind: ProblemInserted, seq: 42, event: "call-41", detail: "copy of record 41"},
	{name: "insert-a-forged-one", stmts: []string{
		`UPDATE audit_records SET seq = seq + 1000 WHERE seq > 41`,
		`UPDATE audit_records SET seq = seq - 999 WHERE seq > 1000`,
		`INSERT INTO audit_records SELECT 42, written, substr(link, 33) || randomblob(32), replace(body, 'call-41', 'forged') FROM audit_records WHERE seq = 41`},
		postgres: []string{
			`UPDATE audit_records SET seq = seq + 1000 WHERE seq > 41`,
			`UPDATE audit_records SET seq = seq - 999 WHERE seq > 1000`,
			`INSERT INTO audit_records SELECT 42, written, substring(link from 33) || decode(md5(random()::text) || md5(random()::text), 'hex'),
				convert_to(replace(convert_from(body, 'UTF8'), 'call-41', 'forged'), 'UTF8') FROM audit_records WHERE seq = 41`},
		kind: ProblemChanged, seq: 42, event: "forged"},
	{name: "reorder-two", stmts: []string{
		`UPDATE audit_records SET seq = 1000 WHERE seq = 41`,
		`UPDATE audit_records SET seq = 41 WHERE seq = 42`,
		`UPDATE audit_records SET seq = 42 WHERE seq = 1000`},
		kind: ProblemReordered, seq: 41, event: "call-42", detail: "written as record 42"},
	{name: "truncate-the-tail", stmts: []string{`DELETE FROM audit_records WHERE seq > 83`},
		kind: ProblemTruncated, seq: 84, detail: "records 84 to 95"},
	{name: "swap-a-signature", stmts: []string{
		`UPDATE audit_checkpoints SET sig = (SELECT sig FROM audit_checkpoints WHERE seq = 20) WHERE seq = 30`},
		kind: ProblemSignature, seq: 30},
	{name: "delete-an-event-and-its-checkpoint", stmts: []string{`DELETE FROM audit_records WHERE seq = 40`, `DELETE FROM audit_checkpoints WHERE seq = 40`},
		kind: ProblemRemoved, seq: 40},
}

// check reports whether rep's first problem is the one tc expects.
func (tc tamperCase) check(t *testing.T, rep *Report) {
	t.Helper()
	if rep.OK() {
		t.Fatal("tampering not detected")
	}
	p := rep.Problems[0]
	if p.Kind != tc.kind || p.Seq != tc.seq || p.EventID != tc.event || !strings.Contains(p.Detail, tc.detail) {
		t.Errorf("first problem %v, want %s at seq %d (event %q, detail with %q); all: %v", p, tc.kind, tc.seq, tc.event, tc.detail, rep.Problems)
	}
}

func TestTamperSQLite(t *testing.T) {
	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			path, signer := writeLog(t, 95, "")
			exec(t, path, tc.stmts...)
			tc.check(t, verifySQLite(t, path, signer.Public()))
		})
	}
}

// TestRewrittenChain: whoever changes a record and recomputes every hash
// after it still cannot forge the checkpoint that signed the old chain.
func TestRewrittenChain(t *testing.T) {
	path, signer := writeLog(t, 95, "")
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rewriteChain(t, st) {
		if _, err := st.DB().Exec(`UPDATE audit_records SET link = ?, body = ? WHERE seq = ?`, append(r.Prev[:], r.Hash[:]...), r.Body, r.Seq); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	rep := verifySQLite(t, path, signer.Public())
	if rep.OK() {
		t.Fatal("a recomputed chain verified")
	}
	checkRewritten(t, rep)
}

// rewriteChain changes record 45 of a stored log and recomputes the hash
// of every record from it on, returning the records to write back.
func rewriteChain(t *testing.T, st Source) []Record {
	t.Helper()
	var recs []Record
	if err := st.Records(context.Background(), func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	recs[44].Body = bytes.ReplaceAll(recs[44].Body, []byte(`"customer":45`), []byte(`"customer":99`))
	for i := 44; i < len(recs); i++ {
		recs[i].Prev = recs[i-1].Hash
		recs[i].Hash = recs[i].ComputeHash()
	}
	return recs[44:]
}

// checkRewritten: the recomputed chain contradicts the checkpoint that
// signed record 50, and verify says which records it cannot vouch for.
func checkRewritten(t *testing.T, rep *Report) {
	t.Helper()
	if rep.OK() {
		t.Fatal("a recomputed chain verified")
	}
	p := rep.Problems[0]
	if p.Kind != ProblemRewritten || p.Seq != 41 || !strings.Contains(p.Detail, "from 41 to 50") {
		t.Errorf("first problem %v, want rewritten from 41 to 50", p)
	}
}

func TestRetention(t *testing.T) {
	path, signer := writeLog(t, 95, "")
	// Everything written so far is older than the cutoff; the purge stops
	// at the last checkpoint before it.
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer, CheckpointEvery: 10, Retention: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := 96; i <= 105; i++ {
		if err := l.Append(testEvent(i).Body(), true); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	rep := verifySQLite(t, path, signer.Public())
	if !rep.OK() {
		t.Fatalf("after retention: %v", rep.Problems)
	}
	if rep.Purged != 95 || rep.First != 96 || rep.Last != 105 {
		t.Errorf("after retention: %+v", rep)
	}
	// Deleting kept records at the head is not retention.
	exec(t, path, `DELETE FROM audit_records WHERE seq = 96`)
	rep = verifySQLite(t, path, signer.Public())
	if rep.OK() || rep.Problems[0].Kind != ProblemRemoved {
		t.Errorf("a record removed after the retention point: %v", rep.Problems)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	return lines[:len(lines)-1]
}

func TestTamperJSONL(t *testing.T) {
	// Line numbers (from 0) of the file: records and checkpoints, in the
	// order written; find them by content.
	find := func(lines []string, s string) int {
		for i, l := range lines {
			if strings.Contains(l, s) {
				return i
			}
		}
		t.Fatalf("no line with %q", s)
		return -1
	}
	for _, tc := range []struct {
		name   string
		edit   func([]string) []string
		kind   string
		seq    uint64
		event  string
		detail string
	}{
		{name: "change-a-field", edit: func(ls []string) []string {
			i := find(ls, `"call-41"`)
			ls[i] = strings.Replace(ls[i], `"bob"`, `"mallory"`, 1)
			return ls
		}, kind: ProblemChanged, seq: 41, event: "call-41"},
		{name: "delete-an-event", edit: func(ls []string) []string {
			i := find(ls, `"call-41"`)
			return append(ls[:i:i], ls[i+1:]...)
		}, kind: ProblemRemoved, seq: 41},
		{name: "insert-one", edit: func(ls []string) []string {
			i := find(ls, `"call-41"`)
			return append(ls[:i+1:i+1], append([]string{ls[i]}, ls[i+1:]...)...)
		}, kind: ProblemInserted, seq: 41, event: "call-41"},
		{name: "reorder-two", edit: func(ls []string) []string {
			i, j := find(ls, `"call-41"`), find(ls, `"call-42"`)
			ls[i], ls[j] = ls[j], ls[i]
			return ls
		}, kind: ProblemReordered, seq: 41, event: "call-41", detail: "record 41 appears after record 42"},
		{name: "truncate-the-tail", edit: func(ls []string) []string {
			return append(ls[:find(ls, `"call-84"`)], ls[len(ls)-1])
		}, kind: ProblemTruncated, seq: 84},
		{name: "swap-a-signature", edit: func(ls []string) []string {
			i, j := find(ls, `"seq":20,"hash"`), find(ls, `"seq":30,"hash"`)
			sig := func(l string) string { return l[strings.Index(l, `"sig"`):] }
			ls[j] = strings.Replace(ls[j], sig(ls[j]), sig(ls[i]), 1)
			return ls
		}, kind: ProblemSignature, seq: 30},
		{name: "torn-last-line", edit: func(ls []string) []string {
			ls[len(ls)-1] = strings.TrimSuffix(ls[len(ls)-1], "\n")[:20]
			return ls
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "audit.jsonl")
			_, signer := writeLog(t, 95, file)
			lines := tc.edit(readLines(t, file))
			if err := os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := Verify(context.Background(), JSONLFiles{file}, signer.Public())
			if tc.kind == "" {
				if err == nil {
					t.Fatalf("a torn file read without error: %+v", rep)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatal("tampering not detected")
			}
			p := rep.Problems[0]
			if p.Kind != tc.kind || p.Seq != tc.seq || p.EventID != tc.event || !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("first problem %v, want %s at seq %d (event %q); all: %v", p, tc.kind, tc.seq, tc.event, rep.Problems)
			}
		})
	}
	t.Run("clean", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "audit.jsonl")
		_, signer := writeLog(t, 95, file)
		rep, err := Verify(context.Background(), JSONLFiles{file}, signer.Public())
		if err != nil || !rep.OK() || rep.Records != 95 || rep.Signed != 95 {
			t.Fatalf("clean file: %+v, %v", rep, err)
		}
	})
}

// TestJSONLRotation: rotated files verify together, and the newest ones
// still verify after the oldest are deleted.
func TestJSONLRotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "audit.jsonl")
	signer := testSigner(t)
	st, err := OpenSQLite(filepath.Join(dir, "audit.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	j, err := OpenJSONL(file, 2000, 0, signer)
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Others: []Sink{j}, Signer: signer, CheckpointEvery: 25})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 60; i++ {
		if err := l.Append(testEvent(i).Body(), true); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 && !l.Flush() {
			t.Fatal("flush failed")
		}
	}
	l.Close()
	rotated, _ := filepath.Glob(filepath.Join(dir, "audit-*.jsonl"))
	if len(rotated) < 3 {
		t.Fatalf("%d rotated files, want several", len(rotated))
	}
	all := append(rotated, file)
	rep, err := Verify(context.Background(), JSONLFiles(all), signer.Public())
	if err != nil || !rep.OK() || rep.Records != 60 {
		t.Fatalf("all files: %+v, %v", rep, err)
	}
	rep, err = Verify(context.Background(), JSONLFiles(all[2:]), signer.Public())
	if err != nil || !rep.OK() || rep.First == 1 || rep.Last != 60 {
		t.Fatalf("without the two oldest files: %+v, %v", rep, err)
	}
}

func TestRecorder(t *testing.T) {
	r := &Recorder{Hasher: NewHasher([]byte("0123456789abcdef")), Sensitive: map[string]bool{"email": true, "card": true}}
	tok := r.Hasher.Token
	in := jsontext.Value(`{"name":"Ada","Email":"ada@example.com","age":36,"vip":true,"card":4111111111111111,"tags":["a","b"],"x":null}`)
	for _, tc := range []struct {
		mode Mode
		want string
	}{
		{RecordNone, ``},
		{RecordShape, `{"name":"<string:3>","Email":"<string:15>","age":"<number>","vip":"<bool>","card":"<number>","tags":["<string:1>","<string:1>"],"x":null}`},
		{RecordRedacted, `{"name":"` + tok("Ada") + `","Email":"` + tok("ada@example.com") + `","age":36,"vip":true,"card":"` + tok("4111111111111111") + `","tags":["` + tok("a") + `","` + tok("b") + `"],"x":null}`},
		{RecordFull, `{"name":"Ada","Email":"` + tok("ada@example.com") + `","age":36,"vip":true,"card":"` + tok("4111111111111111") + `","tags":["a","b"],"x":null}`},
	} {
		if got := string(r.Record(tc.mode, in)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.mode, got, tc.want)
		}
	}
	if tok("x") == NewHasher([]byte("another key 0123")).Token("x") {
		t.Error("two keys gave the same token")
	}
	long := jsontext.Value(`{"s":"` + strings.Repeat("x", 20000) + `"}`)
	if got := string(r.Record(RecordFull, long)); got != `"<omitted: 20008 bytes>"` {
		t.Errorf("a large value: %.80s", got)
	}
	many := jsontext.Value(`[` + strings.Repeat(`1,`, 20) + `1]`)
	if got := string(r.Record(RecordShape, many)); !strings.HasSuffix(got, `"<number>","<+5 more>"]`) {
		t.Errorf("a long array's shape: %s", got)
	}
}

// TestRecorderPlain: reading arguments straight from their bytes gives
// what reading them with the JSON decoder gives, for every mode, on random
// values; it takes every value whose strings have no escapes and are
// valid UTF-8, and leaves the rest (escapes, invalid UTF-8, invalid JSON,
// deep nesting) to the decoder.
func TestRecorderPlain(t *testing.T) {
	r := &Recorder{Hasher: NewHasher([]byte("0123456789abcdef")), Sensitive: map[string]bool{"secret": true, "card": true}}
	rng := mrand.New(mrand.NewPCG(3, 4))
	names := []string{"secret", "Card", "text", "a", "", "é\xff", "x y"}
	strs := []string{"", "hello", "ada@example.com", "é", "\xff\xfe", "<b>&", "\x7f"}
	nums := []string{"0", "-0", "12", "-3.25", "1e9", "2E-3", "0.5e+2"}
	ws := []string{"", "", "", " ", "\n\t", "\r "}
	var gen func(b *strings.Builder, depth int)
	gen = func(b *strings.Builder, depth int) {
		b.WriteString(ws[rng.IntN(len(ws))])
		switch k := rng.IntN(7); {
		case k == 0 && depth < 4:
			b.WriteByte('{')
			for i := range rng.IntN(4) {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(ws[rng.IntN(len(ws))])
				b.WriteString(`"` + names[rng.IntN(len(names))] + `"`)
				b.WriteString(ws[rng.IntN(len(ws))] + ":")
				gen(b, depth+1)
			}
			b.WriteString(ws[rng.IntN(len(ws))] + "}")
		case k == 1 && depth < 4:
			b.WriteByte('[')
			for i := range rng.IntN(20) {
				if i > 0 {
					b.WriteByte(',')
				}
				gen(b, depth+1)
			}
			b.WriteString(ws[rng.IntN(len(ws))] + "]")
		case k == 2:
			b.WriteString(nums[rng.IntN(len(nums))])
		case k == 3:
			b.WriteString([]string{"true", "false", "null"}[rng.IntN(3)])
		default:
			b.WriteString(`"` + strs[rng.IntN(len(strs))] + `"`)
		}
		b.WriteString(ws[rng.IntN(len(ws))])
	}
	// Changes that the plain reading must leave to the decoder, or
	// refuse as the decoder does.
	mutate := []func(string) string{
		func(s string) string { return strings.Replace(s, `o"`, `\u006f"`, 1) },
		func(s string) string { return strings.Replace(s, `"`, `"\"`, 1) },
		func(s string) string { return strings.Replace(s, `0`, `00`, 1) },
		func(s string) string { return strings.Replace(s, `1`, `1.`, 1) },
		func(s string) string { return strings.Replace(s, `e`, `\ne`, 1) },
		func(s string) string { return strings.Replace(s, `,`, `,,`, 1) },
		func(s string) string { return strings.Replace(s, `:`, ``, 1) },
		func(s string) string { return strings.Replace(s, `true`, `tru`, 1) },
		func(s string) string { return s + "x" },
		func(s string) string { return s[:len(s)/2] },
		func(s string) string { return strings.Repeat("[", 40) + s + strings.Repeat("]", 40) },
	}
	plain := 0
	for i := range 4000 {
		var b strings.Builder
		gen(&b, 0)
		in := b.String()
		if i%3 == 0 {
			in = mutate[rng.IntN(len(mutate))](in)
		}
		for _, mode := range []Mode{RecordShape, RecordRedacted, RecordFull} {
			d := jsontext.NewDecoder(strings.NewReader(in), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
			want, err := r.walk(d, nil, mode, false)
			if err == nil {
				if _, end := d.ReadToken(); end != io.EOF {
					err = fmt.Errorf("after the value: %v", end)
				}
			}
			got, ok := r.walkPlain([]byte(in), nil, mode)
			switch {
			case ok && err != nil:
				t.Fatalf("%s %q: read plain as %s, the decoder refuses it: %v", mode, in, got, err)
			case ok && !bytes.Equal(got, want):
				t.Fatalf("%s %q:\nplain   %s\ndecoder %s", mode, in, got, want)
			case !ok && err == nil && !strings.Contains(in, `\`) && !strings.Contains(in, strings.Repeat("[", 40)) && utf8.ValidString(in):
				t.Fatalf("%s %q: a value without escapes was left to the decoder", mode, in)
			case ok:
				plain++
			}
		}
	}
	if plain < 6000 {
		t.Errorf("only %d of 12,000 values read plain", plain)
	}
}

// TestPlaceholder: every string a record mode writes in place of a value is
// a placeholder, and the values a mode keeps are not.
func TestPlaceholder(t *testing.T) {
	r := &Recorder{Hasher: NewHasher([]byte("0123456789abcdef")), Sensitive: map[string]bool{"secret": true}}
	in := jsontext.Value(`{"s":"text","n":3,"b":false,"secret":"x","list":[` + strings.Repeat(`"a",`, 20) + `"a"]}`)
	leaves := func(v jsontext.Value) (out []string) {
		dec := jsontext.NewDecoder(bytes.NewReader(v))
		for {
			tok, err := dec.ReadToken()
			if err != nil {
				return out
			}
			if tok.Kind() == '"' && !isName(dec) {
				out = append(out, tok.String())
			}
		}
	}
	for _, mode := range []Mode{RecordShape, RecordRedacted} {
		got := leaves(r.Record(mode, in))
		if len(got) < 17 {
			t.Fatalf("%s: %d strings", mode, len(got))
		}
		for _, s := range got {
			if unk, _ := Placeholder(s); !unk {
				t.Errorf("%s: %q is not taken for a placeholder", mode, s)
			}
		}
	}
	for _, s := range []string{"text", "a", "hmac:short", "<string:x>", "<+3 less>", "<number", "hmac:" + strings.Repeat("A", 42) + "!"} {
		if unk, _ := Placeholder(s); unk {
			t.Errorf("%q taken for a placeholder", s)
		}
	}
	for s, rest := range map[string]bool{"<+4 more>": true, "<string:12>": false, "<omitted: 9 bytes>": false, r.Hasher.Token("v"): false} {
		if unk, r := Placeholder(s); !unk || r != rest {
			t.Errorf("Placeholder(%q) = %v, %v", s, unk, r)
		}
	}
}

// isName reports whether the token just read was an object member's name.
func isName(dec *jsontext.Decoder) bool {
	k, n := dec.StackIndex(dec.StackDepth())
	return k == '{' && n%2 == 1
}

func TestFormatTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 12, 3, 10, 4, 5, 7, time.UTC),
		time.Date(1999, 1, 31, 23, 59, 59, 999999999, time.FixedZone("x", 3600)),
		time.Unix(0, 0),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := FormatTime(tm), tm.UTC().Format(timeLayout); got != want {
			t.Errorf("FormatTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestEventBody(t *testing.T) {
	e := testEvent(7)
	e.Client = Client{Name: "claude\xff"}
	b := e.Body()
	if !jsontext.Value(b).IsValid() {
		t.Fatalf("invalid JSON: %s", b)
	}
	if !bytes.Equal(b, e.Body()) {
		t.Error("two encodings of one event differ")
	}
	if eventID(b) != "call-7" {
		t.Errorf("eventID: %q", eventID(b))
	}
}

// TestAppendQuoted: bodies quote strings exactly as jsontext does, so that
// the same event always gives the same bytes: every byte alone and in
// pairs, and random strings of printable, control, multi-byte and invalid
// UTF-8.
func TestAppendQuoted(t *testing.T) {
	check := func(s string) {
		t.Helper()
		want, _ := jsontext.AppendQuote([]byte("x"), s)
		if got := appendQuoted([]byte("x"), s); !bytes.Equal(got, want) {
			t.Fatalf("appendQuoted(%q) = %s, want %s", s, got, want)
		}
	}
	for i := range 256 {
		check(string([]byte{byte(i)}))
		for j := range 256 {
			check(string([]byte{'a', byte(i), byte(j)}))
		}
	}
	pieces := []string{"a", "Z", "0", " ", "<", "&", "\x7f", "\"", "\\", "\n", "\x00", "é", "€", "😀", "\xff", "\xe2\x82", "\u2028"}
	rng := mrand.New(mrand.NewPCG(1, 2))
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		check(b.String())
	}
}

// TestOpenChecksUnsignedTail: records written after the last checkpoint
// (a crash before the next one) are checked before a restarted log signs
// them.
func TestOpenChecksUnsignedTail(t *testing.T) {
	for _, tamper := range []string{"", `UPDATE audit_records SET body = replace(body, '"bob"', '"eve"') WHERE seq = 97`, `DELETE FROM audit_records WHERE seq = 95`} {
		t.Run(fmt.Sprint(tamper != "", len(tamper)), func(t *testing.T) {
			path, signer := writeLog(t, 95, "")
			st, err := OpenSQLite(path, SQLiteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			seq, head, _, err := st.Head(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var recs []Record
			for i := 96; i <= 98; i++ {
				seq++
				r := Record{Seq: seq, Time: int64(i), Prev: head, Body: testEvent(i).Body()}
				r.Hash = r.ComputeHash()
				head = r.Hash
				recs = append(recs, r)
			}
			if err := st.Write(context.Background(), recs, nil); err != nil {
				t.Fatal(err)
			}
			if tamper != "" {
				if _, err := st.DB().Exec(tamper); err != nil {
					t.Fatal(err)
				}
			}
			l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer})
			if tamper == "" {
				if err != nil {
					t.Fatalf("an intact unsigned tail: %v", err)
				}
				l.Close()
				if rep := verifySQLite(t, path, signer.Public()); !rep.OK() || rep.Signed != 98 {
					t.Fatalf("after the restart: %+v", rep)
				}
				return
			}
			st.Close()
			if err == nil {
				l.Close()
				t.Fatal("a log with a changed unsigned tail was continued")
			}
			if !strings.Contains(err.Error(), "sluice audit verify") {
				t.Errorf("error: %v", err)
			}
		})
	}
}

// TestJournalRecovery: records journaled but not yet moved into the store
// when the process dies are moved at the next start, and the chain goes on.
// The crash is the state of the files at a moment the log is running: they
// are copied aside and opened there.
// Both kinds of journal are run: mapped and plain.
func TestJournalRecovery(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprintf("plain=%v", plain), func(t *testing.T) { testJournalRecovery(t, plain) })
	}
}

func testJournalRecovery(t *testing.T, plain bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	signer := testSigner(t)
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer, CheckpointEvery: 10, IngestInterval: time.Hour, plainJournal: plain})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if mapped := l.journal[0].m != nil; mapped != (!plain && runtime.GOOS == "linux") {
		t.Fatalf("journal mapped: %v", mapped)
	}
	for i := 1; i <= 15; i++ {
		if err := l.Append(testEvent(i).Body(), true); err != nil {
			t.Fatal(err)
		}
	}
	if !l.Flush() {
		t.Fatal("flush failed")
	}
	for i := 16; i <= 27; i++ {
		if err := l.Append(testEvent(i).Body(), true); err != nil {
			t.Fatal(err)
		}
	}
	// A crash cuts the last journal line short.
	l.mu.Lock()
	l.journalWrite([]byte(`{"seq":28,"written":1,"pr`))
	l.mu.Unlock()

	crash := t.TempDir()
	files, _ := filepath.Glob(filepath.Join(dir, "audit.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crash, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st2, err := OpenSQLite(filepath.Join(crash, "audit.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l2, err := OpenLog(context.Background(), LogOptions{Primary: st2, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Append(testEvent(28).Body(), true); err != nil {
		t.Fatal(err)
	}
	l2.Close()
	rep := verifySQLite(t, filepath.Join(crash, "audit.db"), signer.Public())
	if !rep.OK() || rep.Records != 28 || rep.Last != 28 || rep.Signed != 28 {
		t.Fatalf("after recovery: %+v", rep)
	}
	// A journal changed while Sluice was down does not enter the store.
	crash2 := t.TempDir()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.HasSuffix(f, ".pending.0") || strings.HasSuffix(f, ".pending.1") {
			b = bytes.ReplaceAll(b, []byte(`"customer":20`), []byte(`"customer":21`))
		}
		os.WriteFile(filepath.Join(crash2, filepath.Base(f)), b, 0o600)
	}
	st3, err := OpenSQLite(filepath.Join(crash2, "audit.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	if l3, err := OpenLog(context.Background(), LogOptions{Primary: st3, Signer: signer}); err == nil {
		l3.Close()
		t.Fatal("a changed journal was moved into the store")
	} else if !strings.Contains(err.Error(), "record 20") {
		t.Errorf("error: %v", err)
	}
}

// TestBacklogBounded: while the store takes nothing, appends fill the
// bounded backlog, then wait, then fail; once the store is back, they go
// through again and nothing journaled is lost.
func TestBacklogBounded(t *testing.T) {
	st, err := OpenSQLite(filepath.Join(t.TempDir(), "audit.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signer := testSigner(t)
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer, Backlog: 5, BacklogWait: 50 * time.Millisecond, IngestInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	breakStore(t, st, true)
	ok := 0
	for i := 1; i <= 8; i++ {
		if err := l.Append(testEvent(i).Body(), true); err == nil {
			ok++
		}
	}
	if ok != 5 || l.Healthy() {
		t.Fatalf("%d appends went through with a store that takes nothing and a backlog of 5 (healthy %v)", ok, l.Healthy())
	}
	if err := l.Append(testEvent(9).Body(), false); err == nil {
		t.Fatal("an append that may not wait went into a full backlog")
	}
	breakStore(t, st, false)
	if err := l.Append(testEvent(6).Body(), true); err != nil {
		t.Fatalf("after the store came back: %v", err)
	}
	path := st.path
	l.Close()
	if rep := verifySQLite(t, path, signer.Public()); !rep.OK() || rep.Records != 6 {
		t.Fatalf("%+v", rep)
	}
}

// TestOpenAlternates: a second process (here, a second log) that may keep
// a chain of its own takes the next database when the default one is
// written by another, and both verify.
func TestOpenAlternates(t *testing.T) {
	dir := t.TempDir()
	keys, err := LoadKeys(nil, dir, true)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*Log
	for range 3 {
		l, err := Open(context.Background(), nil, dir, keys, nil, OpenOptions{Alternates: true})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
		if err := l.Append(testEvent(1).Body(), true); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []string{"audit.db", "audit-2.db", "audit-3.db"} {
		if name := logs[i].Store().Name(); !strings.HasSuffix(name, string(filepath.Separator)+want) {
			t.Errorf("log %d writes %s, want %s", i, name, want)
		}
		logs[i].Close()
		if rep := verifySQLite(t, filepath.Join(dir, want), keys.Public); !rep.OK() || rep.Records != 1 {
			t.Errorf("%s: %+v", want, rep)
		}
	}
}

// chainBatch continues the chain at *seq and *head with n records of test
// events (each written at its sequence number) and returns them with the
// signed checkpoint of the last.
func chainBatch(signer *Signer, seq *uint64, head *[32]byte, n int) ([]Record, Checkpoint) {
	recs := make([]Record, n)
	for i := range recs {
		*seq++
		recs[i] = Record{Seq: *seq, Time: int64(*seq), Prev: *head, Body: testEvent(int(*seq)).Body()}
		recs[i].Hash = recs[i].ComputeHash()
		*head = recs[i].Hash
	}
	cp := Checkpoint{Kind: KindCheckpoint, Seq: *seq, Hash: *head, Time: int64(*seq)}
	signer.Sign(&cp)
	return recs, cp
}

// TestSQLiteBatchSizes: batches of every size up to two statements of
// the largest size, and past it, each split into statements of powers of
// two, store every record once and in order.
func TestSQLiteBatchSizes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signer := testSigner(t)
	var (
		head [32]byte
		seq  uint64
	)
	for n := 0; n <= 300; n += 1 + n/8 {
		recs, cp := chainBatch(signer, &seq, &head, n)
		if err := st.Write(context.Background(), recs, []Checkpoint{cp}); err != nil {
			t.Fatalf("batch of %d: %v", n, err)
		}
	}
	st.Close()
	if rep := verifySQLite(t, path, signer.Public()); !rep.OK() || uint64(rep.Records) != seq || rep.Last != seq || rep.Signed != seq {
		t.Fatalf("%d records written: %+v", seq, rep)
	}
}

// TestWriteTimesInOrder: write times follow the chain when the clock steps
// back, across a restart too; a new database has no index on them and
// answers time ranges by sequence number, as a database made with that
// index answers them by it, both as a scan of every record would.
func TestWriteTimesInOrder(t *testing.T) {
	// A clock that steps back now and then.
	clock := []int64{100, 200, 150, 300, 300, 120, 400, 500, 450, 460, 600, 700}
	tick := 0
	defer func(saved func() int64) { nowNano = saved }(nowNano)
	nowNano = func() int64 { tick++; return clock[(tick-1)%len(clock)] + int64((tick-1)/len(clock))*1000 }

	dir := t.TempDir()
	path := filepath.Join(dir, "audit.db")
	signer := testSigner(t)
	for round := range 2 {
		st, err := OpenSQLite(path, SQLiteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer, CheckpointEvery: 5, CheckpointInterval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if round == 1 {
			tick = 0 // the clock starts over, behind the chain
		}
		for i := range 30 {
			if err := l.Append(testEvent(i).Body(), true); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	check := func(name string) {
		st, err := OpenSQLite(path, SQLiteOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var all []Record
		if err := st.Records(context.Background(), func(r Record) error { all = append(all, r); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(all) != 60 {
			t.Fatalf("%d records", len(all))
		}
		for i := 1; i < len(all); i++ {
			if all[i].Time < all[i-1].Time {
				t.Fatalf("record %d written at %d, after record %d at %d", all[i].Seq, all[i].Time, all[i-1].Seq, all[i-1].Time)
			}
		}
		for _, since := range []int64{0, 1, 150, 300, 301, 460, 1100, 1450, 2000, 99999} {
			for _, until := range []int64{0, 150, 300, 700, 1300, 1460, 99999} {
				f := Filter{}
				if since > 0 {
					f.Since = time.Unix(0, since)
				}
				if until > 0 {
					f.Until = time.Unix(0, until)
				}
				var want, got []uint64
				for _, r := range all {
					if (since == 0 || r.Time >= since) && (until == 0 || r.Time < until) {
						want = append(want, r.Seq)
					}
				}
				if err := st.Query(context.Background(), f, func(r Record) error { got = append(got, r.Seq); return nil }); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s: since %d until %d: %v, want %v", name, since, until, got, want)
				}
			}
		}
	}
	st, err := OpenSQLite(path, SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.seqRange == nil {
		t.Error("a new database is queried by an index on write times")
	}
	st.Close()
	check("by sequence number")
	// A database made with the index is queried by it.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE INDEX audit_records_written ON audit_records(written)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err = OpenSQLite(path, SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.seqRange != nil {
		t.Error("a database with the index is not queried by it")
	}
	st.Close()
	check("by index")
}
