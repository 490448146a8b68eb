package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/rawio"
)

// StdioConfig describes a server Sluice launches and talks to over its
// standard input and output.
type StdioConfig struct {
	// Command is the program and its arguments. The program is looked up in
	// Sluice's own PATH when it has no slash.
	Command []string
	// Env is the exact environment of the process; nil means an empty one,
	// never Sluice's own.
	Env []string
	// Dir is the working directory; empty means Sluice's.
	Dir string
	// Stderr receives each line the server writes to its standard error,
	// for the log; nil discards them.
	Stderr func(line string)
	// CloseTimeout is how long Close waits for the server to exit after
	// closing its standard input; 0 means 2s.
	CloseTimeout time.Duration
	// TermTimeout is how long Close waits after SIGTERM before SIGKILL; 0
	// means 2s.
	TermTimeout time.Duration
}

const (
	defaultCloseTimeout = 2 * time.Second
	defaultTermTimeout  = 2 * time.Second
	// drainTimeout bounds how long the output of an exited server is read
	// when something else (a child it left behind) keeps the pipe open.
	drainTimeout = time.Second
	// maxStderrLine bounds one line passed to StdioConfig.Stderr.
	maxStderrLine = 16 << 10
)

// stdioConn is a launched server speaking newline-delimited JSON-RPC.
type stdioConn struct {
	*core
	cfg StdioConfig
	cmd *exec.Cmd

	stdin  pipeEnd // our end of the server's standard input
	stdout pipeEnd
	stderr *os.File // nil when stderr is discarded

	// wsem serialises writes to stdin; a channel rather than a mutex so
	// that a caller whose context ends stops waiting for its turn.
	wsem chan struct{}

	exited     chan struct{} // closed when the process has been reaped
	waitErr    error         // valid after exited
	readerDone chan struct{}
	stderrDone chan struct{}
	monitored  chan struct{} // closed when the monitor goroutine is done

	// The nudge: see [stdioConn.checkQuiet].
	reads     atomic.Uint64 // messages read from stdout
	seen      atomic.Uint64 // reads at the last check
	pings     atomic.Uint64
	nudge     *time.Timer
	nudgeIn   time.Duration // nudgeAfter when the connection was made
	nudgeOn   atomic.Bool   // the timer is armed
	nudgeFree chan struct{}

	closeOnce sync.Once
}

// nudgeAfter is how long a call may wait without the server writing
// anything before Sluice pings the server.
var nudgeAfter = time.Second

var _ Conn = (*stdioConn)(nil)

// DialStdio launches the server and returns a connection to it. The process
// gets its own process group so that Close's signals reach the children it
// starts. ctx bounds only the launch: the process lives until Close, or
// until it exits on its own.
func DialStdio(ctx context.Context, cfg StdioConfig, opts Options) (Conn, error) {
	if len(cfg.Command) == 0 || cfg.Command[0] == "" {
		return nil, errors.New("stdio upstream needs a command")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = defaultCloseTimeout
	}
	if cfg.TermTimeout <= 0 {
		cfg.TermTimeout = defaultTermTimeout
	}

	// Pipes are made here rather than with cmd.StdinPipe and friends, so
	// that exec does not copy through goroutines of its own and so that
	// our ends support deadlines.
	var toClose []*os.File
	closeAll := func() {
		for _, f := range toClose {
			f.Close()
		}
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdio upstream: %w", err)
	}
	toClose = append(toClose, inR, inW)
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("stdio upstream: %w", err)
	}
	toClose = append(toClose, outR, outW)
	var errR, errW *os.File
	if cfg.Stderr != nil {
		errR, errW, err = os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("stdio upstream: %w", err)
		}
		toClose = append(toClose, errR, errW)
	}

	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Env = cfg.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = cfg.Dir
	cmd.Stdin = inR
	cmd.Stdout = outW
	if errW != nil {
		cmd.Stderr = errW
	}
	setProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		closeAll()
		return nil, fmt.Errorf("stdio upstream: start %s: %w", cfg.Command[0], err)
	}
	// The child holds its own copies now.
	inR.Close()
	outW.Close()
	if errW != nil {
		errW.Close()
	}

	c := &stdioConn{
		core:       newCore(opts),
		cfg:        cfg,
		cmd:        cmd,
		stdin:      rawPipe(inW),
		stdout:     rawPipe(outR),
		stderr:     errR,
		wsem:       make(chan struct{}, 1),
		exited:     make(chan struct{}),
		readerDone: make(chan struct{}),
		stderrDone: make(chan struct{}),
		monitored:  make(chan struct{}),
		nudgeFree:  make(chan struct{}, 1),
		nudgeIn:    nudgeAfter,
	}
	c.nudge = time.AfterFunc(time.Hour, c.checkQuiet)
	c.nudge.Stop()
	c.log = c.log.With("upstream_pid", cmd.Process.Pid)
	go c.wait()
	go c.readStdout()
	if errR != nil {
		go c.readStderr()
	} else {
		close(c.stderrDone)
	}
	go c.monitor()
	return c, nil
}

