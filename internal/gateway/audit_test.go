package gateway_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/authn"
)

// TestAudit runs the audit guard in the real gateway with clients of both
// eras: every call through the chain is recorded, with the decisions of
// the guards inside it (a policy denial here), the legacy session, the
// request id, and the configured sensitive argument as a token only.
func TestAudit(t *testing.T) {
	alpha := upstreamServer(t, "alpha", false, "read", "write")
	dir := t.TempDir()
	g, base := start(t, `
data_dir: `+dir+`
servers:
  alpha: {url: "`+alpha+`", era: legacy}
audit:
  record: {arguments: full, results: none}
  sensitive: [arg]
policy:
  rules:
    - {id: reads, effect: allow, target: {tools: [read]}}
`)
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cs := connect(t, base+"/mcp", era.version)
			defer cs.Close()
			if _, err := callText(ctx, cs, "read", "ada@example.com"); err != nil {
				t.Fatal(err)
			}
			if _, err := callText(ctx, cs, "write", "x"); err == nil {
				t.Fatal("write was allowed")
			}
		})
	}
	g.Close()

	keys, err := audit.LoadKeys(nil, dir, false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := audit.OpenSQLite(filepath.Join(dir, audit.DatabaseFile), audit.SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rep, err := audit.Verify(context.Background(), st, keys.Public)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	var calls []*audit.View
	err = st.Query(context.Background(), audit.Filter{Method: "tools/call"}, func(r audit.Record) error {
		v, err := audit.ParseView(r.Body)
		calls = append(calls, v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 4 {
		t.Fatalf("%d tools/call records, want 4", len(calls))
	}
	token := audit.NewHasher(keys.HMAC).Token("ada@example.com")
	for i, v := range calls {
		legacy := i < 2
		if (v.Session != "") != legacy || (v.Era == "legacy") != legacy || len(v.RequestID) == 0 || v.Server != "alpha" || v.ID == "" {
			t.Errorf("record %d: %+v", i, v)
		}
		if !slices.ContainsFunc(v.Decisions, func(d audit.Decision) bool { return d.Guard == "policy" }) {
			t.Errorf("record %d has no policy decision: %+v", i, v.Decisions)
		}
		switch v.Name {
		case "read":
			if v.Outcome != "ok" || string(v.Args) != `{"arg":"`+token+`"}` || v.Result != nil {
				t.Errorf("read recorded as %+v (args %s)", v, v.Args)
			}
		case "write":
			if v.Outcome != "denied" || v.Reason != "policy-no-matching-rule" {
				t.Errorf("write recorded as %+v", v)
			}
		default:
			t.Errorf("record %d names %q", i, v.Name)
		}
	}
	var n int
	st.Query(context.Background(), audit.Filter{Contains: token}, func(audit.Record) error { n++; return nil })
	if n != 2 {
		t.Errorf("the token of the argument finds %d records, want 2", n)
	}
}

// TestAuditRefusals: requests refused before the guard chain (wrong
// credentials, a Host that is not allowed) are recorded too, with the
// reason code the caller was given; a good key's call carries its
// principal.
func TestAuditRefusals(t *testing.T) {
	alpha := upstreamServer(t, "alpha", false, "read")
	dir := t.TempDir()
	const key = "audit-test-key-0123456789"
	_, base := start(t, `
data_dir: `+dir+`
servers:
  alpha: {url: "`+alpha+`", era: legacy}
auth:
  api_keys:
    - {id: k, hash: "`+authn.HashKey(key)+`", principal: {subject: auditor}}
`)
	post := func(token, host string) int {
		req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post("wrong-key-0123456789abcdef", ""); got != http.StatusUnauthorized {
		t.Fatalf("a wrong key: %d", got)
	}
	if got := post(key, "evil.example.com"); got != http.StatusForbidden {
		t.Fatalf("a foreign Host: %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: &http.Client{Transport: bearer{key, http.DefaultTransport}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := callText(ctx, cs, "read", "x"); err != nil {
		t.Fatal(err)
	}
	cs.Close()

	st, err := audit.OpenSQLite(filepath.Join(dir, audit.DatabaseFile), audit.SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	deadline := time.Now().Add(5 * time.Second)
	var reasons []string
	for {
		reasons = nil
		err := st.Query(context.Background(), audit.Filter{}, func(r audit.Record) error {
			v, err := audit.ParseView(r.Body)
			if err == nil {
				reasons = append(reasons, v.Outcome+" "+v.Reason+" "+v.Subject()+" "+v.Name)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(reasons) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []string{"denied authn-api-key-unknown - /mcp", "denied http-host-not-allowed - /mcp"}
	for _, w := range want {
		if !slices.Contains(reasons, w) {
			t.Errorf("no record %q in %q", w, reasons)
		}
	}
	if !slices.ContainsFunc(reasons, func(s string) bool { return strings.HasPrefix(s, "ok ") && strings.Contains(s, " auditor read") }) {
		t.Errorf("the authenticated call is not recorded with its principal: %q", reasons)
	}
}
