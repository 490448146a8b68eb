package approval

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// tokens is the tests' authenticator: bearer tokens to principals.
func tokens(m map[string]*guard.Principal) Authenticator {
	return func(r *http.Request) (*guard.Principal, error) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if p := m[tok]; ok && p != nil {
			return p, nil
		}
		return nil, errors.New("unknown token")
	}
}

// TestHandler checks the approvals endpoint: authentication, the approver
// check, listing and deciding, and its answers to bad requests.
func TestHandler(t *testing.T) {
	m := newManager(t, Config{Approvers: []string{"sam", "alice"}})
	auth := tokens(map[string]*guard.Principal{
		"sam-token":   {Subject: "sam"},
		"alice-token": {Subject: "alice"},
		// The same person with another kind of credential: approvers are
		// named by subject whatever their issuer, so this is alice too.
		"alice-key": {Issuer: "api-key", Subject: "alice"},
		"eve-token": {Subject: "eve"},
	})
	srv := httptest.NewServer(m.Handler(auth))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(m.Handler(nil))
	t.Cleanup(closed.Close)

	do := func(base, method, path, token, ctype, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	// A call waits.
	done := make(chan error, 1)
	go func() {
		_, err := m.Wrap(&upstream{}).Handle(context.Background(), heldCall(mcp.EraLegacy, `{"name":"delete","arguments":{"path":"/x"}}`, ""))
		done <- err
	}()
	var id string
	for range 500 {
		if ps := m.List(); len(ps) > 0 {
			id = ps[0].ID
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if id == "" {
		t.Fatal("no call waits")
	}
	const jsonType = "application/json"
	approve := `{"decision":"approve"}`
	tests := []struct {
		name                       string
		base                       string
		method, path, token, ctype string
		body                       string
		wantStatus                 int
		wantBody                   string
	}{
		{"no authenticator", closed.URL, "GET", "/approvals", "sam-token", "", "", 401, "none is configured"},
		{"no authenticator, decision", closed.URL, "POST", "/approvals/" + id, "sam-token", jsonType, approve, 401, "none is configured"},
		{"no token", srv.URL, "GET", "/approvals", "", "", "", 401, "authentication required"},
		{"unknown token", srv.URL, "GET", "/approvals", "nope", "", "", 401, "authentication required"},
		{"not an approver", srv.URL, "GET", "/approvals", "eve-token", "", "", 403, "not an approver"},
		{"not an approver, decision", srv.URL, "POST", "/approvals/" + id, "eve-token", jsonType, approve, 403, "not an approver"},
		{"list", srv.URL, "GET", "/approvals", "sam-token", "", "", 200, `"id":"` + id + `"`},
		{"show", srv.URL, "GET", "/approvals/" + id, "sam-token", "", "", 200, `"arguments":"{\"path\":\"/x\"}"`},
		{"show unknown", srv.URL, "GET", "/approvals/apr_0000000000000000", "sam-token", "", "", 404, "no call waits"},
		{"form body", srv.URL, "POST", "/approvals/" + id, "sam-token", "application/x-www-form-urlencoded", "decision=approve", 415, "application/json"},
		{"bad decision", srv.URL, "POST", "/approvals/" + id, "sam-token", jsonType, `{"decision":"yes"}`, 400, "approve"},
		{"unknown member", srv.URL, "POST", "/approvals/" + id, "sam-token", jsonType, `{"decision":"approve","for":"ever"}`, 400, "decision"},
		{"case variant", srv.URL, "POST", "/approvals/" + id, "sam-token", jsonType, `{"Decision":"approve"}`, 400, "decision"},
		{"too large", srv.URL, "POST", "/approvals/" + id, "sam-token", jsonType, `{"decision":"deny","reason":"` + strings.Repeat("x", 9000) + `"}`, 400, "too large"},
		{"self approval", srv.URL, "POST", "/approvals/" + id, "alice-token", jsonType, approve, 403, "own call"},
		{"self approval, other issuer", srv.URL, "POST", "/approvals/" + id, "alice-key", jsonType, approve, 403, "own call"},
		{"wrong method", srv.URL, "DELETE", "/approvals/" + id, "sam-token", "", "", 405, ""},
		{"approve", srv.URL, "POST", "/approvals/" + id, "sam-token", jsonType, approve, 200, `{"id":"` + id + `","decision":"approve","approver":"sam"}`},
		{"decided already", srv.URL, "POST", "/approvals/" + id, "sam-token", jsonType, approve, 404, "no call waits"},
		{"empty list", srv.URL, "GET", "/approvals", "sam-token", "", "", 200, `{"approvals":[]}`},
	}
	for _, tt := range tests {
		status, body := do(tt.base, tt.method, tt.path, tt.token, tt.ctype, tt.body)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %d %s, want %d with %q", tt.name, status, body, tt.wantStatus, tt.wantBody)
		}
		if tt.name == "list" {
			var lr ListResponse
			if err := json.Unmarshal([]byte(body), &lr); err != nil || len(lr.Approvals) != 1 || lr.Approvals[0].Principal != "alice" {
				t.Errorf("list: %v %+v", err, lr)
			}
		}
	}
	if err := <-done; err != nil {
		t.Errorf("the approved call failed: %v", err)
	}
}
