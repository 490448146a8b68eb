package mcp_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/mcp"
)

func TestEachElement(t *testing.T) {
	tests := []struct {
		name    string
		arr     string
		want    []string
		wantErr error
	}{
		{name: "empty", arr: `[]`},
		{name: "empty-whitespace", arr: " [ \n ] "},
		{name: "scalars", arr: `[1,"a",true,false,null,-1.5e3]`, want: []string{`1`, `"a"`, `true`, `false`, `null`, `-1.5e3`}},
		{name: "whitespace", arr: "[ 1 ,\n\t{ \"a\" : 2 } , [ ] ]", want: []string{`1`, `{ "a" : 2 }`, `[ ]`}},
		{name: "nested-with-brackets-in-strings", arr: `[{"a":"]"},["[",{"}":"\"]"}],"\\"]`, want: []string{`{"a":"]"}`, `["[",{"}":"\"]"}]`, `"\\"`}},
		{name: "tools", arr: `[{"name":"a","inputSchema":{"type":"object"}},{"name":"b"}]`, want: []string{`{"name":"a","inputSchema":{"type":"object"}}`, `{"name":"b"}`}},
		{name: "not-an-array", arr: `{}`, wantErr: errAny},
		{name: "empty-input", arr: ``, wantErr: errAny},
		{name: "truncated", arr: `[1,`, wantErr: errAny},
		{name: "unterminated", arr: `[1`, wantErr: errAny},
		{name: "missing-comma", arr: `[1 2]`, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arr := jsontext.Value(tt.arr)
			orig := bytes.Clone(arr)
			var got []string
			err := mcp.EachElement(arr, func(v jsontext.Value) error {
				got = append(got, string(v))
				return nil
			})
			checkErr(t, err, tt.wantErr)
			if !bytes.Equal(arr, orig) {
				t.Errorf("EachElement modified its input")
			}
			if tt.wantErr != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("elements (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("callback-error-stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := mcp.EachElement(jsontext.Value(`[1,2,3]`), func(jsontext.Value) error {
			n++
			if n == 2 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) || n != 2 {
			t.Errorf("EachElement = %v after %d calls, want %v after 2", err, n, stop)
		}
	})
}

func TestAppendArray(t *testing.T) {
	tests := []struct {
		name  string
		elems []string
		want  string
	}{
		{name: "none", elems: nil, want: `[]`},
		{name: "one", elems: []string{`{"name":"a"}`}, want: `[{"name":"a"}]`},
		{name: "several-kept-verbatim", elems: []string{`1`, `{ "a" : [ ] }`, `"x"`}, want: `[1,{ "a" : [ ] },"x"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var elems []jsontext.Value
			for _, e := range tt.elems {
				elems = append(elems, jsontext.Value(e))
			}
			got := mcp.AppendArray([]byte("p:"), elems)
			if string(got) != "p:"+tt.want {
				t.Errorf("AppendArray = %s, want p:%s", got, tt.want)
			}
			if !jsontext.Value(got[2:]).IsValid() {
				t.Errorf("invalid JSON: %s", got[2:])
			}
		})
	}
}

// FuzzArray checks EachElement against json.Unmarshal into
// []jsontext.Value for any valid JSON array, and that AppendArray of the
// elements it yields is a valid array holding the same elements.
func FuzzArray(f *testing.F) {
	f.Add([]byte(`[{"name":"a"},{"name":"b","x":["]"]}]`))
	f.Add([]byte(` [ 1 , "\"]" , [ [ ] ] , { } ] `))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, arr []byte) {
		if !jsontext.Value(arr).IsValid() || jsontext.Value(arr).Kind() != '[' {
			return
		}
		var want []jsontext.Value
		if err := json.Unmarshal(arr, &want); err != nil {
			t.Fatalf("Unmarshal of a valid array failed: %v", err)
		}
		var got []jsontext.Value
		if err := mcp.EachElement(arr, func(v jsontext.Value) error {
			got = append(got, v)
			return nil
		}); err != nil {
			t.Fatalf("EachElement: %v", err)
		}
		if want == nil {
			want = []jsontext.Value{}
		}
		if got == nil {
			got = []jsontext.Value{}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("EachElement disagrees with Unmarshal (-unmarshal +each):\n%s", diff)
		}
		out := mcp.AppendArray(nil, got)
		var again []jsontext.Value
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("AppendArray produced %s: %v", out, err)
		}
		if len(again) != len(got) {
			t.Fatalf("AppendArray round trip: %d elements, want %d", len(again), len(got))
		}
	})
}
