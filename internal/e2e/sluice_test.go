package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/testenv"
)

// Protocol versions of the two eras a client can negotiate.
const (
	legacyVersion = "2025-11-25"
	modernVersion = "2026-07-28"
)

// Bounds on the phases of a test. A subtest gets subtestTimeout for all of
// its calls; starting Sluice and its three upstreams gets startTimeout.
const (
	startTimeout   = 60 * time.Second
	subtestTimeout = 30 * time.Second
	stopTimeout    = 15 * time.Second
)

// Names under which the configuration exposes the three reference servers;
// they are the namespaces of their tools.
const (
	everythingServer = "everything"
	filesystemServer = "filesystem"
	memoryServer     = "memory"
)

// upstreams is what the reference servers work on: the directory the
// filesystem server is rooted at, and the memory server's storage file.
type upstreams struct {
	root    string // the filesystem server's only allowed directory
	memFile string // MEMORY_FILE_PATH of the memory server
	seed    string // a file in root that the test wrote before starting
	seedTxt string // its content
	config  string // the sluice configuration file
}

// newUpstreams writes a Sluice configuration that launches the three
// reference servers over stdio, with a temporary directory and memory file.
// listen is the address to serve on ("" when the configuration is used by
// sluice stdio).
func newUpstreams(t *testing.T, listen string) *upstreams {
	t.Helper()
	u := &upstreams{root: t.TempDir(), seedTxt: "seeded by the e2e test\nsecond line\n"}
	// The filesystem server resolves its roots; resolve them here too so that
	// paths compare equal.
	root, err := filepath.EvalSymlinks(u.root)
	if err != nil {
		t.Fatal(err)
	}
	u.root = root
	u.seed = filepath.Join(u.root, "seed.txt")
	if err := os.WriteFile(u.seed, []byte(u.seedTxt), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(u.root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	u.memFile = filepath.Join(t.TempDir(), "memory.jsonl")

	everything := testenv.ServerCommand(t, testenv.EverythingPackage)
	filesystem := testenv.ServerCommand(t, testenv.FilesystemPackage)
	memory := testenv.ServerCommand(t, testenv.MemoryPackage)

	var b strings.Builder
	if listen != "" {
		fmt.Fprintf(&b, "listen: %q\n", listen)
	}
	b.WriteString("log:\n  level: debug\n")
	b.WriteString("servers:\n")
	fmt.Fprintf(&b, "  %s:\n    command: %s\n", everythingServer, flowList(slices.Concat(everything, []string{"stdio"})))
	fmt.Fprintf(&b, "  %s:\n    command: %s\n", filesystemServer, flowList(slices.Concat(filesystem, []string{u.root})))
	fmt.Fprintf(&b, "  %s:\n    command: %s\n    env:\n      MEMORY_FILE_PATH: %q\n", memoryServer, flowList(memory), u.memFile)
	u.config = filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(u.config, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return u
}

// flowList renders argv as a YAML flow sequence of double-quoted strings
// (Go's quoting of these plain paths is valid YAML).
func flowList(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// lockedBuffer collects bytes written by one goroutine (a process's stderr,
// the wire) while another reads them.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Len returns how many bytes were written so far.
func (b *lockedBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

// Since returns what was written after the first n bytes.
func (b *lockedBuffer) Since(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf.Bytes()[n:])
}

// wire records the bytes of every HTTP request and response body between a
// client and Sluice, so that a test can tell how a feature crossed the wire
// (a server request on an SSE stream, or an input_required result).
type wire struct {
	sent, received lockedBuffer

	once sync.Once
	tr   http.RoundTripper
}

// transport returns the transport under the recording: the default one,
// never through a proxy.
func (w *wire) transport() http.RoundTripper {
	w.once.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		w.tr = tr
	})
	return w.tr
}

// wireMark is a position in a [wire]'s records.
type wireMark struct{ sent, received int }

func (w *wire) mark() wireMark { return wireMark{w.sent.Len(), w.received.Len()} }

// since returns what was sent and received after m.
func (w *wire) since(m wireMark) (sent, received string) {
	return w.sent.Since(m.sent), w.received.Since(m.received)
}

// RoundTrip implements [http.RoundTripper].
func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		w.sent.Write(body)
		w.sent.Write([]byte("\n"))
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := w.transport().RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &teeBody{ReadCloser: resp.Body, w: &w.received}
	return resp, nil
}

// teeBody copies what is read from a response body, as it is read: SSE
// streams stay open while the client consumes them.
type teeBody struct {
	io.ReadCloser
	w io.Writer
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.w.Write(p[:n])
	return n, err
}

// watchStderr checks a Sluice process's stderr at the end of the test: the
// race detector of a binary built with -race must have found nothing, and on
// failure the whole of it is printed.
func watchStderr(t *testing.T, what string, stderr *lockedBuffer) {
	t.Cleanup(func() {
		if strings.Contains(stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("the race detector found a data race in %s", what)
		}
		if t.Failed() {
			t.Logf("stderr of %s:\n%s", what, stderr.String())
		}
	})
}

// startServe runs sluice serve with the configuration of u and returns the
// URL of its MCP endpoint once it listens. The process is stopped with
// SIGTERM at the end of the test, and the test fails when Sluice, or a
// server it launched, outlives that.
func startServe(t *testing.T) (*upstreams, string) {
	t.Helper()
	bin := testenv.Sluice(t)
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	u := newUpstreams(t, addr)

	stderr := &lockedBuffer{}
	cmd := exec.Command(bin, "serve", "--config", u.config)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sluice: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Cleanups run last-registered first: stop Sluice, then check its
	// stderr, shutdown included.
	watchStderr(t, "sluice serve", stderr)
	t.Cleanup(func() { stop(t, cmd.Process, exited) })

	if err := testenv.AwaitPort(port, startTimeout); err != nil {
		select {
		case err := <-exited:
			t.Fatalf("sluice serve exited before listening: %v", err)
		default:
		}
		t.Fatal(err)
	}
	return u, "http://" + addr + "/mcp"
}

// stop sends SIGTERM to a sluice serve process, waits for it to exit
// cleanly, and checks that the servers it launched are gone with it.
func stop(t *testing.T, p *os.Process, exited <-chan error) {
	launched := descendants(p.Pid)
	_ = p.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("sluice exited with %v after SIGTERM, want a clean exit", err)
		}
	case <-time.After(stopTimeout):
		t.Errorf("sluice did not exit within %v of SIGTERM", stopTimeout)
		_ = p.Kill()
		<-exited
	}
	checkGone(t, launched)
}

