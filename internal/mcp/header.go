package mcp

import (
	"encoding/base64"
	"strings"
)

// The header value encoding of the 2026-07-28 Streamable HTTP transport,
// shared by Sluice's client side (mirroring names and arguments into
// headers) and its server side (checking them against the body).

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
	// A plain value must be visible ASCII, space or tab: "Servers MUST
	// reject requests with a recognized Mcp-Param-{Name} header that
	// contains invalid characters".
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			return "", false
		}
	}
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
	if v[0] == ' ' || v[len(v)-1] == ' ' || v[0] == '\t' || v[len(v)-1] == '\t' {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return true
		}
	}
	return strings.HasPrefix(v, base64Prefix) && strings.HasSuffix(v, base64Suffix)
}
