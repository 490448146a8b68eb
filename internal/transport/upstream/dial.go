package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Errors a [Conn] wraps, so that the gateway can tell why a call failed
// without matching strings.
var (
	// ErrClosed: the connection was closed by [Conn.Close] (or is being
	// closed) while the call was pending, or before it started.
	ErrClosed = errors.New("upstream connection closed")
	// ErrConnLost: the connection ended on its own: the launched server
	// exited, or the event stream of an HTTP+SSE server ended.
	ErrConnLost = errors.New("upstream connection lost")
	// ErrSessionExpired: a Streamable HTTP or HTTP+SSE server answered HTTP
	// 404 to a request carrying its session, so the session is gone and a
	// new connection must be set up.
	ErrSessionExpired = errors.New("upstream session expired")
	// ErrNoResponse: a response stream ended before it carried the
	// response to the request (and could not be resumed).
	ErrNoResponse = errors.New("upstream response stream ended without a response")
)

// Transport names accepted in [Spec.Transport].
const (
	TransportStdio          = "stdio"
	TransportStreamableHTTP = "streamable-http"
	TransportSSE            = "sse"
)

// Spec says how to reach one upstream server.
type Spec struct {
	// Transport is one of "stdio", "streamable-http" or "sse".
	Transport string
	// Stdio is used when Transport is "stdio".
	Stdio StdioConfig
	// URL, Header and Client are used by the HTTP transports.
	URL    string
	Header http.Header
	Client *http.Client
}

// Dial connects to the upstream described by spec.
func Dial(ctx context.Context, spec Spec, opts Options) (Conn, error) {
	switch spec.Transport {
	case TransportStdio:
		return DialStdio(ctx, spec.Stdio, opts)
	case TransportStreamableHTTP:
		c, err := DialHTTP(ctx, HTTPConfig{URL: spec.URL, Header: spec.Header, Client: spec.Client}, opts)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return c, nil
	case TransportSSE:
		return DialSSE(ctx, SSEConfig{URL: spec.URL, Header: spec.Header, Client: spec.Client}, opts)
	}
	return nil, fmt.Errorf("unknown upstream transport %q", spec.Transport)
}
