package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/mcp"
)

// core is what the transports with one inbound channel (stdio, HTTP+SSE)
// share: the table of pending calls, correlated by the exact bytes of their
// IDs, and the connection's lifecycle.
type core struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	pending map[string]chan *mcp.Message

	closing   chan struct{} // closed when Close starts
	closeOnce sync.Once
	done      chan struct{} // closed when the connection is gone
	doneOnce  sync.Once
	err       error // set before done is closed
}

func newCore(opts Options) *core {
	return &core{
		opts:    opts,
		log:     logger(opts),
		pending: make(map[string]chan *mcp.Message),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

func logger(opts Options) *slog.Logger {
	if opts.Logger != nil {
		return opts.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// beginClose marks the connection as closing; pending calls fail with
// [ErrClosed]. It reports whether this was the first call.
func (c *core) beginClose() bool {
	first := false
	c.closeOnce.Do(func() {
		close(c.closing)
		first = true
	})
	return first
}

func (c *core) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// finish records why the connection ended and closes done; only the first
// call counts.
func (c *core) finish(err error) {
	c.doneOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
	})
}

func (c *core) Done() <-chan struct{} { return c.done }

func (c *core) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// call registers req, sends it with send and waits for the response that
// carries the same ID bytes. send may return a response of its own (an
// HTTP+SSE server answering the POST with a JSON-RPC error), which then
// ends the call.
func (c *core) call(ctx context.Context, req *mcp.Message, send func(context.Context, *mcp.Message) (*mcp.Message, error)) (*mcp.Message, error) {
	if req.ID == nil || req.Method == "" {
		return nil, errors.New("call needs a request with a method and an id")
	}
	if err := c.usable(); err != nil {
		return nil, err
	}
	// A caller that has already given up must not reach the server: the
	// request would run for nobody, followed at once by its cancellation.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	key := string(req.ID)
	ch := make(chan *mcp.Message, 1)
	c.mu.Lock()
	if _, dup := c.pending[key]; dup {
		c.mu.Unlock()
		return nil, fmt.Errorf("request id %s is already pending", req.ID)
	}
	c.pending[key] = ch
	c.mu.Unlock()
	defer c.unregister(key, ch)

	if resp, err := send(ctx, req); err != nil || resp != nil {
		return resp, err
	}
	select {
	case m := <-ch:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closing:
		return nil, fmt.Errorf("%s: %w", req.Method, ErrClosed)
	case <-c.done:
		// A response read just before the end still counts.
		select {
		case m := <-ch:
			return m, nil
		default:
		}
		return nil, fmt.Errorf("%s: %w", req.Method, c.Err())
	}
}

func (c *core) unregister(key string, ch chan *mcp.Message) {
	c.mu.Lock()
	if c.pending[key] == ch {
		delete(c.pending, key)
	}
	c.mu.Unlock()
}

// usable returns the error a new call or send fails with, if any.
func (c *core) usable() error {
	if c.isClosing() {
		return ErrClosed
	}
	if err := c.Err(); err != nil {
		return err
	}
	return nil
}

// dispatch routes a message read from the server: a response to its
// pending call, everything else to [Options.Inbound].
func (c *core) dispatch(m *mcp.Message) {
	if m.IsResponse() && c.deliver(m.ID, m) {
		return
	}
	c.inbound(m)
}

func (c *core) deliver(id jsontext.Value, m *mcp.Message) bool {
	c.mu.Lock()
	ch, ok := c.pending[string(id)]
	if ok {
		delete(c.pending, string(id))
	}
	c.mu.Unlock()
	if ok {
		ch <- m // buffered, and only one sender after the delete
	}
	return ok
}

func (c *core) inbound(m *mcp.Message) {
	deliverInbound(c.opts, c.log, m)
}

func deliverInbound(opts Options, log *slog.Logger, m *mcp.Message) {
	if opts.Inbound == nil {
		log.Debug("dropping upstream message: no inbound handler", "method", m.Method, "id", string(m.ID))
		return
	}
	opts.Inbound(m)
}
