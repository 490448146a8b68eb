package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/mcp"
)

// serveSSE serves s over the HTTP+SSE transport on 127.0.0.1.
func serveSSE(t *testing.T, s *sdkServer) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(sdk.NewSSEHandler(func(*http.Request) *sdk.Server { return s.Server }, nil))
	t.Cleanup(func() {
		s.stop()
		ts.Close()
	})
	return ts
}

func dialSSE(t *testing.T, url string, opts Options) *sseConn {
	t.Helper()
	c, err := DialSSE(testCtx(t), SSEConfig{URL: url, Client: testClient(t)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*sseConn)
}

func TestSSERoundTrip(t *testing.T) {
	s := newSDKServer()
	sdk.AddTool(s.Server, &sdk.Tool{Name: "ask"}, func(ctx context.Context, req *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &sdk.ElicitParams{Message: "Who are you?", RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"username": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, err
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: fmt.Sprint(res.Action, " ", res.Content["username"])}}}, nil, nil
	})
	ts := serveSSE(t, s)
	var c *sseConn
	ctx := testCtx(t)
	answered := make(chan error, 1)
	c = dialSSE(t, ts.URL, Options{Inbound: func(m *mcp.Message) {
		if m.Method == mcp.MethodElicitationCreate {
			// Answer off the reading goroutine, as the gateway would.
			go func() {
				answered <- c.Send(ctx, mcp.NewResult(m.ID, []byte(`{"action":"accept","content":{"username":"sluice"}}`)))
			}()
		}
	}})
	if !strings.HasPrefix(c.endpoint, ts.URL+"/?sessionid=") {
		t.Errorf("endpoint = %q, want one on %s", c.endpoint, ts.URL)
	}
	initialize(t, c)
	list, err := c.Call(ctx, request(`1`, mcp.MethodToolsList, `{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, list); !contains(names, "echo") || !contains(names, "ask") {
		t.Errorf("tools/list = %v", names)
	}

	t.Run("concurrent calls", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("n%d", i)
				resp, err := c.Call(ctx, request(fmt.Sprintf(`"c%d"`, i), mcp.MethodToolsCall, `{"name":"echo","arguments":{"text":"`+want+`"}}`), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if got := resultText(t, resp); got != want {
					t.Errorf("call %d = %q, want %q", i, got, want)
				}
			}()
		}
		wg.Wait()
	})

	t.Run("server-to-client request", func(t *testing.T) {
		if got := toolText(t, c, `"ask"`, "ask", `{}`); got != "accept sluice" {
			t.Errorf("result = %q, want %q", got, "accept sluice")
		}
		if err := <-answered; err != nil {
			t.Errorf("answering the elicitation: %v", err)
		}
	})

	t.Run("close", func(t *testing.T) {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if !errors.Is(c.Err(), ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", c.Err())
		}
		if _, err := c.Call(ctx, request(`2`, mcp.MethodToolsList, `{}`), nil); !errors.Is(err, ErrClosed) {
			t.Errorf("call after Close: err = %v, want ErrClosed", err)
		}
	})
}

func TestSSEStreamEnds(t *testing.T) {
	tests := []struct {
		name string
		busy bool // a call is pending
		end  func(s *sdkServer, ts *httptest.Server)
	}{
		// The go-sdk server keeps the stream until its handlers return, so
		// it ends an idle session here.
		{name: "server ends the session", end: func(s *sdkServer, _ *httptest.Server) {
			for ss := range s.Sessions() {
				ss.Close()
			}
		}},
		{name: "connection drops", busy: true, end: func(_ *sdkServer, ts *httptest.Server) {
			ts.CloseClientConnections()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSDKServer()
			ts := serveSSE(t, s)
			c := dialSSE(t, ts.URL, Options{})
			initialize(t, c)
			ctx := testCtx(t)
			pending := make(chan error, 1)
			if tt.busy {
				go func() {
					_, err := c.Call(ctx, request(`"slow"`, mcp.MethodToolsCall, `{"name":"block","arguments":{}}`), nil)
					pending <- err
				}()
				<-s.started
				// Let the POST's 202 arrive: the call waits on the stream.
				time.Sleep(100 * time.Millisecond)
			} else {
				pending <- ErrConnLost
			}
			tt.end(s, ts)
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("Done not closed after the stream ended")
			}
			if !errors.Is(c.Err(), ErrConnLost) {
				t.Errorf("Err = %v, want ErrConnLost", c.Err())
			}
			if err := <-pending; !errors.Is(err, ErrConnLost) {
				t.Errorf("pending call: err = %v, want ErrConnLost", err)
			}
			if err := c.Send(ctx, mcp.NewNotification(mcp.NotifInitialized, nil)); !errors.Is(err, ErrConnLost) {
				t.Errorf("send after the end: err = %v, want ErrConnLost", err)
			}
		})
	}
}

// scriptedSSE answers the GET with the given event stream and keeps it open
// until the client goes away.
func scriptedSSE(t *testing.T, contentType, stream string) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		io.WriteString(w, stream)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	t.Cleanup(ts.Close)
	return ts
}

func TestDialSSEErrors(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		stream      string
		want        string
	}{
		{name: "endpoint on another origin", contentType: "text/event-stream", stream: "event: endpoint\ndata: http://evil.example/messages\n\n", want: "not on the origin"},
		{name: "endpoint on another port", contentType: "text/event-stream", stream: "event: endpoint\ndata: //127.0.0.1:1/messages\n\n", want: "not on the origin"},
		{name: "not an event stream", contentType: "application/json", stream: "{}", want: "content type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := scriptedSSE(t, tt.contentType, tt.stream)
			c, err := DialSSE(testCtx(t), SSEConfig{URL: ts.URL, Client: testClient(t)}, Options{})
			if err == nil {
				c.Close()
				t.Fatal("DialSSE succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}

	t.Run("no endpoint before the deadline", func(t *testing.T) {
		ts := scriptedSSE(t, "text/event-stream", ": waiting\n\n")
		ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
		defer cancel()
		c, err := DialSSE(ctx, SSEConfig{URL: ts.URL, Client: testClient(t)}, Options{})
		if err == nil {
			c.Close()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want context.DeadlineExceeded", err)
		}
	})

	t.Run("http error", func(t *testing.T) {
		ts := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(ts.Close)
		_, err := DialSSE(testCtx(t), SSEConfig{URL: ts.URL, Client: testClient(t)}, Options{})
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusNotFound {
			t.Errorf("err = %v, want HTTPError 404", err)
		}
	})
}

func TestResolveEndpoint(t *testing.T) {
	base, _ := url.Parse("http://127.0.0.1:8080/mcp/sse?x=1")
	tests := []struct {
		data, want string
		ok         bool
	}{
		{data: "/mcp/messages?sessionId=abc", want: "http://127.0.0.1:8080/mcp/messages?sessionId=abc", ok: true},
		{data: "messages?s=1", want: "http://127.0.0.1:8080/mcp/messages?s=1", ok: true},
		{data: "?sessionid=Z", want: "http://127.0.0.1:8080/mcp/sse?sessionid=Z", ok: true},
		{data: " http://127.0.0.1:8080/m#frag \n", want: "http://127.0.0.1:8080/m", ok: true},
		{data: "HTTP://127.0.0.1:8080/m", want: "http://127.0.0.1:8080/m", ok: true},
		{data: "https://127.0.0.1:8080/m", ok: false},
		{data: "http://127.0.0.1:9090/m", ok: false},
		{data: "http://localhost:8080/m", ok: false},
		{data: "//evil.example/m", ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.data, func(t *testing.T) {
			got, err := resolveEndpoint(base, tt.data)
			if (err == nil) != tt.ok {
				t.Fatalf("resolveEndpoint(%q) = %q, %v; want ok=%v", tt.data, got, err, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got); tt.ok && diff != "" {
				t.Errorf("endpoint (-want +got):\n%s", diff)
			}
		})
	}
}
