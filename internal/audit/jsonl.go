package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// JSONL writes records as JSON Lines, one object per record:
//
//	{"seq":1,"written":N,"prev":"<hex>","hash":"<hex>","event":{...}}
//
// and one per checkpoint ({"checkpoint":{...}}). The event member is the
// body exactly as chained, so a file verifies on its own ([ReadJSONL]).
//
// With MaxBytes set, a file that grows past it is renamed with the time
// of the rotation (audit-20261203T101500.000000000.jsonl) and a new one begun;
// the new file opens with a signed [KindRotation] checkpoint of the record
// before its first, so that any suffix of the rotated files still verifies
// after the oldest ones are deleted. MaxFiles bounds how many rotated files are kept.
type JSONL struct {
	mu       sync.Mutex
	path     string
	w        io.Writer
	f        *os.File
	size     int64
	MaxBytes int64
	MaxFiles int
	// last is the last record written (seq 0: none yet), for the
	// rotation checkpoint that opens the next file.
	lastSeq  uint64
	lastHash [32]byte
	signer   *Signer
	buf      []byte
}

var _ Sink = (*JSONL)(nil)

// OpenJSONL opens path for appending (creating it, mode 0600). signer
// signs the checkpoint that opens each rotated file.
func OpenJSONL(path string, maxBytes int64, maxFiles int, signer *Signer) (*JSONL, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit file: %w", err)
	}
	return &JSONL{path: path, w: f, f: f, size: st.Size(), MaxBytes: maxBytes, MaxFiles: maxFiles, signer: signer}, nil
}

// NewJSONLWriter writes JSON Lines to w (standard output) without rotation.
func NewJSONLWriter(w io.Writer) *JSONL { return &JSONL{path: "-", w: w} }

// Name implements [Sink].
func (j *JSONL) Name() string {
	if j.path == "-" {
		return "stdout"
	}
	return "jsonl " + j.path
}

// Write implements [Sink]. The batch is one write, so a crash leaves at
// most a torn last line, which [ReadJSONL] reports.
func (j *JSONL) Write(ctx context.Context, recs []Record, cps []Checkpoint) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil && j.MaxBytes > 0 && j.size >= j.MaxBytes && j.lastSeq > 0 && j.signer != nil {
		if err := j.rotate(); err != nil {
			return err
		}
	}
	b := j.buf[:0]
	for i := range recs {
		b = appendRecordLine(b, &recs[i])
	}
	for i := range cps {
		b = appendCheckpointLine(b, &cps[i])
	}
	n, err := j.w.Write(b)
	j.size += int64(n)
	if cap(b) <= 1<<20 {
		j.buf = b
	}
	if err != nil {
		return err
	}
	if len(recs) > 0 {
		j.lastSeq, j.lastHash = recs[len(recs)-1].Seq, recs[len(recs)-1].Hash
	}
	return nil
}

func (j *JSONL) rotate() error {
	if err := j.f.Close(); err != nil {
		return err
	}
	ext := filepath.Ext(j.path)
	base := strings.TrimSuffix(j.path, ext)
	rotated := base + "-" + time.Now().UTC().Format("20060102T150405.000000000") + ext
	if err := os.Rename(j.path, rotated); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	j.f, j.w, j.size = f, f, 0
	cp := Checkpoint{Kind: KindRotation, Seq: j.lastSeq, Hash: j.lastHash, Time: nowNano()}
	j.signer.Sign(&cp)
	line := appendCheckpointLine(nil, &cp)
	n, err := f.Write(line)
	j.size += int64(n)
	if err != nil {
		return err
	}
	if j.MaxFiles > 0 {
		old, _ := filepath.Glob(base + "-*" + ext)
		slices.Sort(old)
		for len(old) > j.MaxFiles {
			os.Remove(old[0])
			old = old[1:]
		}
	}
	return nil
}

