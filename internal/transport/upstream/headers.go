package upstream

import (
	"encoding/base64"
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
// [WithHeader] cannot supply or override them.
var reservedHeaders = []string{
	headerSessionID, headerProtocolVersion, headerMethod, headerName, headerLastEventID,
	"Content-Type", "Content-Length", "Accept", "Host", "Transfer-Encoding", "Connection",
}

const (
	base64Prefix = "=?base64?"
	base64Suffix = "?="
)

// EncodeHeaderValue returns v as it goes into an Mcp-Name or Mcp-Param-*
// header. The 2026-07-28 Streamable HTTP transport says: "When a value
// cannot be safely represented as a plain ASCII header value (e.g., it
// contains non-ASCII characters, control characters, or has
// leading/trailing whitespace), clients MUST use Base64 encoding of the
// UTF-8 representation" as =?base64?...?=, and "clients MUST also
// Base64-encode any plain-ASCII value that matches the sentinel pattern".
func EncodeHeaderValue(v string) string {
	if !needsBase64(v) {
		return v
	}
	return base64Prefix + base64.StdEncoding.EncodeToString([]byte(v)) + base64Suffix
}

// DecodeHeaderValue reverses [EncodeHeaderValue]. ok is false for a
// sentinel-wrapped value that is not valid base64.
func DecodeHeaderValue(v string) (s string, ok bool) {
	inner, found := strings.CutPrefix(v, base64Prefix)
	if !found {
		return v, true
	}
	inner, found = strings.CutSuffix(inner, base64Suffix)
	if !found {
		return v, true
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return "", false
	}
	return string(b), true
}

func needsBase64(v string) bool {
	if v == "" {
		return false
	}
	if v[0] == ' ' || v[len(v)-1] == ' ' {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return true
		}
	}
	return strings.HasPrefix(v, base64Prefix) && strings.HasSuffix(v, base64Suffix)
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
			h.Set(headerName, EncodeHeaderValue(name))
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
