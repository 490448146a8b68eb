package policy

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"github.com/go-json-experiment/json/jsontext"
)

// The general decoder that decodeJSON replaced, kept as its reference: a
// jsontext.Decoder, which checks everything JSON requires.

// decodeReference decodes a JSON value into CEL values: maps, lists, strings,
// booleans, null, int (integers that fit in 64 bits) and double (other
// numbers). Duplicate member names and invalid UTF-8 are errors, so a
// condition never sees a different value from the one the server will read.
func decodeReference(v jsontext.Value) (ref.Val, error) {
	d := decoders.Get().(*pooledDecoder)
	d.r.Reset(v)
	d.dec.Reset(&d.r)
	out, err := decodeRefValue(&d.dec, 0)
	d.r.Reset(nil)
	d.dec.Reset(&d.r)
	decoders.Put(d)
	return out, err
}

// pooledDecoder is a decoder kept between calls: setting one up costs more
// than decoding the arguments of a typical call.
type pooledDecoder struct {
	r   bytes.Reader
	dec jsontext.Decoder
}

var decoders = sync.Pool{New: func() any { return new(pooledDecoder) }}

func decodeRefValue(dec *jsontext.Decoder, depth int) (ref.Val, error) {
	if depth > maxDepth {
		return nil, errTooDeep
	}
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return types.NullValue, nil
	case 't', 'f':
		return types.Bool(tok.Bool()), nil
	case '"':
		return types.String(tok.String()), nil
	case '0':
		raw := tok.String()
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			return types.Int(i), nil
		}
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return types.Double(f), nil // out of range: ±Inf, which compares as expected
	case '{':
		m := map[string]ref.Val{}
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			k := tok.String() // before the next read voids tok
			v, err := decodeRefValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			if _, dup := m[k]; dup {
				return nil, errDuplicateKey
			}
			m[k] = v
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		if len(m) > 1 && caseVariants(m) {
			return nil, errCaseVariant
		}
		return newMap(m), nil
	case '[':
		l := []ref.Val{}
		for dec.PeekKind() != ']' {
			v, err := decodeRefValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			l = append(l, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil, err
		}
		return types.NewRefValList(adapter, l), nil
	}
	return nil, errors.New("unexpected JSON token")
}

// caseVariants reports whether two member names of m differ only by case
// ("path" and "PATH", or "paſs" and "pass"). A condition reads one of them,
// while a server that matches names case-insensitively (Go's encoding/json
// does) may read the other: such arguments make conditions that read them
// fail rather than judge a value the server might not use.
func caseVariants(m map[string]ref.Val) bool {
	if len(m) <= 8 {
		var keys [8]string
		n := 0
		for ks := range m {
			for _, prev := range keys[:n] {
				if strings.EqualFold(ks, prev) {
					return true
				}
			}
			keys[n] = ks
			n++
		}
		return false
	}
	seen := make(map[string]struct{}, len(m))
	for k := range m {
		f := strings.ToLower(strings.ToUpper(k))
		if _, dup := seen[f]; dup {
			return true
		}
		seen[f] = struct{}{}
	}
	return false
}

// sameValue reports whether two decoded values are identical, types
// included (CEL's equality would find 1 and 1.0 equal).
func sameValue(a, b ref.Val) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch x := a.(type) {
	case traits.Mapper:
		y := b.(traits.Mapper)
		if x.Size() != y.Size() {
			return false
		}
		for it := x.Iterator(); it.HasNext() == types.True; {
			k := it.Next()
			yv, ok := y.Find(k)
			if !ok || !sameValue(x.Get(k), yv) {
				return false
			}
		}
		return true
	case traits.Lister:
		y := b.(traits.Lister)
		if x.Size() != y.Size() {
			return false
		}
		for i := types.Int(0); i < x.Size().(types.Int); i++ {
			if !sameValue(x.Get(i), y.Get(i)) {
				return false
			}
		}
		return true
	case types.Double:
		y := b.(types.Double)
		return x == y || (x != x && y != y)
	}
	return a.Equal(b) == types.True
}

// FuzzDecodeJSON holds the single-pass decoder to the general one: it
// refuses what is not valid JSON, and on valid JSON both fail or both give
// the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"path":"/data/report.csv","limit":20}`, `{"a":[1,2.5,-0,1e400,true,null,{"b":"\u00e9\n"}]}`,
		`{"a":1,"a":2}`, `{"Path":1,"path":2}`, `{"paſs":1,"pass":2}`, `"\ud800"`, "\"\xff\"", `01`, `-`, `1.`,
		`[1,]`, `{"a":1,}`, ` { "x" : [ ] } `, `{"a":"\"\\"}`, `123456789012345678901234567890`, `-9223372036854775808`,
		`9223372036854775807`, `9223372036854775808`, `1E+2`, `tru`, `nul`, `{"a"}`, "\"a\tb\"", `[[[[[]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := decodeJSON(b)
		if !jsontext.Value(b).IsValid() {
			// Not one valid JSON value (the reference, a stream decoder,
			// would read the first of several).
			if gotErr == nil {
				t.Fatalf("%q is not valid JSON, yet decodeJSON gave %v", b, got)
			}
			return
		}
		want, wantErr := decodeReference(b)
		switch {
		case (wantErr == nil) != (gotErr == nil):
			t.Fatalf("%q: reference error %v, decodeJSON error %v", b, wantErr, gotErr)
		case wantErr == nil && !sameValue(want, got):
			t.Fatalf("%q: reference %v, decodeJSON %v", b, want, got)
		case wantErr != nil && (errors.Is(wantErr, errCaseVariant) || errors.Is(wantErr, errDuplicateKey)) && !errors.Is(gotErr, wantErr):
			t.Fatalf("%q: reference error %v, decodeJSON error %v", b, wantErr, gotErr)
		}
	})
}
