package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/testenv"
)

func demoConfig(bin, deny string) string {
	return fmt.Sprintf("servers:\n  demo:\n    command: [%q, demo-server]\n    tools: {deny: [%q]}\n", bin, deny)
}

// TestServeReload runs `sluice serve --config` as a process, changes the
// file under a live session, breaks it, and reloads with SIGHUP: a valid
// change applies without dropping the session, an invalid one is refused
// with the reason logged and the running configuration kept.
func TestServeReload(t *testing.T) {
	bin := testenv.Sluice(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(path, []byte(demoConfig(bin, "nothing")), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	var logs syncBuffer
	cmd := exec.Command(bin, "serve", "--config", path, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
	})
	testenv.WaitPort(t, port, 20*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: fmt.Sprintf("http://127.0.0.1:%d/mcp", port)}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools := func() []string {
		res, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		return names
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := tools(); !slices.Contains(got, "send_email") {
		t.Fatalf("demo tools = %v, want send_email among them", got)
	}

	// A valid change to the file applies to the running session.
	if err := os.WriteFile(path, []byte(demoConfig(bin, "send_*")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("send_email to be filtered after the file changed", func() bool { return !slices.Contains(tools(), "send_email") })

	// An invalid file is refused and the running configuration stays.
	if err := os.WriteFile(path, []byte("servers:\n  demo:\n    comand: [x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor("the reload failure in the log", func() bool {
		return strings.Contains(logs.String(), "keeping the running configuration") && strings.Contains(logs.String(), "comand")
	})
	if got := tools(); slices.Contains(got, "send_email") || len(got) == 0 {
		t.Errorf("after a failed reload tools = %v, want the previous configuration's", got)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "find_customers", Arguments: map[string]any{"query": "a"}})
	if err != nil || res.IsError {
		t.Errorf("call after a failed reload: %v %v", err, res)
	}

	// SIGHUP reloads a repaired file.
	if err := os.WriteFile(path, []byte(demoConfig(bin, "find_*")), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor("find_customers to be filtered after SIGHUP", func() bool {
		got := tools()
		return !slices.Contains(got, "find_customers") && slices.Contains(got, "send_email")
	})

	// SIGTERM shuts down cleanly.
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not exit within 20s of SIGTERM")
	}
}
