// Package upstream connects Sluice to the MCP servers it fronts: servers it
// launches over stdio, Streamable HTTP servers of either protocol era, and
// legacy HTTP+SSE servers. A [Conn] moves JSON-RPC messages; the MCP
// handshake (initialize or server/discover), ID allocation and routing are
// the gateway's job.
package upstream

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/sluicehq/sluice/internal/mcp"
)

// Conn is a client-side connection to one upstream server.
type Conn interface {
	// Call sends the request req, whose ID the caller chose and keeps unique
	// on this connection, and waits for its response. Messages the server
	// sends in relation to req before the response (notifications, and
	// server-to-client requests on legacy servers) are passed to related
	// when the transport can tell (a Streamable HTTP response stream);
	// otherwise they go to [Options.Inbound]. related may be nil. When ctx
	// ends first, Call returns ctx.Err(); on Streamable HTTP it also closes
	// the response stream, which modern servers treat as cancellation.
	Call(ctx context.Context, req *mcp.Message, related func(*mcp.Message)) (*mcp.Message, error)
	// Send sends a notification, or a response to a server-to-client request.
	Send(ctx context.Context, msg *mcp.Message) error
	// Done is closed when the connection is lost for good (the process
	// exited, the SSE stream ended); Err then says why.
	Done() <-chan struct{}
	Err() error
	// Close shuts the connection down; for a launched server as the MCP spec
	// says: close its stdin, wait, SIGTERM, wait, SIGKILL.
	Close() error
}

// Options are common to all transports.
type Options struct {
	// Inbound receives messages not tied to a request: notifications and
	// server-to-client requests (all of them on stdio and HTTP+SSE; those on
	// the GET stream on Streamable HTTP). It must not block for long.
	Inbound func(*mcp.Message)
	// Limits bound the messages accepted from the server.
	Limits mcp.Limits
	Logger *slog.Logger
}

// HTTPError is returned by Call when a server answers with an HTTP error
// status and a body that is not a JSON-RPC response.
type HTTPError struct {
	Status int
	Body   []byte // first few KiB
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("upstream answered http %d", e.Status)
}

type headerKey struct{}

// WithHeader returns a context whose Streamable HTTP requests carry the
// extra headers h (e.g. Mcp-Param-* mirrored from tool arguments).
func WithHeader(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, headerKey{}, h)
}

// HeaderFrom returns the headers set by [WithHeader].
func HeaderFrom(ctx context.Context) http.Header {
	h, _ := ctx.Value(headerKey{}).(http.Header)
	return h
}
