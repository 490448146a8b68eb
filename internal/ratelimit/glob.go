package ratelimit

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// glob is a pattern of a rate limit's target, in the syntax of
// [path.Match], except that "*" and "?" also match "/": targets name tools,
// methods and resource URIs, not file paths, and "file:///*" must cover
// "file:///a/b" or a limit would miss calls it was meant to count.
type glob struct {
	pattern string
	literal bool
	// stars is the pattern split at "*" when that is its only
	// metacharacter, the common case.
	stars []string
}

func compileGlob(p string) (glob, error) {
	if p == "" {
		return glob{}, errors.New("empty glob")
	}
	if !utf8.ValidString(p) {
		return glob{}, errors.New("glob is not valid UTF-8")
	}
	if _, err := path.Match(p, ""); err != nil {
		return glob{}, fmt.Errorf("invalid glob %q: %w", p, err)
	}
	g := glob{pattern: p}
	switch {
	case !strings.ContainsAny(p, `*?[\`):
		g.literal = true
	case !strings.ContainsAny(p, `?[\`):
		g.stars = strings.Split(p, "*")
	}
	return g, nil
}

func (g glob) match(s string) bool {
	switch {
	case g.literal:
		return g.pattern == s
	case g.stars != nil:
		return matchStars(g.stars, s)
	}
	return matchGeneral(g.pattern, s)
}

// matchStars matches literal parts separated by stars: the first is a
// prefix, the last a suffix, the others appear in order in between (the
// leftmost occurrence of each is always the best choice).
func matchStars(parts []string, s string) bool {
	first, last := parts[0], parts[len(parts)-1]
	if len(s) < len(first)+len(last) || !strings.HasPrefix(s, first) || !strings.HasSuffix(s, last) {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return true
}

// matchGeneral matches a valid pattern with "?", classes or escapes. On a
// mismatch it backtracks to the last star, which swallows one more
// character; at most len(p)*len(s) steps.
func matchGeneral(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for {
		if pi < len(p) && p[pi] == '*' {
			pi++
			starP, starS = pi, si
			continue
		}
		if pi < len(p) && si < len(s) {
			if pw, sw, ok := matchElem(p[pi:], s[si:]); ok {
				pi, si = pi+pw, si+sw
				continue
			}
		} else if pi == len(p) && si == len(s) {
			return true
		}
		if starP < 0 || starS >= len(s) {
			return false
		}
		_, w := utf8.DecodeRuneInString(s[starS:])
		starS += w
		pi, si = starP, starS
	}
}

// matchElem matches one pattern element (not "*") at the start of p
// against the first character of s, returning the widths consumed.
func matchElem(p, s string) (pw, sw int, ok bool) {
	r, sw := utf8.DecodeRuneInString(s)
	switch p[0] {
	case '?':
		return 1, sw, true
	case '[':
		return matchClass(p, r, sw)
	case '\\':
		_, w := utf8.DecodeRuneInString(p[1:])
		return 1 + w, sw, p[1:1+w] == s[:sw]
	}
	_, w := utf8.DecodeRuneInString(p)
	return w, sw, p[:w] == s[:sw]
}

// matchClass matches the class "[...]" at the start of p against r.
func matchClass(p string, r rune, sw int) (pw, w int, ok bool) {
	i, negated, in := 1, false, false
	if p[i] == '^' {
		negated = true
		i++
	}
	for first := true; first || p[i] != ']'; first = false {
		lo, n := classChar(p, i)
		i = n
		hi := lo
		if p[i] == '-' {
			hi, i = classChar(p, i+1)
		}
		if lo <= r && r <= hi {
			in = true
		}
	}
	return i + 1, sw, in != negated
}

// classChar reads a possibly escaped character of a class at p[i]; the
// pattern was checked by path.Match, so the class is well formed.
func classChar(p string, i int) (rune, int) {
	if p[i] == '\\' {
		i++
	}
	r, w := utf8.DecodeRuneInString(p[i:])
	return r, i + w
}
