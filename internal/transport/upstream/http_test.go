package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/mcp"
)

// testClient returns a client of its own, so that its idle connections can
// be closed when the test ends (for goleak).
func testClient(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: sameOriginRedirect}
}

func dialHTTP(t *testing.T, url string, opts Options) *HTTPConn {
	t.Helper()
	c, err := DialHTTP(testCtx(t), HTTPConfig{URL: url, Client: testClient(t)}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sdkServer is a go-sdk server with the tools the HTTP tests need.
type sdkServer struct {
	*sdk.Server
	started   chan struct{} // a "block" call started
	cancelled chan struct{} // a "block" call saw its context end
	release   chan struct{} // closed to end all "block" calls
	stopOnce  sync.Once
}

// stop ends the calls in flight and the sessions.
func (s *sdkServer) stop() {
	s.stopOnce.Do(func() { close(s.release) })
	for ss := range s.Sessions() {
		ss.Close()
	}
}

type blockOut struct{}

func newSDKServer() *sdkServer {
	s := &sdkServer{
		Server:    sdk.NewServer(&sdk.Implementation{Name: "sluice-test-http", Version: "1"}, nil),
		started:   make(chan struct{}, 1),
		cancelled: make(chan struct{}, 1),
		release:   make(chan struct{}),
	}
	sdk.AddTool(s.Server, &sdk.Tool{Name: "echo"}, func(_ context.Context, _ *sdk.CallToolRequest, in echoIn) (*sdk.CallToolResult, any, error) {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: in.Text}}}, nil, nil
	})
	sdk.AddTool(s.Server, &sdk.Tool{Name: "block"}, func(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		s.started <- struct{}{}
		select {
		case <-ctx.Done():
			s.cancelled <- struct{}{}
		case <-s.release:
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "unblocked"}}}, nil, nil
	})
	// headers answers with the HTTP headers the server received.
	sdk.AddTool(s.Server, &sdk.Tool{Name: "headers"}, func(_ context.Context, req *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		b, err := json.Marshal(req.Extra.Header)
		if err != nil {
			return nil, nil, err
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(b)}}}, nil, nil
	})
	// resume drops the response stream mid-call, asking the client to
	// come back with Last-Event-ID.
	sdk.AddTool(s.Server, &sdk.Tool{Name: "resume"}, func(ctx context.Context, req *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		req.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: 1})
		req.Extra.CloseSSEStream(sdk.CloseSSEStreamArgs{RetryAfter: 10 * time.Millisecond})
		time.Sleep(100 * time.Millisecond)
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "resumed"}}}, nil, nil
	})
	return s
}

// serveSDK serves s over Streamable HTTP on 127.0.0.1.
func serveSDK(t *testing.T, s *sdkServer, opts *sdk.StreamableHTTPOptions) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.Server }, opts))
	t.Cleanup(func() {
		s.stop()
		ts.Close()
	})
	return ts
}

