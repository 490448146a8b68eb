package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/internal/http1"
	"github.com/sluicehq/sluice/internal/rawio"
)

// DirectTransport is an HTTP/1.1 client transport for plain-http upstreams
// (a server beside Sluice on the same host or network) that writes the
// request and reads the response on the calling goroutine, over a pool of
// kept-alive connections. net/http's Transport hands every request to two
// goroutines of its own per connection; on the hot path of every tool call
// those hand-offs cost more CPU than the rest of the gateway. Requests for
// other schemes (https) go to Fallback. Redirects are returned to the
// caller, never followed: an upstream is reached at the URL configured.
type DirectTransport struct {
	Fallback http.RoundTripper
	// MaxIdlePerHost bounds the idle connections kept per host (default 128).
	MaxIdlePerHost int
	// IdleTimeout drops connections idle this long (default 30s), before a
	// server is likely to close them under us.
	IdleTimeout time.Duration

	dialer net.Dialer
	mu     sync.Mutex
	idle   map[string][]*directConn
}

var _ http.RoundTripper = (*DirectTransport)(nil)

type directConn struct {
	c        net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

// probeAfter is how long a pooled connection may sit idle before it is
// probed for a close by the server.
const probeAfter = 50 * time.Millisecond

// errRetry marks a failure on a reused connection before the request was
// written, which is safe to retry on a fresh one.
var errRetry = errors.New("retry on a new connection")

func (t *DirectTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" || req.URL.User != nil {
		fb := t.Fallback
		if fb == nil {
			fb = http.DefaultTransport
		}
		return fb.RoundTrip(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	for attempt := 0; ; attempt++ {
		resp, err := t.roundTrip(req, addr)
		if errors.Is(err, errRetry) && attempt == 0 {
			continue
		}
		return resp, err
	}
}

func (t *DirectTransport) roundTrip(req *http.Request, addr string) (*http.Response, error) {
	ctx := req.Context()
	dc, reused, err := t.get(ctx, addr)
	if err != nil {
		return nil, err
	}
	// Cancelling the request aborts whatever I/O is under way.
	stop := context.AfterFunc(ctx, func() { dc.c.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		dc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if err := writeRequest(dc.bw, req); err != nil {
		return fail(err)
	}
	if err := dc.bw.Flush(); err != nil {
		if reused && req.GetBody != nil {
			// The server closed the idle connection before anything reached it.
			if body, gerr := req.GetBody(); gerr == nil {
				req.Body = body
				stop()
				dc.c.Close()
				return nil, errRetry
			}
		}
		return fail(err)
	}
	resp, fast, err := http1.ReadResponse(dc.br, req)
	if err != nil {
		return fail(err)
	}
	body := &directBody{rc: resp.Body, t: t, dc: dc, addr: addr, stop: stop, keep: !resp.Close && !req.Close}
	if fast {
		body.fixed = http1.Body{R: dc.br, N: resp.ContentLength}
	}
	resp.Body = body
	return resp, nil
}

// writeRequest writes req as HTTP/1.1. The requests the gateway sends (a
// body of known length, headers it has checked) are written directly;
// anything else, or a header net/http would refuse or rewrite, goes through
// [http.Request.Write], which also produces its error.
func writeRequest(w *bufio.Writer, req *http.Request) error {
	if !plainRequest(req) {
		return req.Write(w)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		w.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	if req.Body != nil || req.Method == http.MethodPost || req.Method == http.MethodPut {
		w.WriteString("Content-Length: ")
		var digits [20]byte
		w.Write(strconv.AppendInt(digits[:0], req.ContentLength, 10))
		w.WriteString("\r\n")
	}
	if req.Close {
		w.WriteString("Connection: close\r\n")
	}
	for k, vs := range req.Header {
		for _, v := range vs {
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	w.WriteString("\r\n")
	if req.Body == nil {
		return nil
	}
	n, err := io.Copy(w, req.Body)
	req.Body.Close()
	if err == nil && n != req.ContentLength {
		err = fmt.Errorf("request body was %d bytes, declared %d", n, req.ContentLength)
	}
	return err
}

// plainRequest reports whether writeRequest may write req itself: a known
// body length, no trailers or transfer encodings, and header names and
// values that are valid as they stand (nothing to reject or rewrite).
func plainRequest(req *http.Request) bool {
	if req.ContentLength < 0 || (req.ContentLength > 0 && req.Body == nil) || req.Body == http.NoBody ||
		len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 || req.URL.Opaque != "" || req.URL.Host == "" ||
		!http1.PlainHost(req.URL.Host) || (req.Host != "" && !http1.PlainHost(req.Host)) {
		return false
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Connection":
			return false
		}
		if !http1.Token(k) {
			return false
		}
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if b := v[i]; (b < ' ' && b != '\t') || b == 0x7f {
					return false
				}
			}
		}
	}
	return true
}

func (t *DirectTransport) get(ctx context.Context, addr string) (*directConn, bool, error) {
	timeout := t.IdleTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t.mu.Lock()
	list := t.idle[addr]
	for len(list) > 0 {
		dc := list[len(list)-1]
		list = list[:len(list)-1]
		idle := time.Since(dc.idleFrom)
		// A connection idle for a moment is as good as open: servers close
		// idle connections after seconds, so only older ones are probed.
		if idle < timeout && dc.br.Buffered() == 0 && (idle < probeAfter || alive(dc.c)) {
			t.idle[addr] = list
			t.mu.Unlock()
			return dc, true, nil
		}
		dc.c.Close()
	}
	if len(list) == 0 {
		delete(t.idle, addr)
	}
	t.mu.Unlock()
	c, err := t.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c = rawio.WrapConn(c)
	return &directConn{c: c, br: bufio.NewReaderSize(c, 16<<10), bw: bufio.NewWriterSize(c, 16<<10)}, false, nil
}

func (t *DirectTransport) put(addr string, dc *directConn) {
	max := t.MaxIdlePerHost
	if max <= 0 {
		max = 128
	}
	dc.idleFrom = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.idle == nil {
		t.idle = map[string][]*directConn{}
	}
	if len(t.idle[addr]) >= max {
		dc.c.Close()
		return
	}
	t.idle[addr] = append(t.idle[addr], dc)
}

// CloseIdleConnections closes the pooled connections.
func (t *DirectTransport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, dc := range list {
			dc.c.Close()
		}
	}
	if c, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// directBody returns the connection to the pool once the response body has
// been read to its end and closed; a body closed early costs the connection.
// A body of a length known from the head is read from the connection
// directly (fixed, with rc nil); any other through net/http's reader (rc).
type directBody struct {
	rc    io.ReadCloser
	fixed http1.Body
	t     *DirectTransport
	dc    *directConn
	addr  string
	stop  func() bool
	keep  bool

	mu     sync.Mutex
	eof    bool
	closed bool
}

func (b *directBody) Read(p []byte) (int, error) {
	var n int
	var err error
	if b.rc != nil {
		n, err = b.rc.Read(p)
	} else {
		n, err = b.fixed.Read(p)
	}
	if err == io.EOF {
		b.mu.Lock()
		b.eof = true
		b.mu.Unlock()
	}
	return n, err
}

func (b *directBody) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	reuse := b.eof && b.keep
	b.mu.Unlock()
	var err error
	if b.rc != nil {
		err = b.rc.Close()
	}
	if !b.stop() {
		// The request's context ended and poisoned the connection's deadline.
		reuse = false
	}
	if reuse && b.dc.br.Buffered() == 0 {
		b.t.put(b.addr, b.dc)
	} else {
		b.dc.c.Close()
	}
	return err
}
