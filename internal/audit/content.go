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
	d := decoders.Get().(*decoder)
	d.rd.Reset(v)
	d.dec.Reset(&d.rd, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	out, err := r.walk(d.dec, make([]byte, 0, min(len(v)+64, max+64)), mode, false)
	d.rd.Reset(nil)
	decoders.Put(d)
	if err != nil {
		return jsontext.Value(`"<unreadable>"`)
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
