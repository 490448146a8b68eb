package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/testenv"
)

// auditedSluice is a `sluice serve` in front of the demo server, with its
// own data directory.
type auditedSluice struct {
	cmd  *exec.Cmd
	url  string
	log  *syncBuffer
	done chan error
}

func startAudited(t *testing.T, dataDir string) *auditedSluice {
	t.Helper()
	return serveAudited(t, dataDir, "--", testenv.Sluice(t), "demo-server")
}

// serveAudited starts `sluice serve` on a free port with the data directory
// and the arguments given (a --config, or a server's command after --),
// with sluice on its PATH.
func serveAudited(t *testing.T, dataDir string, args ...string) *auditedSluice {
	t.Helper()
	bin := testenv.Sluice(t)
	port := testenv.FreePort(t)
	s := &auditedSluice{url: fmt.Sprintf("http://127.0.0.1:%d/mcp", port), log: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", dataDir}, args...)...)
	s.cmd.Env = withPath(os.Environ(), filepath.Dir(bin))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("sluice log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.url)
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sluice did not listen: %v\n%s", err, s.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop interrupts Sluice and waits for it to finish writing.
func (s *auditedSluice) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(os.Interrupt)
	if err := <-s.done; err != nil {
		t.Fatalf("sluice: %v", err)
	}
	s.done <- nil
}

// call makes a modern-era tools/call with the given JSON-RPC id and reports
// whether the client got a result.
func (s *auditedSluice) call(ctx context.Context, id, tool, args string) (bool, error) {
	res, err := s.callResult(ctx, id, tool, args)
	return res != nil, err
}

// callResult makes a modern-era tools/call and returns its result (nil
// for an error answer).
func (s *auditedSluice) callResult(ctx context.Context, id, tool, args string) (json.RawMessage, error) {
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"method":"tools/call","params":{"name":%q,"arguments":%s,"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`, id, tool, args)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2026-07-28")
	req.Header.Set("Mcp-Method", "tools/call")
	req.Header.Set("Mcp-Name", tool)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	msg, err := responseMessage(resp.Header.Get("Content-Type"), b)
	if err != nil {
		return nil, err
	}
	var m struct {
		ID     string          `json:"id"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, fmt.Errorf("answer for id %q, want %q", m.ID, id)
	}
	return m.Result, nil
}

// recordedIDs returns the request ids of every call in the audit log.
func recordedIDs(t *testing.T, dataDir string) map[string]bool {
	t.Helper()
	st, err := audit.OpenSQLite(filepath.Join(dataDir, audit.DatabaseFile), audit.SQLiteOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ids := map[string]bool{}
	err = st.Records(context.Background(), func(r audit.Record) error {
		v, err := audit.ParseView(r.Body)
		if err != nil {
			return err
		}
		var id string
		if json.Unmarshal(v.RequestID, &id) == nil {
			ids[id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestAuditSurvivesKill runs calls from eight clients, kills Sluice with
// SIGKILL in the middle, and restarts it: every call a client saw answered
// is in the log, the chain goes on across the restart, and it verifies.
func TestAuditSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	s := startAudited(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu       sync.Mutex
		answered []string
		n        atomic.Int64
		wg       sync.WaitGroup
	)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				ok, err := s.call(ctx, id, "find_customers", `{"query":"berlin"}`)
				if err != nil {
					return // the kill
				}
				if ok {
					mu.Lock()
					answered = append(answered, id)
					mu.Unlock()
					n.Add(1)
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.Load() < 300 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.done <- nil // for the cleanup
	wg.Wait()
	cancel()
	if len(answered) < 300 {
		t.Fatalf("only %d calls answered before the kill", len(answered))
	}

	s2 := startAudited(t, dir)
	if ok, err := s2.call(context.Background(), "after-restart", "find_customers", `{"query":"paris"}`); !ok || err != nil {
		t.Fatalf("call after the restart: %v %v", ok, err)
	}
	// The last calls before the kill were only in the journal: the
	// restart moved them into the database.
	if !strings.Contains(s2.log.String(), "recovered from the journal") {
		t.Errorf("the restart recovered nothing from the journal:\n%s", s2.log.String())
	}
	if err := s2.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := <-s2.done; err != nil {
		t.Errorf("sluice after the restart: %v", err)
	}
	s2.done <- nil
	ids := recordedIDs(t, dir)
	missing := 0
	for _, id := range answered {
		if !ids[id] {
			missing++
		}
	}
	if missing > 0 || !ids["after-restart"] {
		t.Errorf("%d of %d answered calls are not in the audit log (after-restart recorded: %v)", missing, len(answered), ids["after-restart"])
	}
	res := runMain(t, context.Background(), nil, "audit", "verify", "--data-dir", dir)
	if res.Code != 0 || !strings.Contains(res.Stdout, "OK") {
		t.Fatalf("verify after a kill and a restart: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	t.Logf("%d calls answered before the kill, %d records; %s", len(answered), len(ids), strings.TrimSpace(res.Stdout))
}

// TestAuditCommands drives `sluice audit` over a log a real Sluice wrote:
// query by value, tail, export, and verify before and after tampering.
func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	s := startAudited(t, dir)
	for i, q := range []string{"berlin", "paris", "berlin"} {
		if ok, err := s.call(context.Background(), "q"+strconv.Itoa(i), "find_customers", `{"query":"`+q+`"}`); !ok || err != nil {
			t.Fatalf("call %d: %v %v", i, ok, err)
		}
	}
	s.stop(t)
	run := func(args ...string) result {
		t.Helper()
		return runMain(t, context.Background(), nil, append(args, "--data-dir", dir)...)
	}

	res := run("audit", "query", "--value", "berlin", "--format", "csv")
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if res.Code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "seq,time,principal") {
		t.Fatalf("query --value berlin: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	token := strings.TrimSpace(run("audit", "hash", "paris").Stdout)
	if !strings.HasPrefix(token, audit.TokenPrefix) {
		t.Fatalf("hash: %q", token)
	}
	res = run("audit", "query", "--contains", token, "--format", "json")
	if res.Code != 0 || strings.Count(res.Stdout, "\n") != 1 || !strings.Contains(res.Stdout, `"request_id":"q1"`) || strings.Contains(res.Stdout, "paris") {
		t.Fatalf("query --contains the token of paris: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = run("audit", "tail", "-n", "2")
	if res.Code != 0 || strings.Count(res.Stdout, "find_customers") != 2 {
		t.Fatalf("tail -n 2: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = run("audit", "export")
	var ev struct {
		ClassUID int `json:"class_uid"`
		TypeUID  int `json:"type_uid"`
		API      struct {
			Operation string `json:"operation"`
		} `json:"api"`
		Metadata struct {
			Version string `json:"version"`
		} `json:"metadata"`
	}
	first, _, _ := strings.Cut(res.Stdout, "\n")
	if err := json.Unmarshal([]byte(first), &ev); err != nil || ev.ClassUID != 6003 || ev.TypeUID != 600399 || ev.API.Operation != "tools/call" || ev.Metadata.Version == "" {
		t.Fatalf("export: %v %+v\n%s", err, ev, res.Stdout)
	}
	jsonl := filepath.Join(t.TempDir(), "export.jsonl")
	res = run("audit", "export", "--format", "jsonl")
	if err := os.WriteFile(jsonl, []byte(res.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	if res := run("audit", "verify", "--jsonl", jsonl); res.Code != 0 {
		t.Fatalf("verify of the exported JSON Lines: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}

	res = run("audit", "verify", "--json")
	if res.Code != 0 || !strings.Contains(res.Stdout, `"ok":true`) {
		t.Fatalf("verify: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	st, err := audit.OpenSQLite(filepath.Join(dir, audit.DatabaseFile), audit.SQLiteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec(`UPDATE audit_records SET body = replace(body, '"outcome":"ok"', '"outcome":"error"') WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	st.Close()
	res = run("audit", "verify")
	if res.Code != 1 || !strings.Contains(res.Stderr, "changed at seq 2") || !bytes.Contains([]byte(res.Stdout), []byte("FAILED")) {
		t.Fatalf("verify of a changed log: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}

// TestLineageOnTheDemo serves examples/lineage-demo.yaml: with the demo's
// customers labelled pii, its documents untrusted-input and send_email an
// external sink, a session
// (here a modern client, kept apart by nothing but its principal, the
// anonymous one) that read a customer and a document cannot send e-mail;
// the refusal and the labels of every call are in the audit log.
func TestLineageOnTheDemo(t *testing.T) {
	dir := t.TempDir()
	cfg, err := filepath.Abs("../../examples/lineage-demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := serveAudited(t, filepath.Join(dir, "data"), "--config", cfg)
	ctx := context.Background()
	email := `{"to":"someone@elsewhere.example","subject":"hi","body":"see attached"}`
	if ok, err := s.call(ctx, "1", "get_customer", `{"id":"C-1001"}`); !ok || err != nil {
		t.Fatalf("get_customer: %v %v", ok, err)
	}
	if ok, err := s.call(ctx, "2", "send_email", email); !ok || err != nil {
		t.Fatalf("send_email after pii alone: %v %v", ok, err)
	}
	if ok, err := s.call(ctx, "3", "read_document", `{"id":"product-faq"}`); !ok || err != nil {
		t.Fatalf("read_document: %v %v", ok, err)
	}
	// The refused e-mail carries the address the lookup returned.
	leak := `{"to":"someone@elsewhere.example","subject":"hi","body":"Ada: ada.whitfield@example.com"}`
	if ok, err := s.call(ctx, "4", "send_email", leak); ok || err != nil {
		t.Fatalf("send_email after pii and untrusted input went through: %v %v", ok, err)
	}
	s.stop(t)
	res := runMain(t, ctx, nil, "audit", "query", "--data-dir", filepath.Join(dir, "data"), "--format", "json", "--tool", "send_email")
	lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
	if res.Code != 0 || len(lines) != 2 {
		t.Fatalf("send_email records: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	if !strings.Contains(lines[0], `"outcome":"ok"`) || !strings.Contains(lines[1], `"outcome":"denied","reason":"lineage-toxic-flow"`) ||
		!strings.Contains(lines[1], `"rule":"lethal-trifecta"`) || !strings.Contains(lines[1], `"labels":["external-sink"]`) {
		t.Errorf("send_email records:\n%s", res.Stdout)
	}
	// The flow from the lookup to the refused e-mail is recorded.
	lookup := runMain(t, ctx, nil, "audit", "query", "--data-dir", filepath.Join(dir, "data"), "--format", "json", "--tool", "get_customer")
	lv, err := audit.ParseView([]byte(strings.TrimSpace(lookup.Stdout)))
	if err != nil {
		t.Fatalf("get_customer record: %v\n%s", err, lookup.Stdout)
	}
	if !strings.Contains(lines[1], `"flows":[{"from":"`+lv.ID+`","kind":"pii/email"`) {
		t.Errorf("the refused send_email records no flow from %s:\n%s", lv.ID, lines[1])
	}
	res = runMain(t, ctx, nil, "audit", "query", "--data-dir", filepath.Join(dir, "data"), "--format", "json", "--tool", "read_document")
	// The FAQ holds contact details: DLP's finding makes it pii too.
	if !strings.Contains(res.Stdout, `"labels":["pii","untrusted-input"]`) {
		t.Errorf("read_document record: %s", res.Stdout)
	}
}

// TestAuditPostgres serves the demo with the audit log in PostgreSQL (a
// real server, Debian's package, on loopback), then verifies and queries
// it with `sluice audit` reading the same configuration.
func TestAuditPostgres(t *testing.T) {
	dsn := testenv.Postgres(t)
	bin := testenv.Sluice(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "sluice.yaml")
	yaml := fmt.Sprintf("data_dir: %s\nservers:\n  demo: {command: [%q, demo-server]}\naudit:\n  sinks:\n    - {type: postgres, dsn: \"${AUDIT_DSN}\"}\n    - {type: jsonl, path: %s}\n",
		filepath.Join(dir, "data"), bin, filepath.Join(dir, "audit.jsonl"))
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AUDIT_DSN", dsn)
	port := testenv.FreePort(t)
	s := &auditedSluice{url: fmt.Sprintf("http://127.0.0.1:%d/mcp", port), log: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "serve", "--config", cfg, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	defer func() {
		if t.Failed() {
			t.Logf("sluice log:\n%s", s.log.String())
		}
	}()
	if err := testenv.AwaitPort(port, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	for i, q := range []string{"berlin", "paris"} {
		if ok, err := s.call(context.Background(), fmt.Sprint(i), "find_customers", `{"query":"`+q+`"}`); !ok || err != nil {
			t.Fatalf("call %d: %v %v", i, ok, err)
		}
	}
	s.cmd.Process.Signal(os.Interrupt)
	if err := <-s.done; err != nil {
		t.Fatalf("sluice: %v", err)
	}
	if strings.Contains(s.log.String(), dsn) {
		t.Error("the log holds the DSN")
	}
	res := runMain(t, context.Background(), nil, "audit", "verify", "-c", cfg)
	if res.Code != 0 || !strings.Contains(res.Stdout, "2 records") {
		t.Fatalf("verify: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = runMain(t, context.Background(), nil, "audit", "query", "-c", cfg, "--value", "berlin", "--format", "json")
	if res.Code != 0 || strings.Count(res.Stdout, "\n") != 1 || !strings.Contains(res.Stdout, `"request_id":"0"`) {
		t.Fatalf("query: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	res = runMain(t, context.Background(), nil, "audit", "verify", "-c", cfg, "--jsonl", filepath.Join(dir, "audit.jsonl"))
	if res.Code != 0 || !strings.Contains(res.Stdout, "2 records") {
		t.Fatalf("verify of the JSON Lines copy: code %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
