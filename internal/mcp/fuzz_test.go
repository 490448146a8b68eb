package mcp_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/mcp"
)

// FuzzDecode checks that Decode never panics, never modifies its input,
// answers every failure with a *DecodeError carrying a JSON-RPC code, and
// that a message it accepts re-encodes to bytes that decode to an equal
// message with the id bytes untouched. The seed corpus is in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":1}}}`,
		`{"jsonrpc":"2.0","id":"a\"b","result":{"content":[{"type":"text","text":"hi"}]}}`,
		`{"jsonrpc":"2.0","id":-0,"error":{"code":-32601,"message":"m","data":[1]}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized","x":{}}`,
		`[{"jsonrpc":"2.0","method":"x"}]`,
	} {
		f.Add([]byte(s))
	}
	codes := []int64{mcp.CodeParseError, mcp.CodeInvalidRequest, mcp.CodeMessageTooLarge}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := bytes.Clone(b)
		checkDepthLimit(t, b)
		m, err := mcp.Decode(b, mcp.Limits{MaxBytes: 1 << 16})
		if !bytes.Equal(b, orig) {
			t.Fatalf("Decode modified its input")
		}
		if err != nil {
			var de *mcp.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if !slices.Contains(codes, de.Code) {
				t.Fatalf("unexpected code %d for %v", de.Code, err)
			}
			if de.ID != nil {
				checkID(t, de.ID, b)
			}
			return
		}
		if m.Kind() == mcp.KindInvalid {
			t.Fatalf("Decode accepted a message of no kind: %s", b)
		}
		if m.ID != nil {
			checkID(t, m.ID, b)
		}
		if m.ID != nil && m.ID.Kind() == 'n' && m.Kind() != mcp.KindResponse {
			t.Fatalf("null id accepted on a %v", m.Kind())
		}
		for _, raw := range []jsontext.Value{m.Params, m.Result} {
			if raw != nil && !raw.IsValid() {
				t.Fatalf("raw member %s is not valid JSON", raw)
			}
		}
		if m.Params != nil && m.Params.Kind() != '{' {
			t.Fatalf("params %s is not an object", m.Params)
		}

		enc := m.Encode()
		if !jsontext.Value(enc).IsValid() {
			t.Fatalf("Encode produced invalid JSON: %s", enc)
		}
		m2, err := mcp.Decode(enc, mcp.Limits{MaxBytes: 1 << 20})
		if err != nil {
			t.Fatalf("Decode(Encode()) failed: %v\ninput:   %s\nencoded: %s", err, b, enc)
		}
		if diff := cmp.Diff(m, m2); diff != "" {
			t.Fatalf("round trip changed the message (-first +second):\n%s", diff)
		}
		if enc2 := m2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode is not stable:\n%s\n%s", enc, enc2)
		}
	})
}

// checkID checks that id is a JSON string, number or null that appears
// verbatim in the input.
func checkID(t *testing.T, id jsontext.Value, in []byte) {
	t.Helper()
	switch id.Kind() {
	case '"', '0', 'n':
	default:
		t.Fatalf("id %s is not a string, number or null", id)
	}
	if !id.IsValid() || !bytes.Contains(in, id) {
		t.Fatalf("id %s is not a verbatim slice of the input", id)
	}
}

