package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// The functions in this file work on JSON objects that [Decode] has already
// validated (or that Sluice produced itself). They scan bytes instead of
// decoding, so that looking up one member of a large params object costs
// little and the rest of the object is never touched.

var errMalformed = errors.New("malformed json object")

// EachMember calls fn for every member of obj in order. Names are unquoted.
func EachMember(obj jsontext.Value, fn func(name string, val jsontext.Value) error) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errMalformed
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return errMalformed
		}
		nEnd, esc := scanString(obj, i)
		if nEnd < 0 {
			return errMalformed
		}
		var name string
		if esc {
			s, err := unquote(obj[i:nEnd])
			if err != nil {
				return err
			}
			name = s
		} else {
			name = string(obj[i+1 : nEnd-1])
		}
		i = skipWS(obj, nEnd)
		if i >= len(obj) || obj[i] != ':' {
			return errMalformed
		}
		i = skipWS(obj, i+1)
		vEnd := skipValue(obj, i)
		if vEnd < 0 {
			return errMalformed
		}
		if err := fn(name, obj[i:vEnd]); err != nil {
			return err
		}
		i = skipWS(obj, vEnd)
		if i >= len(obj) {
			return errMalformed
		}
		switch obj[i] {
		case ',':
			i = skipWS(obj, i+1)
		case '}':
			return nil
		default:
			return errMalformed
		}
	}
	return errMalformed
}

// memberSpan locates member key in obj: the span [start,end) covers
// `"key":value` and vs/ve the value. found is false when absent.
type memberSpan struct {
	start, end, vs, ve int
}

func findMember(obj []byte, key string) (sp memberSpan, found bool, err error) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return sp, false, errMalformed
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return sp, false, nil
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return sp, false, errMalformed
		}
		start := i
		nEnd, esc := scanString(obj, i)
		if nEnd < 0 {
			return sp, false, errMalformed
		}
		var match, variant bool
		raw := obj[i+1 : nEnd-1]
		if esc {
			s, err := unquote(obj[i:nEnd])
			if err != nil {
				return sp, false, err
			}
			match = s == key
			variant = !match && strings.EqualFold(s, key)
		} else {
			match = string(raw) == key
			// No length check: "ſ" and "K" fold to ASCII letters (see isCaseVariant).
			variant = !match && strings.EqualFold(string(raw), key)
		}
		if variant {
			return sp, false, fmt.Errorf("%w: %q", ErrCaseVariant, key)
		}
		i = skipWS(obj, nEnd)
		if i >= len(obj) || obj[i] != ':' {
			return sp, false, errMalformed
		}
		i = skipWS(obj, i+1)
		vs := i
		vEnd := skipValue(obj, i)
		if vEnd < 0 {
			return sp, false, errMalformed
		}
		if match {
			if found {
				return sp, false, fmt.Errorf("duplicate member %q", key)
			}
			sp = memberSpan{start: start, end: vEnd, vs: vs, ve: vEnd}
			found = true
		}
		i = skipWS(obj, vEnd)
		if i >= len(obj) {
			return sp, false, errMalformed
		}
		switch obj[i] {
		case ',':
			i = skipWS(obj, i+1)
		case '}':
			return sp, found, nil
		default:
			return sp, false, errMalformed
		}
	}
	return sp, false, errMalformed
}

// Lookup returns the raw value of member key of obj. It fails when obj holds
// a member whose name differs from key only by case, so that a peer that
// matches names case-insensitively cannot be handed a different value than
// the one Sluice checked.
func Lookup(obj jsontext.Value, key string) (jsontext.Value, bool, error) {
	if len(obj) == 0 {
		return nil, false, nil
	}
	sp, ok, err := findMember(obj, key)
	if err != nil || !ok {
		return nil, false, err
	}
	return obj[sp.vs:sp.ve], true, nil
}

// LookupString returns member key of obj as a string. A member of another
// type is an error.
func LookupString(obj jsontext.Value, key string) (string, bool, error) {
	v, ok, err := Lookup(obj, key)
	if err != nil || !ok {
		return "", false, err
	}
	if v.Kind() != '"' {
		return "", false, fmt.Errorf("member %q must be a string", key)
	}
	s, err := unquote(v)
	return s, err == nil, err
}

// LookupPath follows a path of member names through nested objects.
func LookupPath(obj jsontext.Value, path ...string) (jsontext.Value, bool, error) {
	cur := obj
	for _, k := range path {
		if cur.Kind() != '{' {
			return nil, false, nil
		}
		v, ok, err := Lookup(cur, k)
		if err != nil || !ok {
			return nil, false, err
		}
		cur = v
	}
	return cur, true, nil
}

// SetMember returns a copy of obj with member key set to val (replaced in
// place if present, else added first). obj itself is not modified. A nil or
// empty obj is treated as {}.
func SetMember(obj jsontext.Value, key string, val jsontext.Value) (jsontext.Value, error) {
	if len(obj) == 0 {
		obj = jsontext.Value("{}")
	}
	sp, ok, err := findMember(obj, key)
	if err != nil {
		return nil, err
	}
	if ok {
		out := make([]byte, 0, len(obj)-(sp.ve-sp.vs)+len(val))
		out = append(out, obj[:sp.vs]...)
		out = append(out, val...)
		out = append(out, obj[sp.ve:]...)
		return out, nil
	}
	i := skipWS(obj, 0) // at '{'
	rest := skipWS(obj, i+1)
	out := make([]byte, 0, len(obj)+len(key)+len(val)+4)
	out = append(out, '{')
	out, _ = jsontext.AppendQuote(out, key)
	out = append(out, ':')
	out = append(out, val...)
	if rest < len(obj) && obj[rest] != '}' {
		out = append(out, ',')
	}
	out = append(out, obj[rest:]...)
	return out, nil
}

// DeleteMember returns a copy of obj without member key (obj itself when
// the member is absent).
func DeleteMember(obj jsontext.Value, key string) (jsontext.Value, error) {
	if len(obj) == 0 {
		return obj, nil
	}
	sp, ok, err := findMember(obj, key)
	if err != nil || !ok {
		return obj, err
	}
	start, end := sp.start, sp.end
	// Remove one adjacent comma: the following one, else the preceding one.
	j := skipWS(obj, end)
	if j < len(obj) && obj[j] == ',' {
		end = skipWS(obj, j+1)
	} else {
		k := start - 1
		for k >= 0 && isWS(obj[k]) {
			k--
		}
		if k >= 0 && obj[k] == ',' {
			start = k
		}
	}
	out := make([]byte, 0, len(obj)-(end-start))
	out = append(out, obj[:start]...)
	out = append(out, obj[end:]...)
	return out, nil
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// scanString returns the index just past the string starting at b[i] and
// whether it contains escapes; -1 if unterminated.
func scanString(b []byte, i int) (int, bool) {
	end := stringEnd(b, i)
	if end < 0 {
		return -1, false
	}
	return end, bytes.IndexByte(b[i+1:end-1], '\\') >= 0
}

// stringEnd returns the index just past the JSON string starting with the
// quote at b[i], or -1 if it is unterminated. It jumps from quote to quote
// with [bytes.IndexByte]: a quote ends the string unless an odd number of
// backslashes precedes it.
func stringEnd(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		n := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// skipValue returns the index just past the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		j, _ := scanString(b, i)
		return j
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				k, _ := scanString(b, j)
				if k < 0 {
					return -1
				}
				j = k - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || isWS(c) {
				break
			}
			j++
		}
		if j == i {
			return -1
		}
		return j
	}
}
