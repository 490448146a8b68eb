package dlp

import "slices"

// keywordIndex finds every occurrence of the rules' keywords, without
// regard to case, by their first three bytes. Each three-byte spelling a
// keyword may start with (in every case the keyword is matched in, or as
// written when all its rules are case-sensitive) sets a bit in a filter of
// 2^filterBits bits, indexed by a multiplicative hash. At a position the
// first look marked (teddy), the scan hashes the three bytes there and
// tests the bit; a position whose bit is set is looked up in a table of
// the spellings, and the keywords starting with that spelling are compared
// whole.
//
// A keyword shorter than three bytes is entered once for each byte its
// rules accept after it (every byte when one rule takes any), and, for the
// last positions of a text, checked directly.
type keywordIndex struct {
	// keywords are in lower case, cut to maxKeyword bytes (a rule checks
	// the rest).
	keywords []string
	filter   []uint64
	// slots is an open-addressing table of spellings: a slot holds the
	// spelling's three bytes plus slotUsed, and the keywords it starts.
	slots    []uint32
	slotKws  [][]int32
	slotMask uint32
	// short are the keywords of one or two bytes; single, per byte, the
	// keywords of one byte.
	short  []int32
	single [256][]int32
	// teddy marks where keywords may start; nil with keywords of one byte,
	// which every position may start.
	teddy *teddyTables
}

// maxKeyword is the length keywords are cut to: a rule checks the rest.
const maxKeyword = 8

const (
	filterBits = 17
	hashMul    = 0x9E3779B1
	slotUsed   = 1 << 24
)

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

func filterHash(x uint32) uint32 { return (x * hashMul) >> (32 - filterBits) }

// newKeywordIndex indexes keywords (in lower case, at most maxKeyword
// bytes). spellings gives, per keyword, the cases it is matched in: nil for
// any case, or the exact spellings. follow gives, per keyword, the bytes
// that may come after it (nil for any): used for keywords of less than
// three bytes.
func newKeywordIndex(keywords []string, spellings [][]string, follow []func(byte) bool) *keywordIndex {
	x := &keywordIndex{keywords: keywords, filter: make([]uint64, 1<<filterBits/64)}
	entries := map[uint32][]int32{}
	add := func(kw int, s string) {
		var key uint32
		for i := range 3 {
			key |= uint32(s[i]) << (8 * i)
		}
		if list := entries[key]; len(list) == 0 || list[len(list)-1] != int32(kw) {
			entries[key] = append(list, int32(kw))
		}
	}
	for kw, k := range keywords {
		var starts []string
		if spellings[kw] != nil {
			for _, s := range spellings[kw] {
				starts = append(starts, s[:min(3, len(s))])
			}
		} else {
			starts = caseVariants(k[:min(3, len(k))])
		}
		if len(k) < 3 {
			x.short = append(x.short, int32(kw))
		}
		if len(k) == 1 {
			for _, s := range starts {
				x.single[s[0]] = append(x.single[s[0]], int32(kw))
			}
			continue
		}
		for _, s := range starts {
			if len(s) == 3 {
				add(kw, s)
				continue
			}
			for c := range 256 {
				if follow[kw] == nil || follow[kw](byte(c)) {
					add(kw, s+string([]byte{byte(c)}))
				}
			}
		}
	}
	if !slices.ContainsFunc(keywords, func(k string) bool { return len(k) == 1 }) {
		x.teddy = newTeddyTables(keywords, follow)
	}
	size := uint32(16)
	for size < uint32(len(entries))*4 {
		size *= 2
	}
	x.slots = make([]uint32, size)
	x.slotKws = make([][]int32, size)
	x.slotMask = size - 1
	for key, kws := range entries {
		h := filterHash(key)
		x.filter[h/64] |= 1 << (h % 64)
		for i := key * hashMul & x.slotMask; ; i = (i + 1) & x.slotMask {
			if x.slots[i] == 0 {
				x.slots[i], x.slotKws[i] = key|slotUsed, kws
				break
			}
		}
	}
	return x
}

// caseVariants returns s in every combination of cases of its ASCII
// letters.
func caseVariants(s string) []string {
	out := []string{""}
	for i := 0; i < len(s); i++ {
		c := s[i]
		var next []string
		for _, p := range out {
			next = append(next, p+s[i:i+1])
			if 'a' <= c && c <= 'z' {
				next = append(next, p+string([]byte{c - 'a' + 'A'}))
			}
		}
		out = next
	}
	return out
}

// keyword returns keyword k.
func (x *keywordIndex) keyword(k int) string { return x.keywords[k] }

// find calls hit for every keyword occurrence in v, with the keyword's
// index and the offset just past its end, in the order of their starts,
// looking at every position (the scan looks only where teddy marks).
func (x *keywordIndex) find(v []byte, hit func(kw, end int)) {
	for i, c := range v {
		for _, kw := range x.single[c] {
			hit(int(kw), i+1)
		}
		x.position(v, i, hit)
	}
}

// position reports the keywords of two bytes or more starting at v[i].
func (x *keywordIndex) position(v []byte, i int, hit func(kw, end int)) {
	if i+3 <= len(v) {
		if key := key3(v, i); x.filtered(key) {
			x.at(v, i, key, hit)
		}
		return
	}
	// The last two positions: keywords of two bytes only.
	for _, kw := range x.short {
		if k := x.keywords[kw]; len(k) == 2 && len(k) <= len(v)-i && x.matches(v[i:], k) {
			hit(int(kw), i+len(k))
		}
	}
}

// key3 is the three bytes at v[i], the key of the filter and the table.
func key3(v []byte, i int) uint32 { return uint32(v[i]) | uint32(v[i+1])<<8 | uint32(v[i+2])<<16 }

// filtered reports whether the filter lets key through: some keyword may
// start with those three bytes.
func (x *keywordIndex) filtered(key uint32) bool {
	h := filterHash(key)
	return x.filter[h/64]>>(h%64)&1 != 0
}

// at compares the keywords that may start at v[i], whose first three
// bytes are key, and reports those that do.
func (x *keywordIndex) at(v []byte, i int, key uint32, hit func(kw, end int)) {
	for s := key * hashMul & x.slotMask; x.slots[s] != 0; s = (s + 1) & x.slotMask {
		if x.slots[s] != key|slotUsed {
			continue
		}
		for _, kw := range x.slotKws[s] {
			if k := x.keywords[kw]; len(k) <= len(v)-i && x.matches(v[i:], k) {
				hit(int(kw), i+len(k))
			}
		}
		return
	}
}

// matches reports whether v starts with keyword k, without regard to case.
func (x *keywordIndex) matches(v []byte, k string) bool {
	for j := 0; j < len(k); j++ {
		if lower(v[j]) != k[j] {
			return false
		}
	}
	return true
}