// proc identifies a process: a pid, and its start time so that a reused pid
// is not taken for it.
type proc struct {
	pid   int
	start string
	args  string
}

// descendants returns the processes below pid, read from /proc: the servers
// a Sluice process launched. Sluice starts each in a process group of its
// own, so they are found by parentage, not by group.
func descendants(pid int) []proc {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]proc{}
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		ppid, _, start, ok := procStat(p)
		if !ok {
			continue
		}
		args, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		children[ppid] = append(children[ppid], proc{pid: p, start: start, args: strings.TrimSpace(strings.ReplaceAll(string(args), "\x00", " "))})
	}
	var out []proc
	var walk func(int)
	walk = func(pid int) {
		for _, c := range children[pid] {
			out = append(out, c)
			walk(c.pid)
		}
	}
	walk(pid)
	return out
}

// procStat reads the parent pid, state and start time of pid from
// /proc/pid/stat.
func procStat(pid int) (ppid int, state, start string, ok bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, "", "", false
	}
	// The command name, in parentheses, may hold spaces; the fields after it
	// start with the state (field 3): ppid is field 4, starttime field 22.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, "", "", false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return 0, "", "", false
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, "", "", false
	}
	return ppid, f[0], f[19], true
}

// alive reports whether p still runs (a zombie counts as gone).
func (p proc) alive() bool {
	_, state, start, ok := procStat(p.pid)
	return ok && start == p.start && state != "Z"
}

// checkGone checks, once Sluice has exited, that the processes it had
// launched have exited too. What is left is killed.
func checkGone(t *testing.T, launched []proc) {
	if len(launched) == 0 {
		t.Errorf("found no servers launched by sluice to check (no /proc?)")
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []proc
		for _, p := range launched {
			if p.alive() {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range left {
				t.Errorf("server launched by sluice still runs after it exited: pid %d: %s", p.pid, p.args)
				_ = syscall.Kill(p.pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// events records what the servers sent the client: notifications and
// server-to-client requests. The handlers of one client feed one events.
type events struct {
	progress    chan *mcp.ProgressNotificationParams
	updated     chan string // URIs of notifications/resources/updated
	elicit      chan *mcp.ElicitParams
	sample      chan *mcp.CreateMessageParams
	elicitReply map[string]any // content of an accepted elicitation
}

func newEvents() *events {
	return &events{
		progress: make(chan *mcp.ProgressNotificationParams, 256),
		updated:  make(chan string, 256),
		elicit:   make(chan *mcp.ElicitParams, 16),
		sample:   make(chan *mcp.CreateMessageParams, 16),
		elicitReply: map[string]any{
			"name":    "Ada Lovelace",
			"check":   true,
			"email":   "ada@example.com",
			"integer": 7,
		},
	}
}

// samplingModel and samplingText are what the client's sampling handler
// answers.
const (
	samplingModel = "e2e-model"
	samplingText  = "a sampled answer from the client"
)

// newClient returns a client whose handlers record into ev. It declares
// elicitation and sampling (the everything server registers its tools for
// them only when the client has them) and no roots, so that the filesystem
// server keeps the directory it was started with.
func newClient(ev *events) *mcp.Client {
	return mcp.NewClient(&mcp.Implementation{Name: "sluice-e2e", Version: "1.0.0"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{},
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			select {
			case ev.progress <- req.Params:
			default:
			}
		},
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			select {
			case ev.updated <- req.Params.URI:
			default:
			}
		},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			select {
			case ev.elicit <- req.Params:
			default:
			}
			return &mcp.ElicitResult{Action: "accept", Content: ev.elicitReply}, nil
		},
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			select {
			case ev.sample <- req.Params:
			default:
			}
			return &mcp.CreateMessageResult{
				Role:    "assistant",
				Model:   samplingModel,
				Content: &mcp.TextContent{Text: samplingText},
			}, nil
		},
	})
}

// connectHTTP connects a client of the given protocol version to Sluice's
// HTTP endpoint and checks that the era asked for was negotiated.
func connectHTTP(t *testing.T, url, version string, ev *events, w *wire) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tr := &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1, HTTPClient: &http.Client{Transport: w}}
	cs, err := newClient(ev).Connect(ctx, tr, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect (%s): %v", version, err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if got := cs.InitializeResult().ProtocolVersion; got != version {
		t.Fatalf("negotiated protocol version %q, want %q", got, version)
	}
	return cs
}

// text joins the text blocks of a tool result.
func text(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// call calls a tool and fails the test when the call fails or the tool
// reports an error.
func call(ctx context.Context, t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	if args == nil {
		args = map[string]any{} // a nil map would be sent as null
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("call %s: tool error: %s", name, text(res))
	}
	return res
}

// subtestContext bounds one subtest.
func subtestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), subtestTimeout)
	t.Cleanup(cancel)
	return ctx
}
