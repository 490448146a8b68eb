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
func markAVX2(p *byte, blocks int, tab *teddyTables, kw, pii *uint32, carry uint32) uint32

// mark marks v[start:end] into kw and pii, one word per 32 bytes, given
// the carry before start, and returns the carry after end.
func (t *teddyTables) mark(v []byte, start, end int, kw, pii []uint32, carry uint32) uint32 {
	blocks := 0
	if useAVX2 && len(v)-start >= 34 {
		blocks = min((end-start)/32, (len(v)-start-2)/32)
	}
	if blocks > 0 {
		carry = markAVX2(&v[start], blocks, t, &kw[0], &pii[0], carry)
	}
	return t.markGeneric(v, start+32*blocks, end, kw[blocks:], pii[blocks:], carry)
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
