package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 connections with a handler, reading and writing
// the requests on the hot path itself: a POST with a Content-Length and a
// plain head (see [parseRequest]). On such a request net/http's server
// spent about a sixth of Sluice's CPU (one-client load run): its header
// reader, its response writer's two layers of buffering, and a goroutine
// started and stopped per request to notice a client that hangs up. The first request on a connection that this package does not read
// hands the connection, with the bytes already read, to net/http through
// [Server.Fallback], for the rest of its life: a GET stream, a DELETE, a
// chunked or oversized head, anything odd or hostile is read and judged by
// net/http as before.
type Server struct {
	Handler http.Handler
	// ReadHeaderTimeout bounds the time a request head may take to arrive
	// once its first bytes have (waiting for a request is not bounded, as
	// with net/http's server without an IdleTimeout).
	ReadHeaderTimeout time.Duration
	// ErrorLog receives the panics of handlers; nil means the log
	// package's standard logger.
	ErrorLog *log.Logger

	initOnce sync.Once
	fallback *fallbackListener
	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	closing  atomic.Bool
}

// WatchAfter is how long a request runs before its connection is watched
// for the client hanging up (cancelling the request's context). Most calls
// end well before it, at no cost; a call that runs longer learns of a
// hang-up up to this much later than with net/http.
const WatchAfter = 20 * time.Millisecond

// maxDiscard is how much of a request body the handler left unread is
// read and dropped to keep the connection; more than that closes it.
const maxDiscard = 256 << 10

// bufferLimit is how much of a response is held to be sent with a
// Content-Length; a larger one, or one the handler flushes, is sent as it
// is written (chunked, unless the handler declared its length).
const bufferLimit = 128 << 10

// keepBuffer is the largest response buffer a connection keeps for its
// next response.
const keepBuffer = 16 << 10

// headRoom is the room a response's body is held behind, for its head.
const headRoom = 512

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.fallback = &fallbackListener{conns: make(chan net.Conn), closed: make(chan struct{})}
		s.conns = map[*conn]struct{}{}
	})
}

// Fallback returns the listener on which the connections this server
// hands over arrive; serve it with an [http.Server] with the same handler.
func (s *Server) Fallback() net.Listener {
	s.init()
	return s.fallback
}

// Serve accepts connections on ln until it is closed or Shutdown is
// called; it then returns [http.ErrServerClosed].
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.fallback.addr.Store(ln.Addr())
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			// As net/http does: running out of descriptors, or a connection
			// reset before it was accepted, must not end the server.
			if te, ok := err.(interface{ Temporary() bool }); ok && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		cc := s.newConn(c)
		if cc == nil {
			c.Close()
			continue
		}
		go cc.serve()
	}
}

// Shutdown stops accepting connections, closes the idle ones, and waits
// for the others to finish their request (or ctx to end). It does not
// shut down the fallback's server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	s.closing.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.init()
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.c.Close()
	}
	return nil
}

// closeIdle closes the idle connections and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.c.Close()
		}
	}
	return len(s.conns) == 0
}

func (s *Server) newConn(c net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return nil
	}
	cc := &conn{s: s, c: c, remote: c.RemoteAddr().String()}
	cc.br = bufio.NewReaderSize(&cc.source, 4<<10)
	cc.source.c = c
	s.conns[cc] = struct{}{}
	return cc
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// The states of a connection: waiting for a request (Shutdown may close
// it), serving one, or closed by Shutdown.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type conn struct {
	s      *Server
	c      net.Conn
	br     *bufio.Reader
	source source
	remote string
	state  atomic.Int32
	out    []byte // room for the next response's head and framed body
	body   []byte // room for the next response's body

	// The watch for a client hanging up during a long request.
	watchTimer *time.Timer
	wmu        sync.Mutex
	wstate     int // watchIdle, watchArmed or watchReading
	wdone      chan struct{}
	wcancel    context.CancelCauseFunc
	aborting   atomic.Bool
}

// The states of a connection's watch: no request to watch, a timer
// running for one, a read under way.
const (
	watchIdle = iota
	watchArmed
	watchReading
)

// source is what the connection's reader reads: a byte a watch read
// ahead, then the connection.
type source struct {
	c       net.Conn
	pending bool
	b       byte
}

func (s *source) Read(p []byte) (int, error) {
	if s.pending && len(p) > 0 {
		p[0] = s.b
		s.pending = false
		return 1, nil
	}
	return s.c.Read(p)
}

