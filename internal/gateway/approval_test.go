package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/approval"
	"github.com/sluicehq/sluice/internal/cli"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/gateway"
	"github.com/sluicehq/sluice/internal/guard"
	wire "github.com/sluicehq/sluice/internal/mcp"
)

// approvers authenticates the approvals endpoint in these tests: bearer
// tokens to principals (the authenticator of internal/authn in Sluice).
var approvers = map[string]*guard.Principal{
	"sam-token": {Subject: "sam", Name: "Sam", Groups: []string{"secops"}},
	"eve-token": {Subject: "eve", Groups: []string{"dev"}},
}

func authenticate(r *http.Request) (*guard.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if p := approvers[tok]; ok && p != nil {
		return p, nil
	}
	return nil, errors.New("unknown token")
}

// approvalPolicy lets anyone read, and holds every delete for a human's
// approval.
const approvalPolicy = `policy:
  rules:
    - id: reads
      effect: allow
      target: {tools: [read]}
    - id: approve-deletes
      effect: require-approval
      target: {tools: [delete]}
`

// startApproval runs a gateway in front of a legacy upstream with the
// tools "read" and "delete", the policy above and the approval section
// given, and the approvals endpoint mounted. It returns the base URL.
func startApproval(t *testing.T, approvalYAML string) string {
	return startApprovalEra(t, "legacy", approvalYAML)
}

// startApprovalEra is startApproval with an upstream of the given era.
func startApprovalEra(t *testing.T, upEra, approvalYAML string) string {
	t.Helper()
	up := upstreamServer(t, "fs", upEra == "modern", "read", "delete")
	cfg, err := config.Parse([]byte("servers:\n  fs: {url: \""+up+"\", era: "+upEra+"}\n"+approvalPolicy+approvalYAML), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := gateway.New(cfg, gateway.Options{Logger: log, BaseEnv: gateway.MinimalEnv()})
	if err != nil {
		t.Fatal(err)
	}
	h := gateway.NewHTTPHandler(g, gateway.HTTPOptions{})
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	mux.Handle("/mcp/", h)
	a := h.Approvals(authenticate)
	mux.Handle("/approvals", a)
	mux.Handle("/approvals/", a)
	closed := h.Approvals(nil)
	mux.Handle("/closed/approvals", http.StripPrefix("/closed", closed))
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		g.Close()
	})
	return srv.URL
}

// elicitor answers Sluice's approval questions like a human at the client:
// it approves calls whose arguments contain one of approve and declines
// the others, and records what it was shown.
type elicitor struct {
	approve []string
	mu      sync.Mutex
	asked   []string
}

func (e *elicitor) handle(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.asked = append(e.asked, req.Params.Message)
	if _, ok := req.Params.RequestedSchema.(map[string]any)["properties"].(map[string]any)["approve"]; !ok {
		return nil, fmt.Errorf("unexpected schema %v", req.Params.RequestedSchema)
	}
	for _, a := range e.approve {
		if strings.Contains(req.Params.Message, a) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		}
	}
	return &mcp.ElicitResult{Action: "decline"}, nil
}

func (e *elicitor) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.asked)
}

// denialReason returns the reason code of a denied call's error.
func denialReason(err error) string {
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) || rpc.Code != wire.CodeDenied {
		return fmt.Sprintf("not a denial: %v", err)
	}
	m := regexp.MustCompile(`"reason":"([a-z-]+)"`).FindSubmatch(rpc.Data)
	if m == nil {
		return fmt.Sprintf("no reason in %s", rpc.Data)
	}
	return string(m[1])
}

