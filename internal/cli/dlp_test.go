package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/audit"
)

// TestDLPOnTheDemo serves examples/dlp-demo.yaml and checks, through the
// audit log, what the issue asks of DLP and lineage end to end: a tool
// call whose arguments carry an AWS key is refused; a result with a secret
// (one hidden behind zero-width characters) is refused; personal data in
// results is recorded with fingerprints; e-mailing a customer's address
// after reading the customer records a flow from that read; and the
// audit's value search finds every call that carried the address.
func TestDLPOnTheDemo(t *testing.T) {
	dir := t.TempDir()
	cfg, err := filepath.Abs("../../examples/dlp-demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	s := serveAudited(t, data, "--config", cfg)
	ctx := context.Background()
	mustCall := func(id, tool, args string, want bool) {
		t.Helper()
		ok, err := s.call(ctx, id, tool, args)
		if err != nil || ok != want {
			t.Fatalf("%s %s: answered %v (%v), want %v", tool, args, ok, err, want)
		}
	}
	out, err := s.callResult(ctx, "read", "get_customer", `{"id":"C-1001"}`)
	if err != nil || out == nil {
		t.Fatalf("get_customer: %v %s", err, out)
	}
	// The card is redacted and the phone masked, in the text and in the
	// structured content; the address is only recorded.
	if strings.Count(string(out), "[REDACTED:payment-card]") != 2 || strings.Count(string(out), "***********0143") != 2 ||
		strings.Contains(string(out), "4111111111111111") || strings.Contains(string(out), "202-555") ||
		!strings.Contains(string(out), "ada.whitfield@example.com") || !json.Valid(out) {
		t.Errorf("get_customer answered %s", out)
	}
	// Minimization: three customers at most, without cards and notes, in
	// the structure and its text; a long search cut with a notice.
	out, err = s.callResult(ctx, "list", "find_customers", `{"query":""}`)
	var list struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		Structured struct {
			Customers []map[string]any `json:"customers"`
		} `json:"structuredContent"`
	}
	if err != nil || json.Unmarshal(out, &list) != nil || len(list.Structured.Customers) != 3 || len(list.Content) != 1 ||
		strings.Contains(string(out), "card_number") || strings.Contains(string(out), "notes") || !strings.Contains(list.Content[0].Text, `"customers":[`) {
		t.Errorf("find_customers: %v %s", err, out)
	}
	out, err = s.callResult(ctx, "search", "search_documents", `{"query":"the"}`)
	if err != nil || len(out) > 512 || !strings.Contains(string(out), "[sluice: result truncated from") || !json.Valid(out) {
		t.Errorf("search_documents: %v %d bytes %s", err, len(out), out)
	}
	mustCall("mail", "send_email", `{"to":"someone@elsewhere.example","subject":"lead","body":"Call Ada at ada.whitfield@example.com"}`, true)
	mustCall("key", "send_email", `{"to":"ops@contoso.example","subject":"creds","body":"use AKIAZ5GMHYJKLQW2XQ7D"}`, false)
	mustCall("example-key", "send_email", `{"to":"ops@contoso.example","subject":"docs","body":"the docs use AKIAIOSFODNN7EXAMPLE"}`, true)
	mustCall("stripe", "read_document", `{"id":"incident-2031"}`, false)
	mustCall("hidden", "read_document", `{"id":"vendor-webhooks"}`, false)
	mustCall("faq", "read_document", `{"id":"product-faq"}`, true)
	s.stop(t)

	events := map[string]*audit.View{}
	res := runMain(t, ctx, nil, "audit", "query", "--data-dir", data, "--format", "json")
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		v, err := audit.ParseView([]byte(line))
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		var id string
		json.Unmarshal(v.RequestID, &id)
		events[id] = v
	}
	reasons := func(v *audit.View) (out []string) {
		for _, d := range v.Decisions {
			out = append(out, d.Guard+":"+d.Reason+":"+d.Effect)
		}
		return out
	}
	for id, want := range map[string]string{
		"key":    "dlp:dlp-secret-in-arguments:deny",
		"stripe": "dlp:dlp-secret-in-result:deny",
		"hidden": "dlp:dlp-secret-in-result:deny",
	} {
		v := events[id]
		if v == nil || v.Outcome != "denied" || !strings.Contains(strings.Join(reasons(v), " "), want) {
			t.Errorf("call %s: want it denied with %s; recorded %+v", id, want, v)
		}
	}
	read := events["read"]
	if read == nil || !strings.Contains(strings.Join(reasons(read), " "), "dlp:dlp-pii-in-result:allow") ||
		!strings.Contains(strings.Join(reasons(read), " "), "dlp:dlp-pii-in-result:modify") || !slices.Contains(read.Labels, "pii") {
		t.Fatalf("get_customer: %+v", read)
	}
	var emailFP string
	for _, f := range read.Findings {
		if f.Kind == "pii/email" && f.Location == "result" && len(f.Fingerprints) == 1 {
			emailFP = f.Fingerprints[0]
		}
	}
	if !strings.HasPrefix(emailFP, audit.TokenPrefix) {
		t.Fatalf("get_customer findings: %+v", read.Findings)
	}
	mail := events["mail"]
	if mail == nil || mail.Outcome != "ok" || len(mail.Flows) != 1 || mail.Flows[0].From != read.ID ||
		mail.Flows[0].Fingerprint != emailFP || mail.Flows[0].Kind != "pii/email" || !slices.Contains(mail.Flows[0].Labels, "pii") {
		t.Fatalf("send_email after get_customer: want a flow from %s with %s; recorded %+v", read.ID, emailFP, mail)
	}
	if ek := events["example-key"]; ek == nil || ek.Outcome != "ok" {
		t.Errorf("a documented example key was refused: %+v", ek)
	}
	// The value search finds the read and the e-mail by the address's
	// fingerprint, though neither event holds the address.
	res = runMain(t, ctx, nil, "audit", "query", "--data-dir", data, "--format", "json", "--value", "ada.whitfield@example.com")
	if res.Code != 0 || !strings.Contains(res.Stdout, `"request_id":"read"`) || !strings.Contains(res.Stdout, `"request_id":"mail"`) ||
		strings.Contains(res.Stdout, "ada.whitfield@example.com") {
		t.Errorf("audit query --value: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	// The phone number as written finds the calls whose findings hold its
	// E.164 fingerprint.
	res = runMain(t, ctx, nil, "audit", "query", "--data-dir", data, "--format", "json", "--value", "+1 (202) 555-0143")
	if res.Code != 0 || !strings.Contains(res.Stdout, `"request_id":"read"`) || !strings.Contains(res.Stdout, `"request_id":"list"`) {
		t.Errorf("audit query --value (a phone number): code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	// sluice lineage: the flow, as JSON and as a graph; every call that
	// carried the phone number, given as written; who received what.
	res = runMain(t, ctx, nil, "lineage", "flows", "--data-dir", data, "--format", "json", "--label", "pii")
	var edge flowEdge
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.Stdout)), &edge); err != nil || edge.From != read.ID || edge.To != mail.ID ||
		edge.FromName != "get_customer" || edge.ToName != "send_email" || edge.Kind != "pii/email" {
		t.Errorf("lineage flows: %v %+v\n%s%s", err, edge, res.Stdout, res.Stderr)
	}
	res = runMain(t, ctx, nil, "lineage", "flows", "--data-dir", data, "--format", "dot")
	if !strings.Contains(res.Stdout, `"demo/get_customer" -> "demo/send_email" [label="pii/email (1)"]`) {
		t.Errorf("lineage flows --format dot:\n%s%s", res.Stdout, res.Stderr)
	}
	if res := runMain(t, ctx, nil, "lineage", "flows", "--data-dir", data, "--format", "json", "--label", "secret"); strings.TrimSpace(res.Stdout) != "" {
		t.Errorf("lineage flows --label secret: %s", res.Stdout)
	}
	// The read and the customer list returned it; nothing sent it.
	res = runMain(t, ctx, nil, "lineage", "calls", "--data-dir", data, "--value", "+1 (202) 555-0143", "--format", "json")
	if res.Code != 0 || strings.Count(res.Stdout, "\n") != 2 || !strings.Contains(res.Stdout, `"id":"`+read.ID+`"`) || strings.Contains(res.Stdout, `"sent":true`) {
		t.Errorf("lineage calls --value (the phone number, written otherwise): code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = runMain(t, ctx, nil, "lineage", "access", "--data-dir", data)
	for _, want := range []string{"demo    pii/email", "demo    pii/phone-number", "demo    pii "} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("lineage access lacks %q:\n%s%s", want, res.Stdout, res.Stderr)
		}
	}
}

