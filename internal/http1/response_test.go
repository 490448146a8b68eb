package http1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadResponse(t *testing.T) {
	post, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/mcp", nil)
	head, _ := http.NewRequest(http.MethodHead, "http://127.0.0.1/mcp", nil)
	for _, tc := range []struct {
		name, in string
		req      *http.Request
		fast     bool
		status   string
		header   http.Header
		body     string
		close    bool
	}{
		{name: "json", in: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\nContent-Length: 2\r\n\r\n{}",
			fast: true, status: "200 OK", header: http.Header{"Content-Type": {"application/json"}, "Mcp-Session-Id": {"abc"}, "Content-Length": {"2"}}, body: "{}"},
		{name: "names canonicalised and values trimmed", in: "HTTP/1.1 202 Accepted\r\ncontent-length:  0 \r\nx-a: 1\r\nX-A:\t2\r\n\r\n",
			fast: true, status: "202 Accepted", header: http.Header{"Content-Length": {"0"}, "X-A": {"1", "2"}}},
		{name: "no reason", in: "HTTP/1.1 404\r\nContent-Length: 1\r\n\r\nx", fast: true, status: "404", header: http.Header{"Content-Length": {"1"}}, body: "x"},
		{name: "connection close", in: "HTTP/1.1 500 Oops\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
			fast: true, status: "500 Oops", header: http.Header{"Content-Length": {"0"}}, close: true},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", status: "200 OK", header: http.Header{}, body: "{}"},
		{name: "no length", in: "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: x\n\n", status: "200 OK",
			header: http.Header{"Content-Type": {"text/event-stream"}}, body: "data: x\n\n", close: true},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 2\n\n{}", status: "200 OK", header: http.Header{"Content-Length": {"2"}}, body: "{}"},
		{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}", status: "200 OK", header: http.Header{"Content-Length": {"2"}}, body: "{}", close: true},
		{name: "continue first", in: "HTTP/1.1 100 Continue\r\n\r\n", status: "100 Continue", header: http.Header{}},
		{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\n", status: "204 No Content", header: http.Header{}},
		{name: "head", req: head, in: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", status: "200 OK", header: http.Header{"Content-Length": {"9"}}},
		{name: "folded", in: "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n", status: "200 OK", header: http.Header{"X-A": {"1 2"}, "Content-Length": {"0"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			if req == nil {
				req = post
			}
			// One byte per read: the head arrives in pieces.
			br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(tc.in)), 256)
			resp, fast, err := ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			if fast != tc.fast {
				t.Errorf("fast = %v, want %v", fast, tc.fast)
			}
			var body io.Reader = resp.Body
			if fast {
				if resp.Body != nil {
					t.Error("a fast response has a Body")
				}
				body = &Body{R: br, N: resp.ContentLength}
			}
			b, err := io.ReadAll(body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || !reflect.DeepEqual(resp.Header, tc.header) || string(b) != tc.body || resp.Close != tc.close || resp.Request != req {
				t.Errorf("got %q %v %q close=%v", resp.Status, resp.Header, b, resp.Close)
			}
		})
	}
}

func TestReadResponseErrors(t *testing.T) {
	for _, in := range []string{"", "HTTP/1.1 200 OK\r\nContent-Le", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"} {
		_, _, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), nil)
		if err == nil {
			t.Errorf("%q: no error", in)
		}
	}
	// A truncated body is an error, not a short success.
	br := bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"))
	resp, fast, err := ReadResponse(br, nil)
	if err != nil || !fast {
		t.Fatal(err, fast)
	}
	if _, err := io.ReadAll(&Body{R: br, N: resp.ContentLength}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated body: %v", err)
	}
	// A head larger than the buffer goes to net/http, which reads it.
	big := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("x", 200) + "\r\nContent-Length: 0\r\n\r\n"
	resp, fast, err = ReadResponse(bufio.NewReaderSize(strings.NewReader(big), 16), nil)
	if err != nil || fast || len(resp.Header.Get("X-Big")) != 200 {
		t.Errorf("large head: fast=%v err=%v", fast, err)
	}
}

// FuzzResponse holds every response head ReadResponse reads itself to
// net/http's reading of the same bytes: the same status, header, length
// and connection handling, and the same body.
func FuzzResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
		"HTTP/1.1 404\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 200 OK\r\ncontent-length: 3 \r\nx-a: 1\r\nX-A:\t2\r\nConnection: close\r\n\r\nabcdef",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		br := bufio.NewReader(strings.NewReader(in))
		got, fast, err := ReadResponse(br, nil)
		if err != nil || !fast {
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), nil)
		if err != nil {
			t.Fatalf("read here, refused by net/http: %v", err)
		}
		if got.Status != want.Status || got.StatusCode != want.StatusCode || got.Proto != want.Proto ||
			got.ContentLength != want.ContentLength || got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("read here as %q %v len=%d close=%v; net/http: %q %v len=%d close=%v",
				got.Status, got.Header, got.ContentLength, got.Close, want.Status, want.Header, want.ContentLength, want.Close)
		}
		gb, gerr := io.ReadAll(&Body{R: br, N: got.ContentLength})
		wb, werr := io.ReadAll(want.Body)
		if string(gb) != string(wb) || (gerr == nil) != (werr == nil) {
			t.Fatalf("body %q (%v); net/http %q (%v)", gb, gerr, wb, werr)
		}
	})
}

func BenchmarkReadResponse(b *testing.B) {
	const in = "HTTP/1.1 200 OK\r\nCache-Control: no-cache, no-transform\r\nContent-Type: application/json\r\nMcp-Session-Id: D5HR65XNMMPUXAO2NBFCRUZJNK\r\nDate: Fri, 04 Dec 2026 05:21:36 GMT\r\nContent-Length: 2\r\n\r\n{}"
	sr := strings.NewReader(in)
	br := bufio.NewReader(sr)
	b.Run("here", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(in)
			br.Reset(sr)
			resp, _, err := ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, &Body{R: br, N: resp.ContentLength})
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(in)
			br.Reset(sr)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
		}
	})
}
