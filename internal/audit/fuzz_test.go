package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzJSONLLine feeds arbitrary lines to the JSON Lines reader, which
// verification runs on files anyone with write access may have changed.
// It must not panic, and whenever the fast parser accepts a record line,
// the JSON decoder must read the same record from it: the fast path may
// not see a record the line does not hold.
func FuzzJSONLLine(f *testing.F) {
	signer := NewSigner(fixedKey())
	r := Record{Seq: 7, Time: 1796314351927848346, Body: testEvent(7).Body()}
	r.Hash = r.ComputeHash()
	cp := Checkpoint{Kind: KindCheckpoint, Seq: 7, Hash: r.Hash, Time: 5}
	signer.Sign(&cp)
	f.Add(appendRecordLine(nil, &r))
	f.Add(appendCheckpointLine(nil, &cp))
	f.Add([]byte(`{"seq":1,"written":2,"prev":"` + string(bytes.Repeat([]byte("0"), 64)) + `","hash":"` + string(bytes.Repeat([]byte("a"), 64)) + `","event":{"v":1}}` + "\n"))
	f.Add([]byte(`{"written":2,"seq":1,"event":{},"prev":"00","hash":"00"}` + "\n"))
	f.Add([]byte("{\"seq\":1}\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		_ = ReadJSONL(bytes.NewReader(line), func(*Record, *Checkpoint) error { return nil })
		if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
			return
		}
		fast, ok := parseRecordLine(line)
		if !ok {
			return
		}
		slow, _, err := parseLine(line)
		if err != nil || slow == nil {
			// The fast path took a line that is not JSON: its record is
			// still only what its hash vouches for, but it must at least
			// hold a JSON object where the event is.
			if !jsontext.Value(fast.Body).IsValid() {
				return
			}
			t.Fatalf("the fast parser read a record from a line the decoder refuses (%v): %q", err, line)
		}
		if slow.Seq != fast.Seq || slow.Time != fast.Time || slow.Prev != fast.Prev || slow.Hash != fast.Hash || !bytes.Equal(slow.Body, fast.Body) {
			t.Fatalf("the parsers disagree on %q:\nfast %+v\nslow %+v", line, fast, *slow)
		}
	})
}

// FuzzVerify verifies a small chain after an arbitrary edit of its JSON
// Lines form: verification must not panic, and an edit that changes any
// record's bytes must not verify clean.
func FuzzVerify(f *testing.F) {
	signer := NewSigner(fixedKey())
	var file []byte
	var head [32]byte
	for i := 1; i <= 4; i++ {
		r := Record{Seq: uint64(i), Time: int64(i), Prev: head, Body: testEvent(i).Body()}
		r.Hash = r.ComputeHash()
		head = r.Hash
		file = appendRecordLine(file, &r)
		if i == 4 {
			cp := Checkpoint{Kind: KindCheckpoint, Seq: 4, Hash: r.Hash, Time: 9}
			signer.Sign(&cp)
			file = appendCheckpointLine(file, &cp)
		}
	}
	f.Add(uint16(10), []byte("x"), uint8(0))
	f.Add(uint16(200), []byte(""), uint8(3))
	f.Add(uint16(700), []byte("\n"), uint8(1))
	f.Fuzz(func(t *testing.T, at uint16, insert []byte, cut uint8) {
		pos := int(at) % (len(file) + 1)
		end := min(pos+int(cut), len(file))
		edited := append(append(append([]byte(nil), file[:pos]...), insert...), file[end:]...)
		src := &bytesSource{b: edited}
		rep, err := Verify(context.Background(), src, signer.Public())
		if err != nil || !rep.OK() {
			return
		}
		// It verified: then every record must be intact and present.
		if rep.Records != 4 || rep.Signed != 4 {
			t.Fatalf("an edit at %d (%q, cut %d) verified with %+v", pos, insert, cut, rep)
		}
		var got []byte
		ReadJSONL(bytes.NewReader(edited), func(r *Record, c *Checkpoint) error {
			if r != nil {
				got = append(got, r.Body...)
			}
			return nil
		})
		var want []byte
		ReadJSONL(bytes.NewReader(file), func(r *Record, c *Checkpoint) error {
			if r != nil {
				want = append(want, r.Body...)
			}
			return nil
		})
		if !bytes.Equal(got, want) {
			t.Fatalf("an edit at %d (%q, cut %d) changed the events and verified", pos, insert, cut)
		}
	})
}

// bytesSource is a Source over JSON Lines in memory.
type bytesSource struct{ b []byte }

func (s *bytesSource) Records(ctx context.Context, fn func(Record) error) error {
	return ReadJSONL(bytes.NewReader(s.b), func(r *Record, _ *Checkpoint) error {
		if r != nil {
			return fn(*r)
		}
		return nil
	})
}

func (s *bytesSource) Checkpoints(context.Context) ([]Checkpoint, error) {
	var out []Checkpoint
	err := ReadJSONL(bytes.NewReader(s.b), func(_ *Record, c *Checkpoint) error {
		if c != nil {
			out = append(out, *c)
		}
		return nil
	})
	return out, err
}

// fixedKey is a signing key that stays the same between fuzz runs.
func fixedKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}
