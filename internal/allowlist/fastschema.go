package allowlist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The fast path. Validating with github.com/santhosh-tekuri/jsonschema/v6
// decodes the arguments into map[string]any with encoding/json and turns
// every number into a big.Rat: about 20 µs a call, most of the per-call
// budget. Most tools publish schemas built from a few keywords (what
// go-sdk, pydantic and zod emit for plain structs), and those can be
// checked by walking the argument bytes once without allocating.
//
// A fastSchema is compiled only from a schema that compiled with the
// library first (so it is valid against its meta-schema) and that uses
// nothing but the keywords handled here; any other keyword leaves the
// whole schema to the library. Even then the fast path only ever decides
// "valid": on anything else (a mismatch, or input it does not judge, such
// as duplicate member names, invalid UTF-8 or a number with a huge
// exponent) the library validates the call as before and builds the
// message. So the verdict is always the library's, provided the fast path
// never accepts what the library rejects; FuzzSchemaFastPath and
// TestFastPathRandom check that the two agree in both directions.
//
// Each keyword is evaluated exactly as the library evaluates it, not as
// the specification might suggest where the two differ: patterns are Go
// regular expressions (RE2), as with the library; integer bounds such as
// maxLength are read with the library's conversion.

// Type bits of fastSchema.types.
const (
	tNull = 1 << iota
	tBoolean
	tObject
	tArray
	tNumber
	tString
	tInteger
)

// fastSchema is one compiled (sub)schema of the fast path.
type fastSchema struct {
	never bool  // the false schema
	types uint8 // allowed types; 0 allows every type

	enum    []fastValue // when hasEnum, the value must equal one of these
	hasEnum bool
	cnst    fastValue // when hasConst, the value must equal this
	hasCnst bool

	min, max, exMin, exMax *decimal

	minLen, maxLen int // -1 when absent
	pattern        *regexp.Regexp

	minItems, maxItems int // -1 when absent
	items              *fastSchema

	minProps, maxProps int // -1 when absent
	props              []fastProp
	required           []string
	addl               *fastSchema // nil allows any other member
}

type fastProp struct {
	name   string
	schema *fastSchema
}

// fastValue is a scalar of an enum or const.
type fastValue struct {
	kind byte // 'n', 't', 'f', '"', '0'
	str  string
	num  decimal
}

// maxRequired bounds "required" so that the members seen fit in a bit set.
const maxRequired = 64

// annotations are the keywords that do not affect validation, in every
// draft the fast path handles. "format" is added for 2019-09 and 2020-12,
// where the library does not assert it by default (it does for older
// drafts); "$defs" and "definitions" hold
// schemas that only a "$ref" would reach, and "$ref" is not handled.
var annotations = map[string]bool{
	"title": true, "description": true, "default": true, "examples": true,
	"$comment": true, "readOnly": true, "writeOnly": true, "deprecated": true,
	"contentMediaType": true, "contentEncoding": true, "contentSchema": true,
	"$defs": true, "definitions": true,
}

// compileFast returns the fast-path validator for a schema document the
// library compiled as s, or nil when the schema uses anything the fast
// path does not handle.
func compileFast(doc any, s *jsonschema.Schema) *fastSchema {
	var draft int
	switch s.DraftVersion {
	case 6, 7, 2019, 2020:
		draft = s.DraftVersion
	default:
		return nil
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil
	}
	if sv, ok := obj["$schema"]; ok {
		if _, ok := sv.(string); !ok {
			return nil
		}
	}
	fs, ok := compileFastNode(doc, draft, true)
	if !ok {
		return nil
	}
	return fs
}