// TestDLPScan: `sluice dlp scan` prints each finding's type and offsets,
// never the value, with the built-in detectors and a configuration's.
func TestDLPScan(t *testing.T) {
	ctx := context.Background()
	in := `{"note":"mail ada@example.com, key AKIAZ5GMHYJKLQW2XQ7D, badge EMP-123456"}`
	res := runMain(t, ctx, strings.NewReader(in), "dlp", "scan", "--format", "json")
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		var f struct {
			Type       string
			Start, End int
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		got = append(got, f.Type+"="+in[f.Start:f.End])
	}
	if res.Code != 0 || strings.Join(got, " ") != "email=ada@example.com aws-access-key-id=AKIAZ5GMHYJKLQW2XQ7D" ||
		strings.Contains(res.Stdout, "ada@") {
		t.Fatalf("dlp scan: code %d, found %v\n%s%s", res.Code, got, res.Stdout, res.Stderr)
	}
	cfg := filepath.Join(t.TempDir(), "dlp.yaml")
	if err := os.WriteFile(cfg, []byte(`servers:
  s: {command: [s]}
dlp:
  allow: {values: [ada@example.com]}
  detectors:
    - {type: employee-badge, class: pii, pattern: 'EMP-(\d{6})', keywords: [EMP-]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "in.json")
	if err := os.WriteFile(file, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	res = runMain(t, ctx, nil, "dlp", "scan", "-c", cfg, file)
	if res.Code != 0 || strings.Contains(res.Stdout, "email") || !strings.Contains(res.Stdout, "employee-badge") ||
		!strings.Contains(res.Stdout, "aws-access-key-id") || !strings.Contains(res.Stderr, "2 findings") {
		t.Fatalf("dlp scan -c: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
