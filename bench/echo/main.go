// Command echo is the upstream MCP server of Sluice's benchmarks.
//
// It exposes one tool, echo, with input {"text": string, "size": integer,
// "records": boolean}. When size is positive the result is one text content
// of exactly size bytes of deterministic filler text, or, with records, of
// order records holding personal data (the DLP benchmark's input,
// dlptest.Records); otherwise it echoes text. It does as little
// as possible per call (no schema reflection, no logging) so that a benchmark
// measures the gateway in front of it rather than the server.
//
// Usage:
//
//	echo                         serve over stdio
//	echo -http 127.0.0.1:8931    serve streamable HTTP at http://127.0.0.1:8931/mcp
//
// With -http, the address actually bound (useful with port 0) is printed to
// standard error as "listening on http://ADDR/mcp". -stateless serves without
// sessions (both protocol eras); the default keeps legacy sessions, which
// also answers modern-era clients with an unsupported-version error so that
// they fall back to initialize. -json=false answers with SSE streams instead
// of plain JSON bodies.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/dlp/dlptest"
)

// maxSize bounds the size argument, so that one call cannot make the server
// allocate without limit.
const maxSize = 64 << 20

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("http", "", "serve streamable HTTP at `ADDR` (path /mcp) instead of stdio")
	stateless := fs.Bool("stateless", false, "serve HTTP without sessions")
	jsonResponse := fs.Bool("json", true, "answer HTTP requests with application/json instead of SSE")
	trace := fs.Bool("trace", false, "over stdio, write a line to standard error for every read of standard input and every write to standard output (time, size, first bytes), to see where a stalled call waited")
	stall := fs.Duration("trace-stall", 0, "over stdio, when a request read has had no answer for this long, write every goroutine's stack to standard error (once per request); without -trace, nothing else is written")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	server := newServer()
	if *addr == "" {
		if *trace || *stall > 0 {
			w := &watch{log: stderr, after: *stall, pending: map[string]time.Time{}}
			stdin = &tracer{r: stdin, log: stderr, what: "read", watch: w, print: *trace}
			stdout = &tracer{w: stdout, log: stderr, what: "write", watch: w, print: *trace}
			if *stall > 0 {
				go w.run(ctx)
			}
		}
		err := server.Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}})
		if errors.Is(err, io.EOF) || errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		&mcp.StreamableHTTPOptions{Stateless: *stateless, JSONResponse: *jsonResponse}))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "listening on http://%s/mcp\n", ln.Addr())

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Open GET streams of stateful sessions never end by themselves, so a
	// graceful shutdown gets a short grace period and then everything closes.
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
	}
	return nil
}

// tracer reports each read or write it passes on: the time, the size and
// the first bytes (which hold the message's id).
type tracer struct {
	r     io.Reader
	w     io.Writer
	log   io.Writer
	what  string
	watch *watch
	print bool // report each read and write; else only watch
	mu    sync.Mutex
}

func (t *tracer) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.report(p[:n], err)
	return n, err
}

func (t *tracer) Write(p []byte) (int, error) {
	t.report(p, nil) // before: a write that blocks shows as a write without a reply
	return t.w.Write(p)
}

func (t *tracer) report(p []byte, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.print {
		fmt.Fprintf(t.log, "trace %s %s %d bytes %q err=%v\n", time.Now().UTC().Format("15:04:05.000000"), t.what, len(p), p[:min(len(p), 48)], err)
	}
	if t.watch != nil {
		t.watch.saw(t.what, p)
	}
}

// watch notes the ids of the requests read and of the answers written, and
// dumps every goroutine's stack when a request has waited too long.
type watch struct {
	log     io.Writer
	after   time.Duration
	mu      sync.Mutex
	pending map[string]time.Time // request id -> when it was read
	dumped  map[string]bool
}

