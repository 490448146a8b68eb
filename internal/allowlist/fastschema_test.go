package allowlist

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// slowValid validates args with the library alone.
func slowValid(t testing.TB, schema, args string) (bool, string) {
	t.Helper()
	s, _, err := compileSchema(jsontext.Value(schema))
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	msg, err := validateSlow(s, jsontext.Value(args))
	if err != nil {
		return false, "arguments: " + err.Error()
	}
	return msg == "", msg
}

// fastSchemas are schemas the fast path must claim.
var fastSchemas = []string{
	readSchema,
	echoSchema,
	`{}`,
	`{"type":"object"}`,
	`{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"urn:x","type":"object","properties":{"a":{"type":"string","format":"email"}}}`,
	`{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"n":{"type":"number","exclusiveMinimum":0}},"required":["n"],"additionalProperties":false}`,
	`{"$schema":"http://json-schema.org/draft-06/schema#","type":"object","properties":{"c":{"const":"x"}}}`,
	`{"type":"object","properties":{"q":{"type":"string","minLength":2,"maxLength":3,"pattern":"^[a-z]+$"}},"minProperties":1,"maxProperties":2}`,
	`{"type":"object","properties":{"t":{"type":["string","null"]},"l":{"type":"array","items":{"type":"integer","minimum":-1,"exclusiveMaximum":1e2},"minItems":1,"maxItems":3}}}`,
	`{"type":"object","properties":{"e":{"enum":[1,"1",null,true,0.1,-0]}},"additionalProperties":{"type":"boolean"}}`,
	`{"type":"object","properties":{"x":false,"y":true},"additionalProperties":false,"title":"T","description":"d","x-extra":{"any":1},"$defs":{"u":{"type":"string"}}}`,
	`{"type":"object","properties":{"n":{"type":"integer","minimum":0.5,"maximum":9007199254740993}}}`,
	`{"type":"number","minimum":0.1,"maximum":0.30000000000000004}`,
	`{"type":"object","required":["a","b"]}`,
	`{"$schema":"https://json-schema.org/draft/2019-09/schema","type":"object","properties":{"u":{"type":"string","format":"uri"}}}`,
	// As the go-sdk infers them from Go types.
	`{"type":"object","required":["path"],"properties":{"path":{"type":"string","description":"file to read"},"tags":{"type":["null","array"],"items":{"type":"string"}},"limit":{"type":"integer"}},"additionalProperties":false}`,
	// As pydantic (FastMCP) writes them, without optional fields.
	`{"properties":{"a":{"title":"A","type":"integer"},"b":{"default":1,"title":"B","type":"integer"}},"required":["a"],"title":"addArguments","type":"object"}`,
	// As zod-to-json-schema writes them (the TypeScript SDK, zod 3).
	`{"type":"object","properties":{"owner":{"type":"string","minLength":1},"perPage":{"type":"number","exclusiveMinimum":0,"maximum":100},"state":{"type":"string","enum":["open","closed","all"]}},"required":["owner"],"additionalProperties":false,"$schema":"http://json-schema.org/draft-07/schema#"}`,
	// An argument a 2026-07-28 client mirrors in a header.
	`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}`,
}

