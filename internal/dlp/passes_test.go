package dlp

// Benchmarks of the scanner's passes one by one, on the same tool output
// as BenchmarkScan.

import (
	"testing"

	"github.com/sluicehq/sluice/internal/dlp/dlptest"
)

func BenchmarkPIIPass(b *testing.B) {
	in := dlptest.ToolOutput(64 << 10)
	t := normalize(in)
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
		normalize(in)
	}
}

func BenchmarkAutomaton(b *testing.B) {
	in := dlptest.ToolOutput(64 << 10)
	s, _ := New(Options{})
	t := normalize(in)
	b.SetBytes(int64(len(in)))
	n := 0
	for b.Loop() {
		s.ac.find(t.view, func(int, int) { n++ })
	}
}

// The passes as they would run alone; the scanner runs them fused
// (Scanner.secretsAndPII).

// find calls hit for every keyword occurrence in b, with the keyword's
// index and the offset just past its end.
func (a *automaton) find(b []byte, hit func(kw int, end int)) {
	s := uint32(0)
	delta, class := a.delta, &a.class
	for i, c := range b {
		v := delta[s+uint32(class[c])]
		s = v >> 1
		if v&1 == 0 {
			continue
		}
		for _, k := range a.out[int(s)/a.nc] {
			hit(int(k), i+1)
		}
	}
}

// scanPII calls add for each piece of personal data in v.
func scanPII(v []byte, add func(f Finding)) {
	n := len(v)
	for i := 0; i < n; {
		for i < n && piiClass[v[i]] == cNone {
			i++
		}
		if i == n {
			return
		}
		i = piiAt(v, i, piiClass[v[i]], add)
	}
}
