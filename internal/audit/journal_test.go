package audit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/iotest"
)

// readJournal reads a journal file as recovery does: up to its first zero
// byte.
func readJournal(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(&journalLines{r: iotest.HalfReader(f)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestJournal: a journal holds exactly the lines appended since it was
// last emptied, past the room it started with, mapped or not; a mapped one
// that grew is cut back when emptied.
func TestJournal(t *testing.T) {
	for _, plain := range []bool{false, true} {
		for _, sync := range []bool{false, true} {
			t.Run(fmt.Sprintf("plain=%v,sync=%v", plain, sync), func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "j")
				j, err := openJournal(path, sync, plain)
				if err != nil {
					t.Fatal(err)
				}
				defer j.close()
				if mapped := j.m != nil; mapped != (!plain && runtime.GOOS == "linux") {
					t.Fatalf("mapped: %v", mapped)
				}
				var want []byte
				add := func(n, size int) {
					for i := range n {
						line := fmt.Appendf(nil, "{\"seq\":%d,\"pad\":%q}\n", len(want), bytes.Repeat([]byte{'a' + byte(i%26)}, size))
						if err := j.append(line); err != nil {
							t.Fatal(err)
						}
						want = append(want, line...)
					}
				}
				add(10, 100)
				if got := readJournal(t, path); !bytes.Equal(got, want) {
					t.Fatalf("journal holds %d bytes, want %d", len(got), len(want))
				}
				if err := j.reset(); err != nil {
					t.Fatal(err)
				}
				want = want[:0]
				if got := readJournal(t, path); len(got) != 0 {
					t.Fatalf("emptied journal holds %d bytes", len(got))
				}
				n := 6000
				if sync {
					n = 200 // an fsync each
				}
				add(n, 3000) // past journalSpace, and past four times it without sync
				if got := readJournal(t, path); !bytes.Equal(got, want) {
					t.Fatalf("journal holds %d bytes, want %d", len(got), len(want))
				}
				if err := j.reset(); err != nil {
					t.Fatal(err)
				}
				want = want[:0]
				add(3, 10)
				if got := readJournal(t, path); !bytes.Equal(got, want) {
					t.Fatalf("journal holds %q, want %q", got, want)
				}
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case j.m != nil && !sync && (len(j.m) != journalSpace || st.Size() != journalSpace):
					t.Errorf("a journal that grew past four times its room is %d bytes (mapped %d) after emptying, want %d", st.Size(), len(j.m), journalSpace)
				case j.m == nil && st.Size() != int64(len(want)):
					t.Errorf("plain journal is %d bytes, holds %d", st.Size(), len(want))
				}
			})
		}
	}
}

// TestJournalLines: reading stops at the first zero byte, wherever reads
// split the file.
func TestJournalLines(t *testing.T) {
	in := append([]byte("{\"a\":1}\n{\"b\":2}\n"), make([]byte, 100)...)
	in = append(in, "{\"stale\":3}\n"...)
	for _, r := range []io.Reader{bytes.NewReader(in), iotest.OneByteReader(bytes.NewReader(in)), iotest.DataErrReader(bytes.NewReader(in))} {
		got, err := io.ReadAll(&journalLines{r: r})
		if err != nil || string(got) != "{\"a\":1}\n{\"b\":2}\n" {
			t.Errorf("%q, %v", got, err)
		}
	}
}