func TestHTTPLegacySession(t *testing.T) {
	url := everythingHTTP(t, false)
	in := newInbox()
	c := dialHTTP(t, url, Options{Inbound: in.deliver})
	ctx := testCtx(t)

	initialize(t, c)
	sid := c.SessionID()
	if sid == "" {
		t.Fatal("no session id captured from the initialize response")
	}
	list, err := c.Call(ctx, request(`1`, mcp.MethodToolsList, `{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := toolNames(t, list); !contains(names, "test_elicitation") {
		t.Errorf("tools/list = %v, want test_elicitation among them", names)
	}

	t.Run("progress goes to related", func(t *testing.T) {
		var got []float64
		related := func(m *mcp.Message) {
			if m.Method != mcp.NotifProgress {
				t.Errorf("unexpected related message %s", m.Encode())
				return
			}
			var p struct {
				ProgressToken string  `json:"progressToken"`
				Progress      float64 `json:"progress"`
			}
			mustUnmarshal(t, m.Params, &p)
			if p.ProgressToken != "tok-1" {
				t.Errorf("progress token = %q", p.ProgressToken)
			}
			got = append(got, p.Progress)
		}
		resp, err := c.Call(ctx, request(`2`, mcp.MethodToolsCall,
			`{"name":"test_tool_with_progress","arguments":{},"_meta":{"progressToken":"tok-1"}}`), related)
		if err != nil {
			t.Fatal(err)
		}
		if text := resultText(t, resp); text != "tok-1" {
			t.Errorf("result = %q, want tok-1", text)
		}
		if diff := cmp.Diff([]float64{0, 50, 100}, got); diff != "" {
			t.Errorf("progress (-want +got):\n%s", diff)
		}
	})

	t.Run("elicitation on the response stream", func(t *testing.T) {
		var asked []string
		related := func(m *mcp.Message) {
			if m.Method != mcp.MethodElicitationCreate || !m.IsRequest() {
				t.Errorf("unexpected related message %s", m.Encode())
				return
			}
			var p struct {
				Message string `json:"message"`
			}
			mustUnmarshal(t, m.Params, &p)
			asked = append(asked, p.Message)
			answer := mcp.NewResult(m.ID, []byte(`{"action":"accept","content":{"username":"sluice"}}`))
			if err := c.Send(ctx, answer); err != nil {
				t.Errorf("answering elicitation: %v", err)
			}
		}
		resp, err := c.Call(ctx, request(`3`, mcp.MethodToolsCall,
			`{"name":"test_elicitation","arguments":{"message":"Who are you?"}}`), related)
		if err != nil {
			t.Fatal(err)
		}
		text := resultText(t, resp)
		if !strings.Contains(text, "action=accept") || !strings.Contains(text, "sluice") {
			t.Errorf("result = %q, want the accepted elicitation", text)
		}
		if diff := cmp.Diff([]string{"Who are you?"}, asked); diff != "" {
			t.Errorf("elicitation requests (-want +got):\n%s", diff)
		}
	})

	t.Run("close deletes the session", func(t *testing.T) {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done not closed after Close")
		}
		if _, err := c.Call(ctx, request(`4`, mcp.MethodToolsList, `{}`), nil); !errors.Is(err, ErrClosed) {
			t.Errorf("call after Close: err = %v, want ErrClosed", err)
		}
		// The server no longer knows the session.
		if status := rawPost(t, url, sid, `{"jsonrpc":"2.0","id":5,"method":"tools/list","params":{}}`); status != http.StatusNotFound {
			t.Errorf("request with the deleted session: http %d, want 404", status)
		}
	})
}

// rawPost sends body with session id sid and returns the status.
func rawPost(t *testing.T, url, sid, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(headerProtocolVersion, mcp.Version20251125)
	if sid != "" {
		req.Header.Set(headerSessionID, sid)
	}
	resp, err := testClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestHTTPSessionExpired(t *testing.T) {
	url := everythingHTTP(t, false)
	c := dialHTTP(t, url, Options{})
	initialize(t, c)
	// Another party ends the session.
	req, _ := http.NewRequest(http.MethodDelete, url, nil)
	req.Header.Set(headerSessionID, c.SessionID())
	resp, err := testClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	_, err = c.Call(testCtx(t), request(`1`, mcp.MethodToolsList, `{}`), nil)
	if !errors.Is(err, ErrSessionExpired) {
		t.Fatalf("call on an ended session: err = %v, want ErrSessionExpired", err)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after the session expired")
	}
	if !errors.Is(c.Err(), ErrSessionExpired) {
		t.Errorf("Err = %v, want ErrSessionExpired", c.Err())
	}
}

func TestHTTPModernStateless(t *testing.T) {
	url := everythingHTTP(t, true)
	c := dialHTTP(t, url, Options{})
	ctx := testCtx(t)
	tests := []struct {
		name, method, params string
		check                func(t *testing.T, result []byte)
	}{
		{
			name: "tools/call", method: mcp.MethodToolsCall,
			params: `{"name":"test_simple_text","arguments":{},` + modernMeta + `}`,
			check: func(t *testing.T, result []byte) {
				if text := resultText(t, &mcp.Message{Result: result}); !strings.Contains(text, "simple text") {
					t.Errorf("result = %q", text)
				}
			},
		},
		{
			name: "resources/read", method: mcp.MethodResourcesRead,
			params: `{"uri":"test://static-text",` + modernMeta + `}`,
			check: func(t *testing.T, result []byte) {
				var r struct {
					Contents []struct {
						URI string `json:"uri"`
					} `json:"contents"`
				}
				mustUnmarshal(t, result, &r)
				if len(r.Contents) != 1 || r.Contents[0].URI != "test://static-text" {
					t.Errorf("result = %s", result)
				}
			},
		},
		{
			name: "tools/list", method: mcp.MethodToolsList,
			params: `{` + modernMeta + `}`,
			check: func(t *testing.T, result []byte) {
				if names := toolNames(t, &mcp.Message{Result: result}); !contains(names, "test_simple_text") {
					t.Errorf("tools = %v", names)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.Call(ctx, request(fmt.Sprint(i+1), tt.method, tt.params), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Error != nil {
				t.Fatalf("error response: %v", resp.Error)
			}
			tt.check(t, resp.Result)
		})
	}

	// The server does check the mirrored headers: without them the same
	// request is refused.
	t.Run("server checks the headers", func(t *testing.T) {
		body := `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},` + modernMeta + `}}`
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set(headerProtocolVersion, mcp.Version20260728)
		resp, err := testClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m, _ := errorBody(resp, 1<<20, mcp.Limits{})
		if m == nil || m.Error.Code != mcp.CodeHeaderMismatch {
			t.Errorf("request without Mcp-Method: http %d, want a -32020 error response", resp.StatusCode)
		}
	})

	if err := c.OpenStream(ctx); err != nil {
		t.Errorf("OpenStream on a server without a GET stream: %v, want nil", err)
	}
}

func TestHTTPErrorResponses(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	noID := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"jsonrpc":"2.0","error":{"code":-32600,"message":"origin not allowed"}}`)
	}))
	t.Cleanup(noID.Close)

	tests := []struct {
		name       string
		url        string
		params     string
		wantCode   int64 // of the error response
		wantStatus int   // of the *HTTPError
	}{
		{
			name:     "modern request to a stateful server",
			url:      everythingHTTP(t, false),
			params:   `{"name":"test_simple_text","arguments":{},` + modernMeta + `}`,
			wantCode: mcp.CodeUnsupportedProtocolVersion,
		},
		{
			name:     "error response without id",
			url:      noID.URL,
			params:   `{"name":"x"}`,
			wantCode: mcp.CodeInvalidRequest,
		},
		{
			name:       "plain 404",
			url:        notFound.URL,
			params:     `{"name":"x"}`,
			wantStatus: http.StatusNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialHTTP(t, tt.url, Options{})
			resp, err := c.Call(testCtx(t), request(`1`, mcp.MethodToolsCall, tt.params), nil)
			if tt.wantStatus != 0 {
				var he *HTTPError
				if !errors.As(err, &he) || he.Status != tt.wantStatus {
					t.Fatalf("err = %v, want HTTPError %d", err, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v, want the error response as a message", err)
			}
			if resp.Error == nil || resp.Error.Code != tt.wantCode {
				t.Fatalf("response = %s, want error code %d", resp.Encode(), tt.wantCode)
			}
		})
	}
}

