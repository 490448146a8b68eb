package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that Parse never panics on any input, and that a
// configuration it accepts validates again and survives Marshal and Parse
// unchanged. The seed corpus is in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Add([]byte("servers:\n  a: {command: [x]}\n"))
	lookup := env(map[string]string{"TOKEN": "t0k", "HOST": "h.example", "EMPTY": ""})
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, "fuzz.yaml", lookup)
		if err != nil {
			if len(Problems(err)) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate again: %v", err)
		}
		_ = c.String()
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := parse(out, "again.yaml", noEnv)
		if err != nil {
			t.Fatalf("parse of marshaled config: %v\n%s", err, out)
		}
		if diff := cmp.Diff(c, again, cmpConfig); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s\n%s", diff, out)
		}
	})
}

// TestFuzzSeeds checks that the seed corpus means what its names say: the
// valid_ seeds parse and the invalid_ ones do not.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	lookup := env(map[string]string{"TOKEN": "t0k", "HOST": "h.example", "EMPTY": ""})
	for _, e := range entries {
		valid := strings.HasPrefix(e.Name(), "valid_")
		if !valid && !strings.HasPrefix(e.Name(), "invalid_") {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			body, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
			body, ok2 := strings.CutSuffix(strings.TrimSpace(body), ")")
			if !ok || !ok2 {
				t.Fatalf("not a corpus file: %q", raw)
			}
			data, err := strconv.Unquote(body)
			if err != nil {
				t.Fatal(err)
			}
			_, err = parse([]byte(data), e.Name(), lookup)
			if valid && err != nil {
				t.Errorf("valid seed does not parse: %v", err)
			}
			if !valid && err == nil {
				t.Errorf("invalid seed parses")
			}
		})
	}
}
