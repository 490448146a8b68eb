package dlp_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/dlp/dlptest"
	"github.com/sluicehq/sluice/internal/guard"
)

func BenchmarkScan(b *testing.B) {
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		in := dlptest.ToolOutput(size)
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				s.Scan(in)
			}
		})
	}
}

// BenchmarkGuardResult is what the DLP guard costs a call whose result is
// 64 KiB of tool output: scanned, with its cards redacted and its phones
// masked (the load-run floor is 300 µs of CPU for this).
func BenchmarkGuardResult(b *testing.B) {
	cfg, err := config.Parse([]byte(`
servers:
  s: {command: [s]}
dlp:
  rules:
    - {id: cards, types: [payment-card], direction: results, action: redact}
    - {id: phones, types: [phone-number], direction: results, action: mask}
`), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	g, err := dlp.NewGuard(cfg.DLP, dlp.GuardOptions{Token: dlptest.Token})
	if err != nil {
		b.Fatal(err)
	}
	result := &guard.Result{Result: dlptest.ToolOutput(64 << 10)}
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) { return result, nil }))
	b.SetBytes(int64(len(result.Result)))
	b.ReportAllocs()
	for b.Loop() {
		c := &guard.Call{Server: "s", Method: "tools/call", Name: "t", Params: jsontext.Value(`{"name":"t","arguments":{"q":"x"}}`)}
		if _, err := h.Handle(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
