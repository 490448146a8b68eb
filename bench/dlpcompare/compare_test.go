// Package dlpcompare measures Sluice's DLP scanner against gitleaks'
// detector (its default rules) on the same input, in the same run: recall
// over the secrets of the labelled corpus, and throughput on realistic tool
// output. It is a module of its own so that gitleaks is no dependency of
// Sluice.
package dlpcompare

import (
	"strings"
	"testing"
	"time"

	"github.com/zricethezav/gitleaks/v8/detect"

	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/dlp/dlptest"
)

func corpus(t testing.TB) []dlptest.Sample {
	out, err := dlptest.ReadCorpus("../../internal/dlp/testdata/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var piiTypes = map[string]bool{"email": true, "phone-number": true, "payment-card": true, "iban": true, "us-ssn": true, "uk-nino": true,
	"ip-address": true, "es-dni": true, "es-nie": true, "it-fiscal-code": true, "fr-nir": true, "nl-bsn": true, "de-tax-id": true}

// TestRecall: over the corpus's secrets, Sluice finds at least as many as
// gitleaks does. A secret counts as found by Sluice when a secret finding
// overlaps it, and by gitleaks when a finding's secret and the labelled
// value contain one another.
func TestRecall(t *testing.T) {
	gl, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var total, ours, theirs int
	for _, smp := range corpus(t) {
		var secrets []dlptest.Label
		for _, l := range smp.Labels {
			if !piiTypes[l.Type] {
				secrets = append(secrets, l)
			}
		}
		if len(secrets) == 0 {
			continue
		}
		fs := s.Scan([]byte(smp.Text))
		gfs := gl.DetectString(smp.Text)
		for _, l := range secrets {
			total++
			for _, f := range fs {
				if f.Class == dlp.ClassSecret && f.Start < l.End && l.Start < f.End {
					ours++
					break
				}
			}
			value := smp.Text[l.Start:l.End]
			for _, g := range gfs {
				if g.Secret != "" && (strings.Contains(value, g.Secret) || strings.Contains(g.Secret, value)) {
					theirs++
					break
				}
			}
		}
	}
	t.Logf("secrets in the corpus: %d; recall: sluice %.3f, gitleaks %.3f", total, float64(ours)/float64(total), float64(theirs)/float64(total))
	if ours < theirs {
		t.Errorf("sluice found %d secrets, gitleaks %d", ours, theirs)
	}
}

// dense is n bytes of the corpus's texts, one after another: a finding
// every hundred bytes or so, far denser than tool output.
func dense(t testing.TB, n int) []byte {
	var b strings.Builder
	smps := corpus(t)
	for i := 0; b.Len() < n; i++ {
		b.WriteString(smps[i%len(smps)].Text)
		b.WriteByte('\n')
	}
	return []byte(b.String()[:n])
}

// BenchmarkCompare scans the same input with both, and reports each one's
// throughput and their ratio: realistic tool output (dlptest.ToolOutput)
// of 64 KiB and 1 MiB, and the corpus's texts (dense).
func BenchmarkCompare(b *testing.B) {
	gl, err := detect.NewDetectorDefaultConfig()
	if err != nil {
		b.Fatal(err)
	}
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range []struct {
		name string
		data []byte
	}{{"tool-output-64KiB", dlptest.ToolOutput(64 << 10)}, {"tool-output-1MiB", dlptest.ToolOutput(1 << 20)}, {"dense-64KiB", dense(b, 64<<10)}} {
		b.Run(in.name, func(b *testing.B) {
			var ours, theirs time.Duration
			for b.Loop() {
				t0 := time.Now()
				s.Scan(in.data)
				t1 := time.Now()
				gl.DetectBytes(in.data)
				theirs += time.Since(t1)
				ours += t1.Sub(t0)
			}
			mb := float64(len(in.data)*b.N) / 1e6
			b.ReportMetric(mb/ours.Seconds(), "sluice-MB/s")
			b.ReportMetric(mb/theirs.Seconds(), "gitleaks-MB/s")
			b.ReportMetric(theirs.Seconds()/ours.Seconds(), "ratio")
		})
	}
}
