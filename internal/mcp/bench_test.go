package mcp_test

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/mcp"
)

// smallCall is a typical tools/call request.
const smallCall = `{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"search_documents","arguments":{"query":"quarterly revenue","limit":10},"_meta":{"progressToken":"p-42"}}}`

// bigResult returns a tools/call response of about n bytes: a text content
// block and structured content with many small records.
func bigResult(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"`)
	b.WriteString(strings.Repeat(`lorem ipsum \"dolor\" sit amet, `, n/2/34))
	b.WriteString(`"}],"structuredContent":{"rows":[`)
	for i := 0; b.Len() < n-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"customer %d","email":"c%d@example.com","ok":true}`, i, i, i)
	}
	b.WriteString(`]},"isError":false}}`)
	return []byte(b.String())
}

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  []byte
	}{
		{"tools-call-request", []byte(smallCall)},
		{"response-64KiB", bigResult(64 << 10)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := mcp.Decode(bc.msg, mcp.Limits{}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			defer reportCPU(b)()
			for b.Loop() {
				if _, err := mcp.Decode(bc.msg, mcp.Limits{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	m, err := mcp.Decode(bigResult(64<<10), mcp.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 80<<10)
	for b.Loop() {
		buf = m.Append(buf[:0])
	}
}

func BenchmarkLookup(b *testing.B) {
	m, err := mcp.Decode([]byte(smallCall), mcp.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	big, err := mcp.Decode(bigResult(64<<10), mcp.Limits{})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("name", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := mcp.LookupString(m.Params, "name"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("arguments-query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok, err := mcp.LookupPath(m.Params, "arguments", "query"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("isError-after-64KiB", func(b *testing.B) {
		b.SetBytes(int64(len(big.Result)))
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if _, ok, err := mcp.Lookup(big.Result, "isError"); !ok || err != nil {
				b.Fatal(ok, err)
			}
		}
	})
	b.Run("set-name", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := mcp.SetMember(m.Params, "name", jsontext.Value(`"read_document"`)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// reportCPU reports the process's CPU time per operation as "cpu-ns/op"
// next to ns/op. On a shared machine wall time includes the time the
// benchmark waited for a core; CPU time does not, so it compares better
// between runs. Use it as `defer reportCPU(b)()` before the loop.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