// slowSchemas are schemas the fast path must leave to the library.
var slowSchemas = []string{
	`{"type":"object","properties":{"a":{"$ref":"#/$defs/x"}},"$defs":{"x":{"type":"string"}}}`,
	`{"anyOf":[{"type":"string"},{"type":"null"}]}`,
	// pydantic's optional field.
	`{"properties":{"q":{"anyOf":[{"type":"string"},{"type":"null"}],"default":null,"title":"Q"}},"title":"searchArguments","type":"object"}`,
	`{"type":"object","patternProperties":{"^x":{"type":"integer"}}}`,
	`{"type":"number","multipleOf":0.1}`,
	`{"type":"array","uniqueItems":true}`,
	`{"type":"array","prefixItems":[{"type":"string"}]}`,
	`{"enum":[[1],{"a":1}]}`,
	`{"$schema":"http://json-schema.org/draft-07/schema#","type":"string","format":"email"}`,
	`{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":[{"type":"string"}]}`,
	`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object"}`,
	`{"type":"object","unevaluatedProperties":false}`,
	`{"type":"object","dependencies":{"a":["b"]}}`,
	`{"type":"object","properties":{"a":{"$schema":"https://json-schema.org/draft/2020-12/schema"}}}`,
	`{"type":"string","maxLength":1e30}`,
	`{"type":"number","maximum":1e100000000}`,
	`{"type":"object","required":["a0","a1","a2","a3","a4","a5","a6","a7","a8","a9","b0","b1","b2","b3","b4","b5","b6","b7","b8","b9","c0","c1","c2","c3","c4","c5","c6","c7","c8","c9","d0","d1","d2","d3","d4","d5","d6","d7","d8","d9","e0","e1","e2","e3","e4","e5","e6","e7","e8","e9","f0","f1","f2","f3","f4","f5","f6","f7","f8","f9","g0","g1","g2","g3","g4"]}`,
}

const echoSchema = `{"type":"object","properties":{"text":{"type":"string"},"size":{"type":"integer","minimum":0}}}`

func TestFastPathClaims(t *testing.T) {
	for _, sc := range fastSchemas {
		if _, fs, err := compileSchema(jsontext.Value(sc)); err != nil || fs == nil {
			t.Errorf("fast path does not claim %s (err %v)", sc, err)
		}
	}
	for _, sc := range slowSchemas {
		if _, fs, err := compileSchema(jsontext.Value(sc)); err != nil || fs != nil {
			t.Errorf("fast path claims %s (err %v)", sc, err)
		}
	}
}