func TestHTTPCancel(t *testing.T) {
	s := newSDKServer()
	ts := serveSDK(t, s, &sdk.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true})
	c := dialHTTP(t, ts.URL, Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		<-s.started
		cancel()
	}()
	start := time.Now()
	_, err := c.Call(ctx, request(`1`, mcp.MethodToolsCall, `{"name":"block","arguments":{},`+modernMeta+`}`), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("call returned after %v", took)
	}
	select {
	case <-s.cancelled:
	case <-time.After(5 * time.Second):
		t.Error("the server did not see the request cancelled")
	}
}

func TestHTTPCloseAbortsCalls(t *testing.T) {
	s := newSDKServer()
	ts := serveSDK(t, s, &sdk.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true})
	c := dialHTTP(t, ts.URL, Options{})
	go func() {
		<-s.started
		c.Close()
	}()
	_, err := c.Call(testCtx(t), request(`1`, mcp.MethodToolsCall, `{"name":"block","arguments":{},`+modernMeta+`}`), nil)
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
	<-s.cancelled
}

func TestHTTPHeaders(t *testing.T) {
	s := newSDKServer()
	ts := serveSDK(t, s, &sdk.StreamableHTTPOptions{Stateless: true})
	c, err := DialHTTP(testCtx(t), HTTPConfig{
		URL:    ts.URL,
		Header: http.Header{"Authorization": {"Bearer upstream-token"}, "X-Tenant": {"acme"}},
		Client: testClient(t),
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := WithHeader(testCtx(t), http.Header{
		"Authorization":    {"Bearer client-token"}, // never wins over the configured one
		"Mcp-Param-Region": {"eu-west-1"},
		"Mcp-Session-Id":   {"forged"},
		"Mcp-Method":       {"forged"},
		"Last-Event-Id":    {"forged"},
	})
	resp, err := c.Call(ctx, request(`1`, mcp.MethodToolsCall, `{"name":"headers","arguments":{},`+modernMeta+`}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got http.Header
	mustUnmarshal(t, []byte(resultText(t, resp)), &got)
	keys := []string{"Accept", "Authorization", "Content-Type", "Last-Event-Id", "Mcp-Method", "Mcp-Name", "Mcp-Param-Region", "Mcp-Protocol-Version", "Mcp-Session-Id", "X-Tenant"}
	selected := http.Header{}
	for _, k := range keys {
		if v, ok := got[k]; ok {
			selected[k] = v
		}
	}
	want := http.Header{
		"Accept":               {"application/json, text/event-stream"},
		"Authorization":        {"Bearer upstream-token"},
		"Content-Type":         {"application/json"},
		"Mcp-Method":           {"tools/call"},
		"Mcp-Name":             {"headers"},
		"Mcp-Param-Region":     {"eu-west-1"},
		"Mcp-Protocol-Version": {"2026-07-28"},
		"X-Tenant":             {"acme"},
	}
	if diff := cmp.Diff(want, selected); diff != "" {
		t.Errorf("headers the server received (-want +got):\n%s", diff)
	}
}

func TestHTTPGetStream(t *testing.T) {
	s := newSDKServer()
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.Server }, &sdk.StreamableHTTPOptions{EventStore: sdk.NewMemoryEventStore(nil)})
	var (
		mu   sync.Mutex
		gets []string // Last-Event-ID of each GET
	)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			gets = append(gets, r.Header.Get(headerLastEventID))
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.stop()
		ts.Close()
	})
	in := newInbox()
	c := dialHTTP(t, ts.URL, Options{Inbound: in.deliver})
	initialize(t, c)
	ctx := testCtx(t)
	if err := c.OpenStream(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.OpenStream(ctx); err != nil {
		t.Fatalf("second OpenStream: %v", err)
	}
	// A change of the tool set is announced on the GET stream.
	addTool := func(name string) {
		sdk.AddTool(s.Server, &sdk.Tool{Name: name}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
			return &sdk.CallToolResult{}, nil, nil
		})
	}
	addTool("late")
	in.wait(t, mcp.NotifToolsListChanged, 5*time.Second)

	// When the stream breaks it is reopened, resuming after the last event.
	ts.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(gets)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the GET stream was not reopened")
		}
		time.Sleep(20 * time.Millisecond)
	}
	addTool("later")
	in.wait(t, mcp.NotifToolsListChanged, 5*time.Second)
	mu.Lock()
	if len(gets) < 2 || gets[0] != "" || gets[1] == "" {
		t.Errorf("Last-Event-ID of the GETs = %q, want none on the first and one on the second", gets)
	}
	mu.Unlock()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestHTTPResumeResponseStream(t *testing.T) {
	s := newSDKServer()
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.Server }, &sdk.StreamableHTTPOptions{EventStore: sdk.NewMemoryEventStore(nil)})
	var resumes []string
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			resumes = append(resumes, r.Header.Get(headerLastEventID))
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		s.stop()
		ts.Close()
	})
	c := dialHTTP(t, ts.URL, Options{})
	initialize(t, c)
	var progress int
	resp, err := c.Call(testCtx(t), request(`1`, mcp.MethodToolsCall, `{"name":"resume","arguments":{},"_meta":{"progressToken":7}}`),
		func(m *mcp.Message) {
			if m.Method == mcp.NotifProgress {
				progress++
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if text := resultText(t, resp); text != "resumed" {
		t.Errorf("result = %q", text)
	}
	if progress != 1 {
		t.Errorf("got %d progress notifications, want 1 (no duplicates from the replay)", progress)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(resumes) != 1 || resumes[0] == "" {
		t.Errorf("GET requests with Last-Event-ID %q, want one with an id", resumes)
	}
}

func TestHTTPJSONResponses(t *testing.T) {
	s := newSDKServer()
	ts := serveSDK(t, s, &sdk.StreamableHTTPOptions{JSONResponse: true})
	c := dialHTTP(t, ts.URL, Options{})
	initialize(t, c)
	if got := toolText(t, c, `"a"`, "echo", `{"text":"json"}`); got != "json" {
		t.Errorf("echo = %q", got)
	}
}

func TestHTTPSizeLimit(t *testing.T) {
	for _, jsonResponse := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", jsonResponse), func(t *testing.T) {
			s := newSDKServer()
			ts := serveSDK(t, s, &sdk.StreamableHTTPOptions{JSONResponse: jsonResponse})
			c := dialHTTP(t, ts.URL, Options{Limits: mcp.Limits{MaxBytes: 1024}})
			initialize(t, c)
			big := strings.Repeat("x", 2000)
			_, err := c.Call(testCtx(t), request(`1`, mcp.MethodToolsCall, `{"name":"echo","arguments":{"text":"`+big+`"}}`), nil)
			if !errors.Is(err, mcp.ErrTooLarge) {
				t.Errorf("err = %v, want ErrTooLarge", err)
			}
			if got := toolText(t, c, `2`, "echo", `{"text":"small"}`); got != "small" {
				t.Errorf("echo after the oversize answer = %q", got)
			}
		})
	}
}

// A response stream that ends without the response fails the call; there
// is nothing to resume when the server gave no event id.
func TestHTTPStreamEndsWithoutResponse(t *testing.T) {
	var mu sync.Mutex
	var gets int
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			mu.Lock()
			gets++
			mu.Unlock()
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": keep-alive\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\n")
		io.WriteString(w, "data: \"params\":{\"progressToken\":1,\"progress\":1}}\n\n")
	}))
	t.Cleanup(ts.Close)
	for _, version := range []string{mcp.Version20251125, mcp.Version20260728} {
		t.Run(version, func(t *testing.T) {
			c := dialHTTP(t, ts.URL, Options{})
			c.SetProtocolVersion(version)
			var related []string
			_, err := c.Call(testCtx(t), request(`1`, mcp.MethodToolsList, `{}`), func(m *mcp.Message) {
				related = append(related, string(m.Params))
			})
			if !errors.Is(err, ErrNoResponse) {
				t.Errorf("err = %v, want ErrNoResponse", err)
			}
			if diff := cmp.Diff([]string{`{"progressToken":1,"progress":1}`}, related); diff != "" {
				t.Errorf("related (-want +got):\n%s", diff)
			}
		})
	}
	if gets != 0 {
		t.Errorf("%d resumption attempts without an event id, want none", gets)
	}
}

func TestSetMessageHeaders(t *testing.T) {
	tests := []struct {
		name    string
		msg     *mcp.Message
		version string
		want    http.Header
	}{
		{
			name:    "legacy",
			msg:     request(`1`, mcp.MethodToolsCall, `{"name":"echo"}`),
			version: mcp.Version20251125,
			want:    http.Header{"Mcp-Protocol-Version": {"2025-11-25"}},
		},
		{
			name: "no version yet",
			msg:  request(`1`, mcp.MethodInitialize, `{}`),
			want: http.Header{},
		},
		{
			name:    "modern tool call",
			msg:     request(`1`, mcp.MethodToolsCall, `{"name":"get_weather","arguments":{}}`),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"get_weather"}},
		},
		{
			name:    "resource uri",
			msg:     request(`1`, mcp.MethodResourcesRead, `{"uri":"file:///projects/myapp/config.json"}`),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"resources/read"}, "Mcp-Name": {"file:///projects/myapp/config.json"}},
		},
		{
			name:    "prompt with non-ascii name",
			msg:     request(`1`, mcp.MethodPromptsGet, `{"name":"Hello, 世界"}`),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"prompts/get"}, "Mcp-Name": {"=?base64?SGVsbG8sIOS4lueVjA==?="}},
		},
		{
			name:    "name that looks encoded",
			msg:     request(`1`, mcp.MethodToolsCall, `{"name":"=?base64?literal?="}`),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="}},
		},
		{
			name:    "list has no name",
			msg:     request(`1`, mcp.MethodToolsList, `{}`),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"tools/list"}},
		},
		{
			name:    "notification",
			msg:     mcp.NewNotification(mcp.NotifCancelled, []byte(`{"requestId":1}`)),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}, "Mcp-Method": {"notifications/cancelled"}},
		},
		{
			name:    "response",
			msg:     mcp.NewResult([]byte(`1`), nil),
			version: mcp.Version20260728,
			want:    http.Header{"Mcp-Protocol-Version": {"2026-07-28"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			setMessageHeaders(h, tt.msg, tt.version)
			if diff := cmp.Diff(tt.want, h); diff != "" {
				t.Errorf("headers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeaderValueEncoding(t *testing.T) {
	// The examples of the 2026-07-28 Streamable HTTP transport.
	tests := []struct{ in, want string }{
		{"us-west1", "us-west1"},
		{"Hello, 世界", "=?base64?SGVsbG8sIOS4lueVjA==?="},
		{" padded ", "=?base64?IHBhZGRlZCA=?="},
		{"line1\nline2", "=?base64?bGluZTEKbGluZTI=?="},
		{"=?base64?literal?=", "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="},
		{"tab\there", "=?base64?dGFiCWhlcmU=?="},
		{"", ""},
		{"inner space", "inner space"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := mcp.EncodeHeaderValue(tt.in)
			if got != tt.want {
				t.Errorf("mcp.EncodeHeaderValue(%q) = %q, want %q", tt.in, got, tt.want)
			}
			back, ok := mcp.DecodeHeaderValue(got)
			if !ok || back != tt.in {
				t.Errorf("mcp.DecodeHeaderValue(%q) = %q, %v; want %q", got, back, ok, tt.in)
			}
		})
	}
	if _, ok := mcp.DecodeHeaderValue("=?base64?!!!?="); ok {
		t.Error("DecodeHeaderValue accepted invalid base64")
	}
}
