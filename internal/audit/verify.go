package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// Problem kinds reported by [Verify].
const (
	ProblemChanged   = "changed"   // a record's content does not match its hash
	ProblemRemoved   = "removed"   // records are missing from the sequence
	ProblemInserted  = "inserted"  // a record appears where the sequence has already passed
	ProblemReordered = "reordered" // a record is out of its place
	ProblemBroken    = "broken"    // a record does not link to the one before it
	ProblemRewritten = "rewritten" // the chain contradicts a signed checkpoint
	ProblemTruncated = "truncated" // records a checkpoint signed are gone from the end
	ProblemSignature = "signature" // a checkpoint's signature does not verify
)

// Problem is one place where a stored chain does not hold.
type Problem struct {
	Kind string
	// Seq is the sequence number of the first record concerned.
	Seq uint64
	// EventID is that record's event ID, when it can be read.
	EventID string
	Detail  string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s at seq %d", p.Kind, p.Seq)
	if p.EventID != "" {
		s += " (event " + p.EventID + ")"
	}
	return s + ": " + p.Detail
}

// Report is what [Verify] found.
type Report struct {
	Records     int
	Checkpoints int
	// First and Last are the sequence numbers of the first and last
	// records read.
	First, Last uint64
	// Signed is the last sequence number a valid checkpoint covers;
	// Unsigned counts the records after it, which no signature protects
	// yet (a running Sluice signs at least every second).
	Signed   uint64
	Unsigned uint64
	// Purged is the sequence number up to which records were purged by
	// retention, under a valid signature (0: none).
	Purged   uint64
	Problems []Problem
}

// OK reports whether the chain verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// maxProblems bounds a report: past the first problems, the rest is noise.
const maxProblems = 100

// reorderWindow is how far from its place a moved record is looked for.
const reorderWindow = 8

