package policy

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// nativeConditions are conditions of the shapes policies are written in,
// and of shapes meant to find where the native evaluator and CEL's
// interpreter could part: errors inside && and ||, values of unexpected
// types, optional chains, heterogeneous numbers.
var nativeConditions = []string{
	`"admins" in principal.groups`,
	`"admins" in principal.groups && args.?limit.orValue(10) <= 100`,
	`!("admins" in principal.groups) || args.path.startsWith("/data/")`,
	`args.path.startsWith("/data/") && !args.path.contains("..")`,
	`args.?path.orValue("").contains("/secrets/") || args.?file.orValue("").contains("/secrets/")`,
	`args.?limit.orValue(0) > 10000`,
	`args.?limit.orValue(10) <= 100 && args.format in ["csv", "json"] && size(args) < 10`,
	`args.?a.?b.orValue(0) == 1`,
	`args.?a.b.orValue(0) == 1`,
	`args.a.?b.orValue(0) == 1`,
	`args.?a.?b.hasValue()`,
	`args.?a.or(args.?b).orValue("none") == "x"`,
	`has(args.a)`,
	`has(args.a.b)`,
	`args["a"] == args.a`,
	`args.a == 1`,
	`args.a != 1`,
	`args.a == 1.0`,
	`args.a == 1u`,
	`args.a < 2.5`,
	`args.a >= 0 && args.a <= 10`,
	`args.a > "m"`,
	`args.a in [1, "a", 2.0, true, null]`,
	`args.a in args.b`,
	`"k" in args`,
	`args.a == null`,
	`args.a == [1, 2]`,
	`args.a == {"x": 1}`,
	`args.a.size() > 3`,
	`size(args.a) == 0`,
	`args.a.lowerAscii() == "abc"`,
	`args.a.matches("^[A-Z]{3}$")`,
	`args.a.endsWith(".csv") ? args.b > 1 : args.c`,
	`type(args.a) == string`,
	`int(args.a) > 3`,
	`double(args.a) > 1000.0`,
	`string(args.a) == "1"`,
	`args.a || args.b`,
	`args.a && args.b`,
	`!args.a`,
	`principal.client_id == "" && !tool.annotations.?readOnlyHint.orValue(false)`,
	`principal.attributes.?role.orValue("") != "lead"`,
	`principal.attributes.role == "lead" || principal.authenticated`,
	`"contractors" in principal.groups && (time.getHours() < 6 || time.getHours() >= 20)`,
	`time.getDayOfWeek() in [0, 6]`,
	`tool.name.startsWith("read_") && server == "fs"`,
	`request.headers["x-team"] == "blue"`,
	`request.headers[?"x-team"].orValue("") == "blue"`,
	`request.method == "tools/call" && request.profile == ""`,
	`client.name.contains("claude")`,
	`args.a.split(",").size() > 2`,
	`[args.a, args.b].exists(x, x == 1)`,
	`args.exists(k, k.lowerAscii().contains("password"))`,
	`args.exists(k, k.startsWith("__"))`,
	`args.b.exists(x, x > 1)`,
	`args.b.all(x, x > 0)`,
	`args.b.exists_one(x, x == 1)`,
	`args.a.all(x, x.size() < 3)`,
	`args.exists(k, args[k] == 1)`,
	`args.b[0] == 1 && args.b[1] > 0`,
	`args.exists(k, args.exists(j, k != j && k.lowerAscii() == j.lowerAscii()))`,
	`args.b.all(x, args.c.exists(y, x == y))`,
	`args.b.filter(x, x > 1).size() > 0`,
	`args.b.map(x, x + 1).exists(y, y > 2)`,
	`principal.groups.exists(g, g.startsWith("team"))`,
	`args.a.contains(args.b) && args.exists(k, k == "c")`,
}

