package expr_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/policy/expr"
)

// TestCompile compiles the conditions docs/policy.md shows, and conditions
// that must be refused with a location.
func TestCompile(t *testing.T) {
	for _, s := range []string{
		`cidr("10.0.0.0/8").containsIP(ip(request.remote_addr.split(":")[0]))`,
		`time.getHours("Europe/Berlin") < 18`,
		`args.to.matches(r"^[^@]+@example\.(com|org)$")`,
		`"secops" in principal.groups || principal.attributes.?tier.orValue("") == "2"`,
		`sets.contains(principal.groups, ["a"])`,
		`args.limit <= 100 && args.format in ["csv", "json"]`,
		`tool.annotations.?readOnlyHint.orValue(false) && has(tool.input_schema.properties)`,
		`args.items.all(i, i.size() < 10)`,
		`args.flag`, // dyn: checked when evaluated
	} {
		if _, err := expr.Compile(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, tt := range []struct{ src, want string }{
		{`server`, "condition must be a boolean, not string"},
		{`1 +`, "line 1, column 4: Syntax error"},
		{"true &&\n  nope", "line 2, column 3: undeclared reference to 'nope'"},
		{strings.Repeat("a", 20000), "size exceeds limit"},
	} {
		_, err := expr.Compile(tt.src)
		var ce *expr.Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Compile(%.30q) = %v, want an *expr.Error containing %q", tt.src, err, tt.want)
		}
	}
}
