package policy

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"github.com/go-json-experiment/json/jsontext"
)

var (
	errTooDeep      = errors.New("arguments nested too deeply")
	errDuplicateKey = errors.New("duplicate member name")
	errCaseVariant  = errors.New("member names that differ only by case")
	errBadJSON      = errors.New("malformed JSON")
	errBadUTF8      = errors.New("invalid UTF-8 in a string")
)

// maxDepth bounds the nesting of decoded arguments; the gateway bounds
// messages more tightly before they get here.
const maxDepth = 256

// decodeObject decodes a JSON object (see [decodeJSON]) into an [object].
func decodeObject(v jsontext.Value) (*object, error) {
	d := jsonDecoder{b: v}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		return nil, errBadJSON
	}
	o, err := d.members(0)
	if err != nil {
		return nil, err
	}
	if d.ws(); d.i != len(d.b) {
		return nil, errBadJSON
	}
	return o, nil
}

// decodeJSON decodes a JSON value into CEL values: maps, lists, strings,
// booleans, null, int (integers that fit in 64 bits) and double (other
// numbers). Duplicate member names, member names that differ only by case
// (see [caseVariants]) and invalid UTF-8 are errors, so a condition never
// sees a different value from the one the server will read.
//
// It is a single pass over the bytes, written for the arguments of a call,
// which the gateway's decoder has already checked to be valid JSON: it
// costs a fraction of a general decoder, which matters because most policies
// read arguments on every call. It still fails on anything malformed rather
// than guess (FuzzDecodeJSON holds it to the general decoder's results).
func decodeJSON(v jsontext.Value) (ref.Val, error) {
	d := jsonDecoder{b: v}
	d.ws()
	out, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.ws(); d.i != len(d.b) {
		return nil, errBadJSON
	}
	return out, nil
}

type jsonDecoder struct {
	b []byte
	i int
}

func (d *jsonDecoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) (ref.Val, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	if d.i >= len(d.b) {
		return nil, errBadJSON
	}
	switch c := d.b[d.i]; c {
	case '{':
		return d.object(depth)
	case '[':
		return d.array(depth)
	case '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return types.String(s), nil
	case 't':
		return d.literal("true", types.True)
	case 'f':
		return d.literal("false", types.False)
	case 'n':
		return d.literal("null", types.NullValue)
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return d.number()
		}
	}
	return nil, errBadJSON
}

func (d *jsonDecoder) literal(word string, v ref.Val) (ref.Val, error) {
	if !bytes.HasPrefix(d.b[d.i:], []byte(word)) {
		return nil, errBadJSON
	}
	d.i += len(word)
	return v, nil
}

// number reads a number: an int when it is an integer that fits in 64
// bits, else a double (±Inf beyond the range of doubles, which compares as
// expected).
func (d *jsonDecoder) number() (ref.Val, error) {
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			d.i++
			continue
		}
		break
	}
	raw := d.b[start:d.i]
	// Small integers, the usual case, without strconv's string.
	if n := len(raw); n > 0 && n <= 18 {
		neg := raw[0] == '-'
		digits := raw
		if neg {
			digits = raw[1:]
		}
		if len(digits) > 0 && (digits[0] != '0' || len(digits) == 1) {
			var v int64
			ok := true
			for _, c := range digits {
				if c < '0' || c > '9' {
					ok = false
					break
				}
				v = v*10 + int64(c-'0')
			}
			if ok {
				if neg {
					v = -v
				}
				return types.Int(v), nil
			}
		}
	}
	if !validNumber(raw) {
		return nil, errBadJSON
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return types.Int(i), nil
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, errBadJSON
	}
	return types.Double(f), nil
}

// validNumber reports whether b is a number as JSON spells it.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(b)
}

