package config

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every [Problem], so errors.Is(err, ErrInvalid)
// tells a configuration that is wrong from one that could not be read.
var ErrInvalid = errors.New("invalid configuration")

// Problem is one thing wrong with a configuration, located by the file, the
// line and the YAML path of the value at fault, as in
//
//	sluice.yaml:12: servers.fs: unknown key "comand"
type Problem struct {
	File string // the configuration's Source; empty when unknown
	Line int    // 1-based; 0 when unknown
	Path string // dotted YAML path such as servers.fs.command[0]; empty for the whole document
	Msg  string
}

func (p *Problem) Error() string {
	var b strings.Builder
	switch {
	case p.File != "" && p.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", p.File, p.Line)
	case p.File != "":
		b.WriteString(p.File + ": ")
	case p.Line > 0:
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Unwrap returns [ErrInvalid].
func (p *Problem) Unwrap() error { return ErrInvalid }

// Problems returns every [Problem] in err, which may be a single Problem or
// a tree of errors joined with [errors.Join] or wrapped with %w.
func Problems(err error) []*Problem {
	var out []*Problem
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *Problem:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, e := range e.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// joinProblems returns the problems as one error, or nil when there are none.
func joinProblems(problems []*Problem) error {
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

var simpleKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// childPath returns the path of key under parent: "servers.fs", or
// servers["a b"] when key is not a plain word.
func childPath(parent, key string) string {
	if !simpleKey.MatchString(key) {
		return parent + "[" + strconv.Quote(key) + "]"
	}
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath returns the path of item i of the sequence at parent.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// problem returns a Problem at path, with the line of path or of its
// nearest ancestor that has one.
func (c *Config) problem(path, format string, args ...any) *Problem {
	return &Problem{File: c.Source, Line: c.lineOf(path), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// lineOf returns the line of path, or of its nearest ancestor with a known
// line, or 0.
func (c *Config) lineOf(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		path = parentPath(path)
	}
	return 0
}

// parentPath strips the last element from path: a[0] -> a, a.b -> a,
// a["x.y"] -> a.
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		// The element is [N] or ["quoted"]; find its opening bracket. A quoted
		// key may itself contain brackets, so scan for the opening one that
		// starts a valid element.
		for i := strings.LastIndexByte(path, '['); i >= 0; i = strings.LastIndexByte(path[:i], '[') {
			el := path[i+1 : len(path)-1]
			if _, err := strconv.Atoi(el); err == nil {
				return path[:i]
			}
			if s, err := strconv.Unquote(el); err == nil && strconv.Quote(s) == el {
				return path[:i]
			}
		}
		return ""
	}
	if i := strings.LastIndexAny(path, ".]"); i >= 0 {
		if path[i] == ']' {
			return path[:i+1]
		}
		return path[:i]
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// sortProblems orders problems by line, keeping the order of those on the
// same line and putting those without a line last.
func sortProblems(problems []*Problem) {
	slices.SortStableFunc(problems, func(a, b *Problem) int {
		switch {
		case a.Line == b.Line:
			return 0
		case a.Line == 0:
			return 1
		case b.Line == 0:
			return -1
		}
		return a.Line - b.Line
	})
}
