package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/demo"
	wire "github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/testenv"
)

// The demo API keys that examples/policy-demo.yaml documents in its header
// (the file holds only their hashes).
const (
	analystKey    = "analyst-demo-key"
	supportKey    = "support-demo-key"
	supervisorKey = "supervisor-demo-key"
)

const policyDemoConfig = "../../examples/policy-demo.yaml"

// demoEras are the protocol versions of the two eras a client can speak.
var demoEras = []struct{ name, version string }{
	{"legacy", wire.Version20251125},
	{"modern", wire.Version20260728},
}

// policyDemo is a running `sluice serve --config examples/policy-demo.yaml`.
type policyDemo struct {
	bin  string      // the sluice binary, also the demo server's and sluice approve's
	base string      // http://127.0.0.1:PORT
	log  *syncBuffer // Sluice's JSON log, the demo server's stderr included
}

// startPolicyDemo runs the example configuration as a user would, with the
// built sluice first on PATH (the file launches the demo server as
// `sluice demo-server`) and the listen address moved to a free port with
// --listen. It stops Sluice with SIGTERM when the test ends and fails the
// test if Sluice does not exit cleanly or its race detector found a race.
func startPolicyDemo(t *testing.T) *policyDemo {
	t.Helper()
	bin := testenv.Sluice(t)
	cfg, err := filepath.Abs(policyDemoConfig)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	d := &policyDemo{bin: bin, base: "http://127.0.0.1:" + strconv.Itoa(port), log: &syncBuffer{}}
	cmd := exec.Command(bin, "serve", "--config", cfg, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--log-format", "json")
	cmd.Env = withPath(os.Environ(), filepath.Dir(bin))
	cmd.Stdout = d.log
	cmd.Stderr = d.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("sluice serve exited with %v after SIGTERM, want a clean exit", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("sluice serve did not stop on SIGTERM")
		}
		if strings.Contains(d.log.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in sluice serve")
		}
		if t.Failed() {
			t.Logf("sluice serve log:\n%s", d.log.String())
		}
	})
	if err := testenv.AwaitPort(port, 60*time.Second); err != nil {
		select {
		case err := <-exited:
			t.Fatalf("sluice serve exited before listening: %v\n%s", err, d.log.String())
		default:
		}
		t.Fatal(err)
	}
	return d
}

// withPath returns env with dir first on its PATH.
func withPath(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	path := dir
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = dir + string(os.PathListSeparator) + v
			continue
		}
		out = append(out, kv)
	}
	return append(out, "PATH="+path)
}

// mark is a position in Sluice's log.
func (d *policyDemo) mark() int { return len(d.log.String()) }

