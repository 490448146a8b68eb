package http1

import (
	"net/http"
	"net/url"
	"strings"
)

// parseRequest reads a request head, or returns nil for one that net/http
// should read: only POST requests with a Content-Length, to a target in
// origin form, with one Host header, are read here (the hot path: every
// MCP message a client sends). The request has no context and no Body.
func parseRequest(head string) *http.Request {
	const method = "POST "
	if !strings.HasPrefix(head, method) {
		return nil
	}
	eol := strings.IndexByte(head, '\n')
	line := head[len(method) : eol-1]
	target, proto, ok := strings.Cut(line, " ")
	if !ok || proto != "HTTP/1.1" || !originForm(target) {
		return nil
	}
	f, ok := parseFields(head[eol+1:], true)
	if !ok || f.contentLength < 0 {
		return nil
	}
	hosts := f.header["Host"]
	if len(hosts) != 1 || !PlainHost(hosts[0]) {
		return nil
	}
	delete(f.header, "Host")
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil
	}
	return &http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        f.header,
		ContentLength: f.contentLength,
		Close:         f.close,
		Host:          hosts[0],
		RequestURI:    target,
	}
}

// originForm reports a request target of an absolute path and an optional
// query, made only of the characters RFC 3986 allows there unescaped and
// percent signs; it is then read with url.ParseRequestURI, as net/http
// reads it.
func originForm(t string) bool {
	if len(t) == 0 || t[0] != '/' || strings.HasPrefix(t, "//") {
		return false
	}
	for i := 0; i < len(t); i++ {
		if !targetChars[t[i]] {
			return false
		}
	}
	return true
}

var targetChars = alnumAnd("-._~!$&'()*+,;=:@/?%")

// PlainHost reports a host[:port] made only of the characters of names
// and IP literals: one that needs no further judgement to be written or
// read as it stands.
func PlainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if !hostChars[h[i]] {
			return false
		}
	}
	return h != ""
}

var hostChars = alnumAnd(".-:[]_")
