package dlp

import (
	"math/bits"
	"strings"
)

// The scanner's first look at a text marks, 32 bytes at a time, the
// positions worth a closer look: where a keyword of the secret rules may
// start, and where a personal-data detector may start. On amd64 with AVX2
// the marks are computed with vector instructions (masks_amd64.s), the
// ends of a text from a padded copy; the portable code here computes the
// same marks byte by byte, elsewhere, and in tests to check the vector
// code.
//
// Keyword marks use nibble tables: the keywords are spread over sixteen
// buckets, and for each of a keyword's first three bytes (folded with
// |0x20, so case does not matter) the tables say which buckets have a
// keyword with that low nibble, and which with that high nibble, there.
// A position is marked when one bucket passes at all three bytes. The
// marks may be too many, never too few: the keyword index then checks the
// three bytes exactly.
//
// Personal-data marks are exact: a digit, '+' or '(' at the start of a
// word, and a capital there followed by a capital, or X, Y or Z (every
// identifier but the NIE starts with two capitals); every '@'; a ':'
// after a hex digit or a ':'.

// teddyTables are the nibble tables of two groups of eight buckets: for
// each group, for positions 0, 1 and 2, the table by low nibble then the
// one by high nibble, each 16 bytes written twice (the vector instruction
// looks up within 16-byte halves).
type teddyTables [12][32]byte

// maskChunk is how many bytes are marked at a time.
const maskChunk = 2048

// newTeddyTables spreads keywords over the buckets and fills the tables.
// follow gives, per keyword, the bytes that may come after a keyword of two
// bytes (nil for any). Each keyword goes to the bucket whose chance of
// passing on ordinary text grows least by it, by the byte frequencies of
// English prose and JSON (textFreq), so that few positions are marked.
func newTeddyTables(keywords []string, follow []func(byte) bool) *teddyTables {
	const buckets = 16
	lo, hi := assignBuckets(keywords, follow, buckets)
	t := &teddyTables{}
	for b := range buckets {
		g, bit := 6*(b/8), byte(1)<<(b%8)
		for pos := range 3 {
			for n := range 16 {
				if lo[b][pos]&(1<<n) != 0 {
					t[g+2*pos][n] |= bit
					t[g+2*pos][16+n] |= bit
				}
				if hi[b][pos]&(1<<n) != 0 {
					t[g+2*pos+1][n] |= bit
					t[g+2*pos+1][16+n] |= bit
				}
			}
		}
	}
	return t
}

// assignBuckets spreads keywords over buckets, and returns the nibbles of
// each bucket's keywords at each position.
func assignBuckets(keywords []string, follow []func(byte) bool, buckets int) (lo, hi [][3]uint16) {
	// The bytes each keyword may have at each position, folded.
	accepts := func(kw, pos int, c byte) bool {
		k := keywords[kw]
		switch {
		case pos < len(k):
			return c|0x20 == k[pos]|0x20
		case pos == 2 && len(k) == 2 && follow[kw] != nil:
			return follow[kw](c)
		}
		return true
	}
	// freq[lo][hi] is how often a byte of ordinary text, folded, has these
	// nibbles.
	var freq [16][16]float64
	for c := range 256 {
		f := byte(c) | 0x20
		freq[f&15][f>>4] += textFreq(byte(c))
	}
	// pass is the chance that a bucket with nibble sets l and h passes at
	// a position of ordinary text.
	pass := func(l, h [3]uint16) float64 {
		p := 1.0
		for pos := range 3 {
			q := 0.0
			for lo := range 16 {
				if l[pos]&(1<<lo) == 0 {
					continue
				}
				for hi := range 16 {
					if h[pos]&(1<<hi) != 0 {
						q += freq[lo][hi]
					}
				}
			}
			p *= q
		}
		return p
	}
	lo, hi = make([][3]uint16, buckets), make([][3]uint16, buckets)
	cost := make([]float64, buckets)
	for kw := range keywords {
		// The keyword's own nibbles at each position.
		var kl, kh [3]uint16
		for pos := range 3 {
			for c := range 256 {
				if accepts(kw, pos, byte(c)) {
					f := byte(c) | 0x20
					kl[pos] |= 1 << (f & 15)
					kh[pos] |= 1 << (f >> 4)
				}
			}
		}
		best, bestCost := 0, 2.0
		var bestLo, bestHi [3]uint16
		for b := range buckets {
			l, h := lo[b], hi[b]
			for pos := range 3 {
				l[pos] |= kl[pos]
				h[pos] |= kh[pos]
			}
			if d := pass(l, h) - cost[b]; d < bestCost {
				best, bestCost, bestLo, bestHi = b, d, l, h
			}
		}
		lo[best], hi[best] = bestLo, bestHi
		cost[best] += bestCost
	}
	return lo, hi
}

