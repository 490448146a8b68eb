package dlp

import (
	"encoding/binary"
	"math/bits"
	"sort"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// text is what detectors read: the input with JSON string escapes decoded,
// invisible characters removed and compatibility characters folded
// (NFKC), so that "a\u0040b.example", "a@b.example" written in full-width
// letters, or a key with a zero-width space in it read as what they are.
// Each rewrite leaves a mark that maps view back to the input; no marks:
// view is the input.
type text struct {
	view  []byte
	marks []mark
	n     int // length of the input
}

// mark records that view[view:view+vlen] was written for the srcLen input
// bytes at src (an escape, a folded or removed character); the bytes
// after it, up to the next mark, are the input's from src+srcLen on.
type mark struct {
	view, src, srcLen int32
	vlen              int32
}

// src returns where view byte i comes from: its start and end in the
// input.
func (t *text) src(i int) (int, int) {
	if t.marks == nil {
		return i, i + 1
	}
	k := sort.Search(len(t.marks), func(k int) bool { return int(t.marks[k].view) > i }) - 1
	if k < 0 {
		return i, i + 1
	}
	m := t.marks[k]
	if i < int(m.view+m.vlen) {
		return int(m.src), int(m.src + m.srcLen)
	}
	at := int(m.src+m.srcLen) + i - int(m.view+m.vlen)
	return at, at + 1
}

// span returns the input's offsets of view[i:j], widened so that it
// neither starts nor ends inside a two-byte escape: replacing the span
// must not leave half an escape behind.
func (t *text) span(i, j int) (int, int) {
	if i > 0 && t.view[i-1] == filler {
		i--
	}
	if j < len(t.view) && t.view[j-1] == filler {
		j++
	}
	if t.marks == nil {
		return i, j
	}
	start, _ := t.src(i)
	_, end := t.src(j - 1)
	return start, end
}

// invisible reports whether r is a character that renders as nothing and
// may be used to split a value so that a pattern misses it: zero-width
// characters, bidirectional controls, the soft hyphen, variation
// selectors and Unicode tag characters.
func invisible(r rune) bool {
	switch {
	case r == 0x00AD, r == 0x034F, r == 0x061C, r == 0x115F, r == 0x1160, r == 0x17B4, r == 0x17B5, r == 0x180E:
		return true
	case 0x200B <= r && r <= 0x200F, 0x202A <= r && r <= 0x202E, 0x2060 <= r && r <= 0x206F:
		return true
	case r == 0x3164, r == 0xFEFF, r == 0xFFA0:
		return true
	case 0xFE00 <= r && r <= 0xFE0F, 0xE0000 <= r && r <= 0xE0FFF:
		return true
	}
	return false
}

// normalize builds the text of b, in dst's memory when it is large enough.
// Most input is plain: it is returned as is unless it holds a backslash or
// a non-ASCII byte.
func normalize(b, dst []byte) text {
	// Two-byte escapes are patched in a copy (a filler and the character:
	// offsets stay the same), up to the first thing that changes length
	// (another escape, a non-ASCII byte); from there the view is built
	// byte by byte. The copy is made 32 bytes at a time, escaped quotes
	// patched on the way, and the other backslashes and non-ASCII bytes
	// marked (copyUnescaping): tool output is JSON text with an escape
	// every few bytes, too many to search for one by one.
	if cap(dst) < len(b) {
		dst = make([]byte, len(b))
	}
	view := dst[:len(b)]
	changed := false
	first := len(b)
	var small [8]uint32 // marks for a chunk; a short text zeroes fewer
	marks := small[:]
	if len(b) > 32*len(small) {
		var chunk [maskChunk / 32]uint32
		marks = chunk[:]
	}
	next := 0 // bytes before next are in an escape already patched
chunks:
	for start := 0; start < len(b); start += maskChunk {
		end := min(len(b), start+maskChunk)
		if copyUnescaping(view, b, start, end, marks) {
			changed = true
		}
		for w := range (end - start + 31) / 32 {
			for m := marks[w]; m != 0; m &= m - 1 {
				i := start + 32*w + bits.TrailingZeros32(m)
				if i < next {
					continue
				}
				if b[i] >= utf8.RuneSelf || i+1 >= len(b) {
					first = i
					break chunks
				}
				e := shortEscape[b[i+1]]
				if e == 0 || e == '\\' && doubleEscape(b[i:]) {
					first = i
					break chunks
				}
				view[i], view[i+1] = filler, e
				changed = true
				next = i + 2
			}
		}
	}
	if first == len(b) {
		if !changed {
			return text{view: b, n: len(b)}
		}
		return text{view: view, n: len(b)}
	}
	t := text{view: view[:first], marks: make([]mark, 0, 16), n: len(b)}
	var buf [utf8.UTFMax]byte
	for i := first; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && i+1 < len(b):
			if e := shortEscape[b[i+1]]; e != 0 && !doubleEscape(b[i:]) {
				// Two bytes for two: a filler (which no detector takes
				// for part of a value) and the character, so that offsets
				// need no mark.
				t.view = append(t.view, filler, e)
				i += 2
				continue
			}
			r, n := unescape(b[i:])
			if n == 0 {
				t.view = append(t.view, c)
				i++
				continue
			}
			k := 0
			if !invisible(r) {
				k = utf8.EncodeRune(buf[:], r)
			}
			t.rewrite(i, n, buf[:k])
			i += n
		case c < utf8.RuneSelf:
			// A run of plain bytes, copied at once.
			j := i + 1
			for j < len(b) && b[j] != '\\' && b[j] < utf8.RuneSelf {
				j++
			}
			t.view = append(t.view, b[i:j]...)
			i = j
		default:
			r, n := utf8.DecodeRune(b[i:])
			switch {
			case invisible(r):
				t.rewrite(i, n, nil)
			case n == 1 || norm.NFKC.QuickSpan(b[i:i+n]) == n:
				t.view = append(t.view, b[i:i+n]...)
			default:
				var out [32]byte
				folded := norm.NFKC.Append(out[:0], b[i:i+n]...)
				kept := folded[:0]
				for k := 0; k < len(folded); {
					r, m := utf8.DecodeRune(folded[k:])
					if !invisible(r) {
						kept = append(kept, folded[k:k+m]...)
					}
					k += m
				}
				t.rewrite(i, n, kept)
			}
			i += n
		}
	}
	return t
}