func compileFastNode(doc any, draft int, root bool) (*fastSchema, bool) {
	switch v := doc.(type) {
	case bool:
		return &fastSchema{never: !v, minLen: -1, maxLen: -1, minItems: -1, maxItems: -1, minProps: -1, maxProps: -1}, true
	case map[string]any:
		fs := &fastSchema{minLen: -1, maxLen: -1, minItems: -1, maxItems: -1, minProps: -1, maxProps: -1}
		for k, val := range v {
			var ok bool
			switch k {
			case "$schema", "$id":
				ok = root
			case "format":
				ok = draft >= 2019
			case "type":
				ok = fs.compileType(val)
			case "enum":
				arr, isArr := val.([]any)
				ok = isArr
				for _, e := range arr {
					fv, good := scalar(e)
					ok = ok && good
					fs.enum = append(fs.enum, fv)
				}
				fs.hasEnum = true
			case "const":
				fs.cnst, ok = scalar(val)
				fs.hasCnst = true
			case "minimum":
				fs.min, ok = bound(val)
			case "maximum":
				fs.max, ok = bound(val)
			case "exclusiveMinimum":
				fs.exMin, ok = bound(val)
			case "exclusiveMaximum":
				fs.exMax, ok = bound(val)
			case "minLength":
				fs.minLen, ok = count(val)
			case "maxLength":
				fs.maxLen, ok = count(val)
			case "minItems":
				fs.minItems, ok = count(val)
			case "maxItems":
				fs.maxItems, ok = count(val)
			case "minProperties":
				fs.minProps, ok = count(val)
			case "maxProperties":
				fs.maxProps, ok = count(val)
			case "pattern":
				if p, isStr := val.(string); isStr {
					re, err := regexp.Compile(p)
					fs.pattern, ok = re, err == nil
				}
			case "items":
				if _, isArr := val.([]any); !isArr {
					fs.items, ok = compileFastNode(val, draft, false)
				}
			case "additionalProperties":
				fs.addl, ok = compileFastNode(val, draft, false)
			case "properties":
				m, isMap := val.(map[string]any)
				ok = isMap
				for name, sub := range m {
					ps, good := compileFastNode(sub, draft, false)
					ok = ok && good
					fs.props = append(fs.props, fastProp{name, ps})
				}
			case "required":
				arr, isArr := val.([]any)
				ok = isArr && len(arr) <= maxRequired
				for _, r := range arr {
					name, isStr := r.(string)
					ok = ok && isStr
					fs.required = append(fs.required, name)
				}
			default:
				ok = annotations[k] || strings.HasPrefix(k, "x-")
			}
			if !ok {
				return nil, false
			}
		}
		return fs, true
	}
	return nil, false
}

func (fs *fastSchema) compileType(v any) bool {
	var names []any
	switch v := v.(type) {
	case string:
		names = []any{v}
	case []any:
		names = v
	default:
		return false
	}
	for _, n := range names {
		switch n {
		case "null":
			fs.types |= tNull
		case "boolean":
			fs.types |= tBoolean
		case "object":
			fs.types |= tObject
		case "array":
			fs.types |= tArray
		case "number":
			fs.types |= tNumber
		case "string":
			fs.types |= tString
		case "integer":
			fs.types |= tInteger
		default:
			return false
		}
	}
	return true
}

// scalar converts an enum or const member; objects and arrays are not
// handled.
func scalar(v any) (fastValue, bool) {
	switch v := v.(type) {
	case nil:
		return fastValue{kind: 'n'}, true
	case bool:
		if v {
			return fastValue{kind: 't'}, true
		}
		return fastValue{kind: 'f'}, true
	case string:
		return fastValue{kind: '"', str: v}, true
	case json.Number:
		d, ok := parseDecimal([]byte(v.String()))
		if !ok {
			return fastValue{}, false
		}
		if _, ok := new(big.Rat).SetString(v.String()); !ok {
			return fastValue{}, false
		}
		return fastValue{kind: '0', num: d}, true
	}
	return fastValue{}, false
}

// bound converts a numeric bound. The library ignores a bound that
// big.Rat cannot represent; such a schema is left to it.
func bound(v any) (*decimal, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	if _, ok := new(big.Rat).SetString(n.String()); !ok {
		return nil, false
	}
	d, ok := parseDecimal([]byte(n.String()))
	if !ok {
		return nil, false
	}
	return &d, true
}

// count reads a non-negative integer keyword the way the library does
// (big.Rat, then int64 of its numerator). A value beyond int64, which the
// library would truncate, is left to it.
func count(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	r, ok := new(big.Rat).SetString(fmt.Sprint(n))
	if !ok || !r.IsInt() || !r.Num().IsInt64() {
		return 0, false
	}
	i := int(r.Num().Int64())
	if i < 0 {
		return 0, false
	}
	return i, true
}

// walker holds the state of one fast validation; walkers are pooled so
// that validating allocates nothing.
type walker struct {
	buf     bytes.Buffer
	dec     *jsontext.Decoder
	scratch []byte
	// unsure is set when the walk stopped on input the fast path does not
	// judge (a syntax error, a duplicate member name, invalid UTF-8, a
	// number out of range) rather than on a mismatch.
	unsure bool
}

var walkers = sync.Pool{New: func() any {
	w := new(walker)
	w.dec = jsontext.NewDecoder(&w.buf)
	return w
}}

// verdict of the fast path.
type fastVerdict int

const (
	fastValid   fastVerdict = iota // valid: nothing more to check
	fastInvalid                    // a keyword failed on the part read so far
	fastUnsure                     // the input is beyond the fast path
)

// validFast reports whether args is certainly valid against fs.
func validFast(fs *fastSchema, args []byte) bool { return checkFast(fs, args) == fastValid }

