package approval

import (
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// FuzzState feeds arbitrary requestState values to the guard's check: it
// must never panic, and nothing opens but what the sealer minted.
func FuzzState(f *testing.F) {
	s := newSealer()
	key := Binding{Subject: "alice"}.Key()
	good := s.seal(newID(), key, time.Now().Add(time.Minute))
	f.Add(good)
	f.Add(StatePrefix)
	f.Add(StatePrefix + "AAAA.BBBB")
	f.Add(good[:len(good)-1])
	f.Add(strings.Replace(good, ".", "..", 2))
	f.Fuzz(func(t *testing.T, state string) {
		cl, err := s.open(state)
		if err != nil {
			return
		}
		if state != good {
			t.Fatalf("a state the sealer did not mint opened: %q -> %+v", state, cl)
		}
	})
}

// FuzzBind computes bindings of arbitrary arguments: it must never panic,
// the digest must not depend on white space, and what humans are shown
// must carry no control or format characters.
func FuzzBind(f *testing.F) {
	for _, s := range []string{
		`{"name":"t","arguments":{"a":1,"b":[true,null,"x"]}}`,
		`{"name":"t","arguments":{"a":"\u202e\u0000"}}`,
		`{"name":"t","arguments":{"a":1,"a":2}}`,
		`{"name":"t","arguments":[1e400,-0,0.10]}`,
		`{"name":"t"}`,
		`[]`,
		``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, params string) {
		c := toolCall(params)
		b, canon, err := bind(c, requireRule)
		if err != nil {
			return
		}
		if !jsontext.Value(canon).IsValid() {
			t.Fatalf("canonical arguments are not valid JSON: %q", canon)
		}
		spaced := jsontext.Value(params).Clone()
		if spaced.Indent() == nil {
			b2, _, err := bind(toolCall(string(spaced)), requireRule)
			if err != nil || b2.Digest != b.Digest {
				t.Fatalf("indenting %q changed the binding: %v, %s vs %s", params, err, b.Digest, b2.Digest)
			}
		}
		for _, r := range summarize(canon) {
			if r < 0x20 || r == 0x7f || (r >= 0x200b && r <= 0x200f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
				t.Fatalf("summary %q carries %U", summarize(canon), r)
			}
		}
	})
}