func connectWith(t *testing.T, url, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestApprovalThroughClient holds calls that need approval and asks the
// calling client: a legacy client by elicitation while the call waits, a
// modern one with an input_required result it answers by retrying. An
// approval covers the exact call only: the same call passes again without
// asking, a changed argument is asked about anew (and here declined).
func TestApprovalThroughClient(t *testing.T) {
	for _, tc := range []struct{ client, version, upEra string }{
		{"legacy", wire.Version20251125, "legacy"},
		{"modern", wire.Version20260728, "legacy"},
		{"legacy", wire.Version20251125, "modern"},
		{"modern", wire.Version20260728, "modern"},
	} {
		era := struct{ name, version string }{tc.client, tc.version}
		t.Run(tc.client+" client, "+tc.upEra+" server", func(t *testing.T) {
			base := startApprovalEra(t, tc.upEra, "approval: {via: client}\n")
			e := &elicitor{approve: []string{`{"arg":"x"}`}}
			cs := connectWith(t, base+"/mcp", era.version, &mcp.ClientOptions{ElicitationHandler: e.handle})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			if got, err := callText(ctx, cs, "read", "r"); err != nil || got != "fs:read:r" || e.count() != 0 {
				t.Fatalf("read: %q %v, asked %d times; want no question", got, err, e.count())
			}
			got, err := callText(ctx, cs, "delete", "x")
			if err != nil || got != "fs:delete:x" || e.count() != 1 {
				t.Fatalf("approved delete: %q %v, asked %d times", got, err, e.count())
			}
			msg := e.asked[0]
			for _, want := range []string{"tools/call delete (server fs)", `Arguments: {"arg":"x"}`, "Rule: approve-deletes", "Approval: apr_"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the human was shown %q, which lacks %q", msg, want)
				}
			}
			if got, err := callText(ctx, cs, "delete", "x"); err != nil || got != "fs:delete:x" || e.count() != 1 {
				t.Errorf("same call again: %q %v, asked %d times; want it to pass on the approval", got, err, e.count())
			}
			_, err = callText(ctx, cs, "delete", "y")
			if r := denialReason(err); r != approval.ReasonDenied || e.count() != 2 {
				t.Errorf("changed argument: %s after %d questions, want %s after 2", r, e.count(), approval.ReasonDenied)
			}
		})
	}
}