// textFreq is roughly how often byte c occurs in English prose and in
// JSON, letters of either case together.
func textFreq(c byte) float64 {
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	weights := [...]float64{10, 7, 6.5, 6, 5.5, 5.5, 5, 5, 5, 3.5, 3.3, 2.2, 2.3, 2, 1.9, 1.8, 1.6, 1.6, 1.5, 1.2, 0.8, 0.6, 0.15, 0.15, 0.1, 0.07}
	if l := lower(c); 'a' <= l && l <= 'z' {
		return weights[strings.IndexByte(letters, l)] / 100 / 2
	}
	switch {
	case c == ' ':
		return 0.12
	case isDigit(c):
		return 0.006
	case c == '"' || c == ',' || c == '.' || c == ':' || c == '\n':
		return 0.012
	case c == '_' || c == '-' || c == '/' || c == '{' || c == '}' || c == '[' || c == ']':
		return 0.004
	case c < 0x80:
		return 0.0005
	}
	return 0.0001
}

// blockMarks are the marks of 32 bytes, bit j for byte j: where keywords
// may start, where personal data may start, and which bytes are base64
// (letters, digits and + / - _ =).
type blockMarks struct {
	kw, pii, b64 uint32
}

// markBlock marks the positions v[i:min(i+32, end)], as the vector code
// does, given carry: bit 0 set when the byte before i is a letter or
// digit, bit 1 when it is a hex digit or ':'. It returns the marks and the
// carry for the next block. A position less than three bytes from the end
// of v is marked as a keyword start: the index checks those itself.
func (t *teddyTables) markBlock(v []byte, i, end int, carry uint32) (blockMarks, uint32) {
	var out blockMarks
	for j := i; j < min(end, i+32); j++ {
		c := v[j]
		bit := uint32(1) << (j - i)
		m := byte(0xff)
		if j+2 < len(v) {
			a, b := byte(0xff), byte(0xff)
			for pos := range 3 {
				f := v[j+pos] | 0x20
				a &= t[2*pos][f&15] & t[2*pos+1][f>>4]
				b &= t[6+2*pos][f&15] & t[6+2*pos+1][f>>4]
			}
			m = a | b
		}
		if m != 0 {
			out.kw |= bit
		}
		switch piiClass[c] {
		case cDigit, cPlus:
			if carry&1 == 0 {
				out.pii |= bit
			}
		case cUpper:
			if carry&1 == 0 && (j+1 < len(v) && isUpper(v[j+1]) || c >= 'X') {
				out.pii |= bit
			}
		case cAt:
			out.pii |= bit
		case cColon:
			if carry&2 != 0 {
				out.pii |= bit
			}
		}
		if b64class[c]&1 != 0 {
			out.b64 |= bit
		}
		carry = carryOf(c)
	}
	return out, carry
}

// markGeneric marks v[start:end] in blocks of 32 bytes into out, and
// returns the carry after end.
func (t *teddyTables) markGeneric(v []byte, start, end int, out []blockMarks, carry uint32) uint32 {
	for w, i := 0, start; i < end; w, i = w+1, i+32 {
		out[w], carry = t.markBlock(v, i, end, carry)
	}
	return carry
}

