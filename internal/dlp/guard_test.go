package dlp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
)

func dlpConfig(t testing.TB, mode string) *config.DLP {
	t.Helper()
	cfg, err := config.Parse([]byte(`
servers:
  crm: {command: [crm]}
dlp:
  mode: `+mode+`
  allow: {values: [AKIAIOSFODNN7EXAMPLE]}
  rules:
    - {id: no-secrets-back, types: [secret], direction: results, action: block}
    - {id: redact-email, types: [email], direction: results, action: redact}
    - {id: mask-cards, types: [payment-card], action: mask}
    - {id: hash-phones, types: [phone-number], direction: arguments, action: hash}
`), "dlp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.DLP
}

func fixedToken(v string) string { return "hmac:" + strings.Repeat("x", 8) + "-" + v[len(v)-2:] }

func toolCall(args string) guard.Call {
	return guard.Call{Server: "crm", Method: mcp.MethodToolsCall, Name: "lookup", Params: jsontext.Value(`{"name":"lookup","arguments":` + args + `}`)}
}

func result(text string) *guard.Result {
	return &guard.Result{Result: jsontext.Value(`{"content":[{"type":"text","text":"` + text + `"}],"structuredContent":{"note":"` + text + `"}}`)}
}

func TestGuard(t *testing.T) {
	zw := "ghp_Demo0nly\u200bFakeT0ken\u200bForSluiceTests2xyZ9"
	for _, mode := range []string{"enforce", "observe"} {
		enforce := mode == "enforce"
		t.Run(mode, func(t *testing.T) {
			guardtest.Run(t, func(t *testing.T) guard.Guard {
				g, err := dlp.NewGuard(dlpConfig(t, mode), dlp.GuardOptions{Token: fixedToken})
				if err != nil {
					t.Fatal(err)
				}
				return g
			},
				guardtest.Case{Name: "secret-in-arguments", Call: toolCall(`{"note":"key AKIAZ5GMHYJKLQW2XQ7D"}`),
					WantReason: dlp.ReasonSecretInArguments, WantEffect: guard.Deny, WantDenied: enforce, WantNextSkipped: enforce},
				guardtest.Case{Name: "documented-example-key", Call: toolCall(`{"note":"key AKIAIOSFODNN7EXAMPLE"}`)},
				guardtest.Case{Name: "secret-hidden-in-result", Call: toolCall(`{}`), Next: result(zw),
					WantReason: dlp.ReasonSecretInResult, WantEffect: guard.Deny, WantDenied: enforce},
				guardtest.Case{Name: "email-redacted-in-text-and-structured-content", Call: toolCall(`{}`), Next: result("write to Ada.Lovelace@example.com"),
					WantReason: dlp.ReasonPIIInResult, WantEffect: guard.Modify,
					WantResult: pick(enforce, result("write to [REDACTED:email]").Result, result("write to Ada.Lovelace@example.com").Result)},
				guardtest.Case{Name: "card-masked", Call: toolCall(`{}`), Next: result("card 4111 1111 1111 1111"),
					WantReason: dlp.ReasonPIIInResult, WantEffect: guard.Modify,
					WantResult: pick(enforce, result("card ***************1111").Result, result("card 4111 1111 1111 1111").Result)},
				guardtest.Case{Name: "phone-in-result-recorded", Call: toolCall(`{}`), Next: result("call +1 415-555-0132"),
					WantReason: dlp.ReasonPIIInResult, WantEffect: guard.Allow},
				guardtest.Case{Name: "nothing-found", Call: toolCall(`{"q":"berlin"}`), Next: result("no match")},
			)
		})
	}
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// TestGuardRewritesArguments: a hash rule on arguments replaces the value
// with its fingerprint in what the server receives, leaving the rest of
// the params as they were, and records the finding.
func TestGuardRewritesArguments(t *testing.T) {
	g, err := dlp.NewGuard(dlpConfig(t, "enforce"), dlp.GuardOptions{Token: fixedToken})
	if err != nil {
		t.Fatal(err)
	}
	var got jsontext.Value
	h := g.Wrap(guard.HandlerFunc(func(_ context.Context, c *guard.Call) (*guard.Result, error) {
		got = c.Params
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	c := toolCall(`{"to":"+1 415-555-0132","n":1}`)
	orig := c.Params // the caller's bytes, which must not change
	if _, err := h.Handle(context.Background(), &c); err != nil {
		t.Fatal(err)
	}
	want := `{"name":"lookup","arguments":{"to":"` + fixedToken("+14155550132") + `","n":1}}`
	if string(got) != want || string(orig) != `{"name":"lookup","arguments":{"to":"+1 415-555-0132","n":1}}` {
		t.Errorf("server received %s, want %s", got, want)
	}
	if len(c.Findings) != 1 || c.Findings[0].Kind != "pii/phone-number" || c.Findings[0].Location != "arguments" || c.Findings[0].Fingerprint != fixedToken("+14155550132") {
		t.Errorf("findings: %+v", c.Findings)
	}
}
