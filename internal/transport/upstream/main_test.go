package upstream

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/internal/mcp"
)

// The test binary doubles as the stdio server the tests launch: with
// helperEnv set it runs helperServer instead of the tests.
const (
	helperEnv       = "SLUICE_UPSTREAM_HELPER"
	helperStderrEnv = "SLUICE_UPSTREAM_HELPER_STDERR" // lines to write to stderr first
	helperRawEnv    = "SLUICE_UPSTREAM_HELPER_RAW"    // raw stdout lines to write first
)

// Helper modes.
const (
	modeServer   = "server"   // exits when stdin closes
	modeLinger   = "linger"   // keeps running after stdin closes, until SIGTERM
	modeStubborn = "stubborn" // keeps running after stdin closes and ignores SIGTERM
	modeSleeper  = "sleeper"  // not a server: sleeps, as a child of one
	modeHolder   = "holder"   // holds each answer until the next line arrives
)

var tmpDir string

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		helperMain(mode)
		return
	}
	var err error
	tmpDir, err = os.MkdirTemp("", "sluice-upstream-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	stopEverythingServers()
	os.RemoveAll(tmpDir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type echoIn struct {
	Text string `json:"text"`
}

type sleepIn struct {
	MS int `json:"ms"`
}

func helperMain(mode string) {
	if mode == modeSleeper {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if mode == modeStubborn {
		signal.Ignore(syscall.SIGTERM)
	}
	if mode == modeHolder {
		holderMain()
		return
	}
	if n, _ := strconv.Atoi(os.Getenv(helperStderrEnv)); n > 0 {
		for i := 1; i <= n; i++ {
			fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
		}
	}
	if raw := os.Getenv(helperRawEnv); raw != "" {
		os.Stdout.WriteString(raw)
	}
	server := sdk.NewServer(&sdk.Implementation{Name: "sluice-test-helper", Version: "1"}, nil)
	sdk.AddTool(server, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
	})
	sdk.AddTool(server, &sdk.Tool{Name: "sleep"}, func(ctx context.Context, _ *sdk.CallToolRequest, in sleepIn) (*sdk.CallToolResult, any, error) {
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
		case <-ctx.Done():
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "slept"}}}, nil, nil
	})
	sdk.AddTool(server, &sdk.Tool{Name: "exit"}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
		os.Exit(3)
		return nil, nil, nil
	})
	sdk.AddTool(server, &sdk.Tool{Name: "spawn"}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
		self, _ := os.Executable()
		cmd := exec.Command(self)
		cmd.Env = []string{helperEnv + "=" + modeSleeper}
		if err := cmd.Start(); err != nil {
			return nil, nil, err
		}
		go cmd.Wait()
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: strconv.Itoa(cmd.Process.Pid)}}}, nil, nil
	})
	err := server.Run(context.Background(), &sdk.IOTransport{Reader: strictLines(os.Stdin), Writer: os.Stdout})
	if mode == modeLinger || mode == modeStubborn {
		select {}
	}
	if err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// holderMain is a server that keeps the answer to each request until the
// next line reaches it, as go-sdk stdio servers were seen to do now and
// then: it answers every request with an empty result, pings at once, and
// anything else only when more input arrives.
func holderMain() {
	sc := bufio.NewScanner(os.Stdin)
	var held []byte
	for sc.Scan() {
		if held != nil {
			os.Stdout.Write(held)
			held = nil
		}
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(sc.Bytes(), &m) != nil || m.ID == nil || m.Method == "" {
			continue
		}
		answer := []byte(`{"jsonrpc":"2.0","id":` + string(m.ID) + `,"result":{}}` + "\n")
		if m.Method == mcp.MethodPing {
			os.Stdout.Write(answer)
			continue
		}
		held = answer
	}
	os.Exit(0)
}

// strictLines passes on stdin line by line and exits the process with
// status 4 when a line is not one complete JSON value: the stdio transport
// frames messages by newlines, which the go-sdk does not check itself.
func strictLines(r io.Reader) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				fmt.Fprintf(os.Stderr, "invalid line on stdin: %q\n", sc.Bytes())
				os.Exit(4)
			}
			if _, err := pw.Write(append(sc.Bytes(), '\n')); err != nil {
				return
			}
		}
		pw.CloseWithError(sc.Err())
	}()
	return pr
}

// helperConfig launches the test binary as a helper server.
func helperConfig(t *testing.T, mode string, env ...string) StdioConfig {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return StdioConfig{
		Command: []string{self},
		// A binary built with -race sleeps a second at exit by default.
		Env:          append([]string{helperEnv + "=" + mode, "GORACE=atexit_sleep_ms=0"}, env...),
		CloseTimeout: 300 * time.Millisecond,
		TermTimeout:  300 * time.Millisecond,
	}
}

