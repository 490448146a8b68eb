package dlp_test

import (
	"context"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/dlp/dlptest"
	"github.com/sluicehq/sluice/internal/guard"
)

// FuzzScan: whatever the input, findings lie within it, in order, without
// overlapping, and scanning does not fail.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"email":"ada@example.com","card":"4111 1111 1111 1111"}`,
		`a\u0040b.example \\u0040 \ud83d\ude00 \u200b`,
		"ＡＫＩＡ１２３ key=\u200bAKIAZ5GMHYJKLQW2XQ7D",
		`token: ZXhhbXBsZSB0ZXh0IGFkYUBleGFtcGxlLmNvbSBoZXJl mailto:a%40b.example`,
		`+1 (415) 555-0132, 020 7946 0958, GB82 WEST 1234 5698 7654 32, 2001:db8::1`,
		`-----BEGIN PRIVATE KEY-----` + "\n" + `abc` + "\n" + `-----END PRIVATE KEY-----`,
		"\\", "\\u12", "\xff\xfe", "%4", "@", "+(", "::",
	} {
		f.Add([]byte(s))
	}
	s, err := dlp.New(dlp.Options{MinConfidence: dlp.Low})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		end := 0
		for _, fd := range s.Scan(in) {
			if fd.Start < end || fd.End <= fd.Start || fd.End > len(in) {
				t.Fatalf("finding %+v out of order or outside the %d-byte input (previous end %d)", fd, len(in), end)
			}
			end = fd.End
		}
	})
}

// FuzzRedact: a result that is valid JSON is still valid JSON after every
// finding in it is redacted, masked or hashed, and is never refused for
// it; offsets stay within the input.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		`{"content":[{"type":"text","text":"Ada.Lovelace@example.com, card 4111 1111 1111 1111, +1 415-555-0132"}]}`,
		`{"a":"a\u0040b.example","b":"\u200bghp_Demo0nly\u200bFakeT0ken\u200bForSluiceTests2xyZ9","c":"ZXhhbXBsZSB0ZXh0IGFkYUBleGFtcGxlLmNvbSBoZXJl"}`,
		`["x\\u0040y.example","mailto:a%40b.example","GB82 WEST 1234 5698 7654 32"]`,
		`{"k":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nabcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZab\n-----END PRIVATE KEY-----"}`,
	} {
		f.Add([]byte(s))
	}
	cfg, err := config.Parse([]byte(`
servers:
  s: {command: [s]}
dlp:
  min_confidence: low
  rules:
    - {id: r1, types: [pii], action: redact}
    - {id: r2, types: [secret], direction: results, action: mask}
    - {id: r3, types: [secret], direction: arguments, action: hash}
`), "fuzz.yaml")
	if err != nil {
		f.Fatal(err)
	}
	g, err := dlp.NewGuard(cfg.DLP, dlp.GuardOptions{Token: dlptest.Token})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if !jsontext.Value(in).IsValid() {
			return
		}
		var sent jsontext.Value
		h := g.Wrap(guard.HandlerFunc(func(_ context.Context, c *guard.Call) (*guard.Result, error) {
			sent = c.Params
			return &guard.Result{Result: in}, nil
		}))
		c := &guard.Call{Server: "s", Method: "tools/call", Name: "t", Params: jsontext.Value(`{"name":"t","arguments":{"v":` + string(in) + `}}`)}
		res, err := h.Handle(context.Background(), c)
		if err != nil {
			t.Fatalf("refused: %v (decisions %+v)", err, c.Decisions)
		}
		if !jsontext.Value(res.Result).IsValid() || !jsontext.Value(sent).IsValid() {
			t.Fatalf("invalid JSON after rewriting:\nresult %s\nparams %s", res.Result, sent)
		}
	})
}