// pipeEnd is our end of a pipe to the server: an [*os.File], or a
// [rawio.File] where raw reads and writes work, for the same reason that
// Sluice's sockets use them.
type pipeEnd interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
}

func rawPipe(f *os.File) pipeEnd {
	if r := rawio.WrapFile(f); r != nil {
		return r
	}
	return f
}

func (c *stdioConn) wait() {
	c.waitErr = c.cmd.Wait()
	close(c.exited)
}

// readStdout reads one message per line. A line that is too long or does
// not decode is logged and skipped: one bad message must not take the
// whole server down.
func (c *stdioConn) readStdout() {
	defer close(c.readerDone)
	max := c.opts.Limits.MaxBytes
	if max <= 0 {
		max = mcp.DefaultMaxBytes
	}
	lr := newLineReader(c.stdout, max, false)
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			if err != io.EOF && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) {
				c.log.Warn("reading upstream stdout", "error", err)
			}
			return
		}
		if tooLong {
			c.log.Warn("skipping upstream message over the size limit", "limit", max)
			c.failRaw(lr.prefix, mcp.CodeMessageTooLarge, "the server's message exceeds the size limit")
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		// The message keeps slices of its buffer, so each gets its own.
		b := bytes.Clone(line)
		m, err := mcp.Decode(b, c.opts.Limits)
		if err != nil {
			c.log.Warn("skipping undecodable upstream message", "error", err, "bytes", len(b))
			var de *mcp.DecodeError
			if errors.As(err, &de) && de.Code == mcp.CodeMessageTooLarge {
				c.failRaw(b, mcp.CodeMessageTooLarge, "the server's message exceeds the size limit")
			} else {
				c.failRaw(b, mcp.CodeInternalError, "the server sent a malformed message")
			}
			continue
		}
		c.reads.Add(1)
		c.dispatch(m)
	}
}

func (c *stdioConn) readStderr() {
	defer close(c.stderrDone)
	lr := newLineReader(c.stderr, maxStderrLine, false)
	for {
		line, tooLong, err := lr.next()
		if err != nil {
			return
		}
		if tooLong {
			c.cfg.Stderr("[line longer than 16 KiB dropped]")
			continue
		}
		c.cfg.Stderr(string(line))
	}
}

// monitor ends the connection once the process has exited and its output
// has been read.
func (c *stdioConn) monitor() {
	defer close(c.monitored)
	<-c.exited
	// Whatever the process wrote before exiting is still in the pipes; a
	// child it left behind may hold them open, so the wait is bounded.
	drain := time.NewTimer(drainTimeout)
	defer drain.Stop()
	for _, ch := range []chan struct{}{c.readerDone, c.stderrDone} {
		select {
		case <-ch:
		case <-drain.C:
		}
	}
	c.stdout.SetReadDeadline(time.Now())
	if c.stderr != nil {
		c.stderr.SetReadDeadline(time.Now())
	}
	<-c.readerDone
	<-c.stderrDone
	// Children of the server that outlived it would otherwise be left
	// running with nobody to stop them.
	killProcessGroup(c.cmd)
	c.stdout.Close()
	if c.stderr != nil {
		c.stderr.Close()
	}
	c.stdin.Close()

	if c.isClosing() {
		c.finish(ErrClosed)
		return
	}
	status := "exit status 0"
	if c.waitErr != nil {
		status = c.waitErr.Error()
	}
	c.log.Info("upstream server exited", "status", status)
	c.finish(fmt.Errorf("%w: server exited: %s", ErrConnLost, status))
}

func (c *stdioConn) Call(ctx context.Context, req *mcp.Message, _ func(*mcp.Message)) (*mcp.Message, error) {
	return c.call(ctx, req, func(ctx context.Context, m *mcp.Message) (*mcp.Message, error) {
		if !c.nudgeOn.Load() && c.nudgeOn.CompareAndSwap(false, true) {
			c.nudge.Reset(c.nudgeIn)
		}
		return nil, c.write(ctx, m)
	})
}

// checkQuiet runs every nudgeIn while calls are pending. When the server
// has written nothing since the last check, it pings the server ("The
// receiver MUST respond promptly with an empty response"), once at a time.
//
// Why: a server can sit on an answer it has ready until more input
// arrives. Servers built on the go-sdk's stdio transport were seen to hold
// a call until the next message, seconds or for good (docs/benchmarks.md,
// "The stall, watched"); any input moves them, and a ping is the input the
// protocol has for asking whether a peer is alive. An answered ping
// changes nothing else. A server that handles one request at a time
// answers it after the call that holds it; an unanswered ping is dropped
// after ten intervals, and only one is out at a time.
func (c *stdioConn) checkQuiet() {
	c.mu.Lock()
	pending := len(c.pending)
	c.mu.Unlock()
	if pending == 0 || c.isClosing() {
		c.nudgeOn.Store(false)
		// A call registered meanwhile saw the timer armed and left it.
		c.mu.Lock()
		pending = len(c.pending)
		c.mu.Unlock()
		if pending == 0 || c.isClosing() || !c.nudgeOn.CompareAndSwap(false, true) {
			return
		}
	}
	reads := c.reads.Load()
	if reads == c.seen.Swap(reads) {
		select {
		case c.nudgeFree <- struct{}{}:
			go c.ping()
		default: // the last ping is still out
		}
	}
	c.nudge.Reset(c.nudgeIn)
}

