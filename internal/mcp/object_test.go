package mcp_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/mcp"
)

// tricky is an object whose values hold braces, brackets, quotes and
// escaped backslashes inside strings, so a scanner that counts brackets
// without tracking strings goes wrong.
const tricky = `{"x":{"y":"}{\"","z":[{"a":"]"},"[",{"}":"\\"}]},"s":"\\\\\"}","n":-1.5e+10,"t":true,"f":false,"z":null,"a":"found"}`

func TestLookup(t *testing.T) {
	tests := []struct {
		name    string
		obj     string
		key     string
		want    string // raw value when found
		found   bool
		wantErr error // sentinel; errAny for any error
	}{
		{name: "empty-object", obj: `{}`, key: "a"},
		{name: "nil-object", obj: ``, key: "a"},
		{name: "only-member", obj: `{"a":1}`, key: "a", want: `1`, found: true},
		{name: "absent", obj: `{"a":1,"b":2}`, key: "c"},
		{name: "first", obj: `{"a":1,"b":2,"c":3}`, key: "a", want: `1`, found: true},
		{name: "middle", obj: `{"a":1,"b":2,"c":3}`, key: "b", want: `2`, found: true},
		{name: "last", obj: `{"a":1,"b":2,"c":3}`, key: "c", want: `3`, found: true},
		{name: "whitespace-everywhere", obj: " \n{ \t\"a\" \r: \t1 \n, \"b\"\n:\n[ 1 , { } ]\t}\n", key: "b", want: `[ 1 , { } ]`, found: true},
		{name: "whitespace-empty-object", obj: " {\n} ", key: "a"},
		{name: "escaped-name-unicode", obj: `{"\u0061":1}`, key: "a", want: `1`, found: true},
		{name: "escaped-name-quote", obj: `{"a\"b":2}`, key: `a"b`, want: `2`, found: true},
		{name: "escaped-name-backslash", obj: `{"\\":3}`, key: `\`, want: `3`, found: true},
		{name: "escaped-name-solidus", obj: `{"\/":4}`, key: `/`, want: `4`, found: true},
		{name: "escaped-name-surrogate-pair", obj: `{"\ud83d\ude00":5}`, key: "😀", want: `5`, found: true},
		{name: "raw-utf8-name", obj: `{"é":6}`, key: "é", want: `6`, found: true},
		{name: "escaped-name-not-equal-to-raw-escape", obj: `{"\u0061":1}`, key: `\u0061`},
		{name: "empty-name", obj: `{"":7,"a":8}`, key: "", want: `7`, found: true},
		{name: "after-tricky-strings", obj: tricky, key: "a", want: `"found"`, found: true},
		{name: "tricky-nested-object", obj: tricky, key: "x", want: `{"y":"}{\"","z":[{"a":"]"},"[",{"}":"\\"}]}`, found: true},
		{name: "tricky-string", obj: tricky, key: "s", want: `"\\\\\"}"`, found: true},
		{name: "number", obj: tricky, key: "n", want: `-1.5e+10`, found: true},
		{name: "true", obj: tricky, key: "t", want: `true`, found: true},
		{name: "false", obj: tricky, key: "f", want: `false`, found: true},
		{name: "null", obj: tricky, key: "z", want: `null`, found: true},
		{name: "nested-name-not-found-at-top", obj: `{"x":{"a":1},"y":[{"a":2}]}`, key: "a"},
		{name: "nested-name-and-top", obj: `{"x":{"a":1},"a":2}`, key: "a", want: `2`, found: true},
		{name: "name-inside-string-value", obj: `{"x":"\"a\":1"}`, key: "a"},
		{name: "value-is-key-text", obj: `{"b":"a","a":"b"}`, key: "a", want: `"b"`, found: true},

		// Case variants make the lookup fail.
		{name: "case-variant-only", obj: `{"Name":"x"}`, key: "name", wantErr: mcp.ErrCaseVariant},
		{name: "case-variant-after-exact", obj: `{"name":"x","NAME":"y"}`, key: "name", wantErr: mcp.ErrCaseVariant},
		{name: "case-variant-before-exact", obj: `{"nAme":"y","name":"x"}`, key: "name", wantErr: mcp.ErrCaseVariant},
		{name: "escaped-case-variant", obj: `{"\u004eame":1}`, key: "name", wantErr: mcp.ErrCaseVariant},
		{name: "long-s-variant", obj: `{"argumentſ":{}}`, key: "arguments", wantErr: mcp.ErrCaseVariant},
		{name: "escaped-long-s-variant", obj: `{"argument\u017f":{}}`, key: "arguments", wantErr: mcp.ErrCaseVariant},
		{name: "kelvin-variant", obj: `{"` + "\u212a" + `ey":1}`, key: "key", wantErr: mcp.ErrCaseVariant},
		{name: "variant-of-another-key-is-fine", obj: `{"Other":1,"name":2}`, key: "name", want: `2`, found: true},
		{name: "nested-variant-is-not-checked", obj: `{"x":{"NAME":1},"name":2}`, key: "name", want: `2`, found: true},

		// Malformed input.
		{name: "array", obj: `[1]`, key: "a", wantErr: errAny},
		{name: "string", obj: `"a"`, key: "a", wantErr: errAny},
		{name: "unterminated", obj: `{"a":1`, key: "a", wantErr: errAny},
		{name: "unterminated-string-value", obj: `{"a":"x}`, key: "a", wantErr: errAny},
		{name: "missing-colon", obj: `{"a" 1}`, key: "a", wantErr: errAny},
		{name: "unquoted-name", obj: `{a:1}`, key: "a", wantErr: errAny},
		{name: "missing-value", obj: `{"a":}`, key: "a", wantErr: errAny},
		{name: "duplicate", obj: `{"a":1,"a":2}`, key: "a", wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := jsontext.Value(tt.obj)
			orig := bytes.Clone(obj)
			got, found, err := mcp.Lookup(obj, tt.key)
			checkErr(t, err, tt.wantErr)
			if found != tt.found {
				t.Errorf("found = %v, want %v", found, tt.found)
			}
			if string(got) != tt.want {
				t.Errorf("value = %s, want %s", got, tt.want)
			}
			if !bytes.Equal(obj, orig) {
				t.Errorf("Lookup modified its input")
			}
		})
	}
}

func TestLookupString(t *testing.T) {
	tests := []struct {
		name    string
		obj     string
		key     string
		want    string
		found   bool
		wantErr error
	}{
		{name: "plain", obj: `{"name":"echo"}`, key: "name", want: "echo", found: true},
		{name: "escaped", obj: `{"name":"a\"b\u00e9\n"}`, key: "name", want: "a\"bé\n", found: true},
		{name: "empty", obj: `{"name":""}`, key: "name", found: true},
		{name: "absent", obj: `{"other":"x"}`, key: "name"},
		{name: "number", obj: `{"name":1}`, key: "name", wantErr: errAny},
		{name: "null", obj: `{"name":null}`, key: "name", wantErr: errAny},
		{name: "object", obj: `{"name":{}}`, key: "name", wantErr: errAny},
		{name: "case-variant", obj: `{"name":"a","Name":"b"}`, key: "name", wantErr: mcp.ErrCaseVariant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := mcp.LookupString(jsontext.Value(tt.obj), tt.key)
			checkErr(t, err, tt.wantErr)
			if got != tt.want || found != tt.found {
				t.Errorf("LookupString = %q, %v; want %q, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

func TestLookupPath(t *testing.T) {
	const obj = `{"params":{"arguments":{"path":"/etc","deep":{"x":[1]}},"name":"read"},"s":"str"}`
	tests := []struct {
		name    string
		obj     string
		path    []string
		want    string
		found   bool
		wantErr error
	}{
		{name: "empty-path-is-the-object", obj: obj, path: nil, want: obj, found: true},
		{name: "one", obj: obj, path: []string{"s"}, want: `"str"`, found: true},
		{name: "two", obj: obj, path: []string{"params", "name"}, want: `"read"`, found: true},
		{name: "three", obj: obj, path: []string{"params", "arguments", "path"}, want: `"/etc"`, found: true},
		{name: "to-array", obj: obj, path: []string{"params", "arguments", "deep", "x"}, want: `[1]`, found: true},
		{name: "through-array", obj: obj, path: []string{"params", "arguments", "deep", "x", "0"}},
		{name: "through-string", obj: obj, path: []string{"s", "x"}},
		{name: "absent-middle", obj: obj, path: []string{"params", "nope", "x"}},
		{name: "case-variant-on-the-way", obj: `{"a":{"B":1,"b":2}}`, path: []string{"a", "b"}, wantErr: mcp.ErrCaseVariant},
		{name: "whitespace", obj: "{ \"a\" : { \"b\" : 3 } }", path: []string{"a", "b"}, want: `3`, found: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found, err := mcp.LookupPath(jsontext.Value(tt.obj), tt.path...)
			checkErr(t, err, tt.wantErr)
			if string(got) != tt.want || found != tt.found {
				t.Errorf("LookupPath = %s, %v; want %s, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

func TestEachMember(t *testing.T) {
	type member struct{ Name, Value string }
	tests := []struct {
		name    string
		obj     string
		want    []member
		wantErr error
	}{
		{name: "empty", obj: `{}`},
		{name: "whitespace-empty", obj: " { } "},
		{name: "in-order", obj: `{"b":1,"a":[2],"c":{"d":"e"}}`, want: []member{{"b", "1"}, {"a", "[2]"}, {"c", `{"d":"e"}`}}},
		{name: "escaped-names", obj: `{"\u0061":1,"b\"":2,"\\":3}`, want: []member{{"a", "1"}, {`b"`, "2"}, {`\`, "3"}}},
		{name: "whitespace", obj: "{\n \"a\" : 1 ,\n \"b\" : \"x\" \n}", want: []member{{"a", "1"}, {"b", `"x"`}}},
		{name: "tricky", obj: tricky, want: []member{
			{"x", `{"y":"}{\"","z":[{"a":"]"},"[",{"}":"\\"}]}`}, {"s", `"\\\\\"}"`}, {"n", "-1.5e+10"},
			{"t", "true"}, {"f", "false"}, {"z", "null"}, {"a", `"found"`},
		}},
		{name: "not-an-object", obj: `[]`, wantErr: errAny},
		{name: "empty-input", obj: ``, wantErr: errAny},
		{name: "truncated", obj: `{"a":1,`, wantErr: errAny},
		{name: "missing-comma", obj: `{"a":1 "b":2}`, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []member
			err := mcp.EachMember(jsontext.Value(tt.obj), func(name string, val jsontext.Value) error {
				got = append(got, member{name, string(val)})
				return nil
			})
			checkErr(t, err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("callback-error-stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := mcp.EachMember(jsontext.Value(`{"a":1,"b":2,"c":3}`), func(name string, _ jsontext.Value) error {
			n++
			if name == "b" {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 2 {
			t.Errorf("EachMember = %v after %d calls, want %v after 2", err, n, stop)
		}
	})
}

func TestSetMember(t *testing.T) {
	tests := []struct {
		name    string
		obj     string
		key     string
		val     string
		want    string
		wantErr error
	}{
		{name: "nil-object", obj: ``, key: "a", val: `1`, want: `{"a":1}`},
		{name: "empty-object", obj: `{}`, key: "a", val: `1`, want: `{"a":1}`},
		{name: "empty-object-whitespace", obj: " { \n } ", key: "a", val: `1`, want: "{\"a\":1} "},
		{name: "add-to-non-empty", obj: `{"b":2}`, key: "a", val: `1`, want: `{"a":1,"b":2}`},
		{name: "add-to-non-empty-whitespace", obj: "{ \"b\" : 2 }", key: "a", val: `1`, want: "{\"a\":1,\"b\" : 2 }"},
		{name: "add-object-value", obj: `{"b":2}`, key: "a", val: `{"x":[1,"}"]}`, want: `{"a":{"x":[1,"}"]},"b":2}`},
		{name: "add-name-needing-escape", obj: `{}`, key: "a\"b\\", val: `true`, want: `{"a\"b\\":true}`},
		{name: "replace-only", obj: `{"a":0}`, key: "a", val: `1`, want: `{"a":1}`},
		{name: "replace-first", obj: `{"a":0,"b":2,"c":3}`, key: "a", val: `"x"`, want: `{"a":"x","b":2,"c":3}`},
		{name: "replace-middle", obj: `{"a":0,"b":2,"c":3}`, key: "b", val: `[]`, want: `{"a":0,"b":[],"c":3}`},
		{name: "replace-last", obj: `{"a":0,"b":2,"c":3}`, key: "c", val: `null`, want: `{"a":0,"b":2,"c":null}`},
		{name: "replace-keeps-whitespace", obj: "{ \"a\" : 0 , \"b\" : 2 }", key: "a", val: `{"n":1}`, want: "{ \"a\" : {\"n\":1} , \"b\" : 2 }"},
		{name: "replace-longer-value", obj: `{"a":{"deep":{"x":"}"}},"b":1}`, key: "a", val: `1`, want: `{"a":1,"b":1}`},
		{name: "replace-escaped-name-keeps-spelling", obj: `{"\u0061":0}`, key: "a", val: `1`, want: `{"\u0061":1}`},
		{name: "replace-in-tricky", obj: tricky, key: "a", val: `"new"`, want: `{"x":{"y":"}{\"","z":[{"a":"]"},"[",{"}":"\\"}]},"s":"\\\\\"}","n":-1.5e+10,"t":true,"f":false,"z":null,"a":"new"}`},
		{name: "nested-same-name-untouched", obj: `{"x":{"a":0}}`, key: "a", val: `1`, want: `{"a":1,"x":{"a":0}}`},
		{name: "case-variant", obj: `{"A":0}`, key: "a", val: `1`, wantErr: mcp.ErrCaseVariant},
		{name: "not-an-object", obj: `[]`, key: "a", val: `1`, wantErr: errAny},
		{name: "malformed", obj: `{"a":`, key: "a", val: `1`, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := jsontext.Value(tt.obj)
			orig := bytes.Clone(obj)
			got, err := mcp.SetMember(obj, tt.key, jsontext.Value(tt.val))
			checkErr(t, err, tt.wantErr)
			if !bytes.Equal(obj, orig) {
				t.Errorf("SetMember modified its input: %s", obj)
			}
			if tt.wantErr != nil {
				return
			}
			if string(got) != tt.want {
				t.Errorf("SetMember:\n got %s\nwant %s", got, tt.want)
			}
			if !got.IsValid() {
				t.Errorf("result is not valid JSON: %s", got)
			}
			if val, ok, err := mcp.Lookup(got, tt.key); err != nil || !ok || string(val) != tt.val {
				t.Errorf("Lookup on result = %s, %v, %v; want %s", val, ok, err, tt.val)
			}
			// The result is a copy: writing into it leaves the input alone.
			for i := range got {
				got[i] = 'X'
			}
			if !bytes.Equal(obj, orig) {
				t.Errorf("result aliases the input")
			}
		})
	}
}

func TestDeleteMember(t *testing.T) {
	tests := []struct {
		name    string
		obj     string
		key     string
		want    string
		wantErr error
	}{
		{name: "only", obj: `{"a":1}`, key: "a", want: `{}`},
		{name: "first", obj: `{"a":1,"b":2,"c":3}`, key: "a", want: `{"b":2,"c":3}`},
		{name: "middle", obj: `{"a":1,"b":2,"c":3}`, key: "b", want: `{"a":1,"c":3}`},
		{name: "last", obj: `{"a":1,"b":2,"c":3}`, key: "c", want: `{"a":1,"b":2}`},
		{name: "only-whitespace", obj: " { \"a\" : 1 } ", key: "a", want: " {  } "},
		{name: "first-whitespace", obj: "{ \"a\" : 1 ,\n \"b\" : 2 }", key: "a", want: "{ \"b\" : 2 }"},
		{name: "middle-whitespace", obj: "{ \"a\" : 1 , \"b\" : 2 , \"c\" : 3 }", key: "b", want: "{ \"a\" : 1 , \"c\" : 3 }"},
		{name: "last-whitespace", obj: "{ \"a\" : 1 , \"b\" : 2 }", key: "b", want: "{ \"a\" : 1  }"},
		{name: "nested-value", obj: `{"a":{"b":[1,{"c":"}"}]},"d":1}`, key: "a", want: `{"d":1}`},
		{name: "nested-same-name-untouched", obj: `{"x":{"a":1},"a":2}`, key: "a", want: `{"x":{"a":1}}`},
		{name: "escaped-name", obj: `{"\u0061":1,"b":2}`, key: "a", want: `{"b":2}`},
		{name: "tricky", obj: tricky, key: "x", want: `{"s":"\\\\\"}","n":-1.5e+10,"t":true,"f":false,"z":null,"a":"found"}`},
		{name: "absent", obj: `{"a":1}`, key: "b", want: `{"a":1}`},
		{name: "empty", obj: `{}`, key: "a", want: `{}`},
		{name: "nil", obj: ``, key: "a", want: ``},
		{name: "case-variant", obj: `{"A":1}`, key: "a", wantErr: mcp.ErrCaseVariant},
		{name: "not-an-object", obj: `"a"`, key: "a", wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := jsontext.Value(tt.obj)
			orig := bytes.Clone(obj)
			got, err := mcp.DeleteMember(obj, tt.key)
			checkErr(t, err, tt.wantErr)
			if !bytes.Equal(obj, orig) {
				t.Errorf("DeleteMember modified its input: %s", obj)
			}
			if tt.wantErr != nil {
				return
			}
			if string(got) != tt.want {
				t.Errorf("DeleteMember:\n got %s\nwant %s", got, tt.want)
			}
			if len(got) == 0 {
				return
			}
			if !got.IsValid() {
				t.Errorf("result is not valid JSON: %s", got)
			}
			if _, ok, err := mcp.Lookup(got, tt.key); err != nil || ok {
				t.Errorf("member still present after delete (ok=%v, err=%v)", ok, err)
			}
		})
	}
}

// errAny stands for "some error" in the tables above.
var errAny = errors.New("any error")

func checkErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want == errAny && err == nil, want != nil && want != errAny && !errors.Is(err, want):
		t.Fatalf("error = %v, want %v", err, want)
	}
}