func appendRecordLine(b []byte, r *Record) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"written":`...)
	b = strconv.AppendInt(b, r.Time, 10)
	b = append(b, `,"prev":"`...)
	b = hex.AppendEncode(b, r.Prev[:])
	b = append(b, `","hash":"`...)
	b = hex.AppendEncode(b, r.Hash[:])
	b = append(b, `","event":`...)
	b = append(b, r.Body...)
	return append(b, "}\n"...)
}

func appendCheckpointLine(b []byte, c *Checkpoint) []byte {
	b = append(b, `{"checkpoint":{"kind":`...)
	b = strconv.AppendQuote(b, c.Kind)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"hash":"`...)
	b = hex.AppendEncode(b, c.Hash[:])
	b = append(b, `","time":`...)
	b = strconv.AppendInt(b, c.Time, 10)
	b = append(b, `,"key_id":`...)
	b = strconv.AppendQuote(b, c.KeyID)
	b = append(b, `,"sig":"`...)
	b = base64.StdEncoding.AppendEncode(b, c.Sig)
	return append(b, "\"}}\n"...)
}

// Close implements [Sink].
func (j *JSONL) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		return j.f.Close()
	}
	return nil
}

// JSONLFiles is a [Source] over JSON Lines files written by [JSONL], read
// in the order given (oldest first).
type JSONLFiles []string

var _ Source = JSONLFiles(nil)

// Records implements [Source].
func (fs JSONLFiles) Records(ctx context.Context, fn func(Record) error) error {
	return fs.each(lineRecord, func(r *Record, _ *Checkpoint) error {
		return fn(*r)
	})
}

// Checkpoints implements [Source].
func (fs JSONLFiles) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	var out []Checkpoint
	err := fs.each(lineCheckpoint, func(_ *Record, c *Checkpoint) error {
		out = append(out, *c)
		return nil
	})
	return out, err
}