// ping sends one ping and waits for its answer, which the reader takes
// like any other.
func (c *stdioConn) ping() {
	defer func() { <-c.nudgeFree }()
	n := c.pings.Add(1)
	id := strconv.AppendUint([]byte(`"sluice-ping-`), n, 10)
	id = append(id, '"')
	ctx, cancel := context.WithTimeout(context.Background(), 10*c.nudgeIn)
	defer cancel()
	c.log.Debug("no word from the server while a call waits; pinging it", "ping", n)
	if _, err := c.call(ctx, mcp.NewRequest(id, mcp.MethodPing, nil), func(ctx context.Context, m *mcp.Message) (*mcp.Message, error) {
		return nil, c.write(ctx, m)
	}); err != nil {
		c.log.Debug("ping of a quiet server failed", "ping", n, "err", err)
	}
}

func (c *stdioConn) Send(ctx context.Context, msg *mcp.Message) error {
	if err := c.usable(); err != nil {
		return err
	}
	return c.write(ctx, msg)
}

// write sends one message as one line. Raw parts of a message may carry
// insignificant whitespace from the peer that sent them, newlines
// included; the stdio transport forbids embedded newlines ("Messages are
// delimited by newlines, and MUST NOT contain embedded newlines"). JSON
// strings cannot hold a raw CR or LF, so any there is whitespace between
// tokens and becomes a space.
func (c *stdioConn) write(ctx context.Context, m *mcp.Message) error {
	b := m.Append(make([]byte, 0, 64+len(m.Params)+len(m.Result)+len(m.Extra)))
	if bytes.ContainsAny(b, "\r\n") {
		for i, ch := range b {
			if ch == '\n' || ch == '\r' {
				b[i] = ' '
			}
		}
	}
	b = append(b, '\n')
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.closing:
		return ErrClosed
	case <-c.done:
		return c.Err()
	}
	defer func() { <-c.wsem }()
	// select picks at random among ready cases: a context that ended while
	// the turn was awaited must still win over the write.
	if err := ctx.Err(); err != nil {
		return err
	}
	// Timed only when the debug line could be written: every call to a
	// stdio server passes here.
	var start time.Time
	if c.log.Enabled(ctx, slog.LevelDebug) {
		start = time.Now()
	}
	if _, err := c.stdin.Write(b); err != nil {
		if c.isClosing() {
			return ErrClosed
		}
		return fmt.Errorf("%w: writing to server: %v", ErrConnLost, err)
	}
	if !start.IsZero() && time.Since(start) > slowWrite {
		// The pipe was full: the server is not reading its input.
		c.log.Debug("slow write to the server's stdin", "took", time.Since(start), "bytes", len(b))
	}
	return nil
}

// slowWrite is how long a write to the server's stdin may take before it
// is logged (at debug level): a pipe write returns at once unless the
// server has stopped reading.
const slowWrite = 100 * time.Millisecond

// Close shuts the server down the way the MCP stdio transport asks
// ("the client SHOULD initiate shutdown by: first, closing the input
// stream to the child process (the server); waiting for the server to
// exit, or sending SIGTERM if the server does not exit within a
// reasonable time; sending SIGKILL if the server does not exit within a
// reasonable time after SIGTERM"), to its whole process group.
func (c *stdioConn) Close() error {
	c.closeOnce.Do(func() {
		c.beginClose()
		c.nudge.Stop()
		c.stdin.Close()
		if !c.waitExit(c.cfg.CloseTimeout) {
			c.log.Debug("upstream server still running after stdin closed; sending SIGTERM")
			terminateProcessGroup(c.cmd)
			if !c.waitExit(c.cfg.TermTimeout) {
				c.log.Warn("upstream server ignored SIGTERM; killing it")
				killProcessGroup(c.cmd)
				<-c.exited
			}
		}
		<-c.monitored
	})
	return nil
}

func (c *stdioConn) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.exited:
		return true
	case <-t.C:
		return false
	}
}

// failRaw answers the call that a message Sluice could not accept was
// meant for, when its id can be found near the start of the raw bytes, so
// that the caller learns at once instead of waiting out its timeout.
func (c *stdioConn) failRaw(raw []byte, code int64, msg string) {
	id := mcp.RecoverID(raw)
	if id == nil {
		return
	}
	c.deliver(id, mcp.NewErrorResponse(id, mcp.NewError(code, msg)))
}