// firstNonASCII returns the index of the first byte of b that is not
// ASCII, or -1; eight bytes at a time.
func firstNonASCII(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			return i
		}
	}
	return -1
}

// filler stands for the backslash of a two-byte escape in the view.
const filler = 0

// shortEscape maps the letter of a two-byte JSON escape to its character,
// for the escapes whose character keeps the text's shape ("\/" is not
// one: it would split "://").
var shortEscape = [256]byte{'"': '"', '\\': '\\', 'n': '\n', 't': '\t', 'r': '\r', 'b': '\b', 'f': '\f'}

// rewrite appends p in place of the n input bytes at src.
func (t *text) rewrite(src, n int, p []byte) {
	t.marks = append(t.marks, mark{view: int32(len(t.view)), vlen: int32(len(p)), src: int32(src), srcLen: int32(n)})
	t.view = append(t.view, p...)
}

// doubleEscape reports whether b starts with a \u escape written in a JSON
// string that is itself inside a JSON string ("\\u0040"): text a tool
// returns is often JSON, and an agent reading it decodes both.
func doubleEscape(b []byte) bool {
	if len(b) < 7 || b[1] != '\\' || b[2] != 'u' {
		return false
	}
	_, ok := hex4(b[3:])
	return ok
}

// unescape decodes the JSON escape at the start of b (b[0] is a
// backslash), returning the character and the escape's length, or 0 when
// b does not start with one.
func unescape(b []byte) (rune, int) {
	if doubleEscape(b) {
		r, _ := hex4(b[3:])
		if 0xD800 <= r && r < 0xE000 {
			return utf8.RuneError, 7
		}
		return r, 7
	}
	switch b[1] {
	case '"', '\\', '/':
		return rune(b[1]), 2
	case 'n':
		return '\n', 2
	case 't':
		return '\t', 2
	case 'r':
		return '\r', 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0, 0
		}
		if 0xD800 <= r && r < 0xDC00 && len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
			if lo, ok := hex4(b[8:]); ok && 0xDC00 <= lo && lo < 0xE000 {
				return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), 12
			}
		}
		if 0xD800 <= r && r < 0xE000 {
			return utf8.RuneError, 6
		}
		return r, 6
	}
	return 0, 0
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		v, ok := hexVal(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