// TestFastPathEdges checks verdicts on the inputs where a walker over
// bytes could most easily differ from the library: exact numbers,
// Unicode, escapes, input the fast path must not judge. Every case also
// runs on the library, which must agree.
func TestFastPathEdges(t *testing.T) {
	deep := func(n int) string { return strings.Repeat(`[`, n) + strings.Repeat(`]`, n) }
	tests := []struct {
		name, schema, args string
		want               fastVerdict
	}{
		{"big-int-at-bound", readSchema, `{"path":"/a","big":9007199254740993}`, fastValid},
		{"big-int-over-bound", readSchema, `{"path":"/a","big":9007199254740994}`, fastInvalid},
		{"big-int-bound-exponent", readSchema, `{"path":"/a","big":9.007199254740993e15}`, fastValid},
		{"big-int-over-bound-fraction", readSchema, `{"path":"/a","big":9007199254740993.0000000000000001}`, fastInvalid},
		{"integer-with-zero-fraction", echoSchema, `{"size":1.0}`, fastValid},
		{"integer-exponent", echoSchema, `{"size":1e2}`, fastValid},
		{"integer-negative-exponent", echoSchema, `{"size":100e-2}`, fastValid},
		{"not-integer", echoSchema, `{"size":1.5}`, fastInvalid},
		{"not-integer-small", echoSchema, `{"size":1e-400}`, fastInvalid},
		{"negative-zero-at-minimum", echoSchema, `{"size":-0.0}`, fastValid},
		{"below-minimum", echoSchema, `{"size":-1}`, fastInvalid},
		{"huge-exponent", echoSchema, `{"size":1e400}`, fastValid},
		{"exponent-beyond-big-rat", echoSchema, `{"size":1e100000000}`, fastUnsure},
		{"decimal-sum-bound", `{"type":"number","minimum":0.1,"maximum":0.30000000000000004}`, `0.3`, fastValid},
		{"decimal-above-bound", `{"type":"number","minimum":0.1,"maximum":0.30000000000000004}`, `0.30000000000000005`, fastInvalid},
		{"decimal-below-bound", `{"type":"number","minimum":0.1,"maximum":0.30000000000000004}`, `0.09999999999999999999`, fastInvalid},
		{"exclusive-bound-equal", `{"type":"number","exclusiveMinimum":0}`, `0e5`, fastInvalid},
		{"enum-number-forms", `{"enum":[0.1]}`, `1e-1`, fastValid},
		{"enum-negative-zero", `{"enum":[-0]}`, `0`, fastValid},
		{"enum-type-matters", `{"enum":[1]}`, `"1"`, fastInvalid},
		{"enum-escaped-string", `{"enum":["aé"]}`, `"\u0061\u00e9"`, fastValid},
		{"const-null", `{"const":null}`, `null`, fastValid},
		{"const-false", `{"const":false}`, `true`, fastInvalid},
		{"length-in-code-points", `{"type":"string","maxLength":2}`, `"é😀"`, fastValid},
		{"length-over", `{"type":"string","maxLength":2}`, `"abc"`, fastInvalid},
		{"length-escaped-surrogate-pair", `{"type":"string","minLength":2}`, `"\ud83d\ude00"`, fastInvalid},
		{"pattern-escaped", `{"type":"string","pattern":"^a\\.b$"}`, `"a\u002eb"`, fastValid},
		{"pattern-unanchored", `{"type":"string","pattern":"b"}`, `"abc"`, fastValid},
		{"escaped-member-name", readSchema, `{"p\u0061th":"/a"}`, fastValid},
		{"escaped-extra-member", readSchema, `{"path":"/a","\u0078":1}`, fastInvalid},
		{"duplicate-member", echoSchema, `{"text":"a","text":"b"}`, fastUnsure},
		{"duplicate-member-last-wins", echoSchema, `{"size":-1,"size":1}`, fastInvalid},
		{"duplicate-unchecked-member", `{"type":"object"}`, `{"a":1,"a":2}`, fastUnsure},
		{"invalid-utf8", echoSchema, "{\"text\":\"\xff\"}", fastUnsure},
		{"invalid-utf8-name", `{"type":"object"}`, "{\"\xff\":1}", fastUnsure},
		{"lone-surrogate", echoSchema, `{"text":"\ud800"}`, fastUnsure},
		{"deep-nesting", `{"type":"object"}`, `{"a":` + deep(9000) + `}`, fastValid},
		{"too-deep", `{"type":"object"}`, `{"a":` + deep(10001) + `}`, fastUnsure},
		{"deep-nesting-checked", `{"items":{"items":{"items":{"type":"integer"}}}}`, deep(3), fastValid},
		{"trailing-data", `{}`, `{} {}`, fastUnsure},
		{"truncated", `{}`, `{"a":`, fastUnsure},
		{"not-an-object", readSchema, `[]`, fastInvalid},
		{"null-arguments", readSchema, `null`, fastInvalid},
		{"false-property", `{"properties":{"x":false}}`, `{"x":null}`, fastInvalid},
		{"additional-schema", `{"type":"object","properties":{"e":{"enum":[1]}},"additionalProperties":{"type":"boolean"}}`, `{"e":1,"z":true}`, fastValid},
		{"additional-schema-fails", `{"type":"object","properties":{"e":{"enum":[1]}},"additionalProperties":{"type":"boolean"}}`, `{"e":1,"z":0}`, fastInvalid},
		{"required-missing", `{"type":"object","required":["a","b"]}`, `{"a":1,"c":2}`, fastInvalid},
		{"min-properties", `{"minProperties":2}`, `{"a":1}`, fastInvalid},
		{"items-bounds", `{"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":2}`, `[1,2,3]`, fastInvalid},
		{"format-is-annotation", `{"type":"string","format":"email"}`, `"not an address"`, fastValid},
		{"format-2019", `{"$schema":"https://json-schema.org/draft/2019-09/schema","type":"string","format":"email"}`, `"x"`, fastValid},
		{"format-2020-explicit", `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"string","format":"date-time"}`, `"x"`, fastValid},
		{"type-list", `{"type":["integer","null"]}`, `2.5`, fastInvalid},
		{"whitespace", readSchema, " {\n\t\"path\" : \"/a\" ,\r\n \"opts\":{ \"tags\": [ ] } } ", fastValid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fs, err := compileSchema(jsontext.Value(tt.schema))
			if err != nil || fs == nil {
				t.Fatalf("fast path does not claim %s (err %v)", tt.schema, err)
			}
			got := checkFast(fs, []byte(tt.args))
			if got != tt.want {
				t.Errorf("fast verdict %d, want %d", got, tt.want)
			}
			slow, msg := slowValid(t, tt.schema, tt.args)
			if got == fastValid && !slow || got == fastInvalid && slow && jsontext.Value(tt.args).IsValid() {
				t.Errorf("fast verdict %d, library valid %v (%s)", got, slow, msg)
			}
		})
	}
}