// checkFast walks args against fs. fastInvalid is not final: the walk
// stops at the first mismatch, and the rest of the input (a duplicate
// name that encoding/json would resolve differently) is not read.
func checkFast(fs *fastSchema, args []byte) fastVerdict {
	w := walkers.Get().(*walker)
	w.buf = *bytes.NewBuffer(args)
	w.dec.Reset(&w.buf)
	w.unsure = false
	ok := w.value(fs)
	if ok {
		_, err := w.dec.ReadToken()
		if err != io.EOF {
			ok, w.unsure = false, true
		}
	}
	v := fastValid
	switch {
	case w.unsure:
		v = fastUnsure
	case !ok:
		v = fastInvalid
	}
	// Drop references to args so the pool does not pin them.
	w.buf = bytes.Buffer{}
	w.dec.Reset(&w.buf)
	if cap(w.scratch) > 1<<16 {
		w.scratch = nil
	}
	walkers.Put(w)
	return v
}

// fail records that the walk stopped on input it does not judge.
func (w *walker) fail() bool {
	w.unsure = true
	return false
}

// value checks the next value of the decoder against fs.
func (w *walker) value(fs *fastSchema) bool {
	if fs.never {
		return false
	}
	switch w.dec.PeekKind() {
	case '{':
		if fs.types != 0 && fs.types&tObject == 0 || fs.hasEnum || fs.hasCnst {
			return false
		}
		return w.object(fs)
	case '[':
		if fs.types != 0 && fs.types&tArray == 0 || fs.hasEnum || fs.hasCnst {
			return false
		}
		return w.array(fs)
	}
	v, err := w.dec.ReadValue()
	if err != nil {
		return w.fail()
	}
	switch v.Kind() {
	case 'n':
		return (fs.types == 0 || fs.types&tNull != 0) && w.matchScalar(fs, 'n', nil, decimal{})
	case 't', 'f':
		return (fs.types == 0 || fs.types&tBoolean != 0) && w.matchScalar(fs, byte(v.Kind()), nil, decimal{})
	case '"':
		if fs.types != 0 && fs.types&tString == 0 {
			return false
		}
		s, ok := w.unquote(v)
		if !ok {
			return w.fail()
		}
		if !w.matchScalar(fs, '"', s, decimal{}) {
			return false
		}
		if fs.minLen >= 0 || fs.maxLen >= 0 {
			n := utf8.RuneCount(s)
			if fs.minLen >= 0 && n < fs.minLen || fs.maxLen >= 0 && n > fs.maxLen {
				return false
			}
		}
		return fs.pattern == nil || fs.pattern.Match(s)
	case '0':
		d, ok := parseDecimal(v)
		if !ok {
			return w.fail()
		}
		if fs.types != 0 && fs.types&tNumber == 0 && (fs.types&tInteger == 0 || !d.isInt()) {
			return false
		}
		if !w.matchScalar(fs, '0', nil, d) {
			return false
		}
		return (fs.min == nil || d.cmp(fs.min) >= 0) &&
			(fs.max == nil || d.cmp(fs.max) <= 0) &&
			(fs.exMin == nil || d.cmp(fs.exMin) > 0) &&
			(fs.exMax == nil || d.cmp(fs.exMax) < 0)
	}
	return w.fail()
}

// matchScalar applies const and enum to a scalar.
func (w *walker) matchScalar(fs *fastSchema, kind byte, s []byte, d decimal) bool {
	if fs.hasCnst && !fs.cnst.equal(kind, s, d) {
		return false
	}
	if !fs.hasEnum {
		return true
	}
	for i := range fs.enum {
		if fs.enum[i].equal(kind, s, d) {
			return true
		}
	}
	return false
}

func (v *fastValue) equal(kind byte, s []byte, d decimal) bool {
	if v.kind != kind {
		return false
	}
	switch kind {
	case '"':
		return v.str == string(s)
	case '0':
		return v.num.cmp(&d) == 0
	}
	return true
}

// unquote returns the contents of a string value, unescaped into the
// walker's scratch buffer when it has escapes.
func (w *walker) unquote(v jsontext.Value) ([]byte, bool) {
	if bytes.IndexByte(v, '\\') < 0 {
		return v[1 : len(v)-1], true
	}
	var err error
	w.scratch, err = jsontext.AppendUnquote(w.scratch[:0], v)
	return w.scratch, err == nil
}

