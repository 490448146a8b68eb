//go:build amd64 && !purego

package dlp

import "golang.org/x/sys/cpu"

// useAVX2 is whether marks are computed with vector instructions; tests
// turn it off to compare the two.
var useAVX2 = cpu.X86.HasAVX2

// markAVX2 marks blocks blocks of 32 bytes from p, as markBlock does; it
// reads two bytes past them.
//
//go:noescape
func markAVX2(p *byte, blocks int, tab *teddyTables, out *blockMarks, carry uint32) uint32

// mark marks v[start:end] into out, one element per 32 bytes, given the
// carry before start, and returns the carry after end.
func (t *teddyTables) mark(v []byte, start, end int, out []blockMarks, carry uint32) uint32 {
	if !useAVX2 {
		return t.markGeneric(v, start, end, out, carry)
	}
	// The vector code reads two bytes past its blocks.
	blocks := min((end-start)/32, (len(v)-start-2)/32)
	if blocks > 0 {
		carry = markAVX2(&v[start], blocks, t, &out[0], carry)
	}
	if rest := start + 32*blocks; rest < end {
		return t.markPadded(v, rest, end, out[blocks:], carry)
	}
	return carry
}

// markPadded marks v[from:end], at most 64 bytes, from a copy padded with
// zeros, so that the vector code may read past it.
func (t *teddyTables) markPadded(v []byte, from, end int, out []blockMarks, carry uint32) uint32 {
	var buf [2*32 + 2]byte
	copy(buf[:], v[from:min(len(v), end+2)])
	var m [2]blockMarks
	blocks := (end - from + 31) / 32
	markAVX2(&buf[0], blocks, t, &m[0], carry)
	for w := range blocks {
		base := from + 32*w
		keep := ^uint32(0)
		if n := end - base; n < 32 {
			keep = 1<<n - 1
		}
		// The last two positions of v: keyword starts, for the index to
		// check (the padding is not text).
		if tail := len(v) - 2 - base; tail < 32 {
			m[w].kw |= ^uint32(0) << max(0, tail)
		}
		out[w] = blockMarks{kw: m[w].kw & keep, pii: m[w].pii & keep, b64: m[w].b64 & keep}
	}
	return carryOf(v[end-1])
}

// byteMarksAVX2 marks, for blocks blocks of 32 bytes from p, the bytes
// equal to c1 or c2, and those from 0x80 when high is all ones.
//
//go:noescape
func byteMarksAVX2(p *byte, blocks int, c1, c2 byte, high uint32, out *uint32)

// byteMarks marks the bytes of v[start:end] equal to c1 or c2, and, when
// high is set, those from 0x80, one word per 32 bytes.
func byteMarks(v []byte, start, end int, c1, c2 byte, high bool, out []uint32) {
	blocks := 0
	if useAVX2 {
		blocks = (end - start) / 32
	}
	if blocks > 0 {
		h := uint32(0)
		if high {
			h = ^h
		}
		byteMarksAVX2(&v[start], blocks, c1, c2, h, &out[0])
	}
	byteMarksGeneric(v, start+32*blocks, end, c1, c2, high, out[blocks:])
}

// unescapeAVX2 copies blocks blocks of 32 bytes from src to dst, writing
// the filler for each backslash that escapes a quote and follows no
// backslash, and marks the other backslashes and the bytes from 0x80. It
// reads the byte before src and the one after the blocks, and returns
// non-zero when it wrote a filler.
//
//go:noescape
func unescapeAVX2(dst, src *byte, blocks int, marks *uint32) uint32

// copyUnescaping copies src[start:end] to dst, where it writes the filler
// for some backslashes escaping quotes (the first step of normalize), and
// marks the backslashes it leaves and the bytes from 0x80, one word per 32
// bytes. It reports whether it wrote a filler.
func copyUnescaping(dst, src []byte, start, end int, marks []uint32) bool {
	if !useAVX2 {
		copyMarking(dst, src, start, end, marks)
		return false
	}
	patched := false
	lo := start
	if lo == 0 {
		// The first block has no byte before it: from a padded copy.
		lo = min(32, end)
		patched = unescapePadded(dst, src, 0, lo, marks)
	}
	// The vector code reads the byte before its blocks and the one after.
	blocks := max(0, min((end-lo)/32, (len(src)-lo-1)/32))
	if blocks > 0 && unescapeAVX2(&dst[lo], &src[lo], blocks, &marks[(lo-start)/32]) != 0 {
		patched = true
	}
	if rest := lo + 32*blocks; rest < end && unescapePadded(dst, src, rest, end, marks[(rest-start)/32:]) {
		patched = true
	}
	return patched
}

// unescapePadded is unescapeAVX2 for src[from:to], at most 64 bytes, from
// a copy with the bytes around it and padded with zeros.
func unescapePadded(dst, src []byte, from, to int, marks []uint32) bool {
	var in, out [1 + 2*32 + 1]byte
	if from > 0 {
		in[0] = src[from-1]
	}
	copy(in[1:], src[from:min(len(src), to+1)])
	blocks := (to - from + 31) / 32
	var m [2]uint32
	patched := unescapeAVX2(&out[0], &in[1], blocks, &m[0]) != 0
	copy(dst[from:to], out[:to-from])
	for w := range blocks {
		marks[w] = m[w]
		if n := to - from - 32*w; n < 32 {
			marks[w] &= 1<<n - 1
		}
	}
	return patched
}
