package audit

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
)

// BenchmarkLogSQLite measures events committed into SQLite with the chain
// and checkpoints, from many callers that each wait for their commit (as
// the guard does), so that batches form as they do under load.
func BenchmarkLogSQLite(b *testing.B) {
	st, err := OpenSQLite(filepath.Join(b.TempDir(), "audit.db"), SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: testSigner(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	body := testEvent(1).Body()
	b.SetBytes(int64(len(body)))
	b.SetParallelism(64)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Append(body, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
	// Sustained means in the store, not only journaled.
	if !l.Flush() {
		b.Fatal("flush failed")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

// BenchmarkVerifySQLite measures verification of a stored chain.
func BenchmarkVerifySQLite(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "audit.db")
	st, err := OpenSQLite(path, SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	signer := testSigner(b)
	var (
		head [32]byte
		seq  uint64
	)
	for seq < n {
		recs, cp := chainBatch(signer, &seq, &head, 1000)
		if err := st.Write(context.Background(), recs, []Checkpoint{cp}); err != nil {
			b.Fatal(err)
		}
	}
	st.Close()
	ro, err := OpenSQLite(path, SQLiteOptions{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer ro.Close()
	// As `sluice audit verify` runs: cli.Main collects garbage at 4x the
	// live heap.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rep, err := Verify(context.Background(), ro, signer.Public())
		if err != nil || !rep.OK() || rep.Records != n {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
}

// sliceSource is a Source over records in memory: what verification costs
// apart from reading a store.
type sliceSource struct {
	recs []Record
	cps  []Checkpoint
}

func (s *sliceSource) Records(ctx context.Context, fn func(Record) error) error {
	for _, r := range s.recs {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *sliceSource) Checkpoints(context.Context) ([]Checkpoint, error) { return s.cps, nil }

// benchChain builds n chained records with a checkpoint every 1000.
func benchChain(b *testing.B, n int, signer *Signer) *sliceSource {
	src := &sliceSource{}
	var head [32]byte
	for i := 1; i <= n; i++ {
		r := Record{Seq: uint64(i), Time: int64(i), Prev: head, Body: testEvent(i).Body()}
		r.Hash = r.ComputeHash()
		head = r.Hash
		src.recs = append(src.recs, r)
		if i%1000 == 0 {
			cp := Checkpoint{Kind: KindCheckpoint, Seq: r.Seq, Hash: r.Hash, Time: int64(i)}
			signer.Sign(&cp)
			src.cps = append(src.cps, cp)
		}
	}
	return src
}

// BenchmarkVerifyChain measures the verification itself (hashing every
// record, checking every link and signature) over records in memory.
func BenchmarkVerifyChain(b *testing.B) {
	const n = 100_000
	signer := testSigner(b)
	src := benchChain(b, n, signer)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rep, err := Verify(context.Background(), src, signer.Public())
		if err != nil || !rep.OK() || rep.Records != n {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkVerifyJSONL measures verification of a JSON Lines file.
func BenchmarkVerifyJSONL(b *testing.B) {
	const n = 100_000
	signer := testSigner(b)
	src := benchChain(b, n, signer)
	path := filepath.Join(b.TempDir(), "audit.jsonl")
	j, err := OpenJSONL(path, 0, 0, signer)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		if err := j.Write(context.Background(), src.recs[i:i+1000], src.cps[i/1000:i/1000+1]); err != nil {
			b.Fatal(err)
		}
	}
	j.Close()
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		rep, err := Verify(context.Background(), JSONLFiles{path}, signer.Public())
		if err != nil || !rep.OK() || rep.Records != n {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
}

// BenchmarkGuardCall measures what auditing adds to a call: building the
// event, chaining and journaling it, and (amortized) moving it into
// SQLite. It reports the process's CPU time per call, which counts the
// writer goroutine too.
//
// The store takes records in batches of the default's 2048, as under heavy
// load, and of 256, as at about a thousand calls a second, where the 200 ms
// interval closes a batch first.
func BenchmarkGuardCall(b *testing.B) {
	for _, batch := range []int{2048, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchmarkGuardCall(b, batch) })
	}
}

func benchmarkGuardCall(b *testing.B, batch int) {
	st, err := OpenSQLite(filepath.Join(b.TempDir(), "audit.db"), SQLiteOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: testSigner(b), IngestBatch: batch})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	g := GuardFor(l, nil, []byte("0123456789abcdef"))
	result := &guard.Result{Result: jsontext.Value(`{"content":[{"type":"text","text":"hello"}]}`)}
	h := g.Wrap(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		c.Decide(guard.Decision{Guard: "allowlist", Rule: "*", Reason: "allowlist-allowed", Effect: guard.Allow, Mode: guard.Enforce})
		return result, nil
	}))
	tmpl := toolCall("lookup")
	tmpl.ID, tmpl.Session, tmpl.RequestID = "a1b2c3d4e5f6-17", "3f0c9a1e2b7d4c5a", jsontext.Value(`17`)
	tmpl.Transport = guard.Transport{Kind: "http", RemoteAddr: "127.0.0.1:50123"}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b.ReportAllocs()
	b.ResetTimer()
	before := cpu()
	for b.Loop() {
		c := tmpl
		if _, err := h.Handle(context.Background(), &c); err != nil {
			b.Fatal(err)
		}
	}
	if !l.Flush() {
		b.Fatal("flush failed")
	}
	b.ReportMetric(float64((cpu()-before).Microseconds())/float64(b.N), "cpu-µs/call")
}

// BenchmarkEvent measures the record of a call as the guard makes it on
// the caller's goroutine, before it is chained: the event, its arguments
// (redacted: one token) and its body.
func BenchmarkEvent(b *testing.B) {
	g := GuardFor(nil, nil, []byte("0123456789abcdef"))
	c := toolCall("echo")
	c.Principal = nil
	c.ID, c.Session, c.RequestID = "4215fe33758d-vf", "8q9ER-JnCki67_G2_mdzmna9", jsontext.Value(`1132`)
	c.Params = jsontext.Value(`{"name":"echo","arguments":{"text":"hello"}}`)
	c.Client = guard.ClientInfo{Name: "sluice-bench-load", Version: "1.0.0"}
	c.Transport = guard.Transport{Kind: "http", RemoteAddr: "127.0.0.1:48448",
		Headers: map[string]string{"mcp-protocol-version": "2025-11-25", "user-agent": "Go-http-client/1.1"}}
	c.Decide(guard.Decision{Guard: "allowlist", Rule: "*", Reason: "allowlist-allowed", Effect: guard.Allow, Mode: guard.Enforce})
	res := &guard.Result{Result: jsontext.Value(`{"content":[{"type":"text","text":"hello"}]}`)}
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if len(g.event(&c, start, res, nil).Body()) == 0 {
			b.Fatal("empty body")
		}
	}
}
