package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/mcp"
)

// HTTPConfig describes a Streamable HTTP server.
type HTTPConfig struct {
	// URL is the MCP endpoint.
	URL string
	// Header holds the upstream credentials Sluice is configured with; they
	// are sent on every request and take precedence over per-call headers.
	Header http.Header
	// Client sends the requests; nil means a shared client tuned for many
	// concurrent requests to few hosts, which does not follow redirects to
	// another origin.
	Client *http.Client
}

// Streamable HTTP timing.
const (
	// deleteTimeout bounds the DELETE that ends a session on Close.
	deleteTimeout = 5 * time.Second
	// Reconnection of the GET stream and resumption of response streams.
	minReconnectDelay = 250 * time.Millisecond
	maxReconnectDelay = 30 * time.Second
	// maxResumes bounds attempts to resume a response stream that make no
	// progress.
	maxResumes = 5
	// errorBodyLimit bounds what an HTTPError keeps.
	errorBodyLimit = 4 << 10
)

var defaultClient = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 512
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 0 // a tool call may take long before its first byte
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{Transport: t, CheckRedirect: sameOriginRedirect}
})

// sameOriginRedirect stops at a redirect to another origin: the configured
// credentials must not travel to a host nobody configured, and the upstream
// URL was checked against the SSRF guard, not where it redirects to.
func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if !sameOrigin(req.URL, via[0].URL) {
		return http.ErrUseLastResponse
	}
	return nil
}

// HTTPConn is a connection to a Streamable HTTP server, of either protocol
// era. It holds no network connection of its own: each message is a POST;
// the legacy era's session, if the server assigns one, is kept here.
type HTTPConn struct {
	url    string
	header http.Header
	client *http.Client
	opts   Options
	log    *slog.Logger

	life   context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // GET stream goroutines

	sidHeader atomic.Pointer[[]string]

	mu        sync.Mutex
	sessionID string
	version   string
	streaming bool
	closed    bool // set by Close before it waits for the GET stream

	closeOnce sync.Once
	done      chan struct{}
	doneOnce  sync.Once
	err       error
}

var _ Conn = (*HTTPConn)(nil)

// DialHTTP returns a connection to the Streamable HTTP server at cfg.URL.
// It does no I/O: the first Call (initialize, server/discover, or any
// modern request) is the first contact.
func DialHTTP(ctx context.Context, cfg HTTPConfig, opts Options) (*HTTPConn, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("upstream url %q: want an absolute http or https url", cfg.URL)
	}
	client := cfg.Client
	if client == nil {
		client = defaultClient()
	}
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	return &HTTPConn{
		url:    u.String(),
		header: cfg.Header.Clone(),
		client: client,
		opts:   opts,
		log:    logger(opts),
		life:   life,
		cancel: cancel,
		done:   make(chan struct{}),
	}, nil
}

// SetProtocolVersion sets the version sent in MCP-Protocol-Version on
// requests that do not name one in their _meta: the version negotiated by
// initialize, or the modern version the gateway speaks to this server.
// For modern versions the Mcp-Method and Mcp-Name headers are sent too.
func (c *HTTPConn) SetProtocolVersion(v string) {
	c.mu.Lock()
	c.version = v
	c.mu.Unlock()
}

// SessionID returns the session the server assigned at initialize, if any.
func (c *HTTPConn) SessionID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

func (c *HTTPConn) state() (sessionID, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID, c.version
}

// Done is closed by Close, or when the server ended the session.
func (c *HTTPConn) Done() <-chan struct{} { return c.done }

// Err says why Done was closed.
func (c *HTTPConn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *HTTPConn) finish(err error) {
	c.doneOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	})
}

func (c *HTTPConn) usable() error {
	if c.life.Err() != nil {
		return ErrClosed
	}
	return c.Err()
}

// expire records that the server forgot the session: "The server MAY
// terminate the session at any time, after which it MUST respond to
// requests containing that session ID with HTTP 404 Not Found."
func (c *HTTPConn) expire(sessionID string) error {
	err := fmt.Errorf("%w: session %q", ErrSessionExpired, sessionID)
	c.finish(err)
	return err
}

// requestContext returns a context that ends with ctx or with the
// connection.
func (c *HTTPConn) requestContext(ctx context.Context) (context.Context, func()) {
	rctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.life, cancel)
	return rctx, func() {
		stop()
		cancel()
	}
}

