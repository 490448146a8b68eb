package dlp

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"regexp"
	"testing"

	"github.com/sluicehq/sluice/internal/dlp/dlptest"
)

// markInputs are texts to mark: the labelled corpus, tool output, and
// random bytes from an alphabet heavy in what the marks look for.
func markInputs(t testing.TB) [][]byte {
	samples, err := dlptest.ReadCorpus("testdata/corpus.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, s := range samples {
		out = append(out, []byte(s.Text))
	}
	out = append(out, dlptest.ToolOutput(5000), dlptest.ToolOutput(70000))
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "aAzZ09:@+(_-. \"\"\\\\\\u\x00\x7f\x80\xffskSKacACqQ~key"
	for range 300 {
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		out = append(out, b)
	}
	return out
}

// checkMarks compares the marks of v with the portable code's, chunk by
// chunk as the scanner makes them.
func checkMarks(t testing.TB, tab *teddyTables, v []byte) {
	var bm, bm2 [maskChunk / 32]blockMarks
	var got, want [maskChunk / 32]uint32
	carry, carry2 := uint32(0), uint32(0)
	for start := 0; start < len(v); start += maskChunk {
		end := min(len(v), start+maskChunk)
		words := (end - start + 31) / 32
		for _, c := range []struct {
			c1, c2 byte
			high   bool
		}{{'\\', '\\', true}, {'"', '\\', false}} {
			byteMarks(v, start, end, c.c1, c.c2, c.high, got[:])
			byteMarksGeneric(v, start, end, c.c1, c.c2, c.high, want[:])
			if !reflect.DeepEqual(got[:words], want[:words]) {
				t.Fatalf("byte marks (%q, %q, %v) of %q from %d differ:\n%08x\nwant %08x", c.c1, c.c2, c.high, v, start, got[:words], want[:words])
			}
		}
		carry = tab.mark(v, start, end, bm[:], carry)
		carry2 = tab.markGeneric(v, start, end, bm2[:], carry2)
		if !reflect.DeepEqual(bm[:words], bm2[:words]) || carry != carry2 {
			t.Fatalf("marks of %q from %d differ:\n%08x\nwant\n%08x\ncarry %d, want %d", v, start, bm[:words], bm2[:words], carry, carry2)
		}
	}
}

// checkNormalize compares the normalised text of v with the portable
// code's.
func checkNormalize(t testing.TB, v []byte) {
	got := normalize(v, nil)
	defer func(on bool) { useAVX2 = on }(useAVX2)
	useAVX2 = false
	want := normalize(v, nil)
	if !bytes.Equal(got.view, want.view) || !reflect.DeepEqual(got.marks, want.marks) || got.n != want.n {
		t.Fatalf("normalised %q:\n%q %v\nwant\n%q %v", v, got.view, got.marks, want.view, want.marks)
	}
}

// checkNothingMissed compares what s finds in v with what it finds when
// every position is looked at.
func checkNothingMissed(t testing.TB, s *Scanner, v []byte) {
	plain := *s
	kw := *s.kw
	kw.teddy = nil
	plain.kw = &kw
	if got, want := s.Scan(v), plain.Scan(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("findings in %q with marks:\n%+v\nwithout:\n%+v", v, got, want)
	}
	// The runs of base64 bytes, from marks, as the scan without marks
	// finds them.
	var marks [maskChunk / 32]blockMarks
	var got [][2]int
	runs := runFinder{v: v, found: func(_ []byte, i, j int) { got = append(got, [2]int{i, j}) }}
	for start := 0; start < len(v); start += maskChunk {
		end := min(len(v), start+maskChunk)
		s.kw.teddy.markGeneric(v, start, end, marks[:], 0)
		words := (end - start + 31) / 32
		for w := range words {
			if !runs.skip(marks[w].b64) {
				runs.add(marks[:words], w, start+32*w, end == len(v))
			}
		}
	}
	if want := base64Runs(v); !reflect.DeepEqual(got, want) {
		t.Fatalf("base64 runs of %.40q... from marks %v, want %v", v, got, want)
	}
}

func TestMarks(t *testing.T) {
	s, err := New(Options{MinConfidence: Low})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range markInputs(t) {
		checkMarks(t, s.kw.teddy, v)
		checkNormalize(t, v)
		checkNothingMissed(t, s, v)
	}
}

// TestMarksSingleByteKeyword: a custom keyword of one byte is found by
// looking at every position.
func TestMarksSingleByteKeyword(t *testing.T) {
	s, err := New(Options{Custom: []Custom{{Type: "ticket", Keywords: []string{"#"}, Pattern: regexp.MustCompile(`#([0-9]{6})\b`)}}})
	if err != nil {
		t.Fatal(err)
	}
	if s.kw.teddy != nil {
		t.Fatal("a keyword of one byte left the marks on")
	}
	fs := s.Scan([]byte("see #123456 and #12"))
	if len(fs) != 1 || fs[0].Type != "ticket" || fs[0].Start != 5 || fs[0].End != 11 {
		t.Fatalf("findings %+v", fs)
	}
}

func FuzzMarks(f *testing.F) {
	for _, v := range markInputs(f)[:40] {
		f.Add(v)
	}
	s, err := New(Options{MinConfidence: Low})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		checkMarks(t, s.kw.teddy, v)
		checkNormalize(t, v)
		checkNothingMissed(t, s, v)
	})
}

// byteWalk finds strings byte by byte, as the reference the marked walk
// is held to.
type byteWalk struct {
	data []byte
	in   bool
}

func (b *byteWalk) walk(from, to int) (int, bool) {
	i := from
	for ; i < to; i++ {
		switch c := b.data[i]; {
		case b.in && c == '\\':
			i++
		case c == '"':
			b.in = !b.in
		}
	}
	return i, b.in
}

func TestRewriteWalk(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	inputs := markInputs(t)
	inputs = append(inputs, dlptest.ToolOutput(9000))
	for _, v := range inputs {
		for range 5 {
			var edits []edit
			for at := r.IntN(40); at < len(v); at += 1 + r.IntN(200) {
				end := min(len(v), at+1+r.IntN(20))
				edits = append(edits, edit{start: at, end: end, with: "[REDACTED]"})
				at = end
			}
			if got, want := rewrite(v, edits), rewriteWalking(v, edits, &byteWalk{data: v}); !bytes.Equal(got, want) {
				t.Fatalf("rewrite of %q with %v:\n%q\nwant\n%q", v, edits, got, want)
			}
		}
	}
}

// TestNumberInToken: a number group inside a larger token is passed over
// whole, but its last run alone is still read, as the check digits of a
// DNI may end a token; and a number after a failed IPv6 try is read.
func TestNumberInToken(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"ref 1 12345678Z here":      "es-dni",
		"ref 20 26 12345678Z":       "es-dni",
		"at 2026-12-03T10:00:00Z":   "",
		"id 12-34-56-78x and 4-5x9": "",
		// After a colon that follows a hex digit (an IPv6 try): still read.
		"phone:4155550132": "phone-number",
	} {
		var got []string
		for _, f := range s.Scan([]byte(in)) {
			got = append(got, f.Type)
		}
		if want == "" && len(got) > 0 || want != "" && (len(got) != 1 || got[0] != want) {
			t.Errorf("%q: found %v, want %q", in, got, want)
		}
	}
}
