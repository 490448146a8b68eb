package upstream

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
)

type parsedStream struct {
	Events []event
	LastID string
	HasID  bool
	Retry  time.Duration
}

func parseAll(r io.Reader, max int) (parsedStream, error) {
	er := newEventReader(r, max)
	var p parsedStream
	for {
		ev, err := er.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, err
		}
		p.Events = append(p.Events, ev)
	}
	p.LastID, p.HasID, p.Retry = er.LastID, er.HasID, er.Retry
	return p, nil
}

func TestEventReader(t *testing.T) {
	tests := []struct {
		name   string
		stream string
		max    int
		want   parsedStream
	}{
		{
			name:   "one message",
			stream: "data: {\"a\":1}\n\n",
			want:   parsedStream{Events: []event{{Data: []byte(`{"a":1}`)}}},
		},
		{
			name:   "multi-line data joined with LF",
			stream: "event: message\ndata: {\"a\":\ndata:1}\n\n",
			want:   parsedStream{Events: []event{{Type: "message", Data: []byte("{\"a\":\n1}")}}},
		},
		{
			name:   "CRLF and lone CR line ends",
			stream: "data: x\r\n\r\ndata: y\r\rdata: z\n\n",
			want:   parsedStream{Events: []event{{Data: []byte("x")}, {Data: []byte("y")}, {Data: []byte("z")}}},
		},
		{
			name:   "comments and keep-alives",
			stream: ": keep-alive\n\n:\ndata: x\n: in the middle\n\n",
			want:   parsedStream{Events: []event{{Data: []byte("x")}}},
		},
		{
			name:   "only one leading space is removed",
			stream: "data:  two\ndata:none\n\n",
			want:   parsedStream{Events: []event{{Data: []byte(" two\nnone")}}},
		},
		{
			name:   "priming event with id and empty data",
			stream: "id: 0_0\ndata:\n\nid: 0_1\ndata: x\n\n",
			want:   parsedStream{Events: []event{{Data: []byte("x")}}, LastID: "0_1", HasID: true},
		},
		{
			name:   "id without data still counts",
			stream: "id: 7\n\n",
			want:   parsedStream{LastID: "7", HasID: true},
		},
		{
			name:   "id with NUL is ignored",
			stream: "id: 1\n\nid: a\x00b\n\n",
			want:   parsedStream{LastID: "1", HasID: true},
		},
		{
			name:   "retry",
			stream: "retry: 1500\n\nretry: soon\n\nevent: close\nretry: 10\n\n",
			want:   parsedStream{Retry: 10 * time.Millisecond},
		},
		{
			name:   "unterminated event at end is dropped",
			stream: "data: x\n\ndata: y",
			want:   parsedStream{Events: []event{{Data: []byte("x")}}},
		},
		{
			name:   "byte order mark",
			stream: "\uFEFFdata: x\n\n",
			want:   parsedStream{Events: []event{{Data: []byte("x")}}},
		},
		{
			name:   "field without colon",
			stream: "data\ndata: x\n\n",
			want:   parsedStream{Events: []event{{Data: []byte("\nx")}}},
		},
		{
			name:   "unknown fields ignored",
			stream: "foo: bar\ndata: x\n\n",
			want:   parsedStream{Events: []event{{Data: []byte("x")}}},
		},
		{
			name:   "named events",
			stream: "event: endpoint\ndata: /messages?s=1\n\ndata: next\n\n",
			want:   parsedStream{Events: []event{{Type: "endpoint", Data: []byte("/messages?s=1")}, {Data: []byte("next")}}},
		},
		{
			name:   "oversize data is dropped, the stream goes on",
			stream: "data: 0123456789\ndata: 0123456789\n\ndata: ok\n\n",
			max:    16,
			want:   parsedStream{Events: []event{{TooLarge: true}, {Data: []byte("ok")}}},
		},
		{
			name:   "oversize line is dropped, the stream goes on",
			stream: "data: " + strings.Repeat("x", 200) + "\n\ndata: ok\n\n",
			max:    16,
			want:   parsedStream{Events: []event{{TooLarge: true}, {Data: []byte("ok")}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			max := tt.max
			if max == 0 {
				max = 1 << 20
			}
			for _, mode := range []struct {
				name string
				r    func(string) io.Reader
			}{
				{"whole", func(s string) io.Reader { return strings.NewReader(s) }},
				{"byte by byte", func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) }},
			} {
				got, err := parseAll(mode.r(tt.stream), max)
				if err != nil {
					t.Fatalf("%s: %v", mode.name, err)
				}
				if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(event{})); diff != "" {
					t.Errorf("%s (-want +got):\n%s", mode.name, diff)
				}
			}
		})
	}
}

func TestEventReaderError(t *testing.T) {
	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("data: x\n\ndata: y\n"), iotest.ErrReader(broken))
	er := newEventReader(r, 1024)
	if ev, err := er.Next(); err != nil || string(ev.Data) != "x" {
		t.Fatalf("first event = %q, %v", ev.Data, err)
	}
	if _, err := er.Next(); !errors.Is(err, broken) {
		t.Fatalf("err = %v, want %v", err, broken)
	}
}

func TestLineReader(t *testing.T) {
	tests := []struct {
		name  string
		input string
		max   int
		want  []string // "!" marks a line that was too long
	}{
		{name: "LF", input: "a\nbb\n", max: 10, want: []string{"a", "bb"}},
		{name: "CRLF trimmed", input: "a\r\nb\n", max: 10, want: []string{"a", "b"}},
		{name: "lone CR kept", input: "a\rb\n", max: 10, want: []string{"a\rb"}},
		{name: "final line without LF", input: "a\nb", max: 10, want: []string{"a", "b"}},
		{name: "empty lines", input: "\n\na\n", max: 10, want: []string{"", "", "a"}},
		{name: "too long", input: "0123456789abc\nok\n", max: 10, want: []string{"!", "ok"}},
		{name: "exactly max", input: "0123456789\n", max: 10, want: []string{"0123456789"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lr := newLineReader(iotest.HalfReader(strings.NewReader(tt.input)), tt.max, false)
			var got []string
			for {
				line, long, err := lr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if long {
					got = append(got, "!")
				} else {
					got = append(got, string(line))
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzEventReader checks that no input makes the parser fail other than
// at the end, return more than the limit, or disagree with itself when the
// input arrives in pieces.
func FuzzEventReader(f *testing.F) {
	f.Add("data: x\n\n", 64)
	f.Add("id: 1\r\ndata: a\rdata: b\r\n\r\n: c\nretry: 5\n\n", 8)
	f.Add("\uFEFFevent: endpoint\ndata: /m\n\n", 4)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		whole, err := parseAll(strings.NewReader(s), max)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range whole.Events {
			if len(ev.Data) > max {
				t.Fatalf("event of %d bytes, limit %d", len(ev.Data), max)
			}
			if len(ev.Data) == 0 && !ev.TooLarge {
				t.Fatal("empty event delivered")
			}
		}
		pieces, err := parseAll(iotest.OneByteReader(strings.NewReader(s)), max)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(whole, pieces, cmp.AllowUnexported(event{})); diff != "" {
			t.Fatalf("whole vs byte by byte (-whole +pieces):\n%s", diff)
		}
	})
}