// runFinder finds, from base64 marks, the runs of base64 bytes at least
// minBase64Run long, as base64Runs does without marks, and passes each to
// the decoder (or to found, when there is none).
type runFinder struct {
	v     []byte
	prev  uint32 // the marks of the block before
	end   int    // where the last run found ends
	d     *decoder
	found func(v []byte, start, end int)
}

// add reads the base64 marks of block w of a chunk's marks, the 32 bytes
// from base, a block that skip did not pass over; last says whether the
// chunk ends the text.
func (r *runFinder) add(marks []blockMarks, w, base int, last bool) {
	m := marks[w].b64
	// The next block's marks: none after the text; when they are not made
	// yet, all ones to look for runs, none to measure them (the text is
	// read from there on).
	next, known := ^uint32(0), uint64(m)
	switch {
	case w+1 < len(marks):
		next = marks[w+1].b64
		known |= uint64(next) << 32
	case last:
		next = 0
	}
	x := uint64(m) | uint64(next)<<32
	// Bit i of y: sixteen base64 bytes from i on.
	y := x & (x >> 1)
	y &= y >> 2
	y &= y >> 4
	y &= y >> 8
	starts := uint32(y) &^ (m<<1 | r.prev>>31)
	r.prev = m
	for ; starts != 0; starts &= starts - 1 {
		k := bits.TrailingZeros32(starts)
		i := base + k
		if i < r.end {
			continue
		}
		// Its end: in the marks when it ends in them, else in the text.
		j := i + bits.TrailingZeros64(^(known >> k))
		if j-base >= 64 || j-base == 32 && uint32(known>>32) == 0 {
			for j < len(r.v) && b64class[r.v[j]]&1 != 0 {
				j++
			}
		}
		if j-i >= minBase64Run {
			r.end = j
			if r.d != nil {
				r.d.base64Run(r.v, i, j)
			} else {
				r.found(r.v, i, j)
			}
		}
	}
}

// skip reads the marks m of a block in which no run of sixteen can start,
// and reports whether it did: a run starts in a block only if the block
// ends in one or holds sixteen in a row. It is the test before add, small
// enough for the scan's loop to make without a call.
func (r *runFinder) skip(m uint32) bool {
	if m>>31 != 0 || has16(m) {
		return false
	}
	r.prev = m
	return true
}

// has16 reports whether m has sixteen bits set in a row.
func has16(m uint32) bool {
	m &= m >> 1
	m &= m >> 2
	m &= m >> 4
	m &= m >> 8
	return m != 0
}

// carryOf is the carry of the personal-data marks after byte c: bit 0 set
// when it is a letter or digit, bit 1 when it is a hex digit or ':'.
func carryOf(c byte) uint32 {
	carry := uint32(0)
	if isAlnum(c) {
		carry |= 1
	}
	if isHexByte(c) || c == ':' {
		carry |= 2
	}
	return carry
}

// byteMarksGeneric is byteMarks byte by byte.
func byteMarksGeneric(v []byte, start, end int, c1, c2 byte, high bool, out []uint32) {
	for w, i := 0, start; i < end; w, i = w+1, i+32 {
		m := uint32(0)
		for j := i; j < min(end, i+32); j++ {
			if c := v[j]; c == c1 || c == c2 || high && c >= 0x80 {
				m |= 1 << (j - i)
			}
		}
		out[w] = m
	}
}

// copyMarking copies src[start:end] to dst and marks its backslashes and
// bytes from 0x80, one word per 32 bytes.
func copyMarking(dst, src []byte, start, end int, marks []uint32) {
	if start < end {
		copy(dst[start:end], src[start:end])
		byteMarksGeneric(src, start, end, '\\', '\\', true, marks)
	}
}
