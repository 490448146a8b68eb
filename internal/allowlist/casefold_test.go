package allowlist

import "testing"

// TestCaseVariantNames checks the search for member names of one object
// that differ only by case, which validation refuses before any schema.
func TestCaseVariantNames(t *testing.T) {
	for _, tt := range []struct {
		name, args, want string
	}{
		{"empty", `{}`, ""},
		{"distinct", `{"path":"/a","mode":"r"}`, ""},
		{"top-level", `{"path":"/ok","PATH":"/etc/passwd"}`, `arguments: member names "path" and "PATH" differ only by case`},
		{"unicode-fold", `{"pass":1,"paſs":2}`, `arguments: member names "pass" and "paſs" differ only by case`},
		{"escaped", `{"path":"/ok","\u0050ATH":"/etc"}`, `arguments: member names "path" and "PATH" differ only by case`},
		{"nested", `{"opts":{"depth":1,"Depth":2}}`, `arguments.opts: member names "depth" and "Depth" differ only by case`},
		{"in-array", `{"items":[{"a":1},{"b":1,"B":2}]}`, `arguments.items[1]: member names "b" and "B" differ only by case`},
		{"deep", `{"a":[[{"x":{"k":1,"K":1}}]]}`, `arguments.a[0][0].x: member names "k" and "K" differ only by case`},
		{"quoted-name", `{"a b":{"x":1,"X":2}}`, `arguments["a b"]: member names "x" and "X" differ only by case`},
		{"separate-objects", `{"a":{"x":1},"b":{"X":2}}`, ""},
		{"outer-after-inner", `{"a":{"b":1},"B":2}`, ""},
		{"outer-variant-after-inner", `{"a":{"z":1},"A":2}`, `arguments: member names "a" and "A" differ only by case`},
		// The decoder refuses duplicate names; validation refuses them then.
		{"duplicate", `{"a":1,"a":2}`, ""},
		{"scalar", `42`, ""},
		{"malformed", `{"a":`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := caseVariantNames([]byte(tt.args)); got != tt.want {
				t.Errorf("caseVariantNames(%s) = %q, want %q", tt.args, got, tt.want)
			}
		})
	}
}