// reached returns what the demo server logged receiving after mark m, one
// entry per request (tools/call NAME ARGS, resources/read URI, ...): the
// requests that got past the gateway to the server.
func (d *policyDemo) reached(t *testing.T, m int) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(strings.NewReader(d.log.String()[m:]))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg    string `json:"msg"`
			Server string `json:"server"`
			Line   string `json:"line"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Msg != "upstream stderr" || rec.Server != "demo" {
			continue
		}
		if r, ok := strings.CutPrefix(rec.Line, demo.RequestLogPrefix); ok {
			out = append(out, r)
		}
	}
	return out
}

// awaitReached waits until the demo server has logged receiving last after
// mark m, and returns all it logged since m. The server's stderr is a pipe
// of its own, so a line may arrive after the answer to the request it
// describes; the lines of one server process arrive in order, so once the
// line of a later request is there, the line of an earlier one would be too.
func (d *policyDemo) awaitReached(t *testing.T, m int, last string) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := d.reached(t, m)
		if slices.Contains(got, last) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo server never logged %q; since the mark it logged %q", last, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statusLog remembers the HTTP status of each POST a client made, and
// what it received.
type statusLog struct {
	mu       sync.Mutex
	statuses []int
	received syncBuffer
}

func (s *statusLog) last() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.statuses) == 0 {
		return 0
	}
	return s.statuses[len(s.statuses)-1]
}

// bearer is a client transport that presents an API key as a bearer token
// and records the status of every POST and the bytes of every answer.
type bearer struct {
	key    string
	status *statusLog
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if r.Method == http.MethodPost {
		b.status.mu.Lock()
		b.status.statuses = append(b.status.statuses, resp.StatusCode)
		b.status.mu.Unlock()
	}
	resp.Body = &teeBody{ReadCloser: resp.Body, w: &b.status.received}
	return resp, nil
}

// teeBody copies what is read of an answer as it is read, since event
// streams stay open while the client consumes them.
type teeBody struct {
	io.ReadCloser
	w io.Writer
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.w.Write(p[:n])
	return n, err
}

// connect connects a go-sdk client that authenticates with key and speaks
// version, and checks that the era asked for was negotiated.
func (d *policyDemo) connect(t *testing.T, key, version string, opts *mcp.ClientOptions) (*mcp.ClientSession, *statusLog) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := &statusLog{}
	c := mcp.NewClient(&mcp.Implementation{Name: "policy-demo-test", Version: "1"}, opts)
	tr := &mcp.StreamableClientTransport{Endpoint: d.base + "/mcp", MaxRetries: -1, HTTPClient: &http.Client{Transport: &bearer{key: key, status: st}}}
	cs, err := c.Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect with %s (%s): %v", key, version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != version {
		t.Fatalf("negotiated protocol version %q, want %q", got, version)
	}
	return cs, st
}

// approve runs the real `sluice approve` as the supervisor would, with the
// key in a token file, and returns its exit code and combined output.
func (d *policyDemo) approve(t *testing.T, tokenFile string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"approve", "--url", d.base, "--token-file", tokenFile}, args...)
	out, err := exec.CommandContext(ctx, d.bin, all...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("sluice %s: %v", strings.Join(all, " "), err)
	return 0, ""
}

// tokenFile writes key to a file only its owner can read.
func tokenFile(t *testing.T, key string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// denial returns the code, message and reason code of a refused call.
func denial(t *testing.T, err error) (code int64, msg, reason string) {
	t.Helper()
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) {
		t.Fatalf("want a JSON-RPC error, got %v", err)
	}
	var data struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(rpc.Data, &data); err != nil {
		t.Fatalf("error data %s: %v", rpc.Data, err)
	}
	return rpc.Code, rpc.Message, data.Reason
}

// outbox reads the demo's outbox through the session and returns the
// recipients of the messages it holds, oldest first.
func outbox(ctx context.Context, t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: demo.OutboxURI})
	if err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	if len(res.Contents) != 1 {
		t.Fatalf("outbox has %d contents, want 1", len(res.Contents))
	}
	var msgs []demo.Email
	if err := json.Unmarshal([]byte(res.Contents[0].Text), &msgs); err != nil {
		t.Fatalf("outbox: %v\n%s", err, res.Contents[0].Text)
	}
	to := []string{}
	for _, m := range msgs {
		to = append(to, m.To)
	}
	return to
}

// readOutbox is the demo server's log entry of a read of the outbox.
const readOutbox = "resources/read " + demo.OutboxURI

// mailLine is the demo server's log entry of a [sendEmail] call.
func mailLine(to string) string {
	return `tools/call send_email {"body":"hello","subject":"account","to":"` + to + `"}`
}

// sendEmail is the support agent's send_email call.
func sendEmail(ctx context.Context, cs *mcp.ClientSession, to string) (*mcp.CallToolResult, error) {
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: "send_email", Arguments: map[string]any{"to": to, "subject": "account", "body": "hello"}})
}

// TestPolicyDemoServe runs `sluice serve --config examples/policy-demo.yaml`,
// the file as shipped, and drives it with go-sdk clients of both eras
// holding the demo's API keys. It proves that:
//   - the analyst, the support agent and the supervisor each list exactly
//     the tools, resources, templates and prompts the policy lets them use;
//   - the supervisor may not complete customer ids, the support agent may;
//   - argument limits pass at the bound and are refused past it (and a
//     restricted document however its id is spelled), with a -32050 error
//     carrying the rule's reason code and message and an HTTP 403, and the
//     refused calls never reach the demo server (its own log says so);
//   - no key, an unknown key or the stored hash as a key get 401 with a
//     bearer challenge, and a legacy session stays its owner's;
//   - the support agent's e-mail to an outside address waits until the
//     supervisor grants it with the real `sluice approve list|show|grant`,
//     then goes out (the outbox shows it) and goes out again on the same
//     approval; one the supervisor denies is refused with approval-denied
//     and never sent;
//   - when the agent's client declares elicitation, the human at the client
//     is asked instead (elicitation/create in the legacy era,
//     input_required in the modern one) and the answer decides.
func TestPolicyDemoServe(t *testing.T) {
	d := startPolicyDemo(t)
	for _, era := range demoEras {
		t.Run(era.name, func(t *testing.T) {
			t.Run("lists", func(t *testing.T) { testDemoLists(t, d, era.version) })
			t.Run("argument limits", func(t *testing.T) { testDemoLimits(t, d, era.version) })
			t.Run("completions", func(t *testing.T) { testDemoCompletions(t, d, era.version) })
			t.Run("authentication", func(t *testing.T) { testDemoAuthn(t, d, era.version) })
			if era.version == wire.Version20251125 {
				t.Run("session binding", func(t *testing.T) { testDemoSessionBinding(t, d) })
			}
			t.Run("approval by the supervisor", func(t *testing.T) { testDemoApprover(t, d, era.name, era.version) })
			t.Run("approval through the client", func(t *testing.T) { testDemoClientApproval(t, d, era.name, era.version) })
		})
	}
}

// testDemoLists checks that each principal sees exactly what the policy
// lets it use.
func testDemoLists(t *testing.T, d *policyDemo, version string) {
	docs := func(ids ...string) []string {
		var out []string
		for _, id := range ids {
			out = append(out, "demo://documents/"+id)
		}
		return out
	}
	tests := []struct {
		who       string
		key       string
		tools     []string
		resources []string
		templates []string
		prompts   []string
	}{
		{
			who:   "analyst",
			key:   analystKey,
			tools: []string{"find_customers", "read_document", "search_documents"},
			// The restricted documents are denied outright, so they are
			// not listed.
			resources: docs("contract-northwind", "escalations-may", "handbook", "pricing-q3", "product-faq", "runbook-deploy", "vendor-webhooks"),
			templates: []string{demo.DocumentURITemplate},
			prompts:   []string{},
		},
		{
			who:       "support agent",
			key:       supportKey,
			tools:     []string{"find_customers", "get_customer", "send_email"},
			resources: []string{demo.OutboxURI},
			templates: []string{},
			prompts:   []string{"summarize_customer"},
		},
		{
			who:       "supervisor",
			key:       supervisorKey,
			tools:     []string{},
			resources: []string{},
			templates: []string{},
			prompts:   []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.who, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cs, _ := d.connect(t, tt.key, version, nil)
			got := struct{ Tools, Resources, Templates, Prompts []string }{[]string{}, []string{}, []string{}, []string{}}
			for tool, err := range cs.Tools(ctx, nil) {
				if err != nil {
					t.Fatalf("tools/list: %v", err)
				}
				got.Tools = append(got.Tools, tool.Name)
			}
			for r, err := range cs.Resources(ctx, nil) {
				if err != nil {
					t.Fatalf("resources/list: %v", err)
				}
				got.Resources = append(got.Resources, r.URI)
			}
			for rt, err := range cs.ResourceTemplates(ctx, nil) {
				if err != nil {
					t.Fatalf("resources/templates/list: %v", err)
				}
				got.Templates = append(got.Templates, rt.URITemplate)
			}
			for p, err := range cs.Prompts(ctx, nil) {
				if err != nil {
					t.Fatalf("prompts/list: %v", err)
				}
				got.Prompts = append(got.Prompts, p.Name)
			}
			slices.Sort(got.Tools)
			slices.Sort(got.Resources)
			slices.Sort(got.Prompts)
			want := struct{ Tools, Resources, Templates, Prompts []string }{tt.tools, tt.resources, tt.templates, tt.prompts}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("what the %s sees (-want +got):\n%s", tt.who, diff)
			}
		})
	}
}

// testDemoCompletions checks that the support agent completes customer ids
// and the supervisor, who may use nothing, is refused rather than shown
// the customer directory's ids.
func testDemoCompletions(t *testing.T, d *policyDemo, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	params := &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "summarize_customer"},
		Argument: mcp.CompleteParamsArgument{Name: "customer_id", Value: "c-100"},
	}
	support, _ := d.connect(t, supportKey, version, nil)
	res, err := support.Complete(ctx, params)
	if err != nil {
		t.Fatalf("support completes: %v", err)
	}
	want := []string{"C-1001", "C-1002", "C-1003", "C-1004", "C-1005", "C-1006", "C-1007", "C-1008", "C-1009"}
	if diff := cmp.Diff(want, res.Completion.Values); diff != "" {
		t.Errorf("support's completion (-want +got):\n%s", diff)
	}
	supervisor, status := d.connect(t, supervisorKey, version, nil)
	res, err = supervisor.Complete(ctx, params)
	if err == nil {
		t.Fatalf("the supervisor completed customer ids: %v", res.Completion.Values)
	}
	if code, _, reason := denial(t, err); code != wire.CodeDenied || reason != "policy-denied-by-rule" {
		t.Errorf("the supervisor's completion: %d reason %q, want %d policy-denied-by-rule", code, reason, wire.CodeDenied)
	}
	if got := status.last(); got != http.StatusForbidden {
		t.Errorf("the supervisor's completion: HTTP %d, want 403", got)
	}
}

// testDemoLimits checks the argument conditions of the example: calls at
// the bound reach the demo server, calls past it are refused by Sluice with
// the rule's reason code and an HTTP 403, and never reach the server.
func testDemoLimits(t *testing.T, d *policyDemo, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	analyst, analystStatus := d.connect(t, analystKey, version, nil)
	support, supportStatus := d.connect(t, supportKey, version, nil)

	allowed := []struct {
		who    string
		cs     *mcp.ClientSession
		tool   string
		args   map[string]any
		reach  string // the demo server's log entry
		result string // in the text of the result
	}{
		{"analyst", analyst, "find_customers", map[string]any{"query": "", "limit": 20}, `tools/call find_customers {"limit":20,"query":""}`, "20 customer(s) match"},
		{"analyst", analyst, "read_document", map[string]any{"id": "handbook"}, `tools/call read_document {"id":"handbook"}`, "Handbook"},
		{"support", support, "get_customer", map[string]any{"id": "C-1001"}, `tools/call get_customer {"id":"C-1001"}`, "C-1001"},
		{"support", support, "find_customers", map[string]any{"query": "berlin", "limit": 5}, `tools/call find_customers {"limit":5,"query":"berlin"}`, "Jonas Becker"},
	}
	for _, a := range allowed {
		m := d.mark()
		res, err := a.cs.CallTool(ctx, &mcp.CallToolParams{Name: a.tool, Arguments: a.args})
		if err != nil || res.IsError {
			t.Errorf("%s %s(%v): %v %+v, want it to pass", a.who, a.tool, a.args, err, res)
			continue
		}
		var text strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				text.WriteString(tc.Text)
			}
		}
		if !strings.Contains(text.String(), a.result) {
			t.Errorf("%s %s(%v): result lacks %q:\n%s", a.who, a.tool, a.args, a.result, text.String())
		}
		if got := d.awaitReached(t, m, a.reach); !slices.Equal(got, []string{a.reach}) {
			t.Errorf("%s %s(%v): the demo server received %q, want [%q]", a.who, a.tool, a.args, got, a.reach)
		}
	}

	// A probe is an allowed call on the same session after a refused one:
	// once the demo server has logged the probe, it would have logged the
	// refused call before it had the call reached it.
	type probe struct {
		tool string
		args map[string]any
		line string
	}
	analystProbe := probe{"search_documents", map[string]any{"query": "handbook"}, `tools/call search_documents {"query":"handbook"}`}
	supportProbe := probe{"get_customer", map[string]any{"id": "C-1002"}, `tools/call get_customer {"id":"C-1002"}`}
	refused := []struct {
		who    string
		cs     *mcp.ClientSession
		status *statusLog
		probe  probe
		tool   string
		args   map[string]any
		msg    string
		reason string
	}{
		{"analyst", analyst, analystStatus, analystProbe, "find_customers", map[string]any{"query": "", "limit": 21},
			`sluice: calling tool "find_customers" is not allowed by policy`, "policy-no-matching-rule"},
		{"analyst", analyst, analystStatus, analystProbe, "read_document", map[string]any{"id": "board-minutes"},
			"sluice: this document is restricted", "policy-restricted-document"},
		// The demo server finds documents ignoring case and surrounding
		// space (and so would many servers): other spellings of a
		// restricted id are not allowed either.
		{"analyst", analyst, analystStatus, analystProbe, "read_document", map[string]any{"id": "Board-Minutes"},
			`sluice: calling tool "read_document" is not allowed by policy`, "policy-no-matching-rule"},
		{"analyst", analyst, analystStatus, analystProbe, "read_document", map[string]any{"id": " incident-2031"},
			`sluice: calling tool "read_document" is not allowed by policy`, "policy-no-matching-rule"},
		{"analyst", analyst, analystStatus, analystProbe, "read_document", map[string]any{"id": "board-minuteſ"},
			`sluice: calling tool "read_document" is not allowed by policy`, "policy-no-matching-rule"},
		{"analyst", analyst, analystStatus, analystProbe, "send_email", map[string]any{"to": "ada.whitfield@example.com", "subject": "s", "body": "b"},
			`sluice: calling tool "send_email" is not allowed by policy`, "policy-no-matching-rule"},
		{"support", support, supportStatus, supportProbe, "get_customer", map[string]any{"id": "C-1001 OR 1=1"},
			`sluice: calling tool "get_customer" is not allowed by policy`, "policy-no-matching-rule"},
		{"support", support, supportStatus, supportProbe, "get_customer", map[string]any{"id": "*"},
			`sluice: calling tool "get_customer" is not allowed by policy`, "policy-no-matching-rule"},
		{"support", support, supportStatus, supportProbe, "find_customers", map[string]any{"query": "berlin", "limit": 6},
			`sluice: calling tool "find_customers" is not allowed by policy`, "policy-no-matching-rule"},
		{"support", support, supportStatus, supportProbe, "read_document", map[string]any{"id": "handbook"},
			`sluice: calling tool "read_document" is not allowed by policy`, "policy-no-matching-rule"},
	}
	for _, r := range refused {
		m := d.mark()
		res, err := r.cs.CallTool(ctx, &mcp.CallToolParams{Name: r.tool, Arguments: r.args})
		if err == nil {
			t.Errorf("%s %s(%v) passed (isError %v), want it refused", r.who, r.tool, r.args, res.IsError)
			continue
		}
		code, msg, reason := denial(t, err)
		if code != wire.CodeDenied || msg != r.msg || reason != r.reason {
			t.Errorf("%s %s(%v): error %d %q reason %q, want %d %q reason %q", r.who, r.tool, r.args, code, msg, reason, wire.CodeDenied, r.msg, r.reason)
		}
		if got := r.status.last(); got != http.StatusForbidden {
			t.Errorf("%s %s(%v): HTTP %d, want 403", r.who, r.tool, r.args, got)
		}
		// The session goes on after the refusal, and the refused call
		// never reached the demo server.
		if res, err := r.cs.CallTool(ctx, &mcp.CallToolParams{Name: r.probe.tool, Arguments: r.probe.args}); err != nil || res.IsError {
			t.Fatalf("%s %s after a refusal: %v %+v", r.who, r.probe.tool, err, res)
		}
		if got := d.awaitReached(t, m, r.probe.line); !slices.Equal(got, []string{r.probe.line}) {
			t.Errorf("%s %s(%v) was refused, yet the demo server received %q", r.who, r.tool, r.args, got)
		}
	}

	// The restricted document is refused as a resource too, however it is
	// spelled.
	m := d.mark()
	for _, r := range []struct{ uri, msg, reason string }{
		{"demo://documents/board-minutes", "sluice: this document is restricted", "policy-restricted-document"},
		{"demo://documents/Board-Minutes", `sluice: reading resource "demo://documents/Board-Minutes" is not allowed by policy`, "policy-no-matching-rule"},
		{"demo://documents/INCIDENT-2031", `sluice: reading resource "demo://documents/INCIDENT-2031" is not allowed by policy`, "policy-no-matching-rule"},
	} {
		_, err := analyst.ReadResource(ctx, &mcp.ReadResourceParams{URI: r.uri})
		if err == nil {
			t.Errorf("read %s passed, want it refused", r.uri)
			continue
		}
		if code, msg, reason := denial(t, err); code != wire.CodeDenied || msg != r.msg || reason != r.reason {
			t.Errorf("read %s: %d %q reason %q, want %d %q reason %q", r.uri, code, msg, reason, wire.CodeDenied, r.msg, r.reason)
		}
	}
	if _, err := analyst.ReadResource(ctx, &mcp.ReadResourceParams{URI: "demo://documents/handbook"}); err != nil {
		t.Fatalf("read demo://documents/handbook: %v", err)
	}
	const handbook = "resources/read demo://documents/handbook"
	if got := d.awaitReached(t, m, handbook); !slices.Equal(got, []string{handbook}) {
		t.Errorf("the restricted resource was refused, yet the demo server received %q", got)
	}
}

// testDemoAuthn checks that a request without a key, or with a key Sluice
// does not know, gets 401 with a bearer challenge, and that no go-sdk client
// connects so.
func testDemoAuthn(t *testing.T, d *policyDemo, version string) {
	var body string
	hdr := map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
	if version == wire.Version20260728 {
		body = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
		hdr["MCP-Protocol-Version"] = version
		hdr["Mcp-Method"] = "tools/list"
	} else {
		body = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`
	}
	// The health check stays open.
	if resp, err := http.Get(d.base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz without a key: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	tests := []struct {
		name      string
		auth      string // Authorization header, if any
		challenge string
		reason    string
	}{
		{"no key", "", "Bearer", "authn-no-credentials"},
		{"wrong key", "Bearer wrong-demo-key-12345", `Bearer error="invalid_token", error_description="unknown API key"`, "authn-api-key-unknown"},
		// Whoever reads the configuration does not hold the keys.
		{"the stored hash instead of the key", "Bearer 18c498964cd65c5c38b44572dc61736bc213007348421df36a38331968e0bed2", `Bearer error="invalid_token", error_description="unknown API key"`, "authn-api-key-unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, d.base+"/mcp", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got struct {
				Error  string `json:"error"`
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(raw, &got)
			if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != tt.challenge || got.Reason != tt.reason {
				t.Errorf("HTTP %d, WWW-Authenticate %q, body %s; want 401, %q, reason %s",
					resp.StatusCode, resp.Header.Get("WWW-Authenticate"), raw, tt.challenge, tt.reason)
			}
			if strings.Contains(string(raw), "support-bot") || strings.Contains(string(raw), "sha256") {
				t.Errorf("the refusal tells about the keys: %s", raw)
			}

			// The go-sdk client is refused the same way.
			key := strings.TrimPrefix(tt.auth, "Bearer ")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var hc *http.Client
			if key != "" {
				hc = &http.Client{Transport: &bearer{key: key, status: &statusLog{}}}
			}
			c := mcp.NewClient(&mcp.Implementation{Name: "policy-demo-test", Version: "1"}, nil)
			cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.base + "/mcp", MaxRetries: -1, HTTPClient: hc}, &mcp.ClientSessionOptions{ProtocolVersion: version})
			if err == nil {
				cs.Close()
				t.Errorf("the go-sdk client connected with %q", tt.auth)
			}
		})
	}
}

