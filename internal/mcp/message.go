package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// Limits bound what [Decode] accepts.
type Limits struct {
	MaxBytes int // 0 means DefaultMaxBytes
	MaxDepth int // 0 means DefaultMaxDepth
}

// Defaults for [Limits].
const (
	DefaultMaxBytes = 4 << 20
	DefaultMaxDepth = 64
)

// Kind tells what a message is.
type Kind uint8

const (
	KindInvalid Kind = iota
	KindRequest
	KindNotification
	KindResponse
)

// Message is one JSON-RPC 2.0 message. Every part is kept as the bytes the
// peer sent; slices may alias the buffer given to [Decode], which the caller
// must therefore not reuse while the message is alive.
type Message struct {
	// ID is the request id exactly as sent (a JSON string or number, or null
	// in an error response); nil when absent.
	ID jsontext.Value
	// Method is set for requests and notifications.
	Method string
	// Params is the raw params object; nil when absent.
	Params jsontext.Value
	// Result is the raw result of a successful response.
	Result jsontext.Value
	// Error is the error of an error response.
	Error *Error
	// Extra holds top-level members that are not part of JSON-RPC, each as
	// `,"name":value`, forwarded unchanged.
	Extra []byte
}

// Kind classifies m.
func (m *Message) Kind() Kind {
	switch {
	case m.Method != "" && m.ID != nil:
		return KindRequest
	case m.Method != "":
		return KindNotification
	case m.Result != nil || m.Error != nil:
		return KindResponse
	}
	return KindInvalid
}

// IsRequest reports whether m is a request.
func (m *Message) IsRequest() bool { return m.Kind() == KindRequest }

// IsNotification reports whether m is a notification.
func (m *Message) IsNotification() bool { return m.Kind() == KindNotification }

// IsResponse reports whether m is a response (result or error).
func (m *Message) IsResponse() bool { return m.Kind() == KindResponse }

var decoderPool = sync.Pool{New: func() any { return new(decoderState) }}

type decoderState struct {
	// A bytes.Buffer lets the decoder parse the message in place rather than
	// copying it into a buffer of its own.
	r   bytes.Buffer
	dec *jsontext.Decoder
}

// Decode parses one JSON-RPC message strictly. On failure it returns a
// *[DecodeError] whose Code is the JSON-RPC error code to answer with.
func Decode(b []byte, lim Limits) (*Message, error) {
	maxBytes := lim.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	maxDepth := lim.MaxDepth
	if maxDepth <= 0 {
		maxDepth = DefaultMaxDepth
	}
	if len(b) > maxBytes {
		return nil, &DecodeError{Code: CodeMessageTooLarge, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), maxBytes)}
	}
	if err := checkDepth(b, maxDepth); err != nil {
		return nil, &DecodeError{Code: CodeInvalidRequest, Err: err}
	}
	st := decoderPool.Get().(*decoderState)
	defer decoderPool.Put(st)
	st.r = *bytes.NewBuffer(b)
	if st.dec == nil {
		st.dec = jsontext.NewDecoder(&st.r)
	} else {
		st.dec.Reset(&st.r)
	}
	m, err := decodeMessage(st.dec, b)
	// Drop references to b so the pool does not pin it.
	st.r = bytes.Buffer{}
	st.dec.Reset(&st.r)
	if err != nil {
		var de *DecodeError
		if errors.As(err, &de) {
			return nil, de
		}
		return nil, &DecodeError{Code: CodeParseError, Err: err}
	}
	return m, nil
}

