package http1

import (
	"bufio"
	"io"
	"net/http"
	"strings"
)

// ReadResponse reads the head of a response to req from br, as
// [http.ReadResponse] does. A plain HTTP/1.1 head with a Content-Length is
// read here: the response's Body is nil, and the caller reads exactly
// ContentLength bytes of body from br. Any other head, and an error of the
// source, go to http.ReadResponse, whose response carries its Body; fast
// reports which of the two happened.
func ReadResponse(br *bufio.Reader, req *http.Request) (resp *http.Response, fast bool, err error) {
	head, err := peekHead(br)
	if err == nil && head != nil && (req == nil || req.Method != http.MethodHead) {
		if resp := parseResponse(string(head)); resp != nil {
			br.Discard(len(head))
			resp.Request = req
			return resp, true, nil
		}
	}
	// net/http reads what is buffered again, and the source's error anew.
	resp, err = http.ReadResponse(br, req)
	return resp, false, err
}

// parseResponse reads a response head, or returns nil for one that
// net/http should read.
func parseResponse(head string) *http.Response {
	// "HTTP/1.1 200 OK\r\n": the reason may be empty, with or without its
	// space.
	const proto = "HTTP/1.1 "
	if len(head) < len(proto)+5 || head[:len(proto)] != proto {
		return nil
	}
	code := head[len(proto) : len(proto)+3]
	if code[0] < '2' || code[0] > '5' || code[1] < '0' || code[1] > '9' || code[2] < '0' || code[2] > '9' {
		return nil // 1xx responses, and anything not a status code
	}
	status := int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if status == http.StatusNoContent || status == http.StatusNotModified {
		return nil
	}
	// The status is the rest of the line, as net/http keeps it; headEnd
	// made sure the line ends with CRLF.
	eol := strings.IndexByte(head, '\n')
	statusText := head[len(proto) : eol-1]
	if len(statusText) > 3 && statusText[3] != ' ' || !fieldValue(statusText) {
		return nil
	}
	f, ok := parseFields(head[eol+1:], false)
	if !ok || f.contentLength < 0 {
		return nil
	}
	return &http.Response{
		Status:        statusText,
		StatusCode:    status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        f.header,
		ContentLength: f.contentLength,
		Close:         f.close,
	}
}

// Body reads a body of n bytes from br.
type Body struct {
	R *bufio.Reader
	N int64
}

func (b *Body) Read(p []byte) (int, error) {
	if b.N <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.N {
		p = p[:b.N]
	}
	n, err := b.R.Read(p)
	b.N -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if b.N == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}
