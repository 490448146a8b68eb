package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluicehq/sluice/internal/mcp"
)

// SSEConfig describes a server of the HTTP+SSE transport of protocol
// version 2024-11-05.
type SSEConfig struct {
	// URL is the SSE endpoint the client GETs.
	URL string
	// Header holds the configured upstream credentials, sent on the GET and
	// on every POST.
	Header http.Header
	// Client sends the requests; nil means the shared default client.
	Client *http.Client
}

// sseConn is a connection over the HTTP+SSE transport: one long GET on
// which the server sends everything, and a POST per message the client
// sends. "When a client connects, the server MUST send an endpoint event
// containing a URI for the client to use for sending messages. All
// subsequent client messages MUST be sent as HTTP POST requests to this
// endpoint. Server messages are sent as SSE message events."
type sseConn struct {
	*core
	header   http.Header
	client   *http.Client
	endpoint string

	life   context.Context
	cancel context.CancelFunc
	body   io.ReadCloser
	reader chan struct{} // closed when the stream reader is done
}

var _ Conn = (*sseConn)(nil)

// DialSSE opens the event stream at cfg.URL and waits, within ctx, for the
// endpoint event. The endpoint must have the same origin as cfg.URL: a
// server must not be able to send Sluice, with its credentials, elsewhere.
func DialSSE(ctx context.Context, cfg SSEConfig, opts Options) (Conn, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return nil, fmt.Errorf("upstream url %q: want an absolute http or https url", cfg.URL)
	}
	client := cfg.Client
	if client == nil {
		client = defaultClient()
	}
	c := &sseConn{
		core:   newCore(opts),
		header: cfg.Header.Clone(),
		client: client,
		reader: make(chan struct{}),
	}
	c.life, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// Until the endpoint arrives, ctx bounds the dial too.
	stop := context.AfterFunc(ctx, c.cancel)
	ok := false
	defer func() {
		if !ok {
			c.cancel()
		}
	}()

	req, err := http.NewRequestWithContext(c.life, http.MethodGet, base.String(), nil)
	if err != nil {
		return nil, err
	}
	copyHeader(req.Header, c.header)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, dialFailure(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		_, herr := errorBody(resp, errorBodyLimit, opts.Limits)
		if herr == nil {
			herr = &HTTPError{Status: resp.StatusCode}
		}
		return nil, fmt.Errorf("opening sse stream: %w", herr)
	}
	if mt := mediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		resp.Body.Close()
		return nil, fmt.Errorf("opening sse stream: unexpected content type %q", mt)
	}
	c.body = resp.Body
	er := newEventReader(resp.Body, c.maxBytes())
	for c.endpoint == "" {
		ev, err := er.Next()
		if err != nil {
			resp.Body.Close()
			if err == io.EOF {
				err = errors.New("stream ended before the endpoint event")
			}
			return nil, dialFailure(ctx, fmt.Errorf("opening sse stream: %w", err))
		}
		switch ev.Type {
		case "endpoint":
			ep, err := resolveEndpoint(resp.Request.URL, string(ev.Data))
			if err != nil {
				resp.Body.Close()
				return nil, err
			}
			c.endpoint = ep
		case "", "message":
			c.deliverEvent(ev) // unusual before the endpoint, but harmless
		}
	}
	if !stop() {
		resp.Body.Close()
		return nil, ctx.Err()
	}
	ok = true
	go c.read(er)
	return c, nil
}

func dialFailure(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// resolveEndpoint resolves the endpoint event's URI against the stream's
// URL and checks that it stays on the same origin.
func resolveEndpoint(base *url.URL, data string) (string, error) {
	ref, err := url.Parse(strings.TrimSpace(data))
	if err != nil {
		return "", fmt.Errorf("sse endpoint event: %w", err)
	}
	u := base.ResolveReference(ref)
	if !sameOrigin(u, base) {
		return "", fmt.Errorf("sse endpoint %q is not on the origin of %q", u.Redacted(), base.Redacted())
	}
	u.Fragment = ""
	return u.String(), nil
}

func (c *sseConn) maxBytes() int {
	if c.opts.Limits.MaxBytes > 0 {
		return c.opts.Limits.MaxBytes
	}
	return mcp.DefaultMaxBytes
}

// read delivers the stream's messages until it ends, which ends the
// connection: the stream is the session.
func (c *sseConn) read(er *eventReader) {
	defer close(c.reader)
	defer c.body.Close()
	for {
		ev, err := er.Next()
		if err != nil {
			if c.isClosing() {
				c.finish(ErrClosed)
				return
			}
			reason := "event stream ended"
			if err != io.EOF {
				reason = "event stream broke: " + err.Error()
			}
			c.log.Info("upstream sse stream ended", "reason", reason)
			c.finish(fmt.Errorf("%w: %s", ErrConnLost, reason))
			return
		}
		switch ev.Type {
		case "", "message":
			c.deliverEvent(ev)
		case "endpoint":
			c.log.Warn("ignoring repeated endpoint event from upstream")
		}
	}
}

func (c *sseConn) deliverEvent(ev event) {
	if ev.TooLarge {
		c.log.Warn("skipping upstream message over the size limit", "limit", c.maxBytes())
		return
	}
	m, err := mcp.Decode(ev.Data, c.opts.Limits)
	if err != nil {
		c.log.Warn("skipping undecodable upstream message", "error", err)
		return
	}
	c.dispatch(m)
}

func (c *sseConn) Call(ctx context.Context, req *mcp.Message, _ func(*mcp.Message)) (*mcp.Message, error) {
	return c.call(ctx, req, c.post)
}

func (c *sseConn) Send(ctx context.Context, msg *mcp.Message) error {
	if err := c.usable(); err != nil {
		return err
	}
	m, err := c.post(ctx, msg)
	if err != nil {
		return err
	}
	if m != nil {
		return fmt.Errorf("upstream rejected the message: %w", m.Error)
	}
	return nil
}

// post sends m to the endpoint. The answer comes on the stream; a server
// that rejects the POST with a JSON-RPC error body has that error returned
// as the response, and one that answers the POST itself with the response
// (not what the transport says, but seen) has it dispatched.
func (c *sseConn) post(ctx context.Context, m *mcp.Message) (*mcp.Message, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.life, cancel)()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.endpoint, bytes.NewReader(m.Encode()))
	if err != nil {
		return nil, err
	}
	setCallHeaders(ctx, req.Header, c.header)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case c.isClosing():
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("posting to sse endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		drainClose(resp.Body)
		return nil, fmt.Errorf("%w: the sse endpoint answered 404", ErrSessionExpired)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		em, herr := errorBody(resp, c.maxBytes(), c.opts.Limits)
		if em != nil && m.IsRequest() {
			return em, nil
		}
		if em != nil {
			return nil, fmt.Errorf("upstream rejected the message: %w", em.Error)
		}
		return nil, herr
	}
	if mediaType(resp.Header.Get("Content-Type")) == "application/json" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, int64(c.maxBytes())+1))
		if len(b) <= c.maxBytes() && len(bytes.TrimSpace(b)) > 0 {
			if rm, err := mcp.Decode(b, c.opts.Limits); err == nil && rm.IsResponse() {
				c.dispatch(rm)
			}
		}
	}
	drainClose(resp.Body)
	return nil, nil
}

// Close ends the event stream, which ends the session.
func (c *sseConn) Close() error {
	c.beginClose()
	c.cancel()
	<-c.reader
	c.finish(ErrClosed)
	return nil
}
