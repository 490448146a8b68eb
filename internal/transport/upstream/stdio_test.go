package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/mcp"
)

func dialStdio(t *testing.T, cfg StdioConfig, opts Options) *stdioConn {
	t.Helper()
	c, err := DialStdio(testCtx(t), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*stdioConn)
}

func TestStdioEverythingServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c := dialStdio(t, StdioConfig{Command: []string{everythingServer(t)}}, Options{})
	ctx := testCtx(t)

	init := initialize(t, c)
	var ir struct {
		ProtocolVersion string `json:"protocolVersion"`
		ServerInfo      struct {
			Name string `json:"name"`
		} `json:"serverInfo"`
	}
	mustUnmarshal(t, init.Result, &ir)
	if diff := cmp.Diff("mcp-conformance-test-server", ir.ServerInfo.Name); diff != "" {
		t.Errorf("server name (-want +got):\n%s", diff)
	}
	if string(init.ID) != `"init"` {
		t.Errorf("initialize response id = %s, want \"init\"", init.ID)
	}

	list, err := c.Call(ctx, request(`1`, mcp.MethodToolsList, `{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	names := toolNames(t, list)
	if !contains(names, "test_simple_text") || !contains(names, "test_tool_with_progress") {
		t.Errorf("tools/list = %v, want test_simple_text and test_tool_with_progress among them", names)
	}
	if got := toolText(t, c, `2`, "test_simple_text", `{}`); !strings.Contains(got, "simple text") {
		t.Errorf("test_simple_text = %q", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err after Close = %v, want ErrClosed", c.Err())
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestStdioConcurrentCalls(t *testing.T) {
	c := dialStdio(t, helperConfig(t, modeServer), Options{})
	initialize(t, c)
	const n = 50
	type result struct {
		id, want, got string
		err           error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range n {
		// Numeric and string IDs with the same digits must not be confused.
		id := strconv.Itoa(i)
		if i%2 == 1 {
			id = strconv.Quote(strconv.Itoa(i - 1))
		}
		want := fmt.Sprintf("call %s", id)
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := fmt.Sprintf(`{"name":"echo","arguments":{"text":%q}}`, want)
			resp, err := c.Call(testCtx(t), request(id, mcp.MethodToolsCall, args), nil)
			r := result{id: id, want: want, err: err}
			if err == nil {
				if string(resp.ID) != id {
					r.err = fmt.Errorf("response id %s", resp.ID)
				} else {
					r.got = resultText(t, resp)
				}
			}
			results <- r
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil {
			t.Errorf("call %s: %v", r.id, r.err)
			continue
		}
		if r.got != r.want {
			t.Errorf("call %s got %q, want %q", r.id, r.got, r.want)
		}
	}
}

// Raw parts of a message may be pretty-printed; the line sent must still be
// one message (the helper exits on a line that is not).
func TestStdioNewlinesInParams(t *testing.T) {
	c := dialStdio(t, helperConfig(t, modeServer), Options{})
	initialize(t, c)
	pretty := "{\n  \"name\": \"echo\",\r\n  \"arguments\": {\"text\": \"a\\nb\"}\n}"
	resp, err := c.Call(testCtx(t), request(`1`, mcp.MethodToolsCall, pretty), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resultText(t, resp); got != "a\nb" {
		t.Errorf("echo = %q, want %q", got, "a\nb")
	}
}

func TestStdioDuplicateID(t *testing.T) {
	c := dialStdio(t, helperConfig(t, modeServer), Options{})
	initialize(t, c)
	ctx := testCtx(t)
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		close(started)
		_, err := c.Call(ctx, request(`7`, mcp.MethodToolsCall, `{"name":"sleep","arguments":{"ms":300}}`), nil)
		errc <- err
	}()
	<-started
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := c.Call(ctx, request(`7`, mcp.MethodToolsCall, `{"name":"echo","arguments":{"text":"x"}}`), nil)
		if err != nil && strings.Contains(err.Error(), "already pending") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second call with a pending id: err = %v, want an already-pending error", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestStdioServerExitsMidCall(t *testing.T) {
	c := dialStdio(t, helperConfig(t, modeServer), Options{})
	initialize(t, c)
	ctx := testCtx(t)

	pending := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, request(`"slow"`, mcp.MethodToolsCall, `{"name":"sleep","arguments":{"ms":10000}}`), nil)
		pending <- err
	}()
	time.Sleep(50 * time.Millisecond)
	_, err := c.Call(ctx, request(`"bye"`, mcp.MethodToolsCall, `{"name":"exit","arguments":{}}`), nil)
	if !errors.Is(err, ErrConnLost) {
		t.Errorf("call that made the server exit: err = %v, want ErrConnLost", err)
	}
	select {
	case err := <-pending:
		if !errors.Is(err, ErrConnLost) {
			t.Errorf("pending call: err = %v, want ErrConnLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("pending call did not fail")
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the server exited")
	}
	if err := c.Err(); !errors.Is(err, ErrConnLost) || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Err = %v, want ErrConnLost with exit status 3", err)
	}
	// New calls fail at once.
	if _, err := c.Call(ctx, request(`9`, mcp.MethodToolsList, `{}`), nil); !errors.Is(err, ErrConnLost) {
		t.Errorf("call after exit: err = %v, want ErrConnLost", err)
	}
	if err := c.Send(ctx, mcp.NewNotification(mcp.NotifInitialized, nil)); !errors.Is(err, ErrConnLost) {
		t.Errorf("send after exit: err = %v, want ErrConnLost", err)
	}
}

func processAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func TestStdioCloseSequence(t *testing.T) {
	tests := []struct {
		name         string
		mode         string
		busy         bool          // a call is pending when Close starts
		closeTimeout time.Duration // 0: helperConfig's 300ms
		min          time.Duration // how long Close must wait at least
		exit         string        // how the server ended, which tells the step that ended it
	}{
		{name: "exits when stdin closes", mode: modeServer, closeTimeout: 5 * time.Second, exit: "exit status 0"},
		{name: "exits when stdin closes while busy", mode: modeServer, busy: true, closeTimeout: 5 * time.Second, exit: "exit status 0"},
		{name: "needs SIGTERM", mode: modeLinger, busy: true, min: 300 * time.Millisecond, exit: "signal: terminated"},
		{name: "ignores SIGTERM", mode: modeStubborn, busy: true, min: 600 * time.Millisecond, exit: "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			cfg := helperConfig(t, tt.mode)
			if tt.closeTimeout > 0 {
				cfg.CloseTimeout = tt.closeTimeout
			}
			c := dialStdio(t, cfg, Options{})
			initialize(t, c)
			ctx := testCtx(t)
			// A child of the server, in its process group.
			child, err := strconv.Atoi(toolText(t, c, `"spawn"`, "spawn", `{}`))
			if err != nil {
				t.Fatal(err)
			}
			pid := c.cmd.Process.Pid
			pending := make(chan error, 1)
			if tt.busy {
				go func() {
					_, err := c.Call(ctx, request(`"slow"`, mcp.MethodToolsCall, `{"name":"sleep","arguments":{"ms":60000}}`), nil)
					pending <- err
				}()
				time.Sleep(50 * time.Millisecond)
			} else {
				pending <- ErrClosed
			}

			start := time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			// CloseTimeout + TermTimeout bound each wait; the rest is slack
			// for a loaded machine.
			if took < tt.min || took > 3*time.Second {
				t.Errorf("Close took %v, want between %v and 3s", took, tt.min)
			}
			if err := <-pending; !errors.Is(err, ErrClosed) {
				t.Errorf("pending call: err = %v, want ErrClosed", err)
			}
			if processAlive(pid) {
				t.Errorf("server %d still running after Close", pid)
			}
			exit := "exit status 0"
			if c.waitErr != nil {
				exit = c.waitErr.Error()
			}
			if exit != tt.exit {
				t.Errorf("server ended with %q, want %q", exit, tt.exit)
			}
			// The child is reaped by the server (or by init once the server
			// is gone), which may take a moment.
			deadline := time.Now().Add(2 * time.Second)
			for processAlive(child) && !isZombie(child) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if processAlive(child) && !isZombie(child) {
				t.Errorf("child %d of the server still running after Close", child)
			}
			select {
			case <-c.Done():
			default:
				t.Error("Done not closed after Close")
			}
			if !errors.Is(c.Err(), ErrClosed) {
				t.Errorf("Err = %v, want ErrClosed", c.Err())
			}
			if _, err := c.Call(ctx, request(`1`, mcp.MethodToolsList, `{}`), nil); !errors.Is(err, ErrClosed) {
				t.Errorf("call after Close: err = %v, want ErrClosed", err)
			}
		})
	}
}

// isZombie reports whether pid has exited but not been reaped yet.
func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestStdioStderr(t *testing.T) {
	var (
		mu    sync.Mutex
		lines []string
	)
	cfg := helperConfig(t, modeServer, helperStderrEnv+"=3")
	cfg.Stderr = func(line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	}
	c := dialStdio(t, cfg, Options{})
	initialize(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"stderr line 1", "stderr line 2", "stderr line 3"}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("stderr lines (-want +got):\n%s", diff)
	}
}

func TestStdioBadLinesSkipped(t *testing.T) {
	big := `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + strings.Repeat("x", 5000) + `"}}`
	raw := "not json at all\n" +
		big + "\n" +
		"\n" +
		`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hello"}}` + "\r\n"
	in := newInbox()
	c := dialStdio(t, helperConfig(t, modeServer, helperRawEnv+"="+raw), Options{
		Inbound: in.deliver,
		Limits:  mcp.Limits{MaxBytes: 4096},
	})
	m := in.wait(t, mcp.NotifMessage, 5*time.Second)
	if diff := cmp.Diff(`{"level":"info","data":"hello"}`, string(m.Params)); diff != "" {
		t.Errorf("inbound notification (-want +got):\n%s", diff)
	}
	initialize(t, c)
	if got := toolText(t, c, `1`, "echo", `{"text":"still fine"}`); got != "still fine" {
		t.Errorf("echo after bad lines = %q", got)
	}
	select {
	case extra := <-in.ch:
		t.Errorf("unexpected inbound message %s", extra.Encode())
	default:
	}
}

func TestStdioDialErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  StdioConfig
	}{
		{name: "no command", cfg: StdioConfig{}},
		{name: "missing program", cfg: StdioConfig{Command: []string{"/nonexistent/sluice-test-program"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := DialStdio(context.Background(), tt.cfg, Options{}); err == nil {
				c.Close()
				t.Fatal("DialStdio succeeded, want an error")
			}
		})
	}
}