func (fs JSONLFiles) each(want lineKind, fn func(*Record, *Checkpoint) error) error {
	for _, name := range fs {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		// Large reads: a verification reads whole files.
		err = readJSONL(f, 256<<10, want, fn)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// lineKind selects the lines readJSONL parses.
type lineKind uint8

const (
	lineRecord lineKind = 1 << iota
	lineCheckpoint
	lineAny = lineRecord | lineCheckpoint
)

var (
	recordPrefix     = []byte(`{"seq":`)
	checkpointPrefix = []byte(`{"checkpoint":`)
)

// ErrTorn is reported for a last line cut short (a crash mid-write).
var ErrTorn = errors.New("last line is incomplete")

// ReadJSONL reads the lines [JSONL] writes, calling fn with a record or a
// checkpoint for each.
func ReadJSONL(r io.Reader, fn func(*Record, *Checkpoint) error) error {
	return readJSONL(r, 16<<10, lineAny, fn)
}

// readJSONL reads through a buffer of size bytes; longer lines are read
// in pieces.
func readJSONL(r io.Reader, size int, want lineKind, fn func(*Record, *Checkpoint) error) error {
	br := bufio.NewReaderSize(r, size)
	var long []byte
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long[:0], line...)
			for err == bufio.ErrBufferFull {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		if !bytes.HasSuffix(line, []byte("\n")) {
			return fmt.Errorf("line %d: %w", lineNo, ErrTorn)
		}
		// Lines of the other kind are passed over by their opening alone;
		// a line that is neither is parsed, to be reported.
		switch {
		case want&lineRecord == 0 && bytes.HasPrefix(line, recordPrefix),
			want&lineCheckpoint == 0 && bytes.HasPrefix(line, checkpointPrefix):
			continue
		}
		if rec, ok := parseRecordLine(line); ok {
			if err := fn(&rec, nil); err != nil {
				return err
			}
			continue
		}
		rec, cp, perr := parseLine(line)
		if perr != nil {
			return fmt.Errorf("line %d: %w", lineNo, perr)
		}
		if (rec != nil && want&lineRecord == 0) || (cp != nil && want&lineCheckpoint == 0) {
			continue
		}
		if err := fn(rec, cp); err != nil {
			return err
		}
	}
}

// parseRecordLine reads a record line in exactly the form [JSONL] writes
// it, without a JSON decoder; any other form is left to parseLine. The
// body is the bytes between the "event" member's colon and the closing
// brace of the line, which the record's hash then vouches for.
func parseRecordLine(line []byte) (Record, bool) {
	var r Record
	rest, ok := bytes.CutPrefix(line, recordPrefix)
	if !ok {
		return r, false
	}
	num := func(b []byte, next string) (uint64, []byte, bool) {
		i := bytes.IndexByte(b, ',')
		if i <= 0 || i > 20 {
			return 0, nil, false
		}
		n, err := strconv.ParseUint(string(b[:i]), 10, 64)
		if err != nil {
			return 0, nil, false
		}
		rest, ok := bytes.CutPrefix(b[i:], []byte(next))
		return n, rest, ok
	}
	hash := func(b []byte, h *[32]byte, next string) ([]byte, bool) {
		if len(b) < 64 {
			return nil, false
		}
		if _, err := hex.Decode(h[:], b[:64]); err != nil {
			return nil, false
		}
		rest, ok := bytes.CutPrefix(b[64:], []byte(next))
		return rest, ok
	}
	var t uint64
	if r.Seq, rest, ok = num(rest, `,"written":`); !ok {
		return r, false
	}
	if t, rest, ok = num(rest, `,"prev":"`); !ok || t > 1<<63-1 {
		return r, false
	}
	r.Time = int64(t)
	if rest, ok = hash(rest, &r.Prev, `","hash":"`); !ok {
		return r, false
	}
	if rest, ok = hash(rest, &r.Hash, `","event":`); !ok {
		return r, false
	}
	body, ok := bytes.CutSuffix(rest, []byte("}\n"))
	if !ok || len(body) < 2 || body[0] != '{' {
		return r, false
	}
	r.Body = bytes.Clone(body)
	return r, true
}

func parseLine(line []byte) (*Record, *Checkpoint, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(line))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	var (
		rec    Record
		cp     *Checkpoint
		hasSeq bool
		hasEv  bool
	)
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, nil, err
		}
		name := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, nil, err
		}
		switch name {
		case "seq":
			rec.Seq, err = strconv.ParseUint(string(val), 10, 64)
			hasSeq = true
		case "written":
			rec.Time, err = strconv.ParseInt(string(val), 10, 64)
		case "prev":
			err = decodeHash(val, &rec.Prev)
		case "hash":
			err = decodeHash(val, &rec.Hash)
		case "event":
			rec.Body = slices.Clone([]byte(val))
			hasEv = true
		case "checkpoint":
			cp, err = parseCheckpoint(val)
		default:
			err = fmt.Errorf("unknown member %q", name)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if cp != nil {
		return nil, cp, nil
	}
	if !hasSeq || !hasEv {
		return nil, nil, errors.New("record without seq or event")
	}
	return &rec, nil, nil
}

func parseCheckpoint(v jsontext.Value) (*Checkpoint, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(v))
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	var c Checkpoint
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		name := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		var s string
		if val.Kind() == '"' {
			s, err = strconv.Unquote(string(val))
			if err != nil {
				return nil, err
			}
		}
		switch name {
		case "kind":
			c.Kind = s
		case "seq":
			c.Seq, err = strconv.ParseUint(string(val), 10, 64)
		case "hash":
			err = decodeHash(val, &c.Hash)
		case "time":
			c.Time, err = strconv.ParseInt(string(val), 10, 64)
		case "key_id":
			c.KeyID = s
		case "sig":
			c.Sig, err = base64.StdEncoding.DecodeString(s)
		default:
			err = fmt.Errorf("unknown checkpoint member %q", name)
		}
		if err != nil {
			return nil, err
		}
	}
	return &c, nil
}

func decodeHash(v jsontext.Value, h *[32]byte) error {
	s, err := strconv.Unquote(string(v))
	if err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return errors.New("hash is not 32 bytes of hex")
	}
	copy(h[:], b)
	return nil
}