// failure maps an error of a request made under ctx: the caller's
// cancellation is reported as ctx.Err(), the connection's as ErrClosed.
func (c *HTTPConn) failure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c.life.Err() != nil {
		return ErrClosed
	}
	return err
}

func (c *HTTPConn) newRequest(ctx context.Context, method string, m *mcp.Message, body []byte) (*http.Request, string, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url, rd)
	if err != nil {
		return nil, "", err
	}
	h := req.Header
	setCallHeaders(ctx, h, c.header)
	sid, version := c.state()
	if sid != "" {
		h[headerSessionID] = c.sidValue(sid)
	}
	if m != nil {
		if v := metaProtocolVersion(m.Params); v != "" {
			version = v
		}
		setMessageHeaders(h, m, version)
	} else if version != "" {
		h.Set(headerProtocolVersion, version)
	}
	// Shared, never-modified value slices: one less allocation per header
	// on every call.
	switch method {
	case http.MethodPost:
		h["Content-Type"] = hvJSON
		h["Accept"] = hvAcceptBoth
	case http.MethodGet:
		h["Accept"] = hvAcceptSSE
	}
	return req, sid, nil
}

func (c *HTTPConn) maxBytes() int {
	if c.opts.Limits.MaxBytes > 0 {
		return c.opts.Limits.MaxBytes
	}
	return mcp.DefaultMaxBytes
}

// Call POSTs req and returns its response, read from a JSON body or from
// the SSE stream the server answers with. Messages on that stream before
// the response go to related (or Inbound when related is nil). An HTTP
// error whose body is a JSON-RPC error response is returned as that
// response, not as a Go error: the gateway tells the protocol eras apart
// by it.
func (c *HTTPConn) Call(ctx context.Context, req *mcp.Message, related func(*mcp.Message)) (*mcp.Message, error) {
	if req.ID == nil || req.Method == "" {
		return nil, errors.New("call needs a request with a method and an id")
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err // the caller gave up: nothing is sent
	}
	if related == nil {
		related = c.inbound
	}
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	hreq, sid, err := c.newRequest(rctx, http.MethodPost, req, req.Encode())
	if err != nil {
		return nil, err
	}
	resp, err := c.do(hreq)
	if err != nil {
		return nil, c.failure(ctx, fmt.Errorf("%s: %w", req.Method, err))
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusNotFound && sid != "" {
		return nil, c.expire(sid)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		m, herr := c.errorResponse(resp)
		if m != nil {
			return m, nil
		}
		return nil, c.failure(ctx, herr)
	}
	if req.Method == mcp.MethodInitialize {
		c.captureSession(resp)
	}
	switch mediaType(resp.Header.Get("Content-Type")) {
	case "application/json":
		m, err := c.readJSON(resp.Body, req, resp.ContentLength)
		return m, c.failureOrNil(ctx, err)
	case "text/event-stream":
		m, err := c.readResponseStream(rctx, req, resp, related)
		return m, c.failureOrNil(ctx, err)
	}
	if resp.StatusCode == http.StatusAccepted {
		return nil, fmt.Errorf("%s: server accepted the request without answering it", req.Method)
	}
	return nil, fmt.Errorf("%s: unexpected response content type %q", req.Method, resp.Header.Get("Content-Type"))
}

func (c *HTTPConn) failureOrNil(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	return c.failure(ctx, err)
}

func (c *HTTPConn) inbound(m *mcp.Message) { deliverInbound(c.opts, c.log, m) }

// captureSession keeps the session the server assigned: "A server using
// the Streamable HTTP transport MAY assign a session ID at initialization
// time, by including it in an MCP-Session-Id header on the HTTP response
// containing the InitializeResult." The ID "MUST only contain visible ASCII
// characters"; anything else is not sent back.
func (c *HTTPConn) captureSession(resp *http.Response) {
	sid := resp.Header.Get(headerSessionID)
	if sid == "" {
		return
	}
	for i := 0; i < len(sid); i++ {
		if sid[i] < 0x21 || sid[i] > 0x7e {
			c.log.Warn("ignoring upstream session id with invalid characters")
			return
		}
	}
	c.mu.Lock()
	c.sessionID = sid
	c.mu.Unlock()
}

// errorResponse reads the body of an HTTP error. When it is a JSON-RPC
// error response it is returned as a message; otherwise as an *HTTPError.
func (c *HTTPConn) errorResponse(resp *http.Response) (*mcp.Message, error) {
	return errorBody(resp, c.maxBytes(), c.opts.Limits)
}

func errorBody(resp *http.Response, max int, lim mcp.Limits) (*mcp.Message, error) {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(max)+1))
	if len(body) <= max {
		if m := decodeErrorResponse(body, lim); m != nil {
			return m, nil
		}
	}
	if len(body) > errorBodyLimit {
		body = body[:errorBodyLimit]
	}
	return nil, &HTTPError{Status: resp.StatusCode, Body: body}
}

