package minimize

import (
	"bytes"
	"errors"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// pointer is a parsed JSON pointer whose segments may be "*".
type pointer []string

// parsePointer reads a JSON pointer (RFC 6901: "/a/b~1c/0").
func parsePointer(s string) (pointer, error) {
	if !strings.HasPrefix(s, "/") {
		return nil, errors.New("a JSON pointer starts with '/'")
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(p)
	}
	return parts, nil
}

// matchesPrefixOf reports whether p matches the first len(p) segments of
// path.
func (p pointer) matchesPrefixOf(path []string) bool {
	if len(p) > len(path) {
		return false
	}
	for i, seg := range p {
		if seg != "*" && seg != path[i] {
			return false
		}
	}
	return true
}

// walker rewrites a JSON value: it drops the members and items a
// projection excludes, and keeps at most maxItems items of each array.
type walker struct {
	allow, deny []pointer
	maxItems    int
	// What it did.
	dropped, capped int
}

type verdict uint8

const (
	drop verdict = iota
	keep
	// descend: an object or array is walked into; a scalar is kept or
	// dropped as its own path is allowed or not.
	descend
)

// decide says what becomes of the value at path, and whether the path
// itself is allowed (for a scalar met while descending).
func (w *walker) decide(path []string) (verdict, bool) {
	deeperDeny := false
	for _, d := range w.deny {
		if d.matchesPrefixOf(path) {
			return drop, false
		}
		if len(d) > len(path) && d[:len(path)].matchesPrefixOf(path) {
			deeperDeny = true
		}
	}
	allowed := true
	if len(w.allow) > 0 {
		allowed = false
		ancestor := false
		for _, a := range w.allow {
			if a.matchesPrefixOf(path) {
				allowed = true
			} else if len(a) > len(path) && a[:len(path)].matchesPrefixOf(path) {
				ancestor = true
			}
		}
		switch {
		case !allowed && !ancestor:
			return drop, false
		case !allowed:
			return descend, false
		}
	}
	if deeperDeny || w.maxItems > 0 {
		return descend, true
	}
	return keep, true
}

// rewrite returns v rewritten.
func (w *walker) rewrite(v jsontext.Value) (jsontext.Value, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(v))
	var out bytes.Buffer
	enc := jsontext.NewEncoder(&out)
	if err := w.value(dec, enc, nil, descend); err != nil {
		return nil, err
	}
	return jsontext.Value(bytes.TrimSpace(out.Bytes())), nil
}

// value copies the next value of dec to enc: whole (keep, or a scalar),
// or walked into (descend).
func (w *walker) value(dec *jsontext.Decoder, enc *jsontext.Encoder, path []string, v verdict) error {
	if k := dec.PeekKind(); v == keep || k != '{' && k != '[' {
		raw, err := dec.ReadValue()
		if err != nil {
			return err
		}
		return enc.WriteValue(raw)
	}
	open, err := dec.ReadToken()
	if err != nil {
		return err
	}
	kind := open.Kind()
	if err := enc.WriteToken(open); err != nil {
		return err
	}
	// skip reports whether the child at path is dropped, and its verdict.
	skip := func(child []string) (bool, verdict) {
		cv, allowed := w.decide(child)
		if k := dec.PeekKind(); cv == descend && !allowed && k != '{' && k != '[' {
			cv = drop // a scalar where only something below it is allowed
		}
		return cv == drop, cv
	}
	if kind == '{' {
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return err
			}
			name := tok.String() // the token is void after the next read
			child := append(path[:len(path):len(path)], name)
			if dropped, cv := skip(child); dropped {
				w.dropped++
				if err := dec.SkipValue(); err != nil {
					return err
				}
			} else {
				if err := enc.WriteToken(jsontext.String(name)); err != nil {
					return err
				}
				if err := w.value(dec, enc, child, cv); err != nil {
					return err
				}
			}
		}
	} else {
		for i := 0; dec.PeekKind() != ']'; i++ {
			child := append(path[:len(path):len(path)], strconv.Itoa(i))
			dropped, cv := skip(child)
			switch {
			case w.maxItems > 0 && i >= w.maxItems:
				w.capped++
				dropped = true
			case dropped:
				w.dropped++
			}
			if dropped {
				if err := dec.SkipValue(); err != nil {
					return err
				}
				continue
			}
			if err := w.value(dec, enc, child, cv); err != nil {
				return err
			}
		}
	}
	end, err := dec.ReadToken()
	if err != nil {
		return err
	}
	return enc.WriteToken(end)
}

// textBlock is a text content block.
func textBlock(text string) jsontext.Value {
	b, _ := jsontext.AppendQuote([]byte(`{"type":"text","text":`), text)
	return append(b, '}')
}