// FuzzSchemaFastPath is the differential test of the fast path: on every
// schema it claims and every argument, it must agree with the library.
// "Valid" must never be said of arguments the library rejects; "invalid"
// must never be said of arguments the library accepts, unless they are
// beyond RFC 7493 (duplicate names, invalid UTF-8), where the walk may
// stop before the member encoding/json would keep.
func FuzzSchemaFastPath(f *testing.F) {
	args := []string{
		`{}`, `{"path":"/a","mode":"r","opts":{"depth":2,"tags":["x","y"]}}`, `{"text":"hello"}`,
		`{"n":1e-1,"q":"ab","t":null,"l":[0,99.0],"e":0.1,"z":true}`, `{"a":"x","b":[1,{"c":null}]}`, `[1.0,"é",false]`,
		`0.30000000000000004`, `{"size":-0.0,"text":"\u00e9"}`, `{"x":null,"y":{}}`,
	}
	for i, sc := range fastSchemas {
		f.Add(sc, args[i%len(args)])
		f.Add(sc, args[(i+3)%len(args)])
	}
	f.Fuzz(func(t *testing.T, schema, args string) {
		s, fs, err := compileSchema(jsontext.Value(schema))
		if err != nil || fs == nil {
			return
		}
		got := checkFast(fs, []byte(args))
		if got == fastUnsure {
			return
		}
		msg, err := validateSlow(s, jsontext.Value(args))
		slow := err == nil && msg == ""
		switch {
		case got == fastValid && !slow:
			t.Fatalf("fast path accepts what the library rejects (%v %s):\nschema %s\nargs %s", err, msg, schema, args)
		case got == fastInvalid && slow && jsontext.Value(args).IsValid():
			t.Fatalf("fast path rejects what the library accepts:\nschema %s\nargs %s", schema, args)
		}
	})
}

// readSchema is the schema of the tests' file-reading tool (fileSchema of
// the external tests).
const readSchema = `{"type":"object","properties":{` +
	`"path":{"type":"string","minLength":1},` +
	`"mode":{"enum":["r","w"]},` +
	`"opts":{"type":"object","properties":{"depth":{"type":"integer","maximum":5},"tags":{"type":"array","items":{"type":"string"}}}},` +
	`"big":{"type":"integer","maximum":9007199254740993}},` +
	`"required":["path"],"additionalProperties":false}`

// BenchmarkValidateArguments compares the fast path with the library on
// the same compiled schemas and arguments.
func BenchmarkValidateArguments(b *testing.B) {
	for _, bc := range []struct{ name, schema, params string }{
		{"read", readSchema, `{"name":"read","arguments":{"path":"/a/b/c","mode":"r","opts":{"depth":2,"tags":["x","y"]}}}`},
		{"echo", echoSchema, `{"name":"echo","arguments":{"text":"hello"}}`},
	} {
		s, fs, err := compileSchema(jsontext.Value(bc.schema))
		if err != nil || fs == nil {
			b.Fatal(err)
		}
		for _, path := range []struct {
			name string
			cs   *compiled
		}{{"fast", &compiled{schema: s, fast: fs}}, {"library", &compiled{schema: s}}} {
			params := jsontext.Value(bc.params)
			b.Run(bc.name+"/"+path.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if msg, err := validateArguments(path.cs, params); msg != "" || err != nil {
						b.Fatal(msg, err)
					}
				}
			})
		}
	}
}