// The conformance everything-server of the go-sdk, built once.
var (
	everythingOnce sync.Once
	everythingPath string
	everythingErr  error

	serversMu sync.Mutex
	servers   = map[bool]*exec.Cmd{} // keyed by stateless
	urls      = map[bool]string{}
)

func everythingServer(t *testing.T) string {
	t.Helper()
	everythingOnce.Do(func() {
		everythingPath = filepath.Join(tmpDir, "everything")
		cmd := exec.Command("go", "build", "-o", everythingPath, "github.com/modelcontextprotocol/go-sdk/conformance/everything-server")
		if out, err := cmd.CombinedOutput(); err != nil {
			everythingErr = fmt.Errorf("building everything-server: %v\n%s", err, out)
		}
	})
	if everythingErr != nil {
		t.Fatal(everythingErr)
	}
	return everythingPath
}

// everythingHTTP returns the URL of an everything-server serving Streamable
// HTTP on 127.0.0.1, stateful or stateless, started once for the package.
func everythingHTTP(t *testing.T, stateless bool) string {
	t.Helper()
	bin := everythingServer(t)
	serversMu.Lock()
	defer serversMu.Unlock()
	if u, ok := urls[stateless]; ok {
		return u
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "-http", addr, "-stateless="+strconv.FormatBool(stateless))
	cmd.Env = []string{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	servers[stateless] = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("everything-server did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	u := "http://" + addr + "/"
	urls[stateless] = u
	return u
}

func stopEverythingServers() {
	serversMu.Lock()
	defer serversMu.Unlock()
	for _, cmd := range servers {
		cmd.Process.Kill()
		cmd.Wait()
	}
}

// Protocol helpers.

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func request(id, method, params string) *mcp.Message {
	var p jsontext.Value
	if params != "" {
		p = jsontext.Value(params)
	}
	return mcp.NewRequest(jsontext.Value(id), method, p)
}

const initParams = `{"protocolVersion":"2025-11-25","capabilities":{"elicitation":{}},"clientInfo":{"name":"sluice-test","version":"0"}}`

// modernMeta is the per-request metadata of a 2026-07-28 request.
const modernMeta = `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"sluice-test","version":"0"}}`

// initialize runs the legacy handshake on c.
func initialize(t *testing.T, c Conn) *mcp.Message {
	t.Helper()
	ctx := testCtx(t)
	resp, err := c.Call(ctx, request(`"init"`, mcp.MethodInitialize, initParams), nil)
	if err != nil {
		t.Fatalf("initialize: %v", err)
	}
	if resp.Error != nil {
		t.Fatalf("initialize: %v", resp.Error)
	}
	if hc, ok := c.(*HTTPConn); ok {
		var r struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		mustUnmarshal(t, resp.Result, &r)
		hc.SetProtocolVersion(r.ProtocolVersion)
	}
	if err := c.Send(ctx, mcp.NewNotification(mcp.NotifInitialized, nil)); err != nil {
		t.Fatalf("notifications/initialized: %v", err)
	}
	return resp
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
}

// toolText calls a tool and returns the text of its result.
func toolText(t *testing.T, c Conn, id, name, args string) string {
	t.Helper()
	resp, err := c.Call(testCtx(t), request(id, mcp.MethodToolsCall, `{"name":"`+name+`","arguments":`+args+`}`), nil)
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return resultText(t, resp)
}

func resultText(t *testing.T, resp *mcp.Message) string {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("error response: %v", resp.Error)
	}
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	mustUnmarshal(t, resp.Result, &r)
	if len(r.Content) == 0 {
		t.Fatalf("result without content: %s", resp.Result)
	}
	return r.Content[0].Text
}

func toolNames(t *testing.T, resp *mcp.Message) []string {
	t.Helper()
	if resp.Error != nil {
		t.Fatalf("tools/list: %v", resp.Error)
	}
	var r struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	mustUnmarshal(t, resp.Result, &r)
	var names []string
	for _, tl := range r.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// inbox collects inbound messages.
type inbox struct {
	ch chan *mcp.Message
}

func newInbox() *inbox { return &inbox{ch: make(chan *mcp.Message, 256)} }

func (b *inbox) deliver(m *mcp.Message) {
	select {
	case b.ch <- m:
	default:
	}
}

// wait returns the first message with the given method.
func (b *inbox) wait(t *testing.T, method string, d time.Duration) *mcp.Message {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case m := <-b.ch:
			if m.Method == method {
				return m
			}
		case <-timer.C:
			t.Fatalf("no %s within %v", method, d)
			return nil
		}
	}
}