func (w *walker) object(fs *fastSchema) bool {
	if _, err := w.dec.ReadToken(); err != nil {
		return w.fail()
	}
	var seen uint64
	n := 0
	for w.dec.PeekKind() != '}' {
		raw, err := w.dec.ReadValue()
		if err != nil || raw.Kind() != '"' {
			return w.fail()
		}
		name, ok := w.unquote(raw)
		if !ok {
			return w.fail()
		}
		n++
		var sub *fastSchema
		for i := range fs.props {
			if fs.props[i].name == string(name) {
				sub = fs.props[i].schema
				break
			}
		}
		for i, r := range fs.required {
			if r == string(name) {
				seen |= 1 << i
				break
			}
		}
		if sub == nil {
			sub = fs.addl
		}
		if sub == nil {
			if w.dec.SkipValue() != nil {
				return w.fail()
			}
			continue
		}
		if !w.value(sub) {
			return false
		}
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return w.fail()
	}
	if len(fs.required) > 0 && seen != 1<<len(fs.required)-1 {
		return false
	}
	return (fs.minProps < 0 || n >= fs.minProps) && (fs.maxProps < 0 || n <= fs.maxProps)
}

func (w *walker) array(fs *fastSchema) bool {
	if _, err := w.dec.ReadToken(); err != nil {
		return w.fail()
	}
	n := 0
	for w.dec.PeekKind() != ']' {
		n++
		if fs.items == nil {
			if w.dec.SkipValue() != nil {
				return w.fail()
			}
			continue
		}
		if !w.value(fs.items) {
			return false
		}
	}
	if _, err := w.dec.ReadToken(); err != nil {
		return w.fail()
	}
	return (fs.minItems < 0 || n >= fs.minItems) && (fs.maxItems < 0 || n <= fs.maxItems)
}

// maxExponent bounds the exponents the fast path compares. big.Rat
// refuses numbers whose exponent is in the millions, and the library's
// verdict on them is its own; such numbers are left to it.
const maxExponent = 100000

// decimal is an exact JSON number: 0.d₁d₂…dₙ × 10^exp, where the
// significant digits are int followed by frac with leading and trailing
// zeros removed. Zero has no digits. The digits alias the input.
type decimal struct {
	neg       bool
	int, frac []byte
	exp       int
}

func (d *decimal) ndigits() int { return len(d.int) + len(d.frac) }

func (d *decimal) digit(i int) byte {
	if i < len(d.int) {
		return d.int[i]
	}
	return d.frac[i-len(d.int)]
}

// parseDecimal parses a number in JSON syntax; the decoder has checked
// the grammar.
func parseDecimal(b []byte) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(b) && b[i] == '-' {
		d.neg = true
		i++
	}
	start := i
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	intPart := b[start:i]
	var frac []byte
	if i < len(b) && b[i] == '.' {
		i++
		fs := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		frac = b[fs:i]
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		eneg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			eneg = b[i] == '-'
			i++
		}
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			exp = exp*10 + int(b[i]-'0')
			if exp > maxExponent {
				return d, false
			}
			i++
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(b) || len(intPart) == 0 || len(intPart)+len(frac) > maxExponent {
		return d, false
	}
	// Point position relative to the start of intPart.
	exp += len(intPart)
	for len(intPart) > 0 && intPart[0] == '0' {
		intPart = intPart[1:]
		exp--
	}
	if len(intPart) == 0 {
		for len(frac) > 0 && frac[0] == '0' {
			frac = frac[1:]
			exp--
		}
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	if len(frac) == 0 {
		for len(intPart) > 0 && intPart[len(intPart)-1] == '0' {
			intPart = intPart[:len(intPart)-1]
		}
	}
	d.int, d.frac, d.exp = intPart, frac, exp
	if d.ndigits() == 0 {
		d.neg, d.exp = false, 0
	}
	return d, true
}

// isInt reports whether d has no fractional part.
func (d *decimal) isInt() bool { return d.ndigits() <= d.exp || d.ndigits() == 0 }

// cmp compares d and e exactly: -1, 0 or +1.
func (d *decimal) cmp(e *decimal) int {
	dz, ez := d.ndigits() == 0, e.ndigits() == 0
	switch {
	case dz && ez:
		return 0
	case dz:
		if e.neg {
			return 1
		}
		return -1
	case ez:
		if d.neg {
			return -1
		}
		return 1
	case d.neg != e.neg:
		if d.neg {
			return -1
		}
		return 1
	}
	c := d.cmpAbs(e)
	if d.neg {
		return -c
	}
	return c
}

func (d *decimal) cmpAbs(e *decimal) int {
	if d.exp != e.exp {
		if d.exp < e.exp {
			return -1
		}
		return 1
	}
	n, m := d.ndigits(), e.ndigits()
	for i := 0; i < n && i < m; i++ {
		a, b := d.digit(i), e.digit(i)
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case n < m:
		return -1
	case n > m:
		return 1
	}
	return 0
}
