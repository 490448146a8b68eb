package dlp_test

import (
	"strconv"
	"testing"

	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/dlp/dlptest"
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