func TestStdioCallContextCanceled(t *testing.T) {
	c := dialStdio(t, helperConfig(t, modeServer), Options{})
	initialize(t, c)
	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Call(ctx, request(`1`, mcp.MethodToolsCall, `{"name":"sleep","arguments":{"ms":5000}}`), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("call returned after %v", took)
	}
	// The connection stays usable.
	if got := toolText(t, c, `2`, "echo", `{"text":"again"}`); got != "again" {
		t.Errorf("echo = %q", got)
	}
}

// TestStdioCallAfterCancelSendsNothing: a call whose caller has already
// given up must not reach the server. Before, the write's select chose at
// random between the free write turn and the ended context, so half such
// requests were written anyway and the server answered each one moments
// after the cancellation that followed it: the signature of the stall seen
// in the benchmark's stress loop, where a call held up elsewhere seemed to
// have been sent and left unanswered by the server.
func TestStdioCallAfterCancelSendsNothing(t *testing.T) {
	in := newInbox()
	c := dialStdio(t, helperConfig(t, modeServer), Options{Inbound: in.deliver})
	initialize(t, c)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	const n = 64
	for i := range n {
		_, err := c.Call(gone, request(strconv.Itoa(100+i), mcp.MethodToolsCall, `{"name":"echo","arguments":{"text":"late"}}`), nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("call %d with an ended context: %v, want context.Canceled", i, err)
		}
	}
	// A live call after them: the server answers in order of arrival, so
	// an answer to any request written before it would have arrived too.
	if got := toolText(t, c, `1`, "echo", `{"text":"live"}`); got != "live" {
		t.Fatalf("live call = %q", got)
	}
	time.Sleep(100 * time.Millisecond)
	var stray []string
	for len(in.ch) > 0 {
		m := <-in.ch
		stray = append(stray, string(m.ID))
	}
	if len(stray) > 0 {
		t.Errorf("the server answered %d of %d requests sent after their callers gave up (ids %v)", len(stray), n, stray)
	}
}