// decodeErrorResponse returns body as a JSON-RPC error response, or nil.
// MCP lets an HTTP error carry "a JSON-RPC error response that has no id";
// such a body is read as if its id were null.
func decodeErrorResponse(body []byte, lim mcp.Limits) *mcp.Message {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	m, err := mcp.Decode(body, lim)
	if err != nil {
		if _, has, lerr := mcp.Lookup(body, "id"); lerr != nil || has {
			return nil
		}
		withID, serr := mcp.SetMember(body, "id", []byte("null"))
		if serr != nil {
			return nil
		}
		if m, err = mcp.Decode(withID, lim); err != nil {
			return nil
		}
	}
	if m.Error == nil || m.Method != "" {
		return nil
	}
	return m
}

func (c *HTTPConn) readJSON(body io.Reader, req *mcp.Message, size int64) (*mcp.Message, error) {
	max := c.maxBytes()
	b, err := readAllSized(io.LimitReader(body, int64(max)+1), size, max)
	if err != nil {
		return nil, fmt.Errorf("%s: reading response: %w", req.Method, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s: response: %w (limit %d bytes)", req.Method, mcp.ErrTooLarge, max)
	}
	m, err := mcp.Decode(b, c.opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("%s: response: %w", req.Method, err)
	}
	if !m.IsResponse() || !(bytes.Equal(m.ID, req.ID) || m.Error != nil && string(m.ID) == "null") {
		return nil, fmt.Errorf("%s: server answered with a message that is not the response (id %s)", req.Method, m.ID)
	}
	return m, nil
}

// readResponseStream reads the SSE stream answering req until the response
// arrives. In the legacy era a stream that breaks after an event ID is
// resumed with a GET carrying Last-Event-ID ("If the client wishes to
// resume after a disconnection (whether due to network failure or
// server-initiated closure), it SHOULD issue an HTTP GET to the MCP
// endpoint"), waiting as long as the server's retry field says; the modern
// era has no resumption ("Resumable SSE streams via Last-Event-ID are not
// supported").
func (c *HTTPConn) readResponseStream(ctx context.Context, req *mcp.Message, resp *http.Response, related func(*mcp.Message)) (*mcp.Message, error) {
	modern := mcp.IsModernVersion(resp.Request.Header.Get(headerProtocolVersion))
	var (
		lastID     string
		retry      time.Duration
		noProgress int
	)
	body := resp.Body
	for {
		er := newEventReader(body, c.maxBytes())
		er.LastID = lastID
		m, err := c.readUntilResponse(er, req, related)
		if m != nil || err != nil {
			return m, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if er.Retry > 0 {
			retry = er.Retry
		}
		if modern || !er.HasID && lastID == "" {
			return nil, fmt.Errorf("%s: %w", req.Method, ErrNoResponse)
		}
		if er.LastID != lastID {
			lastID, noProgress = er.LastID, 0
		} else if noProgress++; noProgress >= maxResumes {
			return nil, fmt.Errorf("%s: %w after %d attempts to resume", req.Method, ErrNoResponse, maxResumes)
		}
		if err := sleepCtx(ctx, reconnectDelay(retry, noProgress)); err != nil {
			return nil, err
		}
		next, err := c.get(ctx, lastID)
		if err != nil {
			return nil, fmt.Errorf("%s: resuming the response stream: %w", req.Method, err)
		}
		if next == nil {
			return nil, fmt.Errorf("%s: %w (the server offers no stream to resume)", req.Method, ErrNoResponse)
		}
		body.Close()
		body = next.Body
		defer next.Body.Close()
	}
}

// readUntilResponse returns the response to req from er, or nil at the end
// of the stream.
func (c *HTTPConn) readUntilResponse(er *eventReader, req *mcp.Message, related func(*mcp.Message)) (*mcp.Message, error) {
	for {
		ev, err := er.Next()
		if err != nil {
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil
			}
			// A broken connection may still be resumed.
			c.log.Debug("upstream response stream broke", "method", req.Method, "error", err)
			return nil, nil
		}
		if ev.Type != "" && ev.Type != "message" {
			continue
		}
		if ev.TooLarge {
			return nil, fmt.Errorf("%s: event on the response stream: %w (limit %d bytes)", req.Method, mcp.ErrTooLarge, c.maxBytes())
		}
		m, err := mcp.Decode(ev.Data, c.opts.Limits)
		if err != nil {
			c.log.Warn("skipping undecodable message on upstream response stream", "method", req.Method, "error", err)
			continue
		}
		if m.IsResponse() {
			if bytes.Equal(m.ID, req.ID) {
				return m, nil
			}
			c.log.Warn("unexpected response on upstream response stream", "method", req.Method, "id", string(m.ID))
			c.inbound(m)
			continue
		}
		related(m)
	}
}

// get opens an SSE stream with GET, resuming after lastID when set. It
// returns nil, nil when the server answers 405 (it offers no such stream).
func (c *HTTPConn) get(ctx context.Context, lastID string) (*http.Response, error) {
	hreq, sid, err := c.newRequest(ctx, http.MethodGet, nil, nil)
	if err != nil {
		return nil, err
	}
	if lastID != "" {
		hreq.Header.Set(headerLastEventID, lastID)
	}
	resp, err := c.client.Do(hreq)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed:
		drainClose(resp.Body)
		return nil, nil
	case resp.StatusCode == http.StatusNotFound && sid != "":
		drainClose(resp.Body)
		return nil, c.expire(sid)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		defer resp.Body.Close()
		_, err := errorBody(resp, errorBodyLimit, c.opts.Limits)
		if err == nil {
			err = &HTTPError{Status: resp.StatusCode}
		}
		return nil, err
	case mediaType(resp.Header.Get("Content-Type")) != "text/event-stream":
		drainClose(resp.Body)
		return nil, fmt.Errorf("get stream: unexpected content type %q", resp.Header.Get("Content-Type"))
	}
	return resp, nil
}

