package lineage_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/lineage"
	"github.com/sluicehq/sluice/internal/mcp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const trifecta = `
servers:
  crm: {url: "http://127.0.0.1:1/mcp"}
  docs: {url: "http://127.0.0.1:2/mcp"}
  mail: {url: "http://127.0.0.1:3/mcp"}
lineage:
  labels:
    - {target: {servers: [crm]}, labels: [pii, internal]}
    - {target: {servers: [docs], tools: [read_*]}, labels: [untrusted-input]}
    - {target: {resources: ["web://*"]}, labels: [untrusted-input]}
    - {target: {servers: [mail], tools: [send_email]}, labels: [external-sink]}
  rules:
    - id: trifecta
      call: external-sink
      after: [pii, untrusted-input]
`

func newGuard(t *testing.T, yaml string) *lineage.Guard {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := lineage.New(cfg.Lineage, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func call(session, server, method, name string) *guard.Call {
	return &guard.Call{
		ID:      server + "-" + name,
		Session: session,
		Server:  server, Method: method, Name: name,
		Params: jsontext.Value(`{"name":"` + name + `","arguments":{}}`),
	}
}

// handle runs a call through h as the gateway does: what guards leave for
// after the chain runs before the call is over.
func handle(h guard.Handler, c *guard.Call) (*guard.Result, error) {
	res, err := h.Handle(context.Background(), c)
	c.RunAfter()
	return res, err
}

func TestConformance(t *testing.T) {
	for _, mode := range []string{config.ModeEnforce, config.ModeObserve} {
		t.Run(mode, func(t *testing.T) {
			enforce := mode == config.ModeEnforce
			guardtest.Run(t, func(t *testing.T) guard.Guard {
				g := newGuard(t, strings.Replace(trifecta, "lineage:\n", "lineage:\n  mode: "+mode+"\n", 1))
				// The session "tainted" has read both labels the rule
				// names; the suite's calls run on copies, so taint it
				// here through the guard itself.
				h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
					return &guard.Result{Result: jsontext.Value(`{}`)}, nil
				}))
				for _, c := range []*guard.Call{call("tainted", "crm", mcp.MethodToolsCall, "lookup"), call("tainted", "docs", mcp.MethodToolsCall, "read_page")} {
					if _, err := handle(h, c); err != nil {
						t.Fatal(err)
					}
				}
				return g
			},
				guardtest.Case{Name: "clean-session-sends", Call: *call("clean", "mail", mcp.MethodToolsCall, "send_email")},
				guardtest.Case{Name: "tainted-session-sends", Call: *call("tainted", "mail", mcp.MethodToolsCall, "send_email"),
					WantReason: lineage.ReasonToxicFlow, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce},
				guardtest.Case{Name: "tainted-session-reads", Call: *call("tainted", "crm", mcp.MethodToolsCall, "lookup")},
				guardtest.Case{Name: "list", Call: *call("tainted", "mail", mcp.MethodToolsList, "")},
			)
		})
	}
}

// TestTaint follows one session through the trifecta and checks what
// taints it and what does not, per session and per principal.
func TestTaint(t *testing.T) {
	g := newGuard(t, trifecta)
	fail := ""
	h := g.Wrap(guard.HandlerFunc(func(_ context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Name == fail {
			return &guard.Result{Error: mcp.NewError(-32000, "boom")}, nil
		}
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	do := func(c *guard.Call) error {
		_, err := handle(h, c)
		return err
	}
	send := func(session string) error { return do(call(session, "mail", mcp.MethodToolsCall, "send_email")) }

	// pii alone: the send goes.
	if err := do(call("s1", "crm", mcp.MethodToolsCall, "lookup")); err != nil {
		t.Fatal(err)
	}
	if err := send("s1"); err != nil {
		t.Fatalf("after pii only: %v", err)
	}
	// A failed read of untrusted input taints nothing; a list neither.
	fail = "read_page"
	do(call("s1", "docs", mcp.MethodToolsCall, "read_page"))
	fail = ""
	do(call("s1", "docs", mcp.MethodToolsList, ""))
	if err := send("s1"); err != nil {
		t.Fatalf("after a failed read: %v", err)
	}
	// A successful one does: the send is refused, naming where each
	// label came from.
	c := call("s1", "docs", mcp.MethodResourcesRead, "web://news/today")
	if err := do(c); err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Labels, ",") != "untrusted-input" {
		t.Errorf("labels of a web read: %q", c.Labels)
	}
	err := send("s1")
	var denied *guard.DeniedError
	if !errors.As(err, &denied) || denied.Decision.Reason != lineage.ReasonToxicFlow || denied.Decision.Rule != "trifecta" ||
		!strings.Contains(denied.Decision.Message, "pii read by call crm-lookup") || !strings.Contains(denied.Decision.Message, "untrusted-input read by call docs-web://news/today") {
		t.Fatalf("the trifecta: %v (%+v)", err, denied)
	}
	// Another session is clean; the tainted one is clean once forgotten.
	if err := send("s2"); err != nil {
		t.Fatalf("another session: %v", err)
	}

	// Modern clients have no session: the principal carries the taint.
	alice := &guard.Principal{Issuer: "api-key", Subject: "alice"}
	bob := &guard.Principal{Issuer: "api-key", Subject: "bob"}
	for _, c := range []*guard.Call{call("", "crm", mcp.MethodToolsCall, "lookup"), call("", "docs", mcp.MethodToolsCall, "read_page")} {
		c.Principal = alice
		do(c)
	}
	c = call("", "mail", mcp.MethodToolsCall, "send_email")
	c.Principal = bob
	if err := do(c); err != nil {
		t.Fatalf("bob, who read nothing: %v", err)
	}
	c = call("", "mail", mcp.MethodToolsCall, "send_email")
	c.Principal = alice
	if err := do(c); !errors.As(err, &denied) {
		t.Fatalf("alice after the trifecta: %v", err)
	}
}

func TestStoreBounded(t *testing.T) {
	s := lineage.NewStore(10, 0)
	g, err := lineage.New(&config.Lineage{
		Labels: []*config.LineageLabel{{Target: config.PolicyTarget{Servers: []string{"crm"}}, Labels: []string{"pii"}}, {Target: config.PolicyTarget{Servers: []string{"mail"}}, Labels: []string{"external-sink"}}},
		Rules:  []*config.LineageRule{{ID: "r", Call: "external-sink", After: []string{"pii"}}},
	}, s)
	if err != nil {
		t.Fatal(err)
	}
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	for i := range 1000 {
		handle(h, call(string(rune('a'+i%26))+strings.Repeat("x", i), "crm", mcp.MethodToolsCall, "lookup"))
	}
	// The newest session is still tainted; memory stayed bounded.
	last := string(rune('a'+999%26)) + strings.Repeat("x", 999)
	if _, err := handle(h, call(last, "mail", mcp.MethodToolsCall, "send")); err == nil {
		t.Error("the newest session lost its taint")
	}
	s.Forget(last)
	if _, err := handle(h, call(last, "mail", mcp.MethodToolsCall, "send")); err != nil {
		t.Errorf("a forgotten session is still tainted: %v", err)
	}
}

// TestFlows: a value a call sends that an earlier result of the same
// session held is a flow from that call, with its labels; the first
// result that held it is its source; other sessions see no flow; and the
// classes of data found in results become labels of the session.
func TestFlows(t *testing.T) {
	g := newGuard(t, trifecta)
	h := g.Wrap(guard.HandlerFunc(func(_ context.Context, c *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	// do stands for the chain around lineage: DLP, outside it, records
	// the findings of what the call sends before lineage sees the call,
	// and those of its result after.
	do := func(c *guard.Call, sent, returned []guard.Finding) *guard.Call {
		t.Helper()
		c.Findings = append(c.Findings, sent...)
		if _, err := h.Handle(context.Background(), c); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
		c.Findings = append(c.Findings, returned...)
		c.RunAfter()
		return c
	}
	email := guard.Finding{Guard: "dlp", Kind: "pii/email", Location: "result", Fingerprint: "hmac:ada"}
	card := guard.Finding{Guard: "dlp", Kind: "pii/payment-card", Location: "result", Fingerprint: "hmac:card"}
	sendsEmail := []guard.Finding{{Guard: "dlp", Kind: "pii/email", Location: "arguments", Fingerprint: "hmac:ada"}}

	first := do(call("s1", "crm", mcp.MethodToolsCall, "get_customer"), nil, []guard.Finding{email, card})
	if strings.Join(first.Labels, ",") != "internal,pii" {
		t.Errorf("labels of the read: %v", first.Labels)
	}
	do(call("s1", "docs", mcp.MethodToolsCall, "search"), nil, []guard.Finding{email}) // holds it again, later
	other := do(call("s2", "mail", mcp.MethodToolsCall, "send_email"), sendsEmail, nil)
	if len(other.Flows) != 0 {
		t.Errorf("a flow across sessions: %+v", other.Flows)
	}
	mail := do(call("s1", "mail", mcp.MethodToolsCall, "send_email"), sendsEmail, nil)
	if len(mail.Flows) != 1 || mail.Flows[0].From != first.ID || mail.Flows[0].Kind != "pii/email" ||
		strings.Join(mail.Flows[0].Labels, ",") != "internal,pii" {
		t.Errorf("flows of the e-mail: %+v", mail.Flows)
	}
	// After untrusted input too, the send is refused, and its flow is
	// still recorded.
	do(call("s1", "docs", mcp.MethodToolsCall, "read_page"), nil, nil)
	refused := call("s1", "mail", mcp.MethodToolsCall, "send_email")
	refused.Findings = sendsEmail
	if _, err := h.Handle(context.Background(), refused); err == nil {
		t.Fatal("the trifecta's send went through")
	}
	if len(refused.Flows) != 1 || refused.Flows[0].From != first.ID {
		t.Errorf("flows of the refused e-mail: %+v", refused.Flows)
	}
	// A secret found in a result is a label of what the session read.
	sec := do(call("s3", "docs", mcp.MethodToolsCall, "read_doc"), nil, []guard.Finding{{Kind: "secret/aws-access-key-id", Location: "result", Fingerprint: "hmac:k"}})
	if strings.Join(sec.Labels, ",") != "secret,untrusted-input" {
		t.Errorf("labels of a read that held a secret: %v", sec.Labels)
	}
}