// Verify checks the chain in src: every record's hash against its content,
// every link, the sequence, and every checkpoint's signature with pub and
// against the chain. It returns an error only when src cannot be read.
func Verify(ctx context.Context, src Source, pub ed25519.PublicKey) (*Report, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("verify needs the Ed25519 public key of the log")
	}
	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	rep := &Report{Checkpoints: len(cps)}
	add := func(p Problem) {
		if len(rep.Problems) < maxProblems {
			rep.Problems = append(rep.Problems, p)
		}
	}
	keyID := KeyID(pub)
	// Valid checkpoints by sequence number.
	signed := map[uint64]Checkpoint{}
	anchors := map[uint64]Checkpoint{}
	var lastSigned uint64
	var lastSignedTime int64
	for _, c := range cps {
		if c.KeyID != keyID || !c.VerifySig(pub) {
			add(Problem{Kind: ProblemSignature, Seq: c.Seq, Detail: fmt.Sprintf("%s checkpoint signed with key %q does not verify with key %s", c.Kind, c.KeyID, keyID)})
			continue
		}
		if c.Kind == KindRetention || c.Kind == KindRotation {
			anchors[c.Seq] = c
		}
		if c.Kind == KindRetention {
			rep.Purged = max(rep.Purged, c.Seq)
		}
		if c.Kind == KindCheckpoint {
			signed[c.Seq] = c
		}
		if c.Seq > lastSigned {
			lastSigned, lastSignedTime = c.Seq, c.Time
		}
	}

	var (
		expect    uint64
		prevHash  [32]byte
		lastMatch uint64 // last checkpoint the chain matched
		recent    [reorderWindow]recentRecord
		// shift is the displacement of the last reordered record and
		// shiftEnd its sequence number; lastProblem is the last record a
		// problem was reported at.
		shift       int64
		shiftEnd    uint64
		lastProblem uint64
		// missing is the index in rep.Problems of the last records
		// reported missing, missingLo to missingHi (-1: none).
		missing              = -1
		missingLo, missingHi uint64
	)
	check := func(r *Record, computed [32]byte) {
		rep.Records++
		if rep.Records == 1 {
			rep.First = r.Seq
			switch a, ok := anchors[r.Seq-1]; {
			case r.Seq == 1 && r.Prev == [32]byte{}:
			case ok && a.Hash == r.Prev:
				lastMatch = a.Seq
			case r.Seq == 1:
				add(Problem{Kind: ProblemBroken, Seq: r.Seq, EventID: eventID(r.Body), Detail: "the first record does not start the chain"})
			default:
				add(Problem{Kind: ProblemRemoved, Seq: 1, Detail: fmt.Sprintf("records 1 to %d are missing and no signed retention or rotation checkpoint accounts for them", r.Seq-1)})
			}
		} else {
			switch {
			case r.Seq > expect:
				detail := fmt.Sprintf("records %d to %d are missing", expect, r.Seq-1)
				if r.Seq == expect+1 {
					detail = fmt.Sprintf("record %d is missing", expect)
				}
				add(Problem{Kind: ProblemRemoved, Seq: expect, Detail: detail})
				missing, missingLo, missingHi = len(rep.Problems)-1, expect, r.Seq-1
				lastProblem = r.Seq
			case r.Seq < expect && missing >= 0 && r.Seq >= missingLo && r.Seq <= missingHi:
				// What looked missing comes later: the records were
				// reordered.
				rep.Problems[missing] = Problem{Kind: ProblemReordered, Seq: missingLo, EventID: eventID(r.Body),
					Detail: fmt.Sprintf("record %d appears after record %d", r.Seq, expect-1)}
				missing = -1
				lastProblem = r.Seq
			case r.Seq < expect:
				add(Problem{Kind: ProblemInserted, Seq: r.Seq, EventID: eventID(r.Body), Detail: fmt.Sprintf("a record %d appears after record %d", r.Seq, expect-1)})
				lastProblem = r.Seq
			case r.Prev != prevHash && computed == r.Hash:
				add(Problem{Kind: ProblemBroken, Seq: r.Seq, EventID: eventID(r.Body), Detail: fmt.Sprintf("record %d does not link to the record before it: a record was removed, inserted or replaced before it", r.Seq)})
				lastProblem = r.Seq
			}
		}
		if computed != r.Hash {
			p := classify(*r, recent)
			if p.Kind == ProblemReordered && p.shift != 0 && p.shift == shift && r.Seq == shiftEnd+1 {
				// The same displacement as the record before: one problem.
				shiftEnd = r.Seq
			} else {
				add(p.Problem)
				shift, shiftEnd = p.shift, r.Seq
			}
			lastProblem = r.Seq
		}
		recent[r.Seq%reorderWindow] = recentRecord{seq: r.Seq, hash: r.Hash}
		if c, ok := signed[r.Seq]; ok {
			if c.Hash != r.Hash && lastProblem <= lastMatch {
				add(Problem{Kind: ProblemRewritten, Seq: lastMatch + 1, Detail: fmt.Sprintf("the chain up to record %d does not match the checkpoint signed at %s: a record from %d to %d was changed, removed, inserted or reordered and the chain recomputed",
					r.Seq, time.Unix(0, c.Time).UTC().Format(time.RFC3339), lastMatch+1, r.Seq)})
			}
			lastMatch = r.Seq
		}
		rep.Last = r.Seq
		prevHash = r.Hash
		if r.Seq >= expect {
			expect = r.Seq + 1
		}
	}
	if rs, ok := src.(rangeSource); ok {
		err = verifyRanges(ctx, rs, check)
	} else {
		err = src.Records(ctx, func(r Record) error {
			check(&r, r.ComputeHash())
			return nil
		})
	}
	if err != nil {
		return rep, err
	}
	if lastSigned > rep.Last && lastSigned > rep.Purged {
		add(Problem{Kind: ProblemTruncated, Seq: rep.Last + 1, Detail: fmt.Sprintf("records %d to %d are gone from the end: a checkpoint signed at %s covers them",
			rep.Last+1, lastSigned, time.Unix(0, lastSignedTime).UTC().Format(time.RFC3339))})
	}
	rep.Signed = min(lastSigned, rep.Last)
	if rep.Last > lastSigned {
		rep.Unsigned = rep.Last - lastSigned
	}
	return rep, nil
}

type recentRecord struct {
	seq  uint64
	hash [32]byte
}