// TestStdioSlowWriteLogged: a write that blocks because the server is not
// reading its input (the pipe is full) is logged at debug level with how
// long it took, which tells a stalled call's time in the pipe apart from its
// time in the server.
func TestStdioSlowWriteLogged(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := dialStdio(t, StdioConfig{
		Command: []string{"/bin/sh", "-c", "sleep 0.5; exec cat >/dev/null"},
		Env:     []string{"PATH=/usr/bin:/bin"},
	}, Options{Logger: log})
	big := jsontext.Value(`{"text":"` + strings.Repeat("x", 256<<10) + `"}`)
	if err := c.Send(testCtx(t), mcp.NewNotification("notifications/test", big)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "slow write to the server's stdin") {
		t.Fatalf("no slow write logged:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestStdioNudgesQuietServer: a server that sits on its answer until more
// input arrives is pinged while a call waits, and the call completes.
func TestStdioNudgesQuietServer(t *testing.T) {
	defer func(d time.Duration) { nudgeAfter = d }(nudgeAfter)
	call := func(c *stdioConn, timeout time.Duration) (*mcp.Message, error) {
		ctx, cancel := context.WithTimeout(testCtx(t), timeout)
		defer cancel()
		return c.Call(ctx, mcp.NewRequest([]byte("7"), mcp.MethodToolsCall, []byte(`{"name":"x"}`)), nil)
	}

	t.Run("without the nudge the call waits", func(t *testing.T) {
		nudgeAfter = time.Hour
		c := dialStdio(t, helperConfig(t, modeHolder), Options{})
		if _, err := call(c, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("call to a server holding its answer: %v, want a timeout", err)
		}
	})
	t.Run("nudged", func(t *testing.T) {
		nudgeAfter = 50 * time.Millisecond
		c := dialStdio(t, helperConfig(t, modeHolder), Options{})
		start := time.Now()
		resp, err := call(c, 10*time.Second)
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		if string(resp.ID) != "7" || resp.Result == nil {
			t.Fatalf("answer %s, want the result of call 7", resp.Encode())
		}
		if c.pings.Load() == 0 {
			t.Fatal("the call completed without a ping")
		}
		// Another call on the same connection is nudged again.
		if _, err := call(c, 10*time.Second); err != nil {
			t.Fatalf("second call: %v (after %v)", err, time.Since(start))
		}
	})
}
