package mcp

import (
	"errors"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

// JSON-RPC and MCP error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603

	// CodeResourceNotFound is MCP's code for an unknown resource URI.
	CodeResourceNotFound = -32002
	// CodeHeaderMismatch (2026-07-28) rejects HTTP headers that disagree
	// with the body, or required headers that are missing or malformed.
	CodeHeaderMismatch = -32020
	// CodeUnsupportedProtocolVersion (2026-07-28) lists supported versions in its data.
	CodeUnsupportedProtocolVersion = -32022
	// CodeMissingRequiredClientCapability (2026-07-28).
	CodeMissingRequiredClientCapability = -32021
	// CodeURLElicitationRequired asks the client to complete a URL elicitation.
	CodeURLElicitationRequired = -32042
)

// Sluice's own error codes, in the implementation-defined server error range.
// They are documented in docs/errors.md; the agent sees them with a reason
// code in the error data, never internals.
const (
	// CodeDenied: a guard denied the request (data.reason says why).
	CodeDenied = -32050
	// CodeUpstreamUnavailable: the upstream server could not be reached or
	// failed before answering.
	CodeUpstreamUnavailable = -32051
	// CodeTimeout: the upstream did not answer within the call timeout.
	CodeTimeout = -32052
	// CodeMessageTooLarge: the message exceeds the configured size limit.
	CodeMessageTooLarge = -32053
)

// Error is a JSON-RPC error object. Data is kept as raw bytes.
type Error struct {
	Code    int64
	Message string
	Data    jsontext.Value
}

func (e *Error) Error() string {
	return "jsonrpc error " + strconv.FormatInt(e.Code, 10) + ": " + e.Message
}

// Append appends the JSON encoding of e to dst.
func (e *Error) Append(dst []byte) []byte {
	dst = append(dst, `{"code":`...)
	dst = strconv.AppendInt(dst, e.Code, 10)
	dst = append(dst, `,"message":`...)
	dst, _ = jsontext.AppendQuote(dst, e.Message)
	if len(e.Data) > 0 {
		dst = append(dst, `,"data":`...)
		dst = append(dst, e.Data...)
	}
	return append(dst, '}')
}

// Errorf-style constructors for the common cases.

// NewError returns an error with a code and message.
func NewError(code int64, msg string) *Error { return &Error{Code: code, Message: msg} }

// Decoding errors. Each wraps into a *DecodeError carrying the JSON-RPC code
// to answer with.
var (
	ErrTooLarge       = errors.New("message too large")
	ErrTooDeep        = errors.New("message nested too deeply")
	ErrBatch          = errors.New("json-rpc batches are not supported")
	ErrNotObject      = errors.New("message is not a json object")
	ErrVersion        = errors.New(`"jsonrpc" must be "2.0"`)
	ErrInvalidID      = errors.New("id must be a string or a number")
	ErrShape          = errors.New("message is neither a request, a notification nor a response")
	ErrCaseVariant    = errors.New("member name differs from a protocol member only by case")
	ErrInvalidMessage = errors.New("invalid message")
)

// DecodeError is returned by [Decode]. Code is the JSON-RPC error code a
// server answers with; ID is the request id when it could be recovered.
type DecodeError struct {
	Code int64
	ID   jsontext.Value
	Err  error
}

func (e *DecodeError) Error() string { return e.Err.Error() }
func (e *DecodeError) Unwrap() error { return e.Err }