// TestFastPathRandom compares the fast path with the library on random
// schemas of the subset and random arguments built from values near the
// edges (bounds, numbers in several spellings, escapes, Unicode), which
// byte-level fuzzing reaches only slowly.
func TestFastPathRandom(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	r := rand.New(rand.NewPCG(1, 2))
	claimed := 0
	for i := range n {
		schema := randSchema(r, 3)
		if schema[0] != '{' {
			continue // an input schema is an object
		}
		draft := pick(r, []string{"", "", "https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2019-09/schema", "http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-06/schema#"})
		if draft != "" && schema != "{}" {
			schema = `{"$schema":"` + draft + `",` + schema[1:]
		}
		s, fs, err := compileSchema(jsontext.Value(schema))
		if err != nil {
			continue // not valid against the meta-schema (a "type" list with duplicates)
		}
		if fs == nil {
			if strings.Contains(draft, "-0") && strings.Contains(schema, `"format"`) {
				continue // asserted by the library in drafts 6 and 7
			}
			t.Fatalf("fast path does not claim %s", schema)
		}
		claimed++
		for range 5 {
			args := randValue(r, 3)
			got := checkFast(fs, []byte(args))
			if !jsontext.Value(args).IsValid() {
				// A duplicate name ("a" and "\u0061"): the fast path must
				// not accept it, whatever encoding/json makes of it.
				if got == fastValid {
					t.Fatalf("case %d: fast path accepts %s", i, args)
				}
				continue
			}
			msg, err := validateSlow(s, jsontext.Value(args))
			slow := err == nil && msg == ""
			if got == fastUnsure || got == fastValid != slow {
				t.Fatalf("case %d: fast verdict %d, library valid %v (%v %s)\nschema %s\nargs %s", i, got, slow, err, msg, schema, args)
			}
		}
	}
	if claimed < n/2 {
		t.Errorf("only %d of %d random schemas compiled", claimed, n)
	}
}