// str reads a string at d.i (a quote).
func (d *jsonDecoder) str() (string, error) {
	start := d.i
	j := start + 1
	escaped := false
	for {
		k := bytes.IndexAny(d.b[j:], "\"\\")
		if k < 0 {
			return "", errBadJSON
		}
		j += k
		if d.b[j] == '"' {
			break
		}
		escaped = true
		j += 2 // the backslash and the character it escapes
		if j > len(d.b) {
			return "", errBadJSON
		}
	}
	d.i = j + 1
	raw := d.b[start+1 : j]
	if !escaped {
		for _, c := range raw {
			if c < 0x20 {
				return "", errBadJSON
			}
		}
		if !utf8.Valid(raw) {
			return "", errBadUTF8
		}
		return string(raw), nil
	}
	out, err := jsontext.AppendUnquote(nil, d.b[start:d.i])
	if err != nil {
		return "", errBadJSON
	}
	if !utf8.Valid(out) {
		return "", errBadUTF8
	}
	return string(out), nil
}

func (d *jsonDecoder) object(depth int) (ref.Val, error) {
	o, err := d.members(depth)
	if err != nil {
		return nil, err
	}
	return o.value(), nil
}

// members reads an object at d.i into an [object]: its members in order,
// with duplicate names and names that differ only by case refused.
func (d *jsonDecoder) members(depth int) (*object, error) {
	d.i++ // {
	o := &object{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return o, nil
	}
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, errBadJSON
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, errBadJSON
		}
		d.i++
		d.ws()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		o.keys = append(o.keys, k)
		o.vals = append(o.vals, v)
		end, err := d.next('}')
		if err != nil {
			return nil, err
		}
		if end {
			if err := o.check(); err != nil {
				return nil, err
			}
			return o, nil
		}
	}
}

// next reads what follows a member or an element: a comma (end false, and
// the next one may start), or the closing byte (end true).
func (d *jsonDecoder) next(closing byte) (end bool, err error) {
	d.ws()
	if d.i >= len(d.b) {
		return false, errBadJSON
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		d.ws()
		return false, nil
	case closing:
		d.i++
		return true, nil
	}
	return false, errBadJSON
}

// object is a decoded JSON object: its members in order, and the CEL map
// of them, built when something needs the map itself. The arguments of a
// call are kept this way, since most conditions only read a member or two.
type object struct {
	keys []string
	vals []ref.Val
	m    ref.Val
}

// emptyObject is the arguments of a call that has none.
var emptyObject = &object{m: newMap(map[string]ref.Val{})}

// check refuses duplicate member names and names that differ only by case
// (see [caseVariants]).
func (o *object) check() error {
	n := len(o.keys)
	if n <= 8 {
		for i := 1; i < n; i++ {
			for j := range i {
				if o.keys[i] == o.keys[j] {
					return errDuplicateKey
				}
			}
		}
		for i := 1; i < n; i++ {
			for j := range i {
				if strings.EqualFold(o.keys[i], o.keys[j]) {
					return errCaseVariant
				}
			}
		}
		return nil
	}
	seen := make(map[string]struct{}, n)
	for _, k := range o.keys {
		if _, dup := seen[k]; dup {
			return errDuplicateKey
		}
		seen[k] = struct{}{}
	}
	folded := make(map[string]struct{}, n)
	for _, k := range o.keys {
		f := strings.ToLower(strings.ToUpper(k))
		if _, dup := folded[f]; dup {
			return errCaseVariant
		}
		folded[f] = struct{}{}
	}
	return nil
}

// get returns the member named k.
func (o *object) get(k string) (ref.Val, bool) {
	for i, key := range o.keys {
		if key == k {
			return o.vals[i], true
		}
	}
	return nil, false
}

// value returns the CEL map of the object, built on first use. An object
// is used by one decision at a time.
func (o *object) value() ref.Val {
	if o.m == nil {
		m := make(map[string]ref.Val, len(o.keys))
		for i, k := range o.keys {
			m[k] = o.vals[i]
		}
		o.m = newMap(m)
	}
	return o.m
}

func (d *jsonDecoder) array(depth int) (ref.Val, error) {
	d.i++ // [
	l := []ref.Val{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return types.NewRefValList(adapter, l), nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		end, err := d.next(']')
		if err != nil {
			return nil, err
		}
		if end {
			return types.NewRefValList(adapter, l), nil
		}
	}
}