// classify says what happened to a record whose content does not match
// its hash: a copy of a record just before it (inserted), a record moved
// from a nearby place (reordered, or shifted by an insertion), or else a
// change to its content.
func classify(r Record, recent [reorderWindow]recentRecord) classified {
	id := eventID(r.Body)
	for _, x := range recent {
		if x.seq != 0 && x.hash == r.Hash {
			return classified{Problem: Problem{Kind: ProblemInserted, Seq: r.Seq, EventID: id, Detail: fmt.Sprintf("the record is a copy of record %d", x.seq)}}
		}
	}
	for d := int64(1); d <= reorderWindow; d++ {
		for _, at := range []int64{int64(r.Seq) + d, int64(r.Seq) - d} {
			if at > 0 && r.hashAt(uint64(at)) == r.Hash {
				return classified{shift: int64(r.Seq) - at, Problem: Problem{Kind: ProblemReordered, Seq: r.Seq, EventID: id,
					Detail: fmt.Sprintf("the record was written as record %d: records were reordered, or one was inserted or removed before it", at)}}
			}
		}
	}
	return classified{Problem: Problem{Kind: ProblemChanged, Seq: r.Seq, EventID: id, Detail: "its content does not match its hash"}}
}

// classified is a problem with a moved record's displacement.
type classified struct {
	Problem
	shift int64
}

// eventID reads the "id" member of a body, or "" when it has none.
func eventID(body []byte) string {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return ""
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return ""
		}
		if name.String() == "id" {
			v, err := dec.ReadToken()
			if err != nil || v.Kind() != '"' {
				return ""
			}
			return v.String()
		}
		if err := dec.SkipValue(); err != nil {
			return ""
		}
	}
	return ""
}

// rangeSource is a [Source] whose records can be read by ranges of
// sequence numbers at once, in sequence order within a range.
type rangeSource interface {
	Source
	seqBounds(ctx context.Context) (lo, hi uint64, err error)
	// recordsIn may hand fn records whose Body is valid only during the
	// call.
	recordsIn(ctx context.Context, lo, hi uint64, fn func(Record) error) error
}

// idPrefix is how much of a body a range reader keeps: enough for the
// event ID, which bodies write second, that reports name.
const idPrefix = 160

// verifyChunk is how many sequence numbers one reader takes at a time.
const verifyChunk = 4096

type chunk struct {
	lo, hi   uint64
	recs     []Record
	computed [][32]byte
	err      error
	done     chan struct{}
}

// verifyRanges reads and hashes chunks of records on several goroutines
// and hands them to check in sequence order.
func verifyRanges(ctx context.Context, src rangeSource, check func(*Record, [32]byte)) error {
	lo, hi, err := src.seqBounds(ctx)
	if err != nil || hi < lo {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := max(1, min(runtime.GOMAXPROCS(0), 8))
	// order holds the chunks in sequence order for the checker; its
	// capacity bounds the chunks in memory. work holds them for readers.
	order := make(chan *chunk, 2*workers)
	work := make(chan *chunk, 2*workers)
	go func() {
		defer close(order)
		defer close(work)
		for a := lo; a <= hi && a >= lo; a += verifyChunk {
			c := &chunk{lo: a, hi: min(a+verifyChunk-1, hi), done: make(chan struct{})}
			select {
			case order <- c:
			case <-ctx.Done():
				return
			}
			work <- c // never blocks longer than order did: same capacity
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				if ctx.Err() == nil {
					c.recs = make([]Record, 0, c.hi-c.lo+1)
					c.computed = make([][32]byte, 0, c.hi-c.lo+1)
					c.err = src.recordsIn(ctx, c.lo, c.hi, func(r Record) error {
						h := r.ComputeHash()
						c.computed = append(c.computed, h)
						if h == r.Hash {
							// A sound record: reports need no more than its
							// ID. One that is not is classified from its
							// whole body.
							r.Body = r.Body[:min(len(r.Body), idPrefix)]
						}
						r.Body = bytes.Clone(r.Body)
						c.recs = append(c.recs, r)
						return nil
					})
				}
				close(c.done)
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	for c := range order {
		<-c.done
		if c.err != nil {
			return c.err
		}
		for i := range c.recs {
			check(&c.recs[i], c.computed[i])
		}
	}
	return ctx.Err()
}
