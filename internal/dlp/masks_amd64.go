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
