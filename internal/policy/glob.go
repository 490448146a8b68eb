package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// A glob matches server names, tool and prompt names, resource URIs and
// methods. The syntax is that of [path.Match] ("*", "?", "[a-z]", "[^x]",
// "\*"), except that "*" and "?" also match "/": targets are names and URIs,
// not file paths, and "file:///data/*" is meant to cover everything under
// /data. Matching is case-sensitive over Unicode code points.
type glob struct {
	pattern string
	toks    []token
	// fast paths for the common shapes
	literal        bool
	prefix, suffix string // pattern is prefix + "*" + suffix (no other metacharacters)
	oneStar        bool
}

type tokenKind uint8

const (
	tokLit   tokenKind = iota
	tokAny             // ?
	tokStar            // *
	tokClass           // [...]
)

type token struct {
	kind    tokenKind
	lit     string
	negated bool
	ranges  []rune // pairs lo, hi
}

var errEmptyGlob = errors.New("empty pattern")

// compileGlob checks p with [path.Match] and builds its matcher.
func compileGlob(p string) (*glob, error) {
	if p == "" {
		return nil, errEmptyGlob
	}
	if !utf8.ValidString(p) {
		return nil, fmt.Errorf("pattern %q is not valid UTF-8", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return nil, fmt.Errorf("invalid pattern %q: %w", p, err)
	}
	g := &glob{pattern: p}
	if !strings.ContainsAny(p, `*?[\`) {
		g.literal = true
		return g, nil
	}
	if strings.Count(p, "*") == 1 && !strings.ContainsAny(p, `?[\`) {
		i := strings.IndexByte(p, '*')
		g.oneStar, g.prefix, g.suffix = true, p[:i], p[i+1:]
		return g, nil
	}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			g.toks = append(g.toks, token{kind: tokLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(p); {
		switch c := p[i]; c {
		case '*':
			flush()
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != tokStar {
				g.toks = append(g.toks, token{kind: tokStar})
			}
			i++
		case '?':
			flush()
			g.toks = append(g.toks, token{kind: tokAny})
			i++
		case '\\':
			_, w := utf8.DecodeRuneInString(p[i+1:])
			lit.WriteString(p[i+1 : i+1+w])
			i += 1 + w
		case '[':
			flush()
			t, n := parseClass(p[i:])
			g.toks = append(g.toks, t)
			i += n
		default:
			_, w := utf8.DecodeRuneInString(p[i:])
			lit.WriteString(p[i : i+w])
			i += w
		}
	}
	flush()
	return g, nil
}

// parseClass parses the class at the start of p, which path.Match has
// already accepted, and returns it with its length in bytes.
func parseClass(p string) (token, int) {
	t := token{kind: tokClass}
	i := 1
	if i < len(p) && p[i] == '^' {
		t.negated = true
		i++
	}
	char := func() rune {
		if p[i] == '\\' {
			i++
		}
		r, w := utf8.DecodeRuneInString(p[i:])
		i += w
		return r
	}
	for first := true; i < len(p) && (first || p[i] != ']'); first = false {
		lo := char()
		hi := lo
		if i < len(p) && p[i] == '-' {
			i++
			hi = char()
		}
		t.ranges = append(t.ranges, lo, hi)
	}
	return t, i + 1
}

// match reports whether s matches the glob.
func (g *glob) match(s string) bool {
	switch {
	case g.literal:
		return s == g.pattern
	case g.oneStar:
		return len(s) >= len(g.prefix)+len(g.suffix) && strings.HasPrefix(s, g.prefix) && strings.HasSuffix(s, g.suffix)
	}
	return matchTokens(g.toks, s)
}

// matchTokens walks tokens and s once, remembering the last star passed;
// on a mismatch that star absorbs one more character and the walk resumes
// after it. A later star supersedes an earlier one, so the cost is at most
// len(tokens)*len(s).
func matchTokens(toks []token, s string) bool {
	ti, si := 0, 0
	starT, starS := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			if t.kind == tokStar {
				ti++
				starT, starS = ti, si
				continue
			}
			if n, ok := t.matchAt(s[si:]); ok {
				ti++
				si += n
				continue
			}
		} else if si == len(s) {
			return true
		}
		if starT < 0 || starS >= len(s) {
			return false
		}
		_, w := utf8.DecodeRuneInString(s[starS:])
		starS += w
		ti, si = starT, starS
	}
}

// matchAt matches a non-star token at the start of s and returns the
// number of bytes it consumed.
func (t token) matchAt(s string) (int, bool) {
	if t.kind == tokLit {
		return len(t.lit), strings.HasPrefix(s, t.lit)
	}
	if s == "" {
		return 0, false
	}
	r, w := utf8.DecodeRuneInString(s)
	if t.kind == tokAny {
		return w, true
	}
	in := false
	for i := 0; i < len(t.ranges); i += 2 {
		if t.ranges[i] <= r && r <= t.ranges[i+1] {
			in = true
			break
		}
	}
	return w, in != t.negated
}

// globs is a list of globs; an empty list is "no restriction" where the
// caller says so.
type globs []*glob

func compileGlobs(pats []string) (globs, error) {
	out := make(globs, 0, len(pats))
	var errs []error
	for i, p := range pats {
		g, err := compileGlob(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
			continue
		}
		out = append(out, g)
	}
	return out, errors.Join(errs...)
}

// any reports whether one of the globs matches s.
func (gs globs) any(s string) bool {
	for _, g := range gs {
		if g.match(s) {
			return true
		}
	}
	return false
}
