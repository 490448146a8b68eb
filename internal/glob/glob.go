// Package glob matches the patterns that configuration uses to name
// servers, tools, prompts, resource URIs and JSON-RPC methods. Every guard
// that takes such patterns (allowlist, policy, ratelimit) uses this one
// implementation, so that a pattern means the same thing wherever it is
// written.
//
// The syntax is that of [path.Match]: "*" matches any run of characters,
// including none; "?" exactly one character; "[abc]" one character of the
// set, "[a-z]" a range, "[^a-z]" the complement; "\c" the character c
// itself (\*, \?, \[, \\). Everything else matches itself,
// case-sensitively. A character is a Unicode code point.
//
// Names and URIs are not file paths, so, unlike path.Match, "*" and "?"
// also match "/": "fs_*" matches "fs_a/b", and "file:///data/*" covers
// everything under /data. With path.Match semantics a deny pattern such as
// "*delete*" would miss a server's tool named "admin/delete" and let it
// through. For strings without "/" the two agree exactly. There is no "**".
package glob

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Pattern is a compiled pattern. The zero value matches nothing but the
// empty string and is never returned by [Compile].
type Pattern struct {
	pattern string
	literal bool // no metacharacters: plain string comparison
	// stars holds the pattern split at "*" when "*" is its only
	// metacharacter ("read_*", "*secret*"), the common case, matched with
	// prefix, suffix and substring searches.
	stars []string
}

// Errors of [Compile] besides the syntax errors of [path.Match].
var (
	ErrEmpty = errors.New("empty pattern")
	ErrUTF8  = errors.New("pattern is not valid UTF-8")
)

// Compile checks a pattern. Syntax errors are those of path.Match, which
// since Go 1.16 reports a malformed pattern whatever the name. An empty
// pattern (a likely slip in a configuration file) and one that is not
// valid UTF-8 are rejected too.
func Compile(p string) (Pattern, error) {
	if p == "" {
		return Pattern{}, ErrEmpty
	}
	if !utf8.ValidString(p) {
		return Pattern{}, fmt.Errorf("%w: %q", ErrUTF8, p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return Pattern{}, fmt.Errorf("invalid pattern %q: %w", p, err)
	}
	g := Pattern{pattern: p}
	switch {
	case !strings.ContainsAny(p, `*?[\`):
		g.literal = true
	case !strings.ContainsAny(p, `?[\`):
		g.stars = strings.Split(p, "*")
	}
	return g, nil
}

// String returns the pattern as written.
func (g Pattern) String() string { return g.pattern }

// Literal returns the string the pattern stands for when it has no
// metacharacters.
func (g Pattern) Literal() (string, bool) { return g.pattern, g.literal }

// Prefix returns p when the pattern is exactly p followed by one "*" and
// nothing else ("read_*"), the shape whose coverage is easy to reason about.
func (g Pattern) Prefix() (string, bool) {
	if len(g.stars) == 2 && g.stars[1] == "" {
		return g.stars[0], true
	}
	return "", false
}

// Match reports whether s matches the pattern.
func (g Pattern) Match(s string) bool {
	switch {
	case g.literal:
		return g.pattern == s
	case g.stars != nil:
		return matchStars(g.stars, s)
	}
	return matchGlob(g.pattern, s)
}

// MayMatchPrefixed reports whether the pattern may match some string that
// starts with prefix (a resource template's fixed start, for instance):
// false only when the pattern's own literal start and prefix disagree.
func (g Pattern) MayMatchPrefixed(prefix string) bool {
	lit := g.pattern
	if i := strings.IndexAny(lit, `*?[\`); i >= 0 {
		lit = lit[:i]
	} else if !strings.HasPrefix(lit, prefix) {
		return false // a literal pattern must be at least as long as prefix
	}
	return strings.HasPrefix(lit, prefix) || strings.HasPrefix(prefix, lit)
}

// List is a list of patterns; it matches what any of them matches.
type List []Pattern

// CompileList compiles each pattern, reporting every one that is invalid
// with its index.
func CompileList(pats []string) (List, error) {
	if len(pats) == 0 {
		return nil, nil
	}
	l := make(List, 0, len(pats))
	var errs []error
	for i, p := range pats {
		g, err := Compile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("[%d]: %w", i, err))
			continue
		}
		l = append(l, g)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// Any reports whether s matches any pattern of the list.
func (l List) Any(s string) bool {
	for _, g := range l {
		if g.Match(s) {
			return true
		}
	}
	return false
}

// matchStars matches a pattern whose only metacharacter is "*", given as
// the literal parts between the stars (at least two). The first part must
// be a prefix, the last a suffix, and the others must appear in order in
// between; taking the leftmost occurrence of each leaves the most room for
// the rest, so no backtracking is needed.
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

// matchGlob matches a valid pattern against s. It walks both strings once,
// remembering the last "*" it passed; on a mismatch it lets that star absorb
// one more character of s and resumes after it. A later star supersedes an
// earlier one, which keeps the walk linear in practice and never worse than
// len(p)*len(s).
func matchGlob(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for {
		if pi < len(p) {
			if p[pi] == '*' {
				for pi < len(p) && p[pi] == '*' {
					pi++
				}
				starP, starS = pi, si
				continue
			}
			if si < len(s) {
				if pw, sw, ok := matchOne(p[pi:], s[si:]); ok {
					pi += pw
					si += sw
					continue
				}
			}
		} else if si == len(s) {
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

// matchOne matches the pattern element at the start of p (not a star)
// against the character at the start of s (not empty). It returns the
// widths of the element and of the character.
func matchOne(p, s string) (pw, sw int, ok bool) {
	r, sw := utf8.DecodeRuneInString(s)
	switch p[0] {
	case '?':
		return 1, sw, true
	case '[':
		return matchClass(p, r, sw)
	case '\\':
		if len(p) < 2 {
			return 0, 0, false // cannot happen for a valid pattern
		}
		_, w := utf8.DecodeRuneInString(p[1:])
		lit := p[1 : 1+w]
		return 1 + w, len(lit), strings.HasPrefix(s, lit)
	default:
		_, w := utf8.DecodeRuneInString(p)
		lit := p[:w]
		return w, len(lit), strings.HasPrefix(s, lit)
	}
}

// matchClass matches the class at the start of p ("[...]") against rune r
// of width sw.
func matchClass(p string, r rune, sw int) (pw, w int, ok bool) {
	i := 1
	negated := false
	if i < len(p) && p[i] == '^' {
		negated = true
		i++
	}
	in := false
	for n := 0; ; n++ {
		if i >= len(p) {
			return 0, 0, false // unterminated: cannot happen for a valid pattern
		}
		if p[i] == ']' && n > 0 {
			i++
			break
		}
		lo, next, okLo := classChar(p, i)
		if !okLo {
			return 0, 0, false
		}
		i = next
		hi := lo
		if i < len(p) && p[i] == '-' {
			var okHi bool
			hi, next, okHi = classChar(p, i+1)
			if !okHi {
				return 0, 0, false
			}
			i = next
		}
		if lo <= r && r <= hi {
			in = true
		}
	}
	return i, sw, in != negated
}

// classChar reads one possibly escaped character of a class at p[i].
func classChar(p string, i int) (r rune, next int, ok bool) {
	if i >= len(p) || p[i] == '-' || p[i] == ']' {
		return 0, 0, false
	}
	if p[i] == '\\' {
		i++
		if i >= len(p) {
			return 0, 0, false
		}
	}
	r, w := utf8.DecodeRuneInString(p[i:])
	if r == utf8.RuneError && w == 1 {
		return 0, 0, false
	}
	return r, i + w, true
}
