package upstream

import (
	"context"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluicehq/sluice/internal/mcp"
)

// HTTP header names of the Streamable HTTP transport.
const (
	headerSessionID       = "Mcp-Session-Id"
	headerProtocolVersion = "Mcp-Protocol-Version"
	headerMethod          = "Mcp-Method"
	headerName            = "Mcp-Name"
	headerLastEventID     = "Last-Event-ID"
)

// reservedHeaders are set by the transport itself; per-call headers from
// [WithHeader] cannot supply or override them. They are written as the
// keys of an [http.Header], so that removing them needs no canonicalising.
var reservedHeaders = []string{
	headerSessionID, headerProtocolVersion, headerMethod, headerName, http.CanonicalHeaderKey(headerLastEventID),
	"Content-Type", "Content-Length", "Accept", "Host", "Transfer-Encoding", "Connection",
}

// setCallHeaders adds to h the headers of ctx's call (see [WithHeader])
// other than the reserved ones, then sets the configured ones, which win.
func setCallHeaders(ctx context.Context, h, configured http.Header) {
	if from := HeaderFrom(ctx); len(from) > 0 {
		copyHeader(h, from)
		for _, k := range reservedHeaders {
			delete(h, k)
		}
	}
	for k, vs := range configured {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
}

// nameMember returns the params member that Mcp-Name mirrors for method,
// or "" when the method has none.
func nameMember(method string) string {
	switch method {
	case mcp.MethodToolsCall, mcp.MethodPromptsGet:
		return "name"
	case mcp.MethodResourcesRead:
		return "uri"
	}
	return ""
}

// metaProtocolVersion returns params._meta's protocol version, if any: a
// modern request names its version itself, and the MCP-Protocol-Version
// header "MUST match the io.modelcontextprotocol/protocolVersion field
// carried in the request body's _meta".
func metaProtocolVersion(params []byte) string {
	if len(params) == 0 {
		return ""
	}
	meta, ok, err := mcp.Lookup(params, "_meta")
	if err != nil || !ok || meta.Kind() != '{' {
		return ""
	}
	v, ok, err := mcp.LookupString(meta, mcp.MetaProtocolVersion)
	if err != nil || !ok {
		return ""
	}
	return v
}

// setMessageHeaders sets the headers that mirror m: MCP-Protocol-Version
// (version), and for the modern era Mcp-Method and Mcp-Name.
func setMessageHeaders(h http.Header, m *mcp.Message, version string) {
	if version == "" {
		return
	}
	h.Set(headerProtocolVersion, version)
	if !mcp.IsModernVersion(version) || m.Method == "" {
		return
	}
	h.Set(headerMethod, m.Method)
	if member := nameMember(m.Method); member != "" && m.IsRequest() {
		if name, ok, err := mcp.LookupString(m.Params, member); err == nil && ok {
			h.Set(headerName, mcp.EncodeHeaderValue(name))
		}
	}
}

// copyHeader adds the values of src to dst.
func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}

// mediaType returns the lower-case media type of a Content-Type value.
func mediaType(ct string) string {
	switch ct {
	case "application/json", "text/event-stream":
		return ct // as servers send them, with nothing to parse
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		if i := strings.IndexByte(ct, ';'); i >= 0 {
			ct = ct[:i]
		}
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// sameOrigin reports whether a and b have the same scheme, host and port.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}