// testDemoSessionBinding checks that a legacy session belongs to the
// principal that opened it: another principal presenting its session id is
// told it does not exist, and the session goes on for its owner.
func testDemoSessionBinding(t *testing.T, d *policyDemo) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	support, _ := d.connect(t, supportKey, wire.Version20251125, nil)
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"send_email","arguments":{"to":"ada.whitfield@example.com","subject":"s","body":"b"}}}`
	req, err := http.NewRequest(http.MethodPost, d.base+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", wire.Version20251125)
	req.Header.Set("Mcp-Session-Id", support.ID())
	req.Header.Set("Authorization", "Bearer "+analystKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the analyst in the support agent's session: HTTP %d %s, want 404", resp.StatusCode, raw)
	}
	if _, err := support.CallTool(ctx, &mcp.CallToolParams{Name: "get_customer", Arguments: map[string]any{"id": "C-1003"}}); err != nil {
		t.Errorf("the support agent's session after the attempt: %v", err)
	}
}

// approvalRowRE matches a row of `sluice approve list`.
var approvalRowRE = regexp.MustCompile(`(?m)^(apr_[0-9a-f]{16})\s+\S+\s+(\S+)\s+demo\s+tools/call\s+send_email\s+email-outside-customers\s`)

// waitHeld runs `sluice approve list` until one call of the support agent
// is listed, and returns its approval ID.
func (d *policyDemo) waitHeld(t *testing.T, tok string, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, out := d.approve(t, tok, "list")
		if code != 0 {
			t.Fatalf("sluice approve list: exit %d\n%s", code, out)
		}
		rows := approvalRowRE.FindAllStringSubmatch(out, -1)
		switch {
		case len(rows) == 1 && rows[0][2] == "support-bot":
			return rows[0][1]
		case len(rows) > 1:
			t.Fatalf("more than one call waits:\n%s", out)
		case !strings.Contains(out, "no calls wait for approval") && len(rows) == 0:
			t.Fatalf("sluice approve list printed neither a held e-mail nor an empty list:\n%s", out)
		}
		select {
		case err := <-done:
			t.Fatalf("the held call ended before a decision: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no call was listed for approval; last list:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testDemoApprover has the support agent, whose client declares no
// elicitation, mail an outside address: the call waits until the
// supervisor grants it with `sluice approve`, and the e-mail is in the
// outbox; a second one the supervisor denies is refused with
// approval-denied and never reaches the demo server.
func testDemoApprover(t *testing.T, d *policyDemo, eraName, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	support, _ := d.connect(t, supportKey, version, nil)
	sam := tokenFile(t, supervisorKey)

	// Only supervisors decide.
	if code, out := d.approve(t, tokenFile(t, supportKey), "list"); code != 1 || !strings.Contains(out, "not an approver (HTTP 403)") {
		t.Errorf("the support agent lists approvals: exit %d\n%s", code, out)
	}
	if code, out := d.approve(t, tokenFile(t, "wrong-demo-key-12345"), "list"); code != 1 || !strings.Contains(out, "(HTTP 401)") {
		t.Errorf("an unknown key lists approvals: exit %d\n%s", code, out)
	}

	// A customer's address goes out without asking anyone.
	m := d.mark()
	customer := "ada.whitfield@example.com"
	if res, err := sendEmail(ctx, support, customer); err != nil || res.IsError {
		t.Fatalf("mail to a customer: %v %+v", err, res)
	}

	type outcome struct {
		res *mcp.CallToolResult
		err error
	}
	held := func(to string) (<-chan outcome, <-chan error) {
		ch := make(chan outcome, 1)
		errc := make(chan error, 1) // for waitHeld: the call ended early
		go func() {
			res, err := sendEmail(ctx, support, to)
			ch <- outcome{res, err}
			errc <- fmt.Errorf("%+v, %v", res, err)
		}()
		return ch, errc
	}

	partner := "partner." + eraName + "@elsewhere.test"
	done, early := held(partner)
	id := d.waitHeld(t, sam, early)
	if got := d.reached(t, m); slices.Contains(got, mailLine(partner)) {
		t.Errorf("the held e-mail reached the demo server before approval: %q", got)
	}
	code, out := d.approve(t, sam, "show", id)
	for _, want := range []string{"support-bot (Support agent)", "email-outside-customers", `"to":"` + partner + `"`, "digest:", "sha256:"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("sluice approve show: exit %d, lacks %q:\n%s", code, want, out)
		}
	}
	if code, out := d.approve(t, sam, "grant", id); code != 0 || out != "approved "+id+" as sam@example.com\n" {
		t.Errorf("sluice approve grant: exit %d, %q", code, out)
	}
	o := <-done
	if o.err != nil || o.res.IsError {
		t.Fatalf("the granted e-mail: %v %+v", o.err, o.res)
	}
	// The approval covers the same exact call until its ttl ends: it goes
	// out again without waiting.
	if res, err := sendEmail(ctx, support, partner); err != nil || res.IsError {
		t.Fatalf("the same e-mail again: %v %+v", err, res)
	}
	if diff := cmp.Diff([]string{customer, partner, partner}, outbox(ctx, t, support)); diff != "" {
		t.Errorf("outbox after the grant (-want +got):\n%s", diff)
	}
	want := []string{mailLine(customer), mailLine(partner), mailLine(partner), readOutbox}
	if diff := cmp.Diff(want, d.awaitReached(t, m, readOutbox)); diff != "" {
		t.Errorf("what reached the demo server (-want +got):\n%s", diff)
	}

	rival := "rival." + eraName + "@elsewhere.test"
	m = d.mark()
	done, early = held(rival)
	id = d.waitHeld(t, sam, early)
	if code, out := d.approve(t, sam, "deny", id, "--reason", "not a customer"); code != 0 || out != "denied "+id+" as sam@example.com\n" {
		t.Errorf("sluice approve deny: exit %d, %q", code, out)
	}
	o = <-done
	if o.err == nil {
		t.Fatalf("the denied e-mail passed: %+v", o.res)
	}
	if code, msg, reason := denial(t, o.err); code != wire.CodeDenied || reason != "approval-denied" || !strings.Contains(msg, "not a customer") {
		t.Errorf("the denied e-mail: %d %q reason %q, want %d, approval-denied, with the supervisor's reason", code, msg, reason, wire.CodeDenied)
	}
	if diff := cmp.Diff([]string{customer, partner, partner}, outbox(ctx, t, support)); diff != "" {
		t.Errorf("outbox after the denial (-want +got):\n%s", diff)
	}
	if got := d.awaitReached(t, m, readOutbox); !slices.Equal(got, []string{readOutbox}) {
		t.Errorf("the denied e-mail reached the demo server: %q", got)
	}
	if code, out := d.approve(t, sam, "list"); code != 0 || out != "no calls wait for approval\n" {
		t.Errorf("sluice approve list at the end: exit %d\n%s", code, out)
	}
}

// humanAtClient answers Sluice's approval questions at the support agent's
// client: it approves e-mails to one address and declines the rest.
type humanAtClient struct {
	approve string
	mu      sync.Mutex
	asked   []string
}

func (h *humanAtClient) handle(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, req.Params.Message)
	if strings.Contains(req.Params.Message, `"to":"`+h.approve+`"`) {
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}, nil
	}
	return &mcp.ElicitResult{Action: "decline"}, nil
}

func (h *humanAtClient) questions() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.asked)
}

// testDemoClientApproval has the support agent's client declare
// elicitation: Sluice asks the human at the client (by elicitation in the
// legacy era, with input_required in the modern one), and the answer
// decides; the supervisor is not involved.
func testDemoClientApproval(t *testing.T, d *policyDemo, eraName, version string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	friend, foe := "friend."+eraName+"@elsewhere.test", "foe."+eraName+"@elsewhere.test"
	h := &humanAtClient{approve: friend}
	support, seen := d.connect(t, supportKey, version, &mcp.ClientOptions{ElicitationHandler: h.handle})

	m := d.mark()
	customer := "liu.wei@example.org"
	if res, err := sendEmail(ctx, support, customer); err != nil || res.IsError {
		t.Fatalf("mail to a customer: %v %+v", err, res)
	}
	if n := len(h.questions()); n != 0 {
		t.Fatalf("mail to a customer asked %d questions, want none", n)
	}

	before := len(seen.received.String())
	if res, err := sendEmail(ctx, support, friend); err != nil || res.IsError {
		t.Fatalf("approved e-mail: %v %+v", err, res)
	}
	// How the question crossed the wire depends on the era.
	how := []string{`"method":"elicitation/create"`}
	if version == wire.Version20260728 {
		how = []string{`"resultType":"input_required"`, `"sluice-approval"`}
	}
	if got := seen.received.String()[before:]; !containsAll(got, how) {
		t.Errorf("the approval question did not come as %s:\n%s", how, got)
	}
	asked := h.questions()
	if len(asked) != 1 {
		t.Fatalf("asked %d questions, want 1: %q", len(asked), asked)
	}
	for _, want := range []string{"send_email", `"to":"` + friend + `"`, "support-bot", "email-outside-customers", "apr_"} {
		if !strings.Contains(asked[0], want) {
			t.Errorf("the question lacks %q:\n%s", want, asked[0])
		}
	}

	_, err := sendEmail(ctx, support, foe)
	if code, _, reason := denial(t, err); code != wire.CodeDenied || reason != "approval-denied" {
		t.Errorf("declined e-mail: %d reason %q, want %d approval-denied", code, reason, wire.CodeDenied)
	}
	if n := len(h.questions()); n != 2 {
		t.Errorf("asked %d questions, want 2", n)
	}
	if diff := cmp.Diff([]string{customer, friend}, outbox(ctx, t, support)); diff != "" {
		t.Errorf("outbox (-want +got):\n%s", diff)
	}
	want := []string{mailLine(customer), mailLine(friend), readOutbox}
	if diff := cmp.Diff(want, d.awaitReached(t, m, readOutbox)); diff != "" {
		t.Errorf("what reached the demo server, the declined e-mail not among it (-want +got):\n%s", diff)
	}
	// Nothing waited for the supervisor.
	if code, out := d.approve(t, tokenFile(t, supervisorKey), "list"); code != 0 || out != "no calls wait for approval\n" {
		t.Errorf("sluice approve list: exit %d\n%s", code, out)
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestWithPath checks that the serve process gets the built binary's
// directory first on PATH, with the rest of the environment kept.
func TestWithPath(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"prepends", []string{"HOME=/h", "PATH=/usr/bin:/bin"}, []string{"HOME=/h", "PATH=/x:/usr/bin:/bin"}},
		{"no PATH", []string{"HOME=/h"}, []string{"HOME=/h", "PATH=/x"}},
		{"PATHEXT is not PATH", []string{"PATHEXT=.exe", "PATH=/bin"}, []string{"PATHEXT=.exe", "PATH=/x:/bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, withPath(tt.env, "/x")); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
