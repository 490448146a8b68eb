package upstream

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"time"
)

// lineReader splits a byte stream into lines without ever holding more
// than max bytes of one line: a longer line is consumed and reported as too
// long, so that a server cannot make Sluice buffer without bound.
type lineReader struct {
	br  *bufio.Reader
	max int
	buf []byte
	// cr makes a lone CR end a line too, as Server-Sent Events require
	// ("Lines must be separated by either a U+000D CARRIAGE RETURN U+000A
	// LINE FEED (CRLF) character pair, a single U+000A LINE FEED (LF)
	// character, or a single U+000D CARRIAGE RETURN (CR) character").
	// Without it only LF ends a line and one trailing CR is dropped.
	cr     bool
	skipLF bool
	// prefix holds the first bytes of the last line that was too long.
	prefix []byte
}

// prefixLen is how much of an over-long line [lineReader] keeps.
const prefixLen = 4 << 10

func newLineReader(r io.Reader, max int, cr bool) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 32<<10), max: max, cr: cr}
}

// next returns the next line without its terminator; the bytes are valid
// until the following call. tooLong reports a line longer than max, of
// which nothing is returned. A final line without terminator is returned
// before io.EOF.
func (r *lineReader) next() (line []byte, tooLong bool, err error) {
	if cap(r.buf) > 256<<10 {
		r.buf = nil // do not keep a large buffer for the life of the stream
	}
	r.buf = r.buf[:0]
	got := false
	for {
		if r.br.Buffered() == 0 {
			if _, err := r.br.Peek(1); err != nil {
				if got && err == io.EOF {
					return r.finish(tooLong), tooLong, nil
				}
				return nil, false, err
			}
		}
		chunk, _ := r.br.Peek(r.br.Buffered())
		if r.skipLF {
			r.skipLF = false
			if chunk[0] == '\n' {
				r.br.Discard(1)
				continue
			}
		}
		var i int
		if r.cr {
			i = bytes.IndexAny(chunk, "\r\n")
		} else {
			i = bytes.IndexByte(chunk, '\n')
		}
		n := len(chunk)
		if i >= 0 {
			n = i
		}
		got = true
		if !tooLong {
			if len(r.buf)+n > r.max {
				tooLong = true
				// Keep the start of the line: it usually holds the
				// message's id, so that its caller can be told.
				r.prefix = append(r.prefix[:0], r.buf[:min(len(r.buf), prefixLen)]...)
				if len(r.prefix) < prefixLen {
					r.prefix = append(r.prefix, chunk[:min(n, prefixLen-len(r.prefix))]...)
				}
				r.buf = r.buf[:0]
			} else {
				r.buf = append(r.buf, chunk[:n]...)
			}
		}
		if i < 0 {
			r.br.Discard(n)
			continue
		}
		if chunk[i] == '\r' {
			r.skipLF = true
		}
		r.br.Discard(i + 1)
		return r.finish(tooLong), tooLong, nil
	}
}

func (r *lineReader) finish(tooLong bool) []byte {
	if tooLong {
		return nil
	}
	if !r.cr && len(r.buf) > 0 && r.buf[len(r.buf)-1] == '\r' {
		r.buf = r.buf[:len(r.buf)-1]
	}
	return r.buf
}

// event is one dispatched Server-Sent Event.
type event struct {
	Type string // "" when the stream named none, which means "message"
	Data []byte // owned by the event
	// TooLarge reports that the event's data exceeded the limit and was
	// dropped; Data is then nil.
	TooLarge bool
}

// eventReader parses a text/event-stream body following the WHATWG
// "interpret an event stream" rules: multi-line data, comments, event ids
// (the last one is kept for Last-Event-ID) and the retry field.
type eventReader struct {
	lines *lineReader
	max   int
	first bool

	// LastID is the last event ID the stream set; HasID reports whether it
	// set one at all.
	LastID string
	HasID  bool
	// Retry is the reconnection time the stream asked for, 0 if none.
	Retry time.Duration
}

func newEventReader(r io.Reader, max int) *eventReader {
	// A line can hold a whole message plus its field name.
	return &eventReader{lines: newLineReader(r, max+64, true), max: max, first: true}
}

// Next returns the next event that has data. Events without data (a
// priming event carrying only an id, a retry hint) update LastID and Retry
// and are not returned. At the end of the stream it returns io.EOF (an
// event not terminated by a blank line is dropped, as the standard says).
func (r *eventReader) Next() (event, error) {
	var (
		typ      string
		data     []byte
		tooLarge bool
		id       string
		haveID   bool
	)
	for {
		line, long, err := r.lines.next()
		if err != nil {
			return event{}, err
		}
		if r.first {
			r.first = false
			line = bytes.TrimPrefix(line, []byte("\uFEFF"))
		}
		if long {
			// Only a data line can be worth keeping at that size; whatever
			// it was, the event cannot be delivered whole.
			tooLarge = true
			continue
		}
		if len(line) == 0 {
			if haveID {
				r.LastID, r.HasID = id, true
			}
			if tooLarge {
				return event{Type: typ, TooLarge: true}, nil
			}
			if n := len(data); n > 0 && data[n-1] == '\n' {
				data = data[:n-1]
			}
			if len(data) > 0 {
				return event{Type: typ, Data: data}, nil
			}
			// No data, or an empty data field (an MCP priming event):
			// nothing to deliver.
			typ, data, haveID = "", nil, false
			continue
		}
		if line[0] == ':' {
			continue // comment, e.g. a keep-alive
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			typ = string(value)
		case "data":
			if tooLarge {
				continue
			}
			if len(data)+len(value) > r.max {
				tooLarge, data = true, nil
				continue
			}
			data = append(data, value...)
			data = append(data, '\n')
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				id, haveID = string(value), true
			}
		case "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil && isDigits(value) {
				r.Retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}