var (
	randNumbers = []string{"0", "-0", "0.0", "1", "1.0", "1e0", "10e-1", "0.1", "1e-1", "0.30000000000000004", "-1", "-1.5", "2.5",
		"1e2", "100", "9007199254740992", "9007199254740993", "9007199254740993.5", "123456789012345678901234567890", "1e400", "-1e-400", "5", "4.999999999999999999"}
	randStrings  = []string{`""`, `"a"`, `"ab"`, `"abc"`, `"é"`, `"😀x"`, `"\u0061"`, `"a\"b"`, `"\ud83d\ude00"`, `"r"`, `"w"`, `"12"`, `"a b"`, `"\n"`}
	randNames    = []string{"a", "b", "é", "a b", "path", "\\u0061"}
	randPatterns = []string{"^a", "b$", "[0-9]+", "^.{2}$", "é", "^$", "a|b", `^\\w+$`}
	randTypes    = []string{"null", "boolean", "object", "array", "number", "string", "integer"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

func randSchema(r *rand.Rand, depth int) string {
	if depth == 0 || r.IntN(8) == 0 {
		return pick(r, []string{"true", "false", "{}", `{"type":"string"}`, `{"type":"integer"}`})
	}
	var kw []string
	add := func(k, v string) { kw = append(kw, `"`+k+`":`+v) }
	if r.IntN(2) == 0 {
		if r.IntN(3) == 0 {
			a, b := pick(r, randTypes), pick(r, randTypes)
			if a != b {
				add("type", `["`+a+`","`+b+`"]`)
			}
		} else {
			add("type", `"`+pick(r, randTypes)+`"`)
		}
	}
	for _, k := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
		if r.IntN(5) == 0 {
			add(k, pick(r, randNumbers))
		}
	}
	for _, k := range []string{"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"} {
		if r.IntN(6) == 0 {
			add(k, pick(r, []string{"0", "1", "2", "3", "2.0"}))
		}
	}
	if r.IntN(6) == 0 {
		add("pattern", `"`+pick(r, randPatterns)+`"`)
	}
	scalars := func() string {
		switch r.IntN(4) {
		case 0:
			return pick(r, randNumbers)
		case 1:
			return pick(r, randStrings)
		}
		return pick(r, []string{"null", "true", "false"})
	}
	if r.IntN(8) == 0 {
		add("enum", "["+scalars()+","+scalars()+"]")
	}
	if r.IntN(12) == 0 {
		add("const", scalars())
	}
	if r.IntN(3) == 0 {
		var ps, req []string
		for _, name := range randNames {
			if r.IntN(3) == 0 {
				ps = append(ps, `"`+name+`":`+randSchema(r, depth-1))
			}
			if r.IntN(5) == 0 {
				req = append(req, `"`+name+`"`)
			}
		}
		add("properties", "{"+strings.Join(ps, ",")+"}")
		if len(req) > 0 {
			add("required", "["+strings.Join(req, ",")+"]")
		}
	}
	if r.IntN(4) == 0 {
		add("additionalProperties", randSchema(r, depth-1))
	}
	if r.IntN(4) == 0 {
		add("items", randSchema(r, depth-1))
	}
	if r.IntN(6) == 0 {
		add("format", `"email"`)
	}
	if r.IntN(6) == 0 {
		add("description", `"d"`)
	}
	return "{" + strings.Join(kw, ",") + "}"
}

func randValue(r *rand.Rand, depth int) string {
	k := r.IntN(6)
	if depth <= 0 {
		k = r.IntN(3)
	}
	switch k {
	case 0:
		return pick(r, randNumbers)
	case 1:
		return pick(r, randStrings)
	case 2:
		return pick(r, []string{"null", "true", "false"})
	case 3, 4:
		var ms []string
		for _, name := range randNames {
			if r.IntN(2) == 0 {
				ms = append(ms, `"`+name+`":`+randValue(r, depth-1))
			}
		}
		return "{" + strings.Join(ms, ",") + "}"
	}
	var es []string
	for range r.IntN(4) {
		es = append(es, randValue(r, depth-1))
	}
	return "[" + strings.Join(es, ",") + "]"
}

// TestFastPathAllocs checks that validating the arguments of a call on
// the fast path allocates nothing.
func TestFastPathAllocs(t *testing.T) {
	if raceEnabled {
		// Under the race detector sync.Pool drops items at random; the test
		// command runs this test again without it (scripts/test.sh).
		return
	}
	for _, tc := range []struct{ schema, params string }{
		{readSchema, `{"name":"read","arguments":{"path":"/a/b\u00e9","mode":"r","opts":{"depth":2.0,"tags":["x","y"]},"big":-12345678901234567890.5e1}}`},
		{echoSchema, `{"name":"echo","arguments":{"text":"hello"}}`},
	} {
		s, fs, err := compileSchema(jsontext.Value(tc.schema))
		if err != nil || fs == nil {
			t.Fatalf("fast path does not claim %s (err %v)", tc.schema, err)
		}
		cs := &compiled{schema: s, fast: fs}
		params := jsontext.Value(tc.params)
		if msg, err := validateArguments(cs, params); msg != "" || err != nil {
			t.Fatalf("validateArguments(%s) = %q, %v", tc.params, msg, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = validateArguments(cs, params) }); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", tc.params, n)
		}
	}
}
