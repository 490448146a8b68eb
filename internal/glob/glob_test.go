package glob

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		name    string
		want    bool
	}{
		{"read_file", "read_file", true},
		{"read_file", "read_files", false},
		{"read_file", "Read_file", false},
		{"*", "", true},
		{"*", "anything at all", true},
		{"*", "with/slash", true},
		{"read_*", "read_file", true},
		{"read_*", "read_", true},
		{"read_*", "rea", false},
		{"read_*", "write_file", false},
		{"*_file", "read_file", true},
		{"*delete*", "delete", true},
		{"*delete*", "admin/delete_all", true},
		{"*delete*", "Delete", false},
		{"fs_*", "fs_a/b", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"a*b*c", "acb", false},
		{"a**b", "ab", true},
		{"*a*a*a*a*b", strings.Repeat("a", 40), false},
		{"?", "a", true},
		{"?", "é", true},
		{"?", "/", true},
		{"?", "", false},
		{"?", "ab", false},
		{"??", "日本", true},
		{"[abc]", "b", true},
		{"[abc]", "d", false},
		{"[a-c]x", "bx", true},
		{"[a-c]x", "dx", false},
		{"[^a-c]", "d", true},
		{"[^a-c]", "a", false},
		{"[^a-c]", "/", true},
		{"[à-ÿ]", "é", true},
		{"[\\]]", "]", true},
		{"[\\-]", "-", true},
		{"[a\\-z]", "-", true},
		{"[a\\-z]", "b", false},
		{"[z-a]", "m", false},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\?`, "a?", true},
		{`a\?`, "ab", false},
		{`\[x]`, "[x]", true},
		{`\\`, `\`, true},
		{`\é`, "é", true},
		{"é*", "été", true},
		{"*é", "café", true},
		{"tool.v2", "tool.v2", true},
		{"tool.v2", "toolxv2", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.name, func(t *testing.T) {
			g, err := Compile(tt.pattern)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.pattern, err)
			}
			if got := g.Match(tt.name); got != tt.want {
				t.Errorf("match(%q, %q) = %v, want %v", tt.pattern, tt.name, got, tt.want)
			}
			if got := refMatch(tt.pattern, tt.name); got != tt.want {
				t.Errorf("reference matcher disagrees with the table: %v", got)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	tests := []struct {
		pattern string
		wantErr error
	}{
		{"", ErrEmpty},
		{"[", path.ErrBadPattern},
		{"[a", path.ErrBadPattern},
		{"[]", path.ErrBadPattern},
		{"[^]", path.ErrBadPattern},
		{"[]a]", path.ErrBadPattern},
		{"[-a]", path.ErrBadPattern},
		{"[a-]", path.ErrBadPattern},
		{`\`, path.ErrBadPattern},
		{`ab\`, path.ErrBadPattern},
		{`[a\`, path.ErrBadPattern},
		{"x*[", path.ErrBadPattern},
		{"a\xffb", ErrUTF8},
		{"[\xff]", ErrUTF8},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			_, err := Compile(tt.pattern)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Compile(%q) = %v, want %v", tt.pattern, err, tt.wantErr)
			}
		})
	}
}

// FuzzMatch checks the matcher on any pattern and name: it never panics;
// New rejects exactly the patterns that are empty, not UTF-8 or malformed for
// path.Match; for ASCII names without "/" it agrees with path.Match; and for
// every name it agrees with refMatch, an independent matcher built on
// path.Match one character at a time. The seed corpus is in
// testdata/fuzz/FuzzMatch.
func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"read_*", "read_file"}, {"*delete*", "admin/delete"}, {"[a-c]?x", "b/x"},
		{"[^a]*", "日本"}, {`\*`, "*"}, {"*??", "日"}, {"[", "a"}, {"a*b*c", "abbbc"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if len(pattern) > 64 || len(name) > 64 {
			return
		}
		g, err := Compile(pattern)
		_, pathErr := path.Match(pattern, name)
		wantErr := pattern == "" || !utf8.ValidString(pattern) || pathErr != nil
		if pathErr == nil && utf8.ValidString(pattern) && pattern != "" {
			_, pathErr = path.Match(pattern, "")
			wantErr = pathErr != nil
		}
		if (err != nil) != wantErr {
			t.Fatalf("Compile(%q) = %v, path.Match error %v", pattern, err, pathErr)
		}
		if err != nil {
			return
		}
		got := g.Match(name)
		if isPlainASCII(name) {
			want, _ := path.Match(pattern, name)
			if got != want {
				t.Fatalf("match(%q, %q) = %v, path.Match = %v", pattern, name, got, want)
			}
		}
		if want := refMatch(pattern, name); got != want {
			t.Fatalf("match(%q, %q) = %v, reference = %v", pattern, name, got, want)
		}
	})
}

func isPlainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || s[i] == '/' {
			return false
		}
	}
	return true
}

// refMatch is a slow reference for the glob semantics: it splits a valid
// pattern into elements ("*", or one element that matches one character),
// splits name into characters, and matches by dynamic programming, asking
// path.Match whether one element matches one character. path.Match refuses
// "/" for "?" only, so that one case is answered here.
func refMatch(pattern, name string) bool {
	var elems []string
	for i := 0; i < len(pattern); {
		j := i + 1
		switch pattern[i] {
		case '\\':
			_, w := utf8.DecodeRuneInString(pattern[i+1:])
			j = i + 1 + w
		case '[':
			j = i + 1
			if j < len(pattern) && pattern[j] == '^' {
				j++
			}
			for first := true; j < len(pattern); j++ {
				if pattern[j] == '\\' {
					j++
				} else if pattern[j] == ']' && !first {
					j++
					break
				}
				first = false
			}
		case '*':
		default:
			_, w := utf8.DecodeRuneInString(pattern[i:])
			j = i + w
		}
		elems = append(elems, pattern[i:j])
		i = j
	}
	var chars []string
	for i := 0; i < len(name); {
		_, w := utf8.DecodeRuneInString(name[i:])
		chars = append(chars, name[i:i+w])
		i += w
	}
	one := func(elem, ch string) bool {
		if elem == "?" {
			return true
		}
		ok, err := path.Match(elem, ch)
		return ok && err == nil
	}
	// m[i][j]: elems[i:] matches chars[j:].
	m := make([][]bool, len(elems)+1)
	for i := range m {
		m[i] = make([]bool, len(chars)+1)
	}
	m[len(elems)][len(chars)] = true
	for i := len(elems) - 1; i >= 0; i-- {
		for j := len(chars); j >= 0; j-- {
			if elems[i] == "*" {
				m[i][j] = m[i+1][j] || (j < len(chars) && m[i][j+1])
			} else {
				m[i][j] = j < len(chars) && one(elems[i], chars[j]) && m[i+1][j+1]
			}
		}
	}
	return m[0][0]
}

// TestList checks that a list matches what any of its patterns matches and
// that compiling one reports every invalid pattern.
func TestList(t *testing.T) {
	l, err := CompileList([]string{"read_*", "list_dir"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"read_file": true, "list_dir": true, "write_file": false, "": false} {
		if got := l.Any(name); got != want {
			t.Errorf("Any(%q) = %v, want %v", name, got, want)
		}
	}
	if l, err := CompileList(nil); err != nil || l.Any("x") {
		t.Errorf("empty list: %v %v", l, err)
	}
	_, err = CompileList([]string{"[", "ok", ""})
	if !errors.Is(err, path.ErrBadPattern) || !errors.Is(err, ErrEmpty) {
		t.Errorf("CompileList = %v, want both errors", err)
	}
}

// TestShapes checks what lint-like callers learn of a pattern's shape.
func TestShapes(t *testing.T) {
	for _, tt := range []struct {
		pattern      string
		literal      string
		isLiteral    bool
		prefix       string
		isPrefixStar bool
	}{
		{"read_file", "read_file", true, "", false},
		{"read_*", "read_*", false, "read_", true},
		{"*", "*", false, "", true},
		{"*_file", "*_file", false, "", false},
		{"a*b*", "a*b*", false, "", false},
		{`read\*`, `read\*`, false, "", false},
	} {
		g, err := Compile(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		lit, isLit := g.Literal()
		pre, isPre := g.Prefix()
		if isLit != tt.isLiteral || (isLit && lit != tt.literal) || isPre != tt.isPrefixStar || pre != tt.prefix || g.String() != tt.pattern {
			t.Errorf("%q: Literal %q %v, Prefix %q %v, String %q", tt.pattern, lit, isLit, pre, isPre, g.String())
		}
	}
}

// TestMayMatchPrefixed checks the question list filtering asks of a
// resource template: can the pattern match something starting so?
func TestMayMatchPrefixed(t *testing.T) {
	for _, tt := range []struct {
		pattern, prefix string
		want            bool
	}{
		{"file:///data/*", "file:///data/", true},
		{"file:///data/*", "file:///", true},
		{"file:///data/*", "file:///etc/", false},
		{"file:///data/a.csv", "file:///data/", true},
		{"file:///data/a.csv", "file:///data/a.csv/more", false},
		{"file:///data/a.csv", "file:///etc/", false},
		{"*", "anything", true},
		{"demo://[a-z]*", "demo://x", true},
		{"demo://[a-z]*", "other://", false},
	} {
		g, err := Compile(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if got := g.MayMatchPrefixed(tt.prefix); got != tt.want {
			t.Errorf("%q.MayMatchPrefixed(%q) = %v, want %v", tt.pattern, tt.prefix, got, tt.want)
		}
	}
}