// nativeEngine compiles the conditions as rules of a policy.
func nativeEngine(t testing.TB, conds []string) *Engine {
	t.Helper()
	var b strings.Builder
	b.WriteString("servers:\n  fs: {command: [fs]}\npolicy:\n  rules:\n")
	for i, c := range conds {
		b.WriteString("    - {id: r" + strconv.Itoa(i) + ", effect: allow, target: {tools: [\"*\"]}, when: '" + strings.ReplaceAll(c, "'", "''") + "'}\n")
	}
	cfg, err := config.Parse([]byte(b.String()), "native.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg.Policy, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestNativeCovers keeps the native evaluator honest about what it
// covers: every condition of the benchmark's policy, and the shapes above
// but map() and filter(), optional indexes, map literals and type names,
// run natively.
func TestNativeCovers(t *testing.T) {
	e := nativeEngine(t, nativeConditions)
	for _, r := range e.rules {
		cond := nativeConditions[r.index]
		uncovered := strings.Contains(cond, ".map(") || strings.Contains(cond, ".filter(") || strings.Contains(cond, "[?") ||
			strings.Contains(cond, "== {") || strings.Contains(cond, "type(")
		if (r.fast == nil) != uncovered {
			t.Errorf("%s: native %v", cond, r.fast != nil)
		}
	}
	for _, file := range []string{"../../bench/guarded-rules.yaml"} {
		rules, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var conds []string
		for line := range strings.Lines(string(rules)) {
			if c, ok := strings.CutPrefix(strings.TrimSpace(line), "when: "); ok {
				conds = append(conds, strings.ReplaceAll(strings.Trim(c, "'"), "''", "'"))
			}
		}
		if len(conds) < 90 {
			t.Fatalf("%s: %d conditions", file, len(conds))
		}
		for _, r := range nativeEngine(t, conds).rules {
			if r.fast == nil {
				t.Errorf("%s: %q does not run natively", file, conds[r.index])
			}
		}
	}
}

// FuzzNativeMatchesCEL evaluates every condition above, natively and with
// CEL's interpreter, on arbitrary arguments and principals: where the
// native evaluator does not decline, the two must reach the same verdict,
// and for a condition with a comprehension the metered cost must bound the
// cost the interpreter charged; and a condition whose principal-only
// conjunct is false must be false.
func FuzzNativeMatchesCEL(f *testing.F) {
	for _, s := range []struct {
		args, groups, attrs string
		hour                uint8
	}{
		{`{"path":"/data/x.csv","limit":20,"format":"csv"}`, "admins,staff", "lead", 10},
		{`{"path":"/secrets/k","file":3}`, "contractors", "", 22},
		{`{"a":1,"b":[1,2],"c":true}`, "", "analyst", 3},
		{`{"a":1.0,"b":{"1":2}}`, "admins", "", 0},
		{`{"a":"abc","b":"x"}`, "", "", 5},
		{`{"a":{"b":1},"k":null}`, "x", "", 12},
		{`{"a":{"b":"1"}}`, "", "", 12},
		{`{"a":null,"b":null}`, "", "", 12},
		{`{"a":[1,2],"b":{"x":1}}`, "", "", 12},
		{`{"a":"ABC","b":2.5}`, "", "", 12},
		{`{"a":9223372036854775807,"b":1e400}`, "", "", 12},
		{`{"a":"1,2,3","Password":"x"}`, "", "", 12},
		{`{"a":true,"b":false,"c":"x"}`, "", "", 12},
		{`{"a":"m","b":"n"}`, "", "", 12},
		{`[1]`, "", "", 12},
		{`"text"`, "", "", 12},
		{`{"a":1,"A":2}`, "", "", 12},
	} {
		f.Add([]byte(s.args), s.groups, s.attrs, s.hour)
	}
	e := nativeEngine(f, nativeConditions)
	tool := &guard.Tool{Name: "read_file", Raw: jsontext.Value(`{"name":"read_file","annotations":{"readOnlyHint":true}}`)}
	f.Fuzz(func(t *testing.T, args []byte, groups, role string, hour uint8) {
		if !jsontext.Value(args).IsValid() {
			return // the gateway's decoder refuses such a message
		}
		p := &guard.Principal{Issuer: "api-key", Subject: "s", ClientID: role, Groups: strings.Split(groups, ",")}
		if role != "" {
			p.Attributes = map[string]string{"role": role}
		}
		params := `{"name":"read_file","arguments":` + string(args) + `}`
		c := &guard.Call{ID: "c", Principal: p, Server: "fs", Method: mcp.MethodToolsCall, Name: "read_file", Params: jsontext.Value(params), Tool: tool}
		c.Transport.Headers = map[string]string{"x-team": role}
		now := time.Date(2026, 12, 3, int(hour%24), 0, 0, 0, time.UTC)
		for _, r := range e.rules {
			a := &activation{e: e, c: c, k: kindTool, name: c.Name, now: now}
			out, det, err := r.prog.Eval(a)
			want := toVerdict(out, err)
			if r.fast != nil {
				a := &activation{e: e, c: c, k: kindTool, name: c.Name, now: now}
				got := r.fast(a)
				if got != declined && toVerdict(got, nil) != want {
					t.Errorf("%s on %s: native %v (%v), CEL %v (%v, %v)", nativeConditions[r.index], args, toVerdict(got, nil), got, want, out, err)
				}
				if cost := det.ActualCost(); got != declined && cost != nil && *cost > uint64(a.cost) {
					t.Errorf("%s on %s: metered %d, CEL charged %d", nativeConditions[r.index], args, a.cost, *cost)
				}
			}
			a = &activation{e: e, c: c, k: kindTool, name: c.Name, now: now}
			if r.principalOnly != nil && a.ruledOut(r) && want != vNo {
				t.Errorf("%s on %s: ruled out by the principal, yet CEL says %v", nativeConditions[r.index], args, want)
			}
		}
	})
}

// TestNativeMeter checks the metered cost on arguments large enough for
// the interpreter's cost limit to matter: where the interpreter stops at
// its limit, the native evaluation declines; where it does not, the meter
// bounds what it charged and both decide alike.
func TestNativeMeter(t *testing.T) {
	conds := []string{
		`args.exists(k, args.exists(j, k != j && k.lowerAscii() == j.lowerAscii()))`,
		`args.exists(k, k.lowerAscii().contains("password"))`,
	}
	e := nativeEngine(t, conds)
	for _, n := range []int{10, 200, 1500} {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"` + strings.Repeat("k", 40) + strconv.Itoa(i) + `":1`)
		}
		b.WriteString("}")
		c := &guard.Call{ID: "c", Principal: &guard.Principal{Subject: "s"}, Server: "fs", Method: mcp.MethodToolsCall, Name: "t",
			Params: jsontext.Value(`{"name":"t","arguments":` + b.String() + `}`)}
		for _, r := range e.rules {
			a := &activation{e: e, c: c, k: kindTool, name: c.Name, now: time.Now()}
			out, det, err := r.prog.Eval(a)
			want := toVerdict(out, err)
			a = &activation{e: e, c: c, k: kindTool, name: c.Name, now: time.Now()}
			got := r.fast(a)
			limited := err != nil && strings.Contains(err.Error(), "cost limit")
			switch {
			case limited && got != declined:
				t.Errorf("%d arguments, %s: the interpreter hit its cost limit, the native evaluation gave %v (metered %d)", n, conds[r.index], got, a.cost)
			case !limited && got != declined && toVerdict(got, nil) != want:
				t.Errorf("%d arguments, %s: native %v, CEL %v", n, conds[r.index], got, out)
			case got != declined && *det.ActualCost() > uint64(a.cost):
				t.Errorf("%d arguments, %s: metered %d, CEL charged %d", n, conds[r.index], a.cost, *det.ActualCost())
			}
			t.Logf("%d arguments, %s: CEL cost %d (%v), metered %d, native declined %v", n, conds[r.index], *det.ActualCost(), err, a.cost, got == declined)
		}
	}
}
