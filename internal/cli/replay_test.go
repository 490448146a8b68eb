package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyReplay serves the demo under a policy that allows everything,
// recording arguments in full except the customer id, makes calls, then
// replays them with a stricter candidate: the calls it would refuse are
// reported as changes, the one whose new decision depends on the hashed id
// as undetermined, naming the argument, and the rest are the same.
func TestPolicyReplay(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	write := func(name, policy string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		cfg := `servers:
  demo:
    command: [sluice, demo-server]
audit:
  record: {arguments: full}
  sensitive: [id]
policy:
` + policy
		if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deployed := write("deployed.yaml", `  rules:
    - id: everything
      effect: allow
`)
	candidate := write("candidate.yaml", `  rules:
    - id: no-paris
      effect: deny
      target: {tools: [find_customers]}
      when: 'args.query == "paris"'
    - id: no-mail
      effect: deny
      target: {tools: [send_email]}
      reason: policy-no-mail
    - id: not-that-customer
      effect: deny
      target: {tools: [get_customer]}
      when: 'args.id == "C-1001"'
    - id: everything
      effect: allow
`)
	s := serveAudited(t, data, "--config", deployed)
	ctx := context.Background()
	for i, c := range []struct{ tool, args string }{
		{"find_customers", `{"query":"berlin"}`},
		{"find_customers", `{"query":"paris"}`},
		{"get_customer", `{"id":"C-1001"}`},
		{"send_email", `{"to":"someone@elsewhere.example","subject":"hi","body":"x"}`},
	} {
		if ok, err := s.call(ctx, string(rune('a'+i)), c.tool, c.args); !ok || err != nil {
			t.Fatalf("%s: %v %v", c.tool, ok, err)
		}
	}
	s.stop(t)

	res := runMain(t, ctx, nil, "policy", "replay", "--policy", candidate, "--data-dir", data, "--format", "json")
	if res.Code != 0 {
		t.Fatalf("replay: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	type change struct {
		Status, Name       string
		Recorded, Replayed []string
		DependsOn          []string `json:"depends_on"`
		Summary            *replaySummary
	}
	var got []change
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		var c change
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		got = append(got, c)
	}
	if len(got) != 4 {
		t.Fatalf("want three changes and a summary:\n%s", res.Stdout)
	}
	want := []struct{ status, name, replayed, depends string }{
		{"changed", "find_customers", "deny by no-paris (policy-denied-by-rule)", ""},
		{"undetermined", "get_customer", "allow by everything (policy-allowed-by-rule); or; deny by not-that-customer (policy-denied-by-rule)", "args.id"},
		{"changed", "send_email", "deny by no-mail (policy-no-mail)", ""},
	}
	for i, w := range want {
		g := got[i]
		if g.Status != w.status || g.Name != w.name || strings.Join(g.Replayed, "; ") != w.replayed ||
			strings.Join(g.DependsOn, ",") != w.depends || strings.Join(g.Recorded, "; ") != "allow by everything (policy-allowed-by-rule)" {
			t.Errorf("change %d: got %+v, want %+v", i, g, w)
		}
	}
	if sum := got[3].Summary; sum == nil || *sum != (replaySummary{Replayed: 4, Same: 1, Changed: 2, Undetermined: 1}) {
		t.Errorf("summary: %+v", got[3].Summary)
	}

	res = runMain(t, ctx, nil, "policy", "replay", "--policy", candidate, "--data-dir", data, "--fail-on-change")
	if res.Code != 1 || !strings.Contains(res.Stdout, "4 calls replayed: 2 would change, 1 may change") ||
		!strings.Contains(res.Stdout, "allow by everything (policy-allowed-by-rule) or deny by not-that-customer") ||
		strings.Contains(res.Stdout, "C-1001") {
		t.Fatalf("replay --fail-on-change: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	// The deployed policy replays to itself.
	res = runMain(t, ctx, nil, "policy", "replay", "--policy", deployed, "--data-dir", data, "--fail-on-change")
	if res.Code != 0 || !strings.Contains(res.Stdout, "4 calls replayed: 0 would change, 0 may change (they depend on values not recorded), 4 the same") {
		t.Fatalf("replay of the deployed policy: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
