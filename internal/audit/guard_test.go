package audit

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/guard/guardtest"
	"github.com/sluicehq/sluice/internal/mcp"
)

// openTestLog opens a log over a new SQLite store, closed with the test.
func openTestLog(t *testing.T) (*Log, *SQLite, *Signer) {
	t.Helper()
	st, err := OpenSQLite(filepath.Join(t.TempDir(), "audit.db"), SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	signer := testSigner(t)
	l, err := OpenLog(context.Background(), LogOptions{Primary: st, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, st, signer
}

// breakStore makes the store refuse writes, as a database that went
// read-only would: the writer's own connection is switched to query-only.
func breakStore(t *testing.T, st *SQLite, broken bool) {
	t.Helper()
	v := "0"
	if broken {
		v = "1"
	}
	if _, err := st.DB().Exec("PRAGMA query_only = " + v); err != nil {
		t.Fatal(err)
	}
}

func toolCall(name string) guard.Call {
	return guard.Call{
		Principal: &guard.Principal{Issuer: "api-key", Subject: "alice"},
		Server:    "crm", Method: mcp.MethodToolsCall, Name: name,
		Params: jsontext.Value(`{"name":"` + name + `","arguments":{"email":"ada@example.com"}}`),
	}
}

func TestGuardConformance(t *testing.T) {
	t.Run("healthy", func(t *testing.T) {
		guardtest.Run(t, func(t *testing.T) guard.Guard {
			l, _, _ := openTestLog(t)
			return GuardFor(l, nil, []byte("0123456789abcdef"))
		},
			guardtest.Case{Name: "call", Call: toolCall("lookup")},
			guardtest.Case{Name: "error", Call: toolCall("lookup"), Next: &guard.Result{Error: mcp.NewError(-32000, "boom")}},
			guardtest.Case{Name: "list", Call: guard.Call{Server: "crm", Method: mcp.MethodToolsList, Params: jsontext.Value(`{}`)}},
		)
	})
	t.Run("store-failing", func(t *testing.T) {
		guardtest.Run(t, func(t *testing.T) guard.Guard {
			l, st, _ := openTestLog(t)
			breakStore(t, st, true)
			if err := l.Append(testEvent(1).Body(), true); err != nil {
				t.Fatal(err)
			}
			if l.Flush() || l.Healthy() {
				t.Fatal("a write to a query-only database succeeded")
			}
			return GuardFor(l, nil, []byte("0123456789abcdef"))
		},
			guardtest.Case{Name: "call", Call: toolCall("lookup"), WantReason: ReasonUnavailable, WantEffect: guard.Deny, WantDenied: true, WantNextSkipped: true},
		)
	})
}

// TestGuardRecords checks what an event holds, that an answer waits for
// its record, and the fail-closed and fail-open behaviour around a store
// that stops writing and comes back.
func TestGuardRecords(t *testing.T) {
	l, st, signer := openTestLog(t)
	g := NewGuard(l, GuardOptions{Recorder: &Recorder{Hasher: NewHasher([]byte("0123456789abcdef")), Sensitive: map[string]bool{"email": true}}, Args: RecordFull})
	next := guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		if c.Name == "denied" {
			return nil, c.Decide(guard.Decision{Guard: "policy", Rule: "r1", Version: "v9", Reason: "policy-denied-by-rule", Effect: guard.Deny, Mode: guard.Enforce})
		}
		c.Decide(guard.Decision{Guard: "dlp", Reason: "dlp-would-redact", Effect: guard.Deny, Mode: guard.Observe})
		c.Findings = append(c.Findings, guard.Finding{Kind: "pii/email", Fingerprint: "hmac:a"}, guard.Finding{Kind: "pii/email", Fingerprint: "hmac:a"}, guard.Finding{Kind: "secret/aws"})
		return &guard.Result{Result: jsontext.Value(`{"content":[{"type":"text","text":"hello"}]}`)}, nil
	})
	h := g.Wrap(next)
	call := func(name string) error {
		c := toolCall(name)
		c.ID, c.Session, c.RequestID = "call-"+name, "sess-1", jsontext.Value(`"req-`+name+`"`)
		c.Transport = guard.Transport{Kind: "http", RemoteAddr: "127.0.0.1:5555", Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
		_, err := h.Handle(context.Background(), &c)
		return err
	}
	if err := call("ok"); err != nil {
		t.Fatal(err)
	}
	var denied *guard.DeniedError
	if err := call("denied"); !errors.As(err, &denied) {
		t.Fatalf("denied call: %v", err)
	}
	if !l.Flush() {
		t.Fatal("flush failed")
	}
	var views []*View
	if err := st.Records(context.Background(), func(r Record) error {
		v, err := ParseView(r.Body)
		views = append(views, v)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(views) != 2 {
		t.Fatalf("%d records, want 2", len(views))
	}
	ok, den := views[0], views[1]
	tok := NewHasher([]byte("0123456789abcdef")).Token("ada@example.com")
	if ok.Outcome != "ok" || ok.Reason != "dlp-would-redact" || ok.Session != "sess-1" || string(ok.RequestID) != `"req-ok"` ||
		ok.Remote != "127.0.0.1:5555" || ok.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || ok.Subject() != "alice" ||
		string(ok.Args) != `{"email":"`+tok+`"}` || len(ok.Findings) != 2 || ok.Findings[0].Kind != "pii/email" || ok.Findings[0].Count != 2 || len(ok.Findings[0].Fingerprints) != 1 || ok.ResultBytes == 0 {
		t.Errorf("ok call recorded as %+v", ok)
	}
	if den.Outcome != "denied" || den.Reason != "policy-denied-by-rule" || den.ErrorCode != mcp.CodeDenied ||
		len(den.Decisions) != 1 || den.Decisions[0] != (Decision{Guard: "policy", Rule: "r1", Version: "v9", Reason: "policy-denied-by-rule", Effect: "deny", Mode: "enforce"}) {
		t.Errorf("denied call recorded as %+v", den)
	}
	if strings.Contains(string(ok.Args), "ada@") {
		t.Error("a sensitive value is stored raw")
	}

	// The store fails: once the log has found out, calls are refused
	// without reaching the server; what they were is still journaled.
	breakStore(t, st, true)
	reached := 0
	h = g.Wrap(guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		reached++
		return next(ctx, c)
	}))
	if err := call("ok"); err != nil {
		t.Fatalf("a call before the failure is found: %v", err)
	}
	if l.Flush() || l.Healthy() {
		t.Fatal("the failing store took the records")
	}
	for i := range 2 {
		err := call("ok")
		if !errors.As(err, &denied) || denied.Decision.Reason != ReasonUnavailable {
			t.Fatalf("call %d with the store failing: %v", i, err)
		}
	}
	if reached != 1 {
		t.Errorf("the server was reached %d times, want once (before the failure was found)", reached)
	}
	// The store is back: what waited reaches it, and calls are served.
	breakStore(t, st, false)
	if !l.Flush() || !l.Healthy() {
		t.Fatal("the store that came back did not take the records")
	}
	if err := call("ok"); err != nil {
		t.Fatalf("after the store came back: %v", err)
	}

	// Fail open: calls go on, their events are dropped while it fails.
	open := NewGuard(l, GuardOptions{FailOpen: true}).Wrap(next)
	breakStore(t, st, true)
	l.Flush()
	for range 3 {
		c := toolCall("ok")
		if _, err := open.Handle(context.Background(), &c); err != nil {
			t.Fatalf("fail-open call: %v", err)
		}
	}
	breakStore(t, st, false)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenSQLite(st.path, SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	rep, err := Verify(context.Background(), ro, signer.Public())
	if err != nil || !rep.OK() {
		t.Fatalf("the log after failures: %+v %v", rep, err)
	}
}