// FuzzObject checks the byte-level object helpers against a real JSON
// decoder: for any valid JSON object, Lookup and EachMember agree with
// json.Unmarshal into a map on which members exist (and fail with
// ErrCaseVariant exactly when a member differs from the key only by case),
// and SetMember and DeleteMember produce valid objects that differ from the
// input only in that member. The seed corpus is in testdata/fuzz/FuzzObject.
func FuzzObject(f *testing.F) {
	f.Add([]byte(`{"name":"echo","arguments":{"x":[1,"}"]}}`), "name", []byte(`"other"`))
	f.Add([]byte(`{"Name":1}`), "name", []byte(`null`))
	f.Add([]byte(` { "\u0061" : { } , "b" : [ ] } `), "a", []byte(`{"z":1}`))
	f.Add([]byte(`{}`), "", []byte(`[]`))
	f.Fuzz(func(t *testing.T, obj []byte, key string, val []byte) {
		if !jsontext.Value(obj).IsValid() || jsontext.Value(obj).Kind() != '{' || !utf8.ValidString(key) {
			return
		}
		if !jsontext.Value(val).IsValid() {
			val = []byte("null")
		}
		val = trimWS(val)
		orig := bytes.Clone(obj)

		var m map[string]jsontext.Value
		if err := json.Unmarshal(obj, &m); err != nil {
			t.Fatalf("Unmarshal of a valid object failed: %v", err)
		}
		variant := false
		for name := range m {
			if name != key && strings.EqualFold(name, key) {
				variant = true
			}
		}

		// EachMember sees the same members.
		seen := map[string]jsontext.Value{}
		err := mcp.EachMember(obj, func(name string, v jsontext.Value) error {
			seen[name] = bytes.Clone(v)
			return nil
		})
		if err != nil {
			t.Fatalf("EachMember: %v", err)
		}
		if diff := cmp.Diff(m, seen); diff != "" {
			t.Fatalf("EachMember disagrees with Unmarshal (-unmarshal +each):\n%s", diff)
		}

		got, ok, err := mcp.Lookup(obj, key)
		want, exists := m[key]
		switch {
		case variant:
			if !errors.Is(err, mcp.ErrCaseVariant) {
				t.Fatalf("Lookup(%q) = %s, %v, %v; want ErrCaseVariant", key, got, ok, err)
			}
		case err != nil:
			t.Fatalf("Lookup(%q): %v", key, err)
		case ok != exists:
			t.Fatalf("Lookup(%q) found = %v, Unmarshal found = %v", key, ok, exists)
		case ok && !bytes.Equal(got, want):
			t.Fatalf("Lookup(%q) = %s, Unmarshal = %s", key, got, want)
		}

		set, err := mcp.SetMember(obj, key, val)
		if variant != (err != nil) {
			t.Fatalf("SetMember(%q) error = %v, case variant = %v", key, err, variant)
		}
		if err == nil {
			wantMap := cloneMap(m)
			wantMap[key] = jsontext.Value(val)
			checkObject(t, "SetMember", set, wantMap)
		}

		del, err := mcp.DeleteMember(obj, key)
		if variant != (err != nil) {
			t.Fatalf("DeleteMember(%q) error = %v, case variant = %v", key, err, variant)
		}
		if err == nil {
			wantMap := cloneMap(m)
			delete(wantMap, key)
			checkObject(t, "DeleteMember", del, wantMap)
		}

		if !bytes.Equal(obj, orig) {
			t.Fatalf("helpers modified their input")
		}
	})
}

// checkObject checks that got is a valid JSON object holding exactly want.
func checkObject(t *testing.T, op string, got jsontext.Value, want map[string]jsontext.Value) {
	t.Helper()
	if !got.IsValid() || got.Kind() != '{' {
		t.Fatalf("%s produced an invalid object: %s", op, got)
	}
	var m map[string]jsontext.Value
	if err := json.Unmarshal(got, &m); err != nil {
		t.Fatalf("%s result does not unmarshal: %v", op, err)
	}
	if diff := cmp.Diff(want, m); diff != "" {
		t.Fatalf("%s result members (-want +got):\n%s\nresult: %s", op, diff, got)
	}
}

func cloneMap(m map[string]jsontext.Value) map[string]jsontext.Value {
	out := make(map[string]jsontext.Value, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func trimWS(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }

// checkDepthLimit checks, for valid JSON, that the depth limit cuts exactly
// at the nesting depth a real decoder sees: a limit equal to the depth never
// fails with ErrTooDeep and a limit one lower always does.
func checkDepthLimit(t *testing.T, b []byte) {
	t.Helper()
	if len(b) > 1<<16 || !jsontext.Value(b).IsValid() {
		return
	}
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		if _, err := dec.ReadToken(); err != nil {
			break
		}
		depth = max(depth, dec.StackDepth())
	}
	if depth == 0 {
		return
	}
	if _, err := mcp.Decode(b, mcp.Limits{MaxDepth: depth}); errors.Is(err, mcp.ErrTooDeep) {
		t.Fatalf("depth %d rejected with limit %d: %v", depth, depth, err)
	}
	if depth > 1 {
		if _, err := mcp.Decode(b, mcp.Limits{MaxDepth: depth - 1}); !errors.Is(err, mcp.ErrTooDeep) {
			t.Fatalf("depth %d accepted with limit %d: %v", depth, depth-1, err)
		}
	}
}