// TestApprovalExpires checks that a granted approval ends with its ttl:
// the same call is then asked about again.
func TestApprovalExpires(t *testing.T) {
	base := startApproval(t, "approval: {via: client, ttl: 1s}\n")
	e := &elicitor{approve: []string{`"x"`}}
	cs := connectWith(t, base+"/mcp", wire.Version20251125, &mcp.ClientOptions{ElicitationHandler: e.handle})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, want := range []int{1, 1} {
		if _, err := callText(ctx, cs, "delete", "x"); err != nil || e.count() != want {
			t.Fatalf("call %d: %v, asked %d times, want %d", i, err, e.count(), want)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	if _, err := callText(ctx, cs, "delete", "x"); err != nil || e.count() != 2 {
		t.Errorf("after the ttl: %v, asked %d times, want 2", err, e.count())
	}
}

// postModern sends one modern tools/call of delete with raw HTTP and
// returns the status and body.
func postModern(t *testing.T, base, params string) (int, string) {
	t.Helper()
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":` + params + `}`
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Mcp-Protocol-Version", wire.Version20260728)
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", "delete")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestApprovalRequestState checks a modern client's requestState on the
// wire: an answer for other arguments, a forged state and an answer after
// expiry are refused (403 with their reason codes), and the upstream is
// never called for them.
func TestApprovalRequestState(t *testing.T) {
	base := startApproval(t, "approval: {via: client, timeout: 1s}\n")
	const meta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}`
	const accept = `"inputResponses":{"sluice-approval":{"action":"accept","content":{"approve":true}}}`
	ask := func(arg string) string {
		status, body := postModern(t, base, `{"name":"delete","arguments":{"arg":"`+arg+`"},`+meta+`}`)
		m := regexp.MustCompile(`"requestState":"([^"]+)"`).FindStringSubmatch(body)
		if status != 200 || !strings.Contains(body, `"resultType":"input_required"`) || m == nil {
			t.Fatalf("first round: %d %s", status, body)
		}
		return m[1]
	}
	retry := func(arg, state string) (int, string) {
		return postModern(t, base, `{"name":"delete","arguments":{"arg":"`+arg+`"},`+meta+`,"requestState":"`+state+`",`+accept+`}`)
	}
	tests := []struct {
		name       string
		arg        string
		state      func(string) string
		sleep      time.Duration
		wantStatus int
		want       string
	}{
		{"changed argument", "y", func(s string) string { return s }, 0, 403, `"reason":"approval-mismatch"`},
		{"forged state", "x", func(s string) string { return s[:len(s)-3] + "AAA" }, 0, 403, `"reason":"approval-invalid-state"`},
		{"expired", "x", func(s string) string { return s }, 1100 * time.Millisecond, 403, `"reason":"approval-expired"`},
		{"approved", "x", func(s string) string { return s }, 0, 200, `"text":"fs:delete:x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := ask("x")
			time.Sleep(tt.sleep)
			status, body := retry(tt.arg, tt.state(state))
			if status != tt.wantStatus || !strings.Contains(body, tt.want) {
				t.Errorf("%d %s, want %d with %s", status, body, tt.wantStatus, tt.want)
			}
		})
	}
}

// approve runs `sluice approve ARGS...` against base and returns its exit
// code and output.
func approve(t *testing.T, base, tokenFile string, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"approve", "--url", base, "--token-file", tokenFile}, args...)
	code := cli.Main(context.Background(), all, strings.NewReader(""), &out, &errb)
	return code, out.String() + errb.String()
}

// TestApprovalThroughApprover holds calls of clients of both eras while an
// approver outside the agent lists, shows, grants and denies them with
// `sluice approve` over the authenticated approvals endpoint.
func TestApprovalThroughApprover(t *testing.T) {
	base := startApproval(t, "approval: {via: approver, timeout: 20s, approvers: [\"group:secops\"]}\n")
	dir := t.TempDir()
	tokenFile := func(tok string) string {
		p := filepath.Join(dir, tok)
		if err := os.WriteFile(p, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sam, eve, bad := tokenFile("sam-token"), tokenFile("eve-token"), tokenFile("wrong-token")

	if code, out := approve(t, base, bad, "list"); code != 1 || !strings.Contains(out, "authentication required (HTTP 401)") {
		t.Errorf("unknown token: exit %d, %s", code, out)
	}
	if code, out := approve(t, base, eve, "list"); code != 1 || !strings.Contains(out, "not an approver (HTTP 403)") {
		t.Errorf("not an approver: exit %d, %s", code, out)
	}
	if code, out := approve(t, base+"/closed", sam, "list"); code != 1 || !strings.Contains(out, "none is configured (HTTP 401)") {
		t.Errorf("endpoint without authenticator: exit %d, %s", code, out)
	}
	if code, out := approve(t, base, sam, "list"); code != 0 || !strings.Contains(out, "no calls wait for approval") {
		t.Errorf("empty list: exit %d, %s", code, out)
	}

	idRE := regexp.MustCompile(`(?m)^(apr_[0-9a-f]{16})\s.*\bdelete\b.*\{"arg":"(\w+)"\}`)
	// waitListed runs `sluice approve list` until the call with arg shows.
	waitListed := func(t *testing.T, arg string) string {
		t.Helper()
		for range 200 {
			code, out := approve(t, base, sam, "list")
			if code != 0 {
				t.Fatalf("list: exit %d, %s", code, out)
			}
			for _, m := range idRE.FindAllStringSubmatch(out, -1) {
				if m[2] == arg {
					return m[1]
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("the call with arg %q was never listed", arg)
		return ""
	}

	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			// The client declares no elicitation; via approver would not
			// ask it anyway.
			cs := connectWith(t, base+"/mcp", era.version, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			type result struct {
				text string
				err  error
			}
			call := func(arg string) chan result {
				ch := make(chan result, 1)
				go func() {
					text, err := callText(ctx, cs, "delete", arg)
					ch <- result{text, err}
				}()
				return ch
			}

			grantArg, denyArg := era.name+"1", era.name+"2"
			done := call(grantArg)
			id := waitListed(t, grantArg)
			select {
			case r := <-done:
				t.Fatalf("the call ended before a decision: %+v", r)
			default:
			}
			code, out := approve(t, base, sam, "show", id)
			if !regexp.MustCompile(`policy version:\s+\S{16,}`).MatchString(out) {
				t.Errorf("show: no policy version in\n%s", out)
			}
			for _, want := range []string{"id:", id, "principal:", "(unauthenticated)", "server:", "fs", "rule:", "approve-deletes", "digest:", "sha256:"} {
				if code != 0 || !strings.Contains(out, want) {
					t.Errorf("show: exit %d, output lacks %q:\n%s", code, want, out)
				}
			}
			if code, out := approve(t, base, eve, "grant", id); code != 1 || !strings.Contains(out, "not an approver") {
				t.Errorf("grant by a non-approver: exit %d, %s", code, out)
			}
			if code, out := approve(t, base, sam, "grant", id); code != 0 || out != "approved "+id+" as sam\n" {
				t.Errorf("grant: exit %d, %q", code, out)
			}
			if r := <-done; r.err != nil || r.text != "fs:delete:"+grantArg {
				t.Errorf("granted call: %q %v", r.text, r.err)
			}
			if code, out := approve(t, base, sam, "grant", id); code != 1 || !strings.Contains(out, "no call waits") {
				t.Errorf("second grant: exit %d, %s", code, out)
			}

			done = call(denyArg)
			id = waitListed(t, denyArg)
			if code, out := approve(t, base, sam, "deny", id, "--reason", "too broad"); code != 0 || out != "denied "+id+" as sam\n" {
				t.Errorf("deny: exit %d, %q", code, out)
			}
			r := <-done
			if reason := denialReason(r.err); reason != approval.ReasonDenied || !strings.Contains(r.err.Error(), "too broad") {
				t.Errorf("denied call: %v (reason %s)", r.err, reason)
			}
		})
	}
}
