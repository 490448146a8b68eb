package allowlist

import (
	"bytes"
	"slices"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// foldWalker holds the state of one search for case-variant member names;
// pooled so that a call costs no decoder allocation.
type foldWalker struct {
	buf bytes.Buffer
	dec jsontext.Decoder
	// names holds the unescaped names of the open objects back to back,
	// innermost last; seen their ends in names.
	names []byte
	seen  []int
}

var foldWalkers = sync.Pool{New: func() any { return new(foldWalker) }}

// caseVariantNames looks for two member names of one object of args that
// differ only by case ("path" and "PATH", or "pass" and "paſs"). Such
// arguments are refused: a schema checks one of the two while a server
// that matches names case-insensitively (Go's encoding/json does) may use
// the other, so the value the server acts on would be one nobody checked.
// It returns a description naming the object, or "". Arguments that do not
// decode are left to the validation that follows, which refuses them.
func caseVariantNames(args []byte) string {
	w := foldWalkers.Get().(*foldWalker)
	w.buf = *bytes.NewBuffer(args)
	w.dec.Reset(&w.buf)
	w.names, w.seen = w.names[:0], w.seen[:0]
	msg, loc, _ := w.walk()
	w.buf = bytes.Buffer{}
	w.dec.Reset(&w.buf)
	foldWalkers.Put(w)
	if msg == "" {
		return ""
	}
	slices.Reverse(loc)
	return fieldPath(loc) + msg
}

// walk reads one value. It returns the problem found in it ("" when
// none) with the path to the object that has it, innermost segment first,
// and false when the input does not decode. The path is built only when
// there is a problem.
func (w *foldWalker) walk() (string, []string, bool) {
	tok, err := w.dec.ReadToken()
	if err != nil {
		return "", nil, false
	}
	switch tok.Kind() {
	case '{':
		namesStart, seenStart := len(w.names), len(w.seen)
		defer func() { w.names, w.seen = w.names[:namesStart], w.seen[:seenStart] }()
		for w.dec.PeekKind() != '}' {
			raw, err := w.dec.ReadValue()
			if err != nil || raw.Kind() != '"' {
				return "", nil, false
			}
			from := len(w.names)
			if bytes.IndexByte(raw, '\\') < 0 {
				w.names = append(w.names, raw[1:len(raw)-1]...)
			} else if w.names, err = jsontext.AppendUnquote(w.names, raw); err != nil {
				return "", nil, false
			}
			name := w.names[from:]
			lo := namesStart
			for _, hi := range w.seen[seenStart:] {
				if prev := w.names[lo:hi]; bytes.EqualFold(prev, name) {
					return ": member names " + strconv.Quote(string(prev)) + " and " + strconv.Quote(string(name)) + " differ only by case", nil, true
				}
				lo = hi
			}
			w.seen = append(w.seen, len(w.names))
			if msg, loc, ok := w.walk(); !ok || msg != "" {
				return msg, append(loc, string(w.names[from:])), ok
			}
		}
	case '[':
		for i := 0; w.dec.PeekKind() != ']'; i++ {
			if msg, loc, ok := w.walk(); !ok || msg != "" {
				return msg, append(loc, strconv.Itoa(i)), ok
			}
		}
	default:
		return "", nil, true
	}
	_, err = w.dec.ReadToken() // the closing '}' or ']'
	return "", nil, err == nil
}