func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// Send POSTs a notification or a response to a server-to-client request.
// "If the server accepts the input, the server MUST return HTTP status
// code 202 Accepted with no body."
func (c *HTTPConn) Send(ctx context.Context, msg *mcp.Message) error {
	if msg.IsRequest() {
		return errors.New("send takes a notification or a response; use Call for requests")
	}
	if err := c.usable(); err != nil {
		return err
	}
	rctx, cancel := c.requestContext(ctx)
	defer cancel()
	hreq, sid, err := c.newRequest(rctx, http.MethodPost, msg, msg.Encode())
	if err != nil {
		return err
	}
	resp, err := c.client.Do(hreq)
	if err != nil {
		return c.failure(ctx, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound && sid != "" {
		return c.expire(sid)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		m, herr := c.errorResponse(resp)
		if m != nil {
			return fmt.Errorf("upstream rejected the message: %w", m.Error)
		}
		return herr
	}
	drainClose(resp.Body)
	return nil
}

// OpenStream opens the legacy era's GET stream, on which the server sends
// requests and notifications unrelated to any call; they go to
// [Options.Inbound]. It returns once the first attempt is answered. A
// server that answers 405 offers no such stream ("The server MUST either
// return Content-Type: text/event-stream in response to this HTTP GET, or
// else return HTTP 405 Method Not Allowed"); OpenStream then returns nil
// and nothing more happens. Otherwise the stream is reopened with backoff
// and Last-Event-ID whenever it ends, until ctx ends or the connection is
// closed. Opening it twice is a no-op.
func (c *HTTPConn) OpenStream(ctx context.Context) error {
	if err := c.usable(); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.streaming {
		c.mu.Unlock()
		return nil
	}
	c.streaming = true
	c.wg.Add(1)
	c.mu.Unlock()

	sctx, cancel := c.requestContext(ctx)
	resp, err := c.get(sctx, "")
	if err != nil || resp == nil {
		cancel()
		c.mu.Lock()
		c.streaming = false
		c.mu.Unlock()
		c.wg.Done()
		if resp == nil && err == nil {
			c.log.Debug("upstream offers no get stream")
			return nil
		}
		return c.failure(ctx, fmt.Errorf("opening get stream: %w", err))
	}
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer func() {
			c.mu.Lock()
			c.streaming = false
			c.mu.Unlock()
		}()
		c.runStream(sctx, resp)
	}()
	return nil
}

func (c *HTTPConn) runStream(ctx context.Context, resp *http.Response) {
	var (
		lastID   string
		retry    time.Duration
		failures int
	)
	for {
		if resp != nil {
			er := newEventReader(resp.Body, c.maxBytes())
			er.LastID = lastID
			if c.readStream(er) {
				failures = 0
			}
			resp.Body.Close()
			lastID = er.LastID
			if er.Retry > 0 {
				retry = er.Retry
			}
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		if sleepCtx(ctx, reconnectDelay(retry, failures)) != nil {
			return
		}
		var err error
		resp, err = c.get(ctx, lastID)
		switch {
		case errors.Is(err, ErrSessionExpired):
			return
		case err != nil:
			if ctx.Err() == nil {
				c.log.Warn("reopening upstream get stream", "error", err)
			}
		case resp == nil:
			c.log.Debug("upstream no longer offers a get stream")
			return
		}
	}
}

// readStream delivers the messages of a GET stream until it ends and
// reports whether any arrived.
func (c *HTTPConn) readStream(er *eventReader) (progress bool) {
	for {
		ev, err := er.Next()
		if err != nil {
			return progress
		}
		progress = true
		if ev.Type != "" && ev.Type != "message" {
			continue
		}
		if ev.TooLarge {
			c.log.Warn("skipping upstream message over the size limit", "limit", c.maxBytes())
			continue
		}
		m, err := mcp.Decode(ev.Data, c.opts.Limits)
		if err != nil {
			c.log.Warn("skipping undecodable message on upstream get stream", "error", err)
			continue
		}
		c.inbound(m)
	}
}

// reconnectDelay is the server's retry hint when it gave one, else an
// exponential backoff from minReconnectDelay.
func reconnectDelay(retry time.Duration, attempt int) time.Duration {
	if retry > 0 {
		return min(retry, maxReconnectDelay)
	}
	d := minReconnectDelay
	for i := 1; i < attempt && d < maxReconnectDelay; i++ {
		d *= 2
	}
	return min(d, maxReconnectDelay)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close cancels calls in flight and the GET stream, and ends a legacy
// session: "Clients that no longer need a particular session ... SHOULD
// send an HTTP DELETE to the MCP endpoint with the MCP-Session-Id header"
// ("The server MAY respond to this request with HTTP 405 Method Not
// Allowed").
func (c *HTTPConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		expired := errors.Is(c.Err(), ErrSessionExpired)
		c.finish(ErrClosed)
		sid, _ := c.state()
		if sid == "" || expired {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
		defer cancel()
		req, _, rerr := c.newRequest(ctx, http.MethodDelete, nil, nil)
		if rerr != nil {
			err = rerr
			return
		}
		resp, derr := c.client.Do(req)
		if derr != nil {
			err = fmt.Errorf("ending upstream session: %w", derr)
			return
		}
		drainClose(resp.Body)
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode <= 299,
			resp.StatusCode == http.StatusMethodNotAllowed,
			resp.StatusCode == http.StatusNotFound:
		default:
			err = fmt.Errorf("ending upstream session: %w", &HTTPError{Status: resp.StatusCode})
		}
	})
	return err
}

// readAllSized reads r to the end into one buffer sized from the declared
// Content-Length when there is one, instead of growing it step by step.
func readAllSized(r io.Reader, size int64, max int) ([]byte, error) {
	if size < 0 || size > int64(max) {
		// Unknown length: read into a reused buffer, then keep an exact copy,
		// rather than leaving behind a slice grown by doubling.
		buf := scratchPool.Get().(*bytes.Buffer)
		defer func() {
			if buf.Cap() <= 1<<20 {
				buf.Reset()
				scratchPool.Put(buf)
			}
		}()
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return nil, err
		}
		return bytes.Clone(buf.Bytes()), nil
	}
	b := make([]byte, 0, size+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

var scratchPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

var (
	hvJSON       = []string{"application/json"}
	hvAcceptBoth = []string{"application/json, text/event-stream"}
	hvAcceptSSE  = []string{"text/event-stream"}
)

// sidValue returns the session header's value slice, shared by every
// request of the session.
func (c *HTTPConn) sidValue(sid string) []string {
	if v := c.sidHeader.Load(); v != nil && (*v)[0] == sid {
		return *v
	}
	v := []string{sid}
	c.sidHeader.Store(&v)
	return v
}

// do sends a request. With a [DirectTransport] it goes straight to the
// transport (which returns redirects rather than following them); other
// clients go through http.Client as usual.
func (c *HTTPConn) do(req *http.Request) (*http.Response, error) {
	if dt, ok := c.client.Transport.(*DirectTransport); ok {
		return dt.RoundTrip(req)
	}
	return c.client.Do(req)
}
