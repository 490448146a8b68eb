// Package http1 handles HTTP/1.1 on the gateway's hot paths: [Server]
// reads and answers the requests clients send to Sluice, and
// [ReadResponse] reads the responses upstream servers send back. It reads
// only the plain, common form of a head (CRLF line
// ends, header names that are tokens, values without control characters,
// one Content-Length, no Transfer-Encoding) and reads it as net/http does;
// anything else it declines, leaving the bytes unread, so that net/http
// reads them instead and keeps its own judgement of odd or hostile input.
// FuzzRequest and FuzzResponse hold every head it accepts to net/http's
// reading of the same bytes.
package http1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// peekHead returns the message head at the start of br's buffer: the start
// line and the header lines, up to and including the empty line that ends
// them. It reads from br's source as needed, and consumes nothing. It
// returns nil and no error when the head is not one this package reads (a
// line ended by a bare LF) or does not fit in br's buffer, and the source's
// error when the source ends or fails before the head does.
func peekHead(br *bufio.Reader) ([]byte, error) {
	from := 0
	for {
		// Wait for at least one byte more than was looked at, then look at
		// everything buffered.
		_, err := br.Peek(from + 1)
		b, _ := br.Peek(br.Buffered())
		end, ok := headEnd(b, max(from-3, 0))
		if !ok {
			return nil, nil
		}
		if end > 0 {
			return b[:end], nil
		}
		if err != nil {
			return nil, err
		}
		if len(b) >= br.Size() {
			return nil, nil
		}
		// A CRLF CRLF may straddle what has arrived and what is to come.
		from = len(b)
	}
}

// headEnd returns the length of the head that b starts with (through its
// CRLF CRLF), 0 when b holds no complete head yet, and false when a line
// ends with a bare LF. The search starts at from.
func headEnd(b []byte, from int) (int, bool) {
	for i := from; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0, true
		}
		i += j
		if i == 0 || b[i-1] != '\r' {
			return 0, false
		}
		if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
			return i + 1, true
		}
		i++
	}
}

// fields is what a head's header lines hold.
type fields struct {
	header        http.Header
	contentLength int64 // -1 when there is no Content-Length
	close         bool  // Connection: close
}

// parseFields reads the header lines of a head (each ending with CRLF, the
// last one empty), as net/http reads them: names canonicalised, values
// with the white space around them trimmed. It declines (false) a folded
// line, a name that is not a token, a space before the colon, a control
// character in a value, Transfer-Encoding, Trailer, Expect, Upgrade, a
// Connection other than close or keep-alive, a second Content-Length,
// and, in a request, a second Host.
func parseFields(lines string, request bool) (fields, bool) {
	f := fields{contentLength: -1}
	n := strings.Count(lines, "\n") - 1
	if n < 0 {
		return f, false
	}
	f.header = make(http.Header, n)
	// One backing array for the values; a name seen twice gets its own.
	vals := make([]string, n)
	for lines != "\r\n" {
		i := strings.IndexByte(lines, '\n')
		line := lines[:i-1] // without CRLF; headEnd checked the CR
		lines = lines[i+1:]
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !Token(line[:colon]) {
			return f, false
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		if !fieldValue(value) {
			return f, false
		}
		if !canonical(name) {
			name = textproto.CanonicalMIMEHeaderKey(name)
		}
		switch name {
		case "Transfer-Encoding", "Expect", "Upgrade", "Trailer":
			return f, false
		case "Content-Length":
			if f.contentLength >= 0 {
				return f, false
			}
			cl, ok := length(value)
			if !ok {
				return f, false
			}
			f.contentLength = cl
		case "Connection":
			if strings.EqualFold(value, "close") {
				f.close = true
			} else if !strings.EqualFold(value, "keep-alive") {
				return f, false
			}
		case "Host":
			if request && f.header[name] != nil {
				return f, false
			}
		}
		if vs, ok := f.header[name]; ok {
			f.header[name] = append(vs, value)
			continue
		}
		vals[0] = value
		f.header[name] = vals[:1:1]
		vals = vals[1:]
	}
	if f.close && !request {
		// net/http drops the header of a response it acted on.
		delete(f.header, "Connection")
	}
	return f, true
}

// length reads a Content-Length: decimal digits only, as net/http
// requires, and small enough not to overflow.
func length(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// trimOWS trims the optional white space (spaces and tabs) around a value.
func trimOWS(s string) string {
	for s != "" && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for s != "" && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// fieldValue reports a value without control characters other than tab.
func fieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// tokenChars marks the bytes of an RFC 9110 token.
var tokenChars = alnumAnd("!#$%&'*+-.^_`|~")

// alnumAnd returns a table marking ASCII letters, digits and the bytes of
// extra.
func alnumAnd(extra string) (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for i := 0; i < len(extra); i++ {
		t[extra[i]] = true
	}
	return t
}

// Token reports whether s is an RFC 9110 token, as a header name must be.
func Token(s string) bool {
	for i := 0; i < len(s); i++ {
		if !tokenChars[s[i]] {
			return false
		}
	}
	return s != ""
}

// canonical reports a token already in the form
// [textproto.CanonicalMIMEHeaderKey] gives it: a capital at the start and
// after each hyphen, lower case elsewhere.
func canonical(s string) bool {
	upper := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}
