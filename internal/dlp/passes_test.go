package dlp

// Benchmarks of the scanner's passes one by one, on the same tool output
// as BenchmarkScan.

import (
	"testing"

	"github.com/sluicehq/sluice/internal/dlp/dlptest"
)

func BenchmarkPIIPass(b *testing.B) {
	in := dlptest.ToolOutput(64 << 10)
	t := normalize(in, nil)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		scanPII(t.view, func(Finding) {})
	}
}

func BenchmarkValidPhone(b *testing.B) {
	b.Run("region-GB", func(b *testing.B) {
		for b.Loop() {
			validPhone(44, []byte("2079460123"), "GB")
		}
	})
	b.Run("code-1", func(b *testing.B) {
		for b.Loop() {
			validPhone(1, []byte("4155550132"), "")
		}
	})
	b.Run("code-44", func(b *testing.B) {
		for b.Loop() {
			validPhone(44, []byte("2079460123"), "")
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	in := dlptest.ToolOutput(64 << 10)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		normalize(in, nil)
	}
}
