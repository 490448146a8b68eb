//go:build !amd64 || purego

package dlp

// useAVX2 is false: there is no vector code here.
var useAVX2 = false

// mark marks v[start:end] into out, one element per 32 bytes, given the
// carry before start, and returns the carry after end.
func (t *teddyTables) mark(v []byte, start, end int, out []blockMarks, carry uint32) uint32 {
	return t.markGeneric(v, start, end, out, carry)
}

// byteMarks marks the bytes of v[start:end] equal to c1 or c2, and, when
// high is set, those from 0x80, one word per 32 bytes.
func byteMarks(v []byte, start, end int, c1, c2 byte, high bool, out []uint32) {
	byteMarksGeneric(v, start, end, c1, c2, high, out)
}

// copyUnescaping copies src[start:end] to dst, and marks its backslashes
// and the bytes from 0x80, one word per 32 bytes (the first step of
// normalize). It reports whether it wrote a filler: never, here.
func copyUnescaping(dst, src []byte, start, end int, marks []uint32) bool {
	copyMarking(dst, src, start, end, marks)
	return false
}