// idOf returns the id of a message that starts in p with its id (as
// Sluice and the go-sdk write them): `{"jsonrpc":"2.0","id":ID,...`.
func idOf(p []byte) (string, bool) {
	const prefix = `{"jsonrpc":"2.0","id":`
	s, ok := strings.CutPrefix(string(p[:min(len(p), 96)]), prefix)
	if !ok {
		return "", false
	}
	if i := strings.IndexByte(s, ','); i > 0 {
		return s[:i], true
	}
	return "", false
}

func (w *watch) saw(what string, p []byte) {
	id, ok := idOf(p)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case what == "read" && strings.Contains(string(p[:min(len(p), 96)]), `"method"`):
		w.pending[id] = time.Now()
	case what == "write":
		delete(w.pending, id)
	}
}

func (w *watch) run(ctx context.Context) {
	tick := time.NewTicker(w.after / 4)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			w.mu.Lock()
			var late []string
			for id, at := range w.pending {
				if now.Sub(at) >= w.after && !w.dumped[id] {
					late = append(late, id)
					if w.dumped == nil {
						w.dumped = map[string]bool{}
					}
					w.dumped[id] = true
				}
			}
			w.mu.Unlock()
			if len(late) > 0 {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				fmt.Fprintf(w.log, "trace stall: requests %v unanswered for %v; goroutines:\n%s\n", late, w.after, buf)
			}
		}
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func newServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "sluice-bench-echo", Version: "1.0.0"},
		&mcp.ServerOptions{Capabilities: &mcp.ServerCapabilities{}})
	s.AddTool(&mcp.Tool{
		Name:        "echo",
		Description: "Echo text back, or return size bytes of filler text when size is positive.",
		InputSchema: json.RawMessage(`{"type":"object","properties":{` +
			`"text":{"type":"string","description":"text to echo when size is 0"},` +
			`"size":{"type":"integer","minimum":0,"description":"bytes of filler text to return"},` +
			`"records":{"type":"boolean","description":"return order records, with e-mail addresses and phone numbers, instead of filler"}}}`),
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)},
	}, echo)
	return s
}

type echoArgs struct {
	Text    string `json:"text"`
	Size    int    `json:"size"`
	Records bool   `json:"records"`
}

func echo(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	var args echoArgs
	if len(req.Params.Arguments) > 0 {
		if err := json.Unmarshal(req.Params.Arguments, &args); err != nil {
			return errorResult(fmt.Sprintf("invalid arguments: %v", err)), nil
		}
	}
	text := args.Text
	switch {
	case args.Size < 0 || args.Size > maxSize:
		return errorResult(fmt.Sprintf("size must be between 0 and %d", maxSize)), nil
	case args.Size > 0 && args.Records:
		text = records(args.Size)
	case args.Size > 0:
		text = filler(args.Size)
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// recordsText is the last records text made, kept for the next call of the
// same size (a benchmark asks for one size again and again).
var recordsText struct {
	sync.Mutex
	text string
}

// records returns n bytes of order records.
func records(n int) string {
	recordsText.Lock()
	defer recordsText.Unlock()
	if len(recordsText.text) != n {
		recordsText.text = dlptest.Records(n)
	}
	return recordsText.text
}

// fillerPattern is plain prose, so that a gateway's scanners see ordinary
// text rather than a run of one byte that a prefilter might skip trivially.
const fillerPattern = "The quick brown fox jumps over the lazy dog while the sluice gate keeps the water in check. "

var (
	fillerMu   sync.RWMutex
	fillerText = strings.Repeat(fillerPattern, (1<<20)/len(fillerPattern)+1)
)

// filler returns the first n bytes of an endless repetition of
// [fillerPattern]. Results share one backing string, so a call costs no copy.
func filler(n int) string {
	fillerMu.RLock()
	s := fillerText
	fillerMu.RUnlock()
	if n <= len(s) {
		return s[:n]
	}
	fillerMu.Lock()
	defer fillerMu.Unlock()
	if n > len(fillerText) {
		fillerText = strings.Repeat(fillerPattern, n/len(fillerPattern)+1)
	}
	return fillerText[:n]
}
