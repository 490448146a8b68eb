//go:build !amd64 || purego

package dlp

// mark marks v[start:end] into kw and pii, one word per 32 bytes, given
// the carry before start, and returns the carry after end.
func (t *teddyTables) mark(v []byte, start, end int, kw, pii []uint32, carry uint32) uint32 {
	return t.markGeneric(v, start, end, kw, pii, carry)
}