// ErrClientGone is the cause of a request context that ended because the
// client closed its connection.
var ErrClientGone = errors.New("client closed the connection")

func (c *conn) serve() {
	defer c.s.forget(c)
	for {
		c.state.Store(stateIdle)
		if c.s.closing.Load() {
			c.c.Close()
			return
		}
		if _, err := c.br.Peek(1); err != nil {
			c.c.Close()
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // closed by Shutdown
		}
		head, err := c.head()
		if err != nil {
			c.c.Close()
			return
		}
		var req *http.Request
		if head != nil {
			req = parseRequest(string(head))
		}
		if req == nil {
			c.handOver()
			return
		}
		c.br.Discard(len(head))
		if !c.serveRequest(req) {
			c.c.Close()
			return
		}
	}
}

// head returns the head at the start of the buffer, reading the rest of
// it under ReadHeaderTimeout when it has not all arrived; nil when it is
// not one this package reads.
func (c *conn) head() ([]byte, error) {
	b, _ := c.br.Peek(c.br.Buffered())
	end, ok := headEnd(b, 0)
	if !ok {
		return nil, nil
	}
	if end > 0 {
		return b[:end], nil
	}
	if t := c.s.ReadHeaderTimeout; t > 0 {
		c.c.SetReadDeadline(time.Now().Add(t))
		defer c.c.SetReadDeadline(time.Time{})
	}
	return peekHead(c.br)
}

// handOver gives the connection, and what was read of it, to net/http.
func (c *conn) handOver() {
	c.s.forget(c)
	hc := &handedConn{Conn: c.c, r: c.br}
	select {
	case c.s.fallback.conns <- hc:
	case <-c.s.fallback.closed:
		c.c.Close()
	}
}

// serveRequest runs the handler for req and writes its response; it
// reports whether the connection may serve another request.
func (c *conn) serveRequest(req *http.Request) (keep bool) {
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &response{c: c, declared: -1}
	w.body = requestBody{Body: Body{R: c.br, N: req.ContentLength}, c: c, w: w}
	req.Body = &w.body
	req.RemoteAddr = c.remote
	req = req.WithContext(ctx)
	w.closeAfter = req.Close
	c.wcancel = cancel
	if req.ContentLength == 0 {
		c.arm()
	}
	defer func() {
		c.disarm()
		cancel(context.Canceled)
		if err := recover(); err != nil {
			keep = false
			if err != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.logf("http: panic serving %v: %v\n%s", c.remote, err, buf)
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, req)
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || c.s.closing.Load() {
		return false
	}
	// A body the handler left unread is dropped, or costs the connection.
	if w.body.N > 0 {
		if w.body.N > maxDiscard {
			return false
		}
		if _, err := w.body.discard(); err != nil {
			return false
		}
	}
	return true
}

// arm starts the watch's timer for the current request: the request body
// has been read, so nothing else reads the connection.
func (c *conn) arm() {
	if c.br.Buffered() > 0 {
		return // the client sent more already: it was there a moment ago
	}
	c.wmu.Lock()
	c.wstate = watchArmed
	c.wmu.Unlock()
	if c.watchTimer == nil {
		c.watchTimer = time.AfterFunc(WatchAfter, c.watch)
	} else {
		c.watchTimer.Reset(WatchAfter)
	}
}

// watch reads the connection while a long request runs: an end or an
// error means the client is gone; a byte is the start of its next
// request, kept for the reader.
func (c *conn) watch() {
	c.wmu.Lock()
	if c.wstate != watchArmed {
		c.wmu.Unlock()
		return
	}
	c.wstate = watchReading
	done := make(chan struct{})
	c.wdone = done
	cancel := c.wcancel
	c.wmu.Unlock()
	go func() {
		defer close(done)
		var b [1]byte
		n, err := c.c.Read(b[:])
		if n == 1 {
			c.source.b, c.source.pending = b[0], true
			return
		}
		if err != nil && !c.aborting.Load() {
			cancel(ErrClientGone)
		}
	}()
}

// disarm ends the watch of the request that has ended, stopping its read
// if one is under way.
func (c *conn) disarm() {
	if c.watchTimer == nil {
		return
	}
	c.watchTimer.Stop()
	c.wmu.Lock()
	st, done := c.wstate, c.wdone
	c.wstate, c.wdone = watchIdle, nil
	c.wmu.Unlock()
	if st != watchReading {
		return
	}
	c.aborting.Store(true)
	c.c.SetReadDeadline(time.Unix(1, 0))
	<-done
	c.c.SetReadDeadline(time.Time{})
	c.aborting.Store(false)
}

// requestBody is the body of a request: N bytes more from the
// connection's reader.
type requestBody struct {
	Body
	c      *conn
	w      *response
	closed bool
}

var errBodyClosed = errors.New("http: invalid Read on closed Body")

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed || b.w.done {
		return 0, errBodyClosed
	}
	more := b.N > 0
	n, err := b.Body.Read(p)
	if more && b.N == 0 {
		b.c.arm() // the body is read: the connection is the watch's
	}
	return n, err
}

