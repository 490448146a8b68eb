package dlp

// automaton finds every occurrence of a set of ASCII keywords, without
// regard to case, in one pass (Aho-Corasick, compiled to a DFA over byte
// classes). Bytes that occur in no keyword share one class, and all digits
// another (a rule checks its keyword's digits), so the table is small
// enough for the first-level cache whatever the keywords.
type automaton struct {
	class [256]uint8
	nc    int
	// delta is the transition table, indexed by a state's row (the state
	// number times nc) plus a byte's class. An entry is the next state's
	// row times two, plus one when that state ends a keyword.
	delta []uint32
	// out lists, per state, the keywords ending there (by index).
	out      [][]int32
	keywords []string
}

// maxKeyword is the length keywords are cut to: a rule checks the rest.
const maxKeyword = 8

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

func isDigitByte(b byte) bool { return '0' <= b && b <= '9' }

func newAutomaton(keywords []string) *automaton {
	a := &automaton{keywords: keywords}
	next := uint8(1)
	for _, k := range keywords {
		for i := 0; i < len(k); i++ {
			b := lower(k[i])
			if isDigitByte(b) {
				b = '0'
			}
			if a.class[b] == 0 {
				a.class[b] = next
				next++
			}
		}
	}
	for b := 'A'; b <= 'Z'; b++ {
		a.class[b] = a.class[b+'a'-'A']
	}
	for b := '1'; b <= '9'; b++ {
		a.class[b] = a.class['0']
	}
	nc := int(next)
	a.nc = nc
	// The trie.
	type node struct {
		next map[uint8]int
		out  []int32
	}
	nodes := []node{{next: map[uint8]int{}}}
	for ki, k := range keywords {
		s := 0
		for i := 0; i < len(k); i++ {
			c := a.class[k[i]]
			n, ok := nodes[s].next[c]
			if !ok {
				n = len(nodes)
				nodes = append(nodes, node{next: map[uint8]int{}})
				nodes[s].next[c] = n
			}
			s = n
		}
		nodes[s].out = append(nodes[s].out, int32(ki))
	}
	// Breadth first: failure links, and the full transition table.
	n := len(nodes)
	fail := make([]int, n)
	trans := make([]int, n*nc)
	var queue []int
	for c := range nc {
		if t, ok := nodes[0].next[uint8(c)]; ok {
			trans[c] = t
			queue = append(queue, t)
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		nodes[s].out = append(nodes[s].out, nodes[fail[s]].out...)
		for c := range nc {
			if t, ok := nodes[s].next[uint8(c)]; ok {
				fail[t] = trans[fail[s]*nc+c]
				trans[s*nc+c] = t
				queue = append(queue, t)
			} else {
				trans[s*nc+c] = trans[fail[s]*nc+c]
			}
		}
	}
	a.delta = make([]uint32, len(trans))
	a.out = make([][]int32, n)
	for s := range n {
		a.out[s] = nodes[s].out
	}
	for i, t := range trans {
		v := uint32(t*nc) << 1
		if len(nodes[t].out) > 0 {
			v |= 1
		}
		a.delta[i] = v
	}
	return a
}

// keyword returns keyword k.
func (a *automaton) keyword(k int) string { return a.keywords[k] }
