package dlp

import (
	"regexp/syntax"
	"slices"
)

// digitDFA matches whole strings of decimal digits against a regular
// expression over digits, compiled to a deterministic automaton: one table
// lookup per digit, where the regexp package backtracks through the large
// alternations of numbering plans (about half a microsecond a number).
type digitDFA struct {
	// next[s*10+d] is the state after digit d in state s; -1 is no state.
	next   []int32
	accept []bool
}

// maxDFAStates bounds the automaton; a pattern that needs more is left to
// the regexp package.
const maxDFAStates = 1 << 15

// nfa is a Thompson automaton over the ten digits.
type nfa struct {
	// edges: on digits (a bit set of ten) to a state; eps: without input.
	on   []uint16
	to   []int32
	eps  [][]int32
	done int32 // the accepting state
}

func (a *nfa) state() int32 {
	a.on = append(a.on, 0)
	a.to = append(a.to, -1)
	a.eps = append(a.eps, nil)
	return int32(len(a.on) - 1)
}

// build adds re between states from and to, and reports whether re is
// made of digits only.
func (a *nfa) build(re *syntax.Regexp, from, to int32) bool {
	switch re.Op {
	case syntax.OpEmptyMatch:
		a.eps[from] = append(a.eps[from], to)
	case syntax.OpLiteral:
		cur := from
		for i, r := range re.Rune {
			if r < '0' || r > '9' {
				return false
			}
			next := to
			if i < len(re.Rune)-1 {
				next = a.state()
			}
			mid := a.state()
			a.eps[cur] = append(a.eps[cur], mid)
			a.on[mid], a.to[mid] = 1<<(r-'0'), next
			cur = next
		}
		if len(re.Rune) == 0 {
			a.eps[from] = append(a.eps[from], to)
		}
	case syntax.OpCharClass:
		var set uint16
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if lo < '0' || hi > '9' {
				return false
			}
			for r := lo; r <= hi; r++ {
				set |= 1 << (r - '0')
			}
		}
		mid := a.state()
		a.eps[from] = append(a.eps[from], mid)
		a.on[mid], a.to[mid] = set, to
	case syntax.OpCapture:
		return a.build(re.Sub[0], from, to)
	case syntax.OpConcat:
		cur := from
		for i, sub := range re.Sub {
			next := to
			if i < len(re.Sub)-1 {
				next = a.state()
			}
			if !a.build(sub, cur, next) {
				return false
			}
			cur = next
		}
		if len(re.Sub) == 0 {
			a.eps[from] = append(a.eps[from], to)
		}
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if !a.build(sub, from, to) {
				return false
			}
		}
	case syntax.OpQuest:
		a.eps[from] = append(a.eps[from], to)
		return a.build(re.Sub[0], from, to)
	case syntax.OpStar, syntax.OpPlus:
		loop := a.state()
		a.eps[from] = append(a.eps[from], loop)
		if re.Op == syntax.OpStar {
			a.eps[loop] = append(a.eps[loop], to)
		}
		back := a.state()
		if !a.build(re.Sub[0], loop, back) {
			return false
		}
		a.eps[back] = append(a.eps[back], loop, to)
	default:
		return false
	}
	return true
}

// newDigitDFA compiles pattern, which must match the whole string, or
// returns nil when it is not over digits only or needs too many states.
func newDigitDFA(pattern string) *digitDFA {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil
	}
	re = re.Simplify()
	a := &nfa{}
	start := a.state()
	a.done = a.state()
	if !a.build(re, start, a.done) {
		return nil
	}
	// Subset construction. A set of NFA states is a sorted list, closed
	// under moves without input; mark tells members apart while a set is
	// built (mark[s] == gen).
	mark := make([]uint32, len(a.on))
	gen := uint32(0)
	closure := func(seed []int32) []int32 {
		gen++
		set := make([]int32, 0, 2*len(seed))
		stack := make([]int32, 0, 16)
		for _, s := range seed {
			if mark[s] != gen {
				mark[s] = gen
				stack = append(stack, s)
			}
		}
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			set = append(set, s)
			for _, t := range a.eps[s] {
				if mark[t] != gen {
					mark[t] = gen
					stack = append(stack, t)
				}
			}
		}
		slices.Sort(set)
		return set
	}
	key := func(set []int32) string {
		b := make([]byte, 0, 4*len(set))
		for _, s := range set {
			b = append(b, byte(s), byte(s>>8), byte(s>>16), byte(s>>24))
		}
		return string(b)
	}
	first := closure([]int32{start})
	d := &digitDFA{}
	index := map[string]int32{key(first): 0}
	sets := [][]int32{first}
	for s := 0; s < len(sets); s++ {
		if s >= maxDFAStates {
			return nil
		}
		set := sets[s]
		d.accept = append(d.accept, slices.Contains(set, a.done))
		var moves [10][]int32
		for _, m := range set {
			for digit := range 10 {
				if a.on[m]&(1<<digit) != 0 {
					moves[digit] = append(moves[digit], a.to[m])
				}
			}
		}
		for digit := range 10 {
			if len(moves[digit]) == 0 {
				d.next = append(d.next, -1)
				continue
			}
			next := closure(moves[digit])
			k := key(next)
			id, ok := index[k]
			if !ok {
				id = int32(len(sets))
				index[k] = id
				sets = append(sets, next)
			}
			d.next = append(d.next, id)
		}
	}
	return d
}

// match reports whether digits, all of them, match.
func (d *digitDFA) match(digits []byte) bool {
	s := int32(0)
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
		s = d.next[int(s)*10+int(c-'0')]
		if s < 0 {
			return false
		}
	}
	return d.accept[s]
}