func (b *requestBody) Close() error {
	b.closed = true
	return nil
}

func (b *requestBody) discard() (int, error) {
	n, err := b.R.Discard(int(b.N))
	b.N -= int64(n)
	return n, err
}

// response is the [http.ResponseWriter] of one request.
type response struct {
	c          *conn
	body       requestBody
	header     http.Header
	status     int   // 0 until the handler writes the head or a byte
	declared   int64 // the handler's Content-Length, or -1
	written    int64
	buf        []byte // headRoom bytes, then the body as written, until the head is sent
	pending    []byte // what is ready to send: the head, then the framed body
	headSent   bool
	chunked    bool
	closeAfter bool
	done       bool
}

var (
	_ http.ResponseWriter = (*response)(nil)
	_ http.Flusher        = (*response)(nil)
)

var errFinished = errors.New("http1: write after the handler returned")

func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 4)
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || w.done {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once; the final one follows.
		_, _ = w.c.c.Write(w.appendHead(nil, code, -1))
		return
	}
	w.status = code
	if cl := w.header["Content-Length"]; len(cl) == 1 {
		if n, ok := length(cl[0]); ok {
			w.declared = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
}

// bodyAllowed reports whether the status allows a body.
func (w *response) bodyAllowed() bool {
	return w.status != http.StatusNoContent && w.status != http.StatusNotModified && w.status >= 200
}

func (w *response) Write(p []byte) (int, error) {
	if w.done {
		return 0, errFinished
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.headSent && len(w.held())+len(p) > bufferLimit {
		// Too much to hold: the head goes now, the body as it comes.
		w.sendHead(true)
	}
	if !w.headSent {
		if w.buf == nil {
			w.buf = w.c.body
			w.c.body = nil
			if cap(w.buf) < headRoom+len(p) {
				w.buf = make([]byte, 0, max(headRoom+len(p), 2*headRoom))
			}
			w.buf = w.buf[:headRoom]
		}
		w.buf = append(w.buf, p...)
		return len(p), nil
	}
	w.frame(p)
	if len(w.pending) >= 4<<10 {
		return len(p), w.send()
	}
	return len(p), nil
}

// frame appends p to what is to be sent, as a chunk when the body is
// chunked.
func (w *response) frame(p []byte) {
	switch {
	case len(p) == 0:
	case w.chunked:
		w.pending = strconv.AppendInt(w.pending, int64(len(p)), 16)
		w.pending = append(w.pending, "\r\n"...)
		w.pending = append(w.pending, p...)
		w.pending = append(w.pending, "\r\n"...)
	default:
		w.pending = append(w.pending, p...)
	}
}

// Flush sends the head and what the handler wrote so far; the rest of
// the body follows chunked (or as its declared Content-Length says).
func (w *response) Flush() {
	if w.done {
		return
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(true)
	}
	_ = w.send()
}

// sendHead makes the head and the body written so far ready to send.
// Streaming, the body's length is not known yet.
func (w *response) sendHead(streaming bool) {
	length := int64(-1)
	switch {
	case !w.bodyAllowed():
	case w.declared >= 0:
	case streaming:
		w.chunked = true
	default:
		length = int64(len(w.held()))
	}
	head := w.appendHead(w.c.out[:0], w.status, length)
	w.headSent = true
	if body := w.held(); len(body) > 0 && !w.chunked && len(head) <= headRoom {
		// The head goes into the room left before the body: one write,
		// and the body is not copied again.
		start := headRoom - len(head)
		copy(w.buf[start:], head)
		w.pending = w.buf[start:]
		w.c.out = head[:0]
		return
	}
	w.c.out = nil
	w.pending = head
	w.frame(w.held())
}

// held returns the body held before the head is sent.
func (w *response) held() []byte {
	if len(w.buf) < headRoom {
		return nil
	}
	return w.buf[headRoom:]
}

// send writes out what is ready.
func (w *response) send() error {
	if len(w.pending) == 0 {
		return nil
	}
	_, err := w.c.c.Write(w.pending)
	w.pending = w.pending[:0]
	if err != nil {
		w.closeAfter = true
	}
	return err
}

// finish ends the response after the handler returned.
func (w *response) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.headSent {
		w.sendHead(false)
	} else if w.chunked {
		w.pending = append(w.pending, "0\r\n\r\n"...)
	}
	if w.declared >= 0 && w.written != w.declared && w.bodyAllowed() {
		w.closeAfter = true // the body fell short of its declared length
	}
	err := w.send()
	w.done = true
	switch {
	case w.c.out != nil:
		// The head was written into the body's room; the head's own
		// buffer stayed with the connection.
	case cap(w.pending) <= keepBuffer:
		w.c.out = w.pending[:0]
	}
	if w.buf != nil && cap(w.buf) <= keepBuffer {
		w.c.body = w.buf[:0]
	}
	w.pending, w.buf = nil, nil
	return err
}

// appendHead appends the status line and header of a response: the
// handler's fields (names that are not tokens dropped, line breaks in
// values made spaces, as net/http does), then, for a final response,
// Date, a sniffed Content-Type, the framing, and Connection: close when
// the connection ends after this response.
func (w *response) appendHead(b []byte, status int, length int64) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if text := http.StatusText(status); text != "" {
		b = append(b, text...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(status), 10)
	}
	b = append(b, "\r\n"...)
	final := status >= 200
	if final && w.c.s.closing.Load() {
		w.closeAfter = true
	}
	for k, vs := range w.header {
		if !Token(k) {
			continue
		}
		if final {
			switch k {
			case "Transfer-Encoding", "Trailer":
				continue // the framing is this writer's
			case "Content-Length":
				if w.declared < 0 {
					continue // set after WriteHeader, or invalid: not the framing
				}
			case "Connection":
				for _, v := range vs {
					if v == "close" {
						w.closeAfter = true
					}
				}
			}
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	if !final {
		return append(b, "\r\n"...)
	}
	if _, ok := w.header["Date"]; !ok {
		b = append(b, "Date: "...)
		b = append(b, httpDate()...)
		b = append(b, "\r\n"...)
	}
	if _, ok := w.header["Content-Type"]; !ok && w.bodyAllowed() && len(w.held()) > 0 {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(w.held())...)
		b = append(b, "\r\n"...)
	}
	switch {
	case w.chunked:
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	case length >= 0 && w.declared < 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, "\r\n"...)
	}
	if w.closeAfter {
		if _, ok := w.header["Connection"]; !ok {
			b = append(b, "Connection: close\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}

// appendFieldValue appends a header value with its line breaks made
// spaces and the white space around it trimmed, as net/http writes values.
func appendFieldValue(b []byte, v string) []byte {
	start := len(b)
	b = append(b, v...)
	for i := start; i < len(b); i++ {
		if b[i] == '\r' || b[i] == '\n' {
			b[i] = ' '
		}
	}
	end := len(b)
	for end > start && isASCIISpace(b[end-1]) {
		end--
	}
	lead := start
	for lead < end && isASCIISpace(b[lead]) {
		lead++
	}
	if lead > start {
		copy(b[start:], b[lead:end])
		end -= lead - start
	}
	return b[:end]
}

func isASCIISpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// httpDate returns the Date header's value for now, formatted once a
// second.
func httpDate() string {
	now := time.Now().Unix()
	if d := dateCache.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &cachedDate{unix: now, text: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	dateCache.Store(d)
	return d.text
}

type cachedDate struct {
	unix int64
	text string
}

var dateCache atomic.Pointer[cachedDate]

// handedConn is a connection handed to net/http: it reads first what was
// read ahead of it.
type handedConn struct {
	net.Conn
	r io.Reader
}

func (h *handedConn) Read(p []byte) (int, error) { return h.r.Read(p) }

// CloseWrite lets net/http end its side of the connection gracefully.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// fallbackListener delivers the handed connections to net/http's server.
type fallbackListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	addr   atomic.Value // net.Addr
}

func (l *fallbackListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *fallbackListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *fallbackListener) Addr() net.Addr {
	if a, ok := l.addr.Load().(net.Addr); ok {
		return a
	}
	return &net.TCPAddr{}
}