func decodeMessage(dec *jsontext.Decoder, b []byte) (*Message, error) {
	switch dec.PeekKind() {
	case '{':
	case '[':
		return nil, &DecodeError{Code: CodeInvalidRequest, Err: ErrBatch}
	case 0:
		// Syntax error or empty input: let ReadToken report it.
		if _, err := dec.ReadToken(); err != nil {
			if err == io.EOF {
				return nil, errors.New("empty message")
			}
			return nil, err
		}
		return nil, &DecodeError{Code: CodeInvalidRequest, Err: ErrNotObject}
	default:
		if _, err := dec.ReadValue(); err != nil {
			return nil, err
		}
		return nil, &DecodeError{Code: CodeInvalidRequest, Err: ErrNotObject}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	m := new(Message)
	var (
		version    jsontext.Value
		haveMethod bool
		result     bool
		errVal     jsontext.Value
		badErr     error
	)
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		key := name.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		end := dec.InputOffset()
		// Slice the value out of b rather than keeping the decoder's buffer.
		raw := jsontext.Value(b[end-int64(len(val)) : end])
		switch key {
		case "jsonrpc":
			version = raw
		case "id":
			m.ID = raw
		case "method":
			if raw.Kind() != '"' {
				badErr = errors.New(`"method" must be a string`)
				continue
			}
			s, err := unquote(raw)
			if err != nil {
				return nil, err
			}
			if s == "" {
				badErr = errors.New(`"method" must not be empty`)
			}
			m.Method = s
			haveMethod = true
		case "params":
			m.Params = raw
		case "result":
			m.Result = raw
			result = true
		case "error":
			errVal = raw
		default:
			if isCaseVariant(key, envelopeNames) {
				badErr = fmt.Errorf("%w: %q", ErrCaseVariant, key)
				continue
			}
			m.Extra = append(m.Extra, ',')
			m.Extra, _ = jsontext.AppendQuote(m.Extra, key)
			m.Extra = append(m.Extra, ':')
			m.Extra = append(m.Extra, raw...)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return nil, err
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		if err == nil {
			err = errors.New("data after the message")
		}
		return nil, err
	}
	fail := func(err error) error {
		// Echo the id only when it is one a response may carry.
		var id jsontext.Value
		if k := m.ID.Kind(); m.ID != nil && (k == '"' || k == '0' || k == 'n') {
			id = m.ID
		}
		return &DecodeError{Code: CodeInvalidRequest, ID: id, Err: err}
	}
	if badErr != nil {
		return nil, fail(badErr)
	}
	if string(version) != `"2.0"` {
		return nil, fail(ErrVersion)
	}
	if m.ID != nil {
		switch m.ID.Kind() {
		case '"', '0':
		case 'n':
			if haveMethod {
				return nil, fail(fmt.Errorf("%w: a request id must not be null", ErrInvalidID))
			}
		default:
			id := m.ID
			m.ID = nil
			return nil, fail(fmt.Errorf("%w, got %s", ErrInvalidID, kindName(id.Kind())))
		}
	}
	if m.Params != nil && m.Params.Kind() != '{' {
		return nil, fail(errors.New(`"params" must be an object`))
	}
	if errVal != nil {
		e, err := decodeError(errVal)
		if err != nil {
			return nil, fail(err)
		}
		m.Error = e
	}
	switch {
	case haveMethod && (result || errVal != nil):
		return nil, fail(ErrShape)
	case !haveMethod && result && errVal != nil:
		return nil, fail(errors.New(`a response has either "result" or "error", not both`))
	case !haveMethod && !result && errVal == nil:
		return nil, fail(ErrShape)
	case !haveMethod && m.ID == nil:
		return nil, fail(errors.New("a response must carry an id"))
	case !haveMethod && m.Params != nil:
		return nil, fail(ErrShape)
	}
	return m, nil
}

var envelopeNames = []string{"jsonrpc", "id", "method", "params", "result", "error"}

// isCaseVariant reports whether key equals one of names case-insensitively
// without being equal to it. Lengths are not compared first: Unicode simple
// folding maps "ſ" (U+017F) to "s" and "K" (U+212A) to "k", so "paramſ" is
// longer than "params" yet Go's encoding/json decodes it as "params".
func isCaseVariant(key string, names []string) bool {
	for _, n := range names {
		if key != n && strings.EqualFold(key, n) {
			return true
		}
	}
	return false
}

func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "an invalid value"
}

func decodeError(v jsontext.Value) (*Error, error) {
	if v.Kind() != '{' {
		return nil, errors.New(`"error" must be an object`)
	}
	e := new(Error)
	var haveCode bool
	err := EachMember(v, func(name string, val jsontext.Value) error {
		switch name {
		case "code":
			if val.Kind() != '0' {
				return errors.New(`"error.code" must be an integer`)
			}
			var n int64
			if _, err := fmt.Sscan(string(val), &n); err != nil || fmt.Sprint(n) != string(val) {
				return errors.New(`"error.code" must be an integer`)
			}
			e.Code = n
			haveCode = true
		case "message":
			if val.Kind() != '"' {
				return errors.New(`"error.message" must be a string`)
			}
			s, err := unquote(val)
			if err != nil {
				return err
			}
			e.Message = s
		case "data":
			e.Data = val
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveCode {
		return nil, errors.New(`"error.code" is missing`)
	}
	return e, nil
}

func unquote(v jsontext.Value) (string, error) {
	b, err := jsontext.AppendUnquote(nil, v)
	return string(b), err
}

// checkDepth rejects values nested deeper than max without decoding them.
// Strings are skipped with [stringEnd], so long text costs little.
func checkDepth(b []byte, max int) error {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			end := stringEnd(b, i)
			if end < 0 {
				return nil // unterminated: the decoder reports it
			}
			i = end - 1
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: limit %d", ErrTooDeep, max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// Append appends the wire encoding of m to dst.
func (m *Message) Append(dst []byte) []byte {
	dst = append(dst, `{"jsonrpc":"2.0"`...)
	if m.ID != nil {
		dst = append(dst, `,"id":`...)
		dst = append(dst, m.ID...)
	}
	if m.Method != "" {
		dst = append(dst, `,"method":`...)
		dst, _ = jsontext.AppendQuote(dst, m.Method)
	}
	if m.Params != nil {
		dst = append(dst, `,"params":`...)
		dst = append(dst, m.Params...)
	}
	if m.Error != nil {
		dst = append(dst, `,"error":`...)
		dst = m.Error.Append(dst)
	} else if m.Result != nil {
		dst = append(dst, `,"result":`...)
		dst = append(dst, m.Result...)
	}
	dst = append(dst, m.Extra...)
	return append(dst, '}')
}

// Encode returns the wire encoding of m.
func (m *Message) Encode() []byte {
	n := 48 + len(m.ID) + len(m.Method) + len(m.Params) + len(m.Result) + len(m.Extra)
	if m.Error != nil {
		n += 64 + len(m.Error.Message) + len(m.Error.Data)
	}
	return m.Append(make([]byte, 0, n))
}

// NewRequest returns a request message.
func NewRequest(id jsontext.Value, method string, params jsontext.Value) *Message {
	return &Message{ID: id, Method: method, Params: params}
}

// NewNotification returns a notification message.
func NewNotification(method string, params jsontext.Value) *Message {
	return &Message{Method: method, Params: params}
}

// NewResult returns a success response.
func NewResult(id, result jsontext.Value) *Message {
	if result == nil {
		result = jsontext.Value("{}")
	}
	return &Message{ID: id, Result: result}
}

// NewErrorResponse returns an error response. A nil id becomes null.
func NewErrorResponse(id jsontext.Value, e *Error) *Message {
	if id == nil {
		id = jsontext.Value("null")
	}
	return &Message{ID: id, Error: e}
}
