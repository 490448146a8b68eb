package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Hasher turns sensitive values into keyed tokens: the same value gives
// the same token under one key, so an operator holding the key can search
// the log for a value (`sluice audit hash VALUE`) that the log never holds.
type Hasher struct {
	pool sync.Pool
}

// TokenPrefix starts every token, so that tokens are found by search and
// told apart from values.
const TokenPrefix = "hmac:"

// NewHasher returns a hasher keyed with key.
func NewHasher(key []byte) *Hasher {
	key = bytes.Clone(key)
	h := &Hasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, key) }
	return h
}

// Token returns the token for value: "hmac:" and the base64url HMAC-SHA256
// of the value's text (a string's characters, a number as written).
func (h *Hasher) Token(value string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	io.WriteString(m, value)
	var sum [sha256.Size]byte
	var out [len(TokenPrefix) + 43]byte // 43: 32 bytes in unpadded base64
	copy(out[:], TokenPrefix)
	base64.RawURLEncoding.Encode(out[len(TokenPrefix):], m.Sum(sum[:0]))
	h.pool.Put(m)
	return string(out[:])
}

// Placeholder reports whether s, a string in recorded arguments or
// results, stands for a value that was not recorded: a token, a shape's
// "<string:N>", "<number>" or "<bool>", or a note that a value was omitted
// or unreadable. rest reports a shape's "<+N more>", which stands for the
// rest of the array it ends.
func Placeholder(s string) (unknown, rest bool) {
	if t, ok := strings.CutPrefix(s, TokenPrefix); ok {
		return len(t) == 43 && strings.Trim(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == "", false
	}
	if len(s) < 3 || s[0] != '<' || s[len(s)-1] != '>' {
		return false, false
	}
	in := s[1 : len(s)-1]
	if n, ok := strings.CutPrefix(in, "+"); ok {
		n, ok = strings.CutSuffix(n, " more")
		return ok && isDigits(n), ok && isDigits(n)
	}
	if n, ok := strings.CutPrefix(in, "string:"); ok {
		return isDigits(n), false
	}
	if n, ok := strings.CutPrefix(in, "omitted: "); ok {
		n, ok = strings.CutSuffix(n, " bytes")
		return ok && isDigits(n), false
	}
	return in == "number" || in == "bool" || in == "unreadable", false
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// Mode says what is recorded of arguments or results.
type Mode string

// Record modes.
const (
	// RecordNone keeps nothing.
	RecordNone Mode = "none"
	// RecordShape keeps the structure: member names, and for values only
	// their type (and a string's length).
	RecordShape Mode = "shape"
	// RecordRedacted keeps the structure, numbers and booleans, and every
	// string as its token: nothing readable, everything searchable.
	RecordRedacted Mode = "redacted"
	// RecordFull keeps the values, except sensitive ones, which become
	// tokens.
	RecordFull Mode = "full"
)

// Valid reports whether m is a known mode.
func (m Mode) Valid() bool {
	switch m {
	case RecordNone, RecordShape, RecordRedacted, RecordFull:
		return true
	}
	return false
}

// Recorder applies record modes to JSON values.
type Recorder struct {
	Hasher *Hasher
	// Sensitive member names (compared without regard to case): every
	// value under such a member becomes a token, in every mode that keeps
	// values.
	Sensitive map[string]bool
	// MaxBytes bounds what is kept of one value (default 16 KiB); a larger
	// record is replaced by a note of its size.
	MaxBytes int
}

// decoder is a JSON decoder kept for reuse: a new one costs more than
// reading a small value with it.
type decoder struct {
	rd  bytes.Reader
	dec *jsontext.Decoder
}

var decoders = sync.Pool{New: func() any {
	d := &decoder{}
	d.dec = jsontext.NewDecoder(&d.rd)
	return d
}}

// shapeItems is how many items of an array a shape keeps.
const shapeItems = 16

// DefaultMaxRecorded is the default [Recorder.MaxBytes].
const DefaultMaxRecorded = 16 << 10

// Record returns what mode keeps of v (nil for none or an empty v).
func (r *Recorder) Record(mode Mode, v jsontext.Value) jsontext.Value {
	if mode == RecordNone || mode == "" || len(v) == 0 {
		return nil
	}
	max := r.MaxBytes
	if max <= 0 {
		max = DefaultMaxRecorded
	}
	if len(v) > 4*max {
		// Not worth walking: what it would give is bound to be too large
		// or, for a shape, of little use.
		return jsontext.Value(fmt.Sprintf(`"<omitted: %d bytes>"`, len(v)))
	}
	out := make([]byte, 0, min(len(v)+64, max+64))
	if o, ok := r.walkPlain(v, out, mode); ok {
		out = o
	} else {
		d := decoders.Get().(*decoder)
		d.rd.Reset(v)
		d.dec.Reset(&d.rd, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
		o, err := r.walk(d.dec, out, mode, false)
		d.rd.Reset(nil)
		decoders.Put(d)
		if err != nil {
			return jsontext.Value(`"<unreadable>"`)
		}
		out = o
	}
	if len(out) > max {
		return jsontext.Value(fmt.Sprintf(`"<omitted: %d bytes>"`, len(v)))
	}
	return out
}

func (r *Recorder) walk(dec *jsontext.Decoder, out []byte, mode Mode, sensitive bool) ([]byte, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return out, err
	}
	switch tok.Kind() {
	case '{':
		out = append(out, '{')
		for i := 0; dec.PeekKind() != '}'; i++ {
			name, err := dec.ReadToken()
			if err != nil {
				return out, err
			}
			if i > 0 {
				out = append(out, ',')
			}
			n := name.String()
			out = appendQuoted(out, n)
			out = append(out, ':')
			if out, err = r.walk(dec, out, mode, sensitive || r.isSensitive(n)); err != nil {
				return out, err
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return out, err
		}
		return append(out, '}'), nil
	case '[':
		out = append(out, '[')
		i := 0
		for ; dec.PeekKind() != ']'; i++ {
			if mode == RecordShape && i >= shapeItems {
				if err := dec.SkipValue(); err != nil {
					return out, err
				}
				continue
			}
			if i > 0 {
				out = append(out, ',')
			}
			if out, err = r.walk(dec, out, mode, sensitive); err != nil {
				return out, err
			}
		}
		if mode == RecordShape && i > shapeItems {
			out = append(out, `,"<+`...)
			out = strconv.AppendInt(out, int64(i-shapeItems), 10)
			out = append(out, ` more>"`...)
		}
		if _, err := dec.ReadToken(); err != nil {
			return out, err
		}
		return append(out, ']'), nil
	case '"':
		s := tok.String()
		switch {
		case mode == RecordShape:
			return append(append(append(out, `"<string:`...), strconv.Itoa(len(s))...), `>"`...), nil
		case sensitive || mode == RecordRedacted:
			return appendQuoted(out, r.Hasher.Token(s)), nil
		}
		return appendQuoted(out, s), nil
	case '0':
		switch {
		case mode == RecordShape:
			return append(out, `"<number>"`...), nil
		case sensitive:
			return appendQuoted(out, r.Hasher.Token(tok.String())), nil
		}
		return append(out, tok.String()...), nil
	case 't', 'f':
		switch {
		case mode == RecordShape:
			return append(out, `"<bool>"`...), nil
		case sensitive:
			return appendQuoted(out, r.Hasher.Token(tok.String())), nil
		}
		return append(out, tok.String()...), nil
	default: // null
		return append(out, "null"...), nil
	}
}

func (r *Recorder) isSensitive(name string) bool {
	if len(r.Sensitive) == 0 {
		return false
	}
	if r.Sensitive[name] {
		return true
	}
	return r.Sensitive[strings.ToLower(name)]
}

// walkPlain does what walk does, straight from the bytes, for the values
// most arguments are: JSON whose strings hold no escapes, so that a
// string's bytes are its text. It reports false for anything else (an
// escape, invalid JSON, deep nesting), which walk then reads; it never
// gives a result walk would not.
func (r *Recorder) walkPlain(v []byte, out []byte, mode Mode) ([]byte, bool) {
	p := plainWalk{r: r, v: v, mode: mode}
	out, ok := p.value(out, false, 0)
	if !ok || p.ws() != len(v) {
		return nil, false
	}
	return out, true
}

type plainWalk struct {
	r    *Recorder
	v    []byte
	i    int
	mode Mode
}

// plainDepth bounds the nesting walkPlain follows; deeper values go to
// walk.
const plainDepth = 32

// ws skips whitespace and returns the position after it.
func (p *plainWalk) ws() int {
	for p.i < len(p.v) && isSpace(p.v[p.i]) {
		p.i++
	}
	return p.i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// str reads a string without escapes, of valid UTF-8, at p.i and returns
// its text. (The decoder reads invalid UTF-8 as U+FFFD.)
func (p *plainWalk) str() (string, bool) {
	if p.i >= len(p.v) || p.v[p.i] != '"' {
		return "", false
	}
	start, ascii := p.i+1, true
	for j := start; j < len(p.v); j++ {
		switch c := p.v[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(p.v[start:j]) {
				return "", false
			}
			p.i = j + 1
			return string(p.v[start:j]), true
		case c == '\\' || c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

func (p *plainWalk) value(out []byte, sensitive bool, depth int) ([]byte, bool) {
	if depth > plainDepth || p.ws() >= len(p.v) {
		return out, false
	}
	switch c := p.v[p.i]; {
	case c == '{':
		out, empty := p.open(out, '{', '}')
		if empty {
			return out, true
		}
		for n := 0; ; n++ {
			p.ws()
			name, ok := p.str()
			if !ok || p.ws() >= len(p.v) || p.v[p.i] != ':' {
				return out, false
			}
			p.i++
			if n > 0 {
				out = append(out, ',')
			}
			out = appendQuoted(out, name)
			out = append(out, ':')
			if out, ok = p.value(out, sensitive || p.r.isSensitive(name), depth+1); !ok {
				return out, false
			}
			if more, ok := p.next('}'); !ok || !more {
				return append(out, '}'), ok
			}
		}
	case c == '[':
		out, empty := p.open(out, '[', ']')
		if empty {
			return out, true
		}
		for n := 0; ; n++ {
			var ok bool
			if p.mode == RecordShape && n >= shapeItems {
				// Read for validity, not kept.
				mark := len(out)
				out, ok = p.value(out, sensitive, depth+1)
				out = out[:mark]
			} else {
				if n > 0 {
					out = append(out, ',')
				}
				out, ok = p.value(out, sensitive, depth+1)
			}
			if !ok {
				return out, false
			}
			if more, ok := p.next(']'); !ok {
				return out, false
			} else if more {
				continue
			}
			if p.mode == RecordShape && n+1 > shapeItems {
				out = append(out, `,"<+`...)
				out = strconv.AppendInt(out, int64(n+1-shapeItems), 10)
				out = append(out, ` more>"`...)
			}
			return append(out, ']'), true
		}
	case c == '"':
		s, ok := p.str()
		if !ok {
			return out, false
		}
		switch {
		case p.mode == RecordShape:
			return append(append(append(out, `"<string:`...), strconv.Itoa(len(s))...), `>"`...), true
		case sensitive || p.mode == RecordRedacted:
			return appendQuoted(out, p.r.Hasher.Token(s)), true
		}
		return appendQuoted(out, s), true
	case c == 't' || c == 'f' || c == 'n':
		var lit string
		switch c {
		case 't':
			lit = "true"
		case 'f':
			lit = "false"
		default:
			lit = "null"
		}
		if len(p.v)-p.i < len(lit) || string(p.v[p.i:p.i+len(lit)]) != lit {
			return out, false
		}
		p.i += len(lit)
		switch {
		case c == 'n':
			return append(out, "null"...), true
		case p.mode == RecordShape:
			return append(out, `"<bool>"`...), true
		case sensitive:
			return appendQuoted(out, p.r.Hasher.Token(lit)), true
		}
		return append(out, lit...), true
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		if !p.number() {
			return out, false
		}
		num := p.v[start:p.i]
		switch {
		case p.mode == RecordShape:
			return append(out, `"<number>"`...), true
		case sensitive:
			return appendQuoted(out, p.r.Hasher.Token(string(num))), true
		}
		return append(out, num...), true
	}
	return out, false
}

// open reads a container's opening byte at p.i; empty reports a container
// closed at once.
func (p *plainWalk) open(out []byte, open, close byte) ([]byte, bool) {
	p.i++
	out = append(out, open)
	if p.ws() < len(p.v) && p.v[p.i] == close {
		p.i++
		return append(out, close), true
	}
	return out, false
}

// next reads what follows a container's item: a comma (more) or close.
func (p *plainWalk) next(close byte) (more, ok bool) {
	if p.ws() >= len(p.v) {
		return false, false
	}
	switch p.v[p.i] {
	case ',':
		p.i++
		return true, true
	case close:
		p.i++
		return false, true
	}
	return false, false
}

// number reads a JSON number at p.i: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (p *plainWalk) number() bool {
	v, i := p.v, p.i
	digits := func() bool {
		j := i
		for i < len(v) && v[i] >= '0' && v[i] <= '9' {
			i++
		}
		return i > j
	}
	if i < len(v) && v[i] == '-' {
		i++
	}
	switch {
	case i < len(v) && v[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(v) && v[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(v) && (v[i] == 'e' || v[i] == 'E') {
		i++
		if i < len(v) && (v[i] == '+' || v[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	p.i = i
	return true
}
