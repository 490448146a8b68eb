// Command misbehave is an MCP server that fails on purpose, for the
// gateway's robustness tests. Its tools:
//
//   - echo returns its "text" argument.
//   - slow sleeps for "ms" milliseconds, or until the call is cancelled.
//   - hang never answers; it returns only when the call is cancelled.
//   - crash exits the process with status 3 in the middle of the call.
//   - noise writes lines that are not valid messages to standard output
//     (when serving stdio), then returns its "text" argument.
//   - big returns a text of "bytes" bytes.
//   - ask waits "ms" milliseconds, then asks its client a question
//     (elicitation/create) and returns "asked: ACTION" or "ask failed: ERR".
//
// With -events FILE it appends one line per notable event ("hang-start",
// "hang-cancelled", "crash", ...) to FILE, so that a test can see what the
// server observed. It serves stdio, or Streamable HTTP on a loopback port
// of its own choosing with -http (it prints "listening http://ADDR" on
// standard output once it accepts connections).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

var (
	eventsPath = flag.String("events", "", "append a line per event to this file")
	httpMode   = flag.Bool("http", false, "serve Streamable HTTP on 127.0.0.1 instead of stdio")
	stateless  = flag.Bool("stateless", false, "with -http, serve without sessions")
)

var (
	eventsMu sync.Mutex
	// stdoutMu keeps noise from interleaving with itself; the SDK writes
	// whole lines, and nothing else is in flight when a test calls noise.
	stdoutMu sync.Mutex
)

// record appends one event line; errors are fatal, since a test that relies
// on the file would otherwise wait for nothing.
func record(format string, args ...any) {
	if *eventsPath == "" {
		return
	}
	eventsMu.Lock()
	defer eventsMu.Unlock()
	f, err := os.OpenFile(*eventsPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		log.Fatalf("events: %v", err)
	}
	if _, err := fmt.Fprintf(f, format+"\n", args...); err != nil {
		log.Fatalf("events: %v", err)
	}
	if err := f.Close(); err != nil {
		log.Fatalf("events: %v", err)
	}
}

type echoArgs struct {
	Text string `json:"text"`
}

type slowArgs struct {
	MS int `json:"ms"`
}

type bigArgs struct {
	Bytes int `json:"bytes"`
}

// noiseLines are what noise writes: not JSON, truncated JSON, a batch, a
// response to a request nobody sent, and a line far over any sane limit.
var noiseLines = []string{
	"this is not json",
	`{"jsonrpc":"2.0","id":`,
	`[{"jsonrpc":"2.0","method":"notifications/message"}]`,
	`{"jsonrpc":"2.0","id":987654321,"result":{}}`,
	`{"jsonrpc":"1.0","method":"notifications/message","params":{}}`,
	`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"` + strings.Repeat("x", 1<<20) + `"}}`,
	"",
}

type tagArgs struct {
	Tag string `json:"tag,omitempty"`
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

func newServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "misbehave", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Returns its text argument."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			return text(in.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Sleeps for ms milliseconds."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in slowArgs) (*mcp.CallToolResult, any, error) {
			t := time.NewTimer(time.Duration(in.MS) * time.Millisecond)
			defer t.Stop()
			select {
			case <-t.C:
				return text(fmt.Sprintf("slept %d ms", in.MS)), nil, nil
			case <-ctx.Done():
				record("slow-cancelled")
				return nil, nil, ctx.Err()
			}
		})
	mcp.AddTool(s, &mcp.Tool{Name: "hang", Description: "Never answers until cancelled."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in tagArgs) (*mcp.CallToolResult, any, error) {
			record("hang-start %s", in.Tag)
			<-ctx.Done()
			record("hang-cancelled %s", in.Tag)
			return nil, nil, ctx.Err()
		})
	mcp.AddTool(s, &mcp.Tool{Name: "noise", Description: "Writes garbage to stdout, then echoes."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, any, error) {
			if !*httpMode {
				stdoutMu.Lock()
				for _, l := range noiseLines {
					fmt.Fprintln(os.Stdout, l)
				}
				stdoutMu.Unlock()
			}
			return text(in.Text), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "big", Description: "Returns a text of the given size."},
		func(_ context.Context, _ *mcp.CallToolRequest, in bigArgs) (*mcp.CallToolResult, any, error) {
			return text(strings.Repeat("b", in.Bytes)), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "ask", Description: "Waits, then asks the client a question."},
		func(ctx context.Context, req *mcp.CallToolRequest, in slowArgs) (*mcp.CallToolResult, any, error) {
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{
				Message:         "Who are you?",
				RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
			})
			if err != nil {
				return text("ask failed: " + err.Error()), nil, nil
			}
			return text("asked: " + res.Action), nil, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "crash", Description: "Exits the server mid-call."},
		func(_ context.Context, _ *mcp.CallToolRequest, _ tagArgs) (*mcp.CallToolResult, any, error) {
			record("crash")
			os.Exit(3)
			return nil, nil, nil
		})
	return s
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("misbehave: ")
	flag.Parse()
	record("start %d", os.Getpid())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	server := newServer()
	if !*httpMode {
		if err := server.Run(ctx, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
			log.Fatal(err)
		}
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server },
		// A modern request's handler ends when its POST does: closing the
		// response stream is how a modern client cancels.
		&mcp.StreamableHTTPOptions{Stateless: *stateless, PropagateRequestCancellation: true})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("listening http://%s\n", ln.Addr())
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
