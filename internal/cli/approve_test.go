package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/testenv"
)

// TestApproveUsage checks the errors `sluice approve` gives before and
// instead of reaching the endpoint, and what it sends when it does.
func TestApproveUsage(t *testing.T) {
	t.Setenv(tokenEnv, "")
	var got struct{ auth, path, ctype, body string }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		got.auth, got.path, got.ctype, got.body = r.Header.Get("Authorization"), r.URL.Path, r.Header.Get("Content-Type"), b.String()
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			_, _ = w.Write([]byte(`{"id":"apr_1","decision":"deny","approver":"sam"}`))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html>busy</html>"))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(tok, []byte(" secret-token \n"), 0o600)
	_ = os.WriteFile(empty, []byte("\n"), 0o600)

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"no token", []string{"list", "--url", srv.URL}, 1, "sluice: no token: give --token-file or set SLUICE_TOKEN\n"},
		{"empty token file", []string{"list", "--url", srv.URL, "--token-file", empty}, 1, "is empty"},
		{"missing token file", []string{"list", "--url", srv.URL, "--token-file", filepath.Join(dir, "none")}, 1, "token file:"},
		{"bad url", []string{"list", "--url", "ftp://x", "--token-file", tok}, 1, `--url "ftp://x": want http(s)://HOST[:PORT]`},
		{"id with a slash", []string{"grant", "../x", "--url", srv.URL, "--token-file", tok}, 1, `"../x" is not an approval ID`},
		{"non-JSON error", []string{"list", "--url", srv.URL, "--token-file", tok}, 1, "approvals endpoint: HTTP 503"},
		{"deny", []string{"deny", "apr_1", "--reason", "no", "--url", srv.URL + "/", "--token-file", tok}, 0, "denied apr_1 as sam\n"},
		{"missing id", []string{"grant", "--url", srv.URL, "--token-file", tok}, 1, "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Main(context.Background(), append([]string{"approve"}, tt.args...), strings.NewReader(""), &out, &out)
			if code != tt.code || !strings.Contains(out.String(), tt.out) {
				t.Errorf("exit %d, output %q; want %d with %q", code, out.String(), tt.code, tt.out)
			}
		})
	}
	want := struct{ auth, path, ctype, body string }{"Bearer secret-token", "/approvals/apr_1", "application/json", `{"decision":"deny","reason":"no"}`}
	if got != want {
		t.Errorf("last request %+v, want %+v", got, want)
	}
}

// TestServeApproval runs `sluice serve` with a configuration whose policy
// holds a tool for approval: a legacy client with elicitation is asked and
// its approval lets the call run, while the approvals endpoint, with no
// auth configured, refuses `sluice approve`.
func TestServeApproval(t *testing.T) {
	s := mcp.NewServer(&mcp.Implementation{Name: "fs", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "delete"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Path string `json:"path"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted " + in.Path}}}, nil, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	yaml := "listen: 127.0.0.1:0\nservers:\n  fs: {url: \"" + up.URL + "\"}\n" +
		"policy:\n  rules:\n    - {id: approve-deletes, effect: require-approval, target: {tools: [delete]}}\n" +
		"approval: {via: client-or-approver, approvers: [sam]}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--config", path}, strings.NewReader(""), &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	addrRE := regexp.MustCompile(`msg="sluice serving" addr=(http://127\.0\.0\.1:\d+)/mcp`)
	var base string
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
	}

	var (
		mu    sync.Mutex
		asked []string
	)
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, req.Params.Message)
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
		},
	})
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	cs, err := c.Connect(cctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp"}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "delete", Arguments: map[string]any{"path": "/tmp/x"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "deleted /tmp/x" {
		t.Fatalf("approved call: %v %+v", err, res)
	}
	mu.Lock()
	if len(asked) != 1 || !strings.Contains(asked[0], `{"path":"/tmp/x"}`) {
		t.Errorf("asked %q, want one question showing the arguments", asked)
	}
	mu.Unlock()

	tok := filepath.Join(dir, "tok")
	_ = os.WriteFile(tok, []byte("anything"), 0o600)
	var out bytes.Buffer
	code := Main(ctx, []string{"approve", "list", "--url", base, "--token-file", tok}, strings.NewReader(""), &out, &out)
	if code != 1 || !strings.Contains(out.String(), "authentication required (HTTP 401)") {
		t.Errorf("approve list against serve: exit %d, %s", code, out.String())
	}
}

// TestStdioApproval runs `sluice stdio` the way a desktop client launches
// it, in front of the built-in demo server, with a policy that holds
// send_email for approval: the client's elicitation handler is asked over
// stdio, and its answer lets the exact e-mail go or refuses it.
func TestStdioApproval(t *testing.T) {
	bin := testenv.Sluice(t)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	yaml := fmt.Sprintf("servers:\n  demo: {command: [%q, demo-server]}\n", bin) +
		"policy:\n  rules:\n    - {id: demo, effect: allow, target: {servers: [demo]}}\n" +
		"    - {id: mail, effect: require-approval, target: {tools: [send_email]}, when: '!args.to.endsWith(\"@example.com\")'}\n" +
		"approval: {via: client}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		asked []string
	)
	c := mcp.NewClient(&mcp.Implementation{Name: "desktop", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, req.Params.Message)
			if strings.Contains(req.Params.Message, `"to":"partner@other.test"`) {
				return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
			}
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr syncBuffer
	cmd := exec.Command(bin, "stdio", "--config", path)
	cmd.Stderr = &stderr
	cs, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd, TerminateDuration: 5 * time.Second}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.Close()
		if t.Failed() {
			t.Logf("sluice stdio stderr:\n%s", stderr.String())
		}
	})
	send := func(to string) (*mcp.CallToolResult, error) {
		return cs.CallTool(ctx, &mcp.CallToolParams{Name: "send_email", Arguments: map[string]any{"to": to, "subject": "s", "body": "b"}})
	}
	for _, tc := range []struct {
		to        string
		wantAsked int
		wantErr   string
	}{
		{"ann@example.com", 0, ""},
		{"partner@other.test", 1, ""},
		{"stranger@other.test", 2, "approval-denied"},
	} {
		res, err := send(tc.to)
		mu.Lock()
		n := len(asked)
		mu.Unlock()
		switch {
		case n != tc.wantAsked:
			t.Errorf("to %s: asked %d times, want %d", tc.to, n, tc.wantAsked)
		case tc.wantErr == "" && (err != nil || res.IsError):
			t.Errorf("to %s: %v %+v", tc.to, err, res)
		case tc.wantErr != "":
			var rpc *jsonrpc.Error
			if !errors.As(err, &rpc) || !strings.Contains(string(rpc.Data), `"reason":"`+tc.wantErr+`"`) {
				t.Errorf("to %s: err %v, want a denial with reason %s", tc.to, err, tc.wantErr)
			}
		}
	}
}
