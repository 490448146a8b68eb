package mcp_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/mcp"
)

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  mcp.Limits
		want *mcp.Message
		kind mcp.Kind
	}{
		{
			name: "tools-call-request",
			in:   `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"x":[1,2,{"y":null}]}}}`,
			want: &mcp.Message{ID: v(`1`), Method: "tools/call", Params: v(`{"name":"echo","arguments":{"x":[1,2,{"y":null}]}}`)},
			kind: mcp.KindRequest,
		},
		{
			name: "request-without-params",
			in:   `{"jsonrpc":"2.0","id":"a","method":"ping"}`,
			want: &mcp.Message{ID: v(`"a"`), Method: "ping"},
			kind: mcp.KindRequest,
		},
		{
			name: "whitespace-everywhere",
			in:   " \t\r\n{ \"jsonrpc\" :\t\"2.0\" ,\n\"id\" : 7 , \"method\" : \"ping\" , \"params\" : { \"a\" : 1 } }\n ",
			want: &mcp.Message{ID: v(`7`), Method: "ping", Params: v(`{ "a" : 1 }`)},
			kind: mcp.KindRequest,
		},
		{
			name: "members-in-any-order",
			in:   `{"params":{},"method":"tools/list","id":2,"jsonrpc":"2.0"}`,
			want: &mcp.Message{ID: v(`2`), Method: "tools/list", Params: v(`{}`)},
			kind: mcp.KindRequest,
		},
		{
			name: "unknown-method-passes-decoding",
			in:   `{"jsonrpc":"2.0","id":3,"method":"vendor/doSomething","params":{"k":"v"}}`,
			want: &mcp.Message{ID: v(`3`), Method: "vendor/doSomething", Params: v(`{"k":"v"}`)},
			kind: mcp.KindRequest,
		},
		{
			name: "escaped-method",
			in:   `{"jsonrpc":"2.0","id":4,"method":"tools\/c\u0061ll"}`,
			want: &mcp.Message{ID: v(`4`), Method: "tools/call"},
			kind: mcp.KindRequest,
		},
		{
			name: "notification",
			in:   `{"jsonrpc":"2.0","method":"notifications/initialized"}`,
			want: &mcp.Message{Method: "notifications/initialized"},
			kind: mcp.KindNotification,
		},
		{
			name: "notification-with-params",
			in:   `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":0.5}}`,
			want: &mcp.Message{Method: "notifications/progress", Params: v(`{"progressToken":"t","progress":0.5}`)},
			kind: mcp.KindNotification,
		},
		{
			name: "result-response",
			in:   `{"jsonrpc":"2.0","id":"x","result":{"tools":[]}}`,
			want: &mcp.Message{ID: v(`"x"`), Result: v(`{"tools":[]}`)},
			kind: mcp.KindResponse,
		},
		{
			name: "null-result",
			in:   `{"jsonrpc":"2.0","id":1,"result":null}`,
			want: &mcp.Message{ID: v(`1`), Result: v(`null`)},
			kind: mcp.KindResponse,
		},
		{
			name: "error-response",
			in:   `{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"method not found","data":{"method":"x"}}}`,
			want: &mcp.Message{ID: v(`5`), Error: &mcp.Error{Code: -32601, Message: "method not found", Data: v(`{"method":"x"}`)}},
			kind: mcp.KindResponse,
		},
		{
			name: "error-response-null-id",
			in:   `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`,
			want: &mcp.Message{ID: v(`null`), Error: &mcp.Error{Code: -32700, Message: "parse error"}},
			kind: mcp.KindResponse,
		},
		{
			name: "error-without-message",
			in:   `{"jsonrpc":"2.0","id":5,"error":{"code":1}}`,
			want: &mcp.Message{ID: v(`5`), Error: &mcp.Error{Code: 1}},
			kind: mcp.KindResponse,
		},
		{
			name: "error-escaped-message-and-extra-member",
			in:   `{"jsonrpc":"2.0","id":5,"error":{"code":-1,"message":"a\"b\u00e9","extra":true}}`,
			want: &mcp.Message{ID: v(`5`), Error: &mcp.Error{Code: -1, Message: `a"bé`}},
			kind: mcp.KindResponse,
		},
		{
			name: "unknown-members-kept-in-extra",
			in:   `{"jsonrpc":"2.0","x-trace":{"a":[1,"}"]},"id":1,"method":"ping","z":null}`,
			want: &mcp.Message{ID: v(`1`), Method: "ping", Extra: []byte(`,"x-trace":{"a":[1,"}"]},"z":null`)},
			kind: mcp.KindRequest,
		},
		{
			name: "escaped-extra-name-is-normalised",
			in:   `{"jsonrpc":"2.0","id":1,"method":"ping","\u0078":1}`,
			want: &mcp.Message{ID: v(`1`), Method: "ping", Extra: []byte(`,"x":1`)},
			kind: mcp.KindRequest,
		},
		{
			name: "non-ascii-strings",
			in:   `{"jsonrpc":"2.0","id":"日本","method":"tools/call","params":{"name":"検索","q":"😀"}}`,
			want: &mcp.Message{ID: v(`"日本"`), Method: "tools/call", Params: v(`{"name":"検索","q":"😀"}`)},
			kind: mcp.KindRequest,
		},
		{
			name: "exactly-at-size-limit",
			in:   `{"jsonrpc":"2.0","method":"a"}`,
			lim:  mcp.Limits{MaxBytes: len(`{"jsonrpc":"2.0","method":"a"}`)},
			want: &mcp.Message{Method: "a"},
			kind: mcp.KindNotification,
		},
		{
			name: "exactly-at-depth-limit",
			in:   nest(4),
			lim:  mcp.Limits{MaxDepth: 4},
			want: &mcp.Message{ID: v(`1`), Method: "m", Params: v(`{"a":[{}]}`)},
			kind: mcp.KindRequest,
		},
		{
			name: "brackets-inside-strings-do-not-count-as-depth",
			in:   `{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"[[[[{{{{\"[[[[\\"}}`,
			lim:  mcp.Limits{MaxDepth: 2},
			want: &mcp.Message{ID: v(`1`), Method: "m", Params: v(`{"s":"[[[[{{{{\"[[[[\\"}`)},
			kind: mcp.KindRequest,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			orig := bytes.Clone(in)
			got, err := mcp.Decode(in, tt.lim)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
			if k := got.Kind(); k != tt.kind {
				t.Errorf("Kind() = %v, want %v", k, tt.kind)
			}
			if got.IsRequest() != (tt.kind == mcp.KindRequest) || got.IsNotification() != (tt.kind == mcp.KindNotification) || got.IsResponse() != (tt.kind == mcp.KindResponse) {
				t.Errorf("Is* helpers disagree with Kind %v", tt.kind)
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("Decode modified its input")
			}
			// Re-encoding gives a message that decodes to the same thing.
			enc := got.Encode()
			if !jsontext.Value(enc).IsValid() {
				t.Fatalf("Encode produced invalid JSON: %s", enc)
			}
			again, err := mcp.Decode(enc, mcp.Limits{})
			if err != nil {
				t.Fatalf("Decode(Encode()) = %v for %s", err, enc)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("round trip mismatch (-first +second):\n%s", diff)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		lim      mcp.Limits
		wantCode int64
		wantErr  error          // sentinel to match with errors.Is; nil skips the check
		wantID   jsontext.Value // the id the error carries
	}{
		// Not JSON at all: -32700.
		{name: "empty", in: ``, wantCode: mcp.CodeParseError},
		{name: "whitespace-only", in: " \n\t", wantCode: mcp.CodeParseError},
		{name: "garbage", in: `not json`, wantCode: mcp.CodeParseError},
		{name: "unterminated-object", in: `{"jsonrpc":"2.0","id":1`, wantCode: mcp.CodeParseError},
		{name: "trailing-comma", in: `{"jsonrpc":"2.0","method":"x",}`, wantCode: mcp.CodeParseError},
		{name: "single-quotes", in: `{'jsonrpc':'2.0'}`, wantCode: mcp.CodeParseError},
		{name: "unterminated-string", in: `{"jsonrpc":"2.0","method":"x`, wantCode: mcp.CodeParseError},
		{name: "bad-escape", in: `{"jsonrpc":"2.0","method":"\x"}`, wantCode: mcp.CodeParseError},
		{name: "raw-control-character", in: "{\"jsonrpc\":\"2.0\",\"method\":\"a\x01b\"}", wantCode: mcp.CodeParseError},
		{name: "lone-surrogate-escape", in: `{"jsonrpc":"2.0","method":"\ud800"}`, wantCode: mcp.CodeParseError},
		{name: "nan", in: `{"jsonrpc":"2.0","id":NaN,"method":"x"}`, wantCode: mcp.CodeParseError},
		{name: "leading-zero-number", in: `{"jsonrpc":"2.0","id":01,"method":"x"}`, wantCode: mcp.CodeParseError},
		{name: "byte-order-mark", in: "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"method\":\"x\"}", wantCode: mcp.CodeParseError},

		// Trailing data after the object.
		{name: "trailing-object", in: `{"jsonrpc":"2.0","method":"x"} {}`, wantCode: mcp.CodeParseError},
		{name: "trailing-second-message", in: `{"jsonrpc":"2.0","method":"x"}{"jsonrpc":"2.0","method":"y"}`, wantCode: mcp.CodeParseError},
		{name: "trailing-garbage", in: `{"jsonrpc":"2.0","method":"x"}x`, wantCode: mcp.CodeParseError},
		{name: "trailing-bracket", in: `{"jsonrpc":"2.0","method":"x"}]`, wantCode: mcp.CodeParseError},
		{name: "trailing-number", in: `{"jsonrpc":"2.0","method":"x"} 1`, wantCode: mcp.CodeParseError},

		// Duplicate member names, at the top and nested.
		{name: "duplicate-id", in: `{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-method", in: `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-jsonrpc", in: `{"jsonrpc":"2.0","jsonrpc":"2.0","method":"x"}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-extra", in: `{"jsonrpc":"2.0","method":"x","z":1,"z":2}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-via-escape", in: `{"jsonrpc":"2.0","id":1,"method":"x","\u0069d":2}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-in-params", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-deep-in-params", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"x":[{"k":1,"k":2}]}}}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-in-result", in: `{"jsonrpc":"2.0","id":1,"result":{"a":{"b":1,"b":1}}}`, wantCode: mcp.CodeParseError},
		{name: "duplicate-in-error", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"code":2}}`, wantCode: mcp.CodeParseError},

		// Invalid UTF-8.
		{name: "invalid-utf8-in-value", in: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\xff\"}}", wantCode: mcp.CodeParseError},
		{name: "invalid-utf8-in-name", in: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"\xc3\":1}}", wantCode: mcp.CodeParseError},
		{name: "invalid-utf8-in-method", in: "{\"jsonrpc\":\"2.0\",\"method\":\"tools/\xed\xa0\x80\"}", wantCode: mcp.CodeParseError},
		{name: "invalid-utf8-in-id", in: "{\"jsonrpc\":\"2.0\",\"id\":\"\xfe\",\"method\":\"x\"}", wantCode: mcp.CodeParseError},
		{name: "overlong-encoding", in: "{\"jsonrpc\":\"2.0\",\"method\":\"\xc0\xaf\"}", wantCode: mcp.CodeParseError},

		// Not an object: -32600.
		{name: "string", in: `"hello"`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrNotObject},
		{name: "number", in: `42`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrNotObject},
		{name: "null", in: `null`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrNotObject},
		{name: "true", in: ` true `, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrNotObject},

		// Batches.
		{name: "empty-batch", in: `[]`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrBatch},
		{name: "batch", in: `[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrBatch},
		{name: "batch-after-whitespace", in: "\n [ {\"jsonrpc\":\"2.0\",\"method\":\"x\"} ]", wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrBatch},

		// Version.
		{name: "missing-jsonrpc", in: `{"id":1,"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrVersion, wantID: v(`1`)},
		{name: "jsonrpc-1.0", in: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrVersion, wantID: v(`1`)},
		{name: "jsonrpc-number", in: `{"jsonrpc":2.0,"id":"q","method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrVersion, wantID: v(`"q"`)},
		{name: "jsonrpc-padded", in: `{"jsonrpc":"2.0 ","method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrVersion},
		{name: "jsonrpc-null", in: `{"jsonrpc":null,"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrVersion},
		{name: "jsonrpc-escaped", in: `{"jsonrpc":"2\u002e0","method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrVersion},

		// Case variants of protocol members, including Unicode folds that
		// Go's encoding/json would accept as the real member.
		{name: "Method", in: `{"jsonrpc":"2.0","id":7,"method":"tools/list","Method":"tools/call"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`7`)},
		{name: "ID", in: `{"jsonrpc":"2.0","id":7,"method":"ping","ID":8}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`7`)},
		{name: "Id-alone", in: `{"jsonrpc":"2.0","Id":1,"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant},
		{name: "JSONRPC", in: `{"JSONRPC":"2.0","jsonrpc":"2.0","method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant},
		{name: "Params", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"Params":{"name":"b"}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`1`)},
		{name: "RESULT", in: `{"jsonrpc":"2.0","id":1,"result":{},"RESULT":{}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`1`)},
		{name: "Error", in: `{"jsonrpc":"2.0","id":1,"result":{},"Error":{"code":1}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`1`)},
		{name: "escaped-Method", in: `{"jsonrpc":"2.0","id":1,"method":"ping","\u004dethod":"x"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`1`)},
		{name: "long-s-params", in: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"paramſ":{"name":"b"}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`1`)},
		{name: "escaped-long-s-result", in: `{"jsonrpc":"2.0","id":1,"result":{},"re\u017fult":{}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant, wantID: v(`1`)},
		{name: "long-s-jsonrpc", in: `{"jſonrpc":"1.0","jsonrpc":"2.0","method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrCaseVariant},

		// Limits.
		{name: "too-large", in: `{"jsonrpc":"2.0","method":"notifications/initialized"}`, lim: mcp.Limits{MaxBytes: 16}, wantCode: mcp.CodeMessageTooLarge, wantErr: mcp.ErrTooLarge},
		{name: "one-byte-over", in: `{"jsonrpc":"2.0","method":"ab"}`, lim: mcp.Limits{MaxBytes: len(`{"jsonrpc":"2.0","method":"ab"}`) - 1}, wantCode: mcp.CodeMessageTooLarge, wantErr: mcp.ErrTooLarge},
		{name: "too-large-default", in: `{"jsonrpc":"2.0","method":"x","params":{"s":"` + strings.Repeat("a", mcp.DefaultMaxBytes) + `"}}`, wantCode: mcp.CodeMessageTooLarge, wantErr: mcp.ErrTooLarge},
		{name: "too-deep", in: nest(5), lim: mcp.Limits{MaxDepth: 4}, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrTooDeep},
		{name: "too-deep-default", in: nest(mcp.DefaultMaxDepth + 1), wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrTooDeep},
		{name: "too-deep-unterminated", in: strings.Repeat("[", 100000), wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrTooDeep},

		// IDs.
		{name: "id-true", in: `{"jsonrpc":"2.0","id":true,"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrInvalidID},
		{name: "id-object", in: `{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrInvalidID},
		{name: "id-array", in: `{"jsonrpc":"2.0","id":[1],"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrInvalidID},
		{name: "id-array-on-response", in: `{"jsonrpc":"2.0","id":[1],"result":{}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrInvalidID},
		{name: "null-id-on-request", in: `{"jsonrpc":"2.0","id":null,"method":"ping"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrInvalidID, wantID: v(`null`)},

		// Shapes.
		{name: "params-array", in: `{"jsonrpc":"2.0","id":1,"method":"x","params":[1,2]}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "params-string", in: `{"jsonrpc":"2.0","id":1,"method":"x","params":"{}"}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "params-null", in: `{"jsonrpc":"2.0","id":1,"method":"x","params":null}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "method-number", in: `{"jsonrpc":"2.0","id":1,"method":1}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "method-null", in: `{"jsonrpc":"2.0","id":1,"method":null}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "method-empty", in: `{"jsonrpc":"2.0","id":1,"method":""}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "result-and-error", in: `{"jsonrpc":"2.0","id":9,"result":{},"error":{"code":1,"message":"x"}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`9`)},
		{name: "request-with-result", in: `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrShape, wantID: v(`1`)},
		{name: "request-with-error", in: `{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":1}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrShape, wantID: v(`1`)},
		{name: "response-without-id", in: `{"jsonrpc":"2.0","result":{}}`, wantCode: mcp.CodeInvalidRequest},
		{name: "response-with-params", in: `{"jsonrpc":"2.0","id":1,"result":{},"params":{}}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrShape, wantID: v(`1`)},
		{name: "id-only", in: `{"jsonrpc":"2.0","id":1}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrShape, wantID: v(`1`)},
		{name: "empty-object", in: `{}`, wantCode: mcp.CodeInvalidRequest},
		{name: "version-only", in: `{"jsonrpc":"2.0"}`, wantCode: mcp.CodeInvalidRequest, wantErr: mcp.ErrShape},

		// Error objects.
		{name: "error-not-object", in: `{"jsonrpc":"2.0","id":1,"error":"boom"}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "error-code-missing", in: `{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "error-code-fraction", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1.5}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "error-code-exponent", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1e3}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "error-code-string", in: `{"jsonrpc":"2.0","id":1,"error":{"code":"-32600"}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "error-code-overflow", in: `{"jsonrpc":"2.0","id":1,"error":{"code":99999999999999999999}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
		{name: "error-message-number", in: `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":2}}`, wantCode: mcp.CodeInvalidRequest, wantID: v(`1`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.in)
			orig := bytes.Clone(in)
			m, err := mcp.Decode(in, tt.lim)
			if err == nil {
				t.Fatalf("Decode succeeded, want error; got %+v", m)
			}
			if m != nil {
				t.Errorf("Decode returned a message with an error: %+v", m)
			}
			var de *mcp.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			if de.Code != tt.wantCode {
				t.Errorf("Code = %d, want %d (err: %v)", de.Code, tt.wantCode, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %q does not wrap %q", err, tt.wantErr)
			}
			if !bytes.Equal(de.ID, tt.wantID) {
				t.Errorf("ID = %q, want %q", de.ID, tt.wantID)
			}
			if de.Error() == "" {
				t.Errorf("empty error message")
			}
			if !bytes.Equal(in, orig) {
				t.Errorf("Decode modified its input")
			}
		})
	}
}

// TestDecodeIDsByteExact checks that ids keep their exact bytes through
// Decode and Encode, whatever number or string form the peer chose.
func TestDecodeIDsByteExact(t *testing.T) {
	ids := []struct{ name, id string }{
		{"one", `1`},
		{"zero", `0`},
		{"negative-zero", `-0`},
		{"negative", `-42`},
		{"fraction", `1.5`},
		{"exponent", `1E+2`},
		{"exponent-overflows-float64", `1e400`},
		{"exponent-underflows-float64", `1e-400`},
		{"beyond-uint64", `12345678901234567890123456789`},
		{"beyond-float64-precision", `9007199254740993`},
		{"long-fraction", `0.10000000000000000000000000000001`},
		{"string", `"abc"`},
		{"empty-string", `""`},
		{"string-with-escapes", `"a\"b\\c\/d\u00e9\n\t\ud83d\ude00"`},
		{"string-numeric", `"1"`},
		{"string-unicode", `"идентификатор"`},
		{"string-nul-escape", `"\u0000"`},
		{"huge-string", `"` + strings.Repeat("x", 100000) + `"`},
		{"huge-number", strings.Repeat("9", 10000)},
	}
	for _, tt := range ids {
		t.Run(tt.name, func(t *testing.T) {
			msgs := []struct {
				in   string
				kind mcp.Kind
			}{
				{`{"jsonrpc":"2.0","id":` + tt.id + `,"method":"tools/call","params":{"name":"x"}}`, mcp.KindRequest},
				{`{"jsonrpc":"2.0","id":` + tt.id + `,"result":{"content":[]}}`, mcp.KindResponse},
				{`{"jsonrpc":"2.0","id":` + tt.id + `,"error":{"code":-32603,"message":"m"}}`, mcp.KindResponse},
				{`{"id" :  ` + tt.id + ` , "jsonrpc":"2.0","method":"ping"}`, mcp.KindRequest},
			}
			for _, msg := range msgs {
				m, err := mcp.Decode([]byte(msg.in), mcp.Limits{})
				if err != nil {
					t.Fatalf("Decode(%.80s): %v", msg.in, err)
				}
				if string(m.ID) != tt.id {
					t.Errorf("ID = %.80s, want %.80s", m.ID, tt.id)
				}
				if m.Kind() != msg.kind {
					t.Errorf("Kind = %v, want %v", m.Kind(), msg.kind)
				}
				enc := m.Encode()
				if !bytes.Contains(enc, []byte(`"id":`+tt.id)) {
					t.Errorf("Encode lost the id bytes: %.120s", enc)
				}
				m2, err := mcp.Decode(enc, mcp.Limits{})
				if err != nil {
					t.Fatalf("Decode(Encode()): %v", err)
				}
				if string(m2.ID) != tt.id {
					t.Errorf("re-decoded ID = %.80s, want %.80s", m2.ID, tt.id)
				}
			}
			// A decode error after the id was read carries the same bytes.
			_, err := mcp.Decode([]byte(`{"jsonrpc":"1.0","id":`+tt.id+`,"method":"ping"}`), mcp.Limits{})
			var de *mcp.DecodeError
			if !errors.As(err, &de) || string(de.ID) != tt.id {
				t.Errorf("DecodeError.ID = %.80q (err %v), want %.80s", de.ID, err, tt.id)
			}
		})
	}
}

// TestEncodeCanonicalIsIdentity checks that a message already written in the
// order and spacing Encode uses is reproduced byte for byte.
func TestEncodeCanonicalIsIdentity(t *testing.T) {
	tests := []struct{ name, in string }{
		{"request", `{"jsonrpc":"2.0","id":-0,"method":"tools/call","params":{"name":"x", "arguments" : {}}}`},
		{"notification", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a\u0000"}}`},
		{"result", `{"jsonrpc":"2.0","id":"r\"1","result":{"content":[{"type":"text","text":"\u2028"}]}}`},
		{"error", `{"jsonrpc":"2.0","id":1e400,"error":{"code":-32050,"message":"sluice: denied","data":{"reason":"x"}}}`},
		{"extra-members", `{"jsonrpc":"2.0","id":1,"method":"ping","a":[],"b":{"c":"d"}}`},
		{"result-extra", `{"jsonrpc":"2.0","id":12345678901234567890123456789,"result":null,"_x":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mcp.Decode([]byte(tt.in), mcp.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if got := string(m.Encode()); got != tt.in {
				t.Errorf("Encode:\n got %s\nwant %s", got, tt.in)
			}
			if got := string(m.Append([]byte("prefix:"))); got != "prefix:"+tt.in {
				t.Errorf("Append:\n got %s\nwant prefix:%s", got, tt.in)
			}
		})
	}
}

func TestConstructors(t *testing.T) {
	tests := []struct {
		name string
		m    *mcp.Message
		want string
		kind mcp.Kind
	}{
		{"request", mcp.NewRequest(v(`"r1"`), "tools/list", v(`{"cursor":"c"}`)), `{"jsonrpc":"2.0","id":"r1","method":"tools/list","params":{"cursor":"c"}}`, mcp.KindRequest},
		{"request-no-params", mcp.NewRequest(v(`3`), "ping", nil), `{"jsonrpc":"2.0","id":3,"method":"ping"}`, mcp.KindRequest},
		{"request-method-needs-escape", mcp.NewRequest(v(`3`), "a\"b\u2028", nil), `{"jsonrpc":"2.0","id":3,"method":"a\"b` + "\u2028" + `"}`, mcp.KindRequest},
		{"notification", mcp.NewNotification("notifications/initialized", nil), `{"jsonrpc":"2.0","method":"notifications/initialized"}`, mcp.KindNotification},
		{"result", mcp.NewResult(v(`1`), v(`{"tools":[]}`)), `{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}`, mcp.KindResponse},
		{"result-nil-is-empty-object", mcp.NewResult(v(`1`), nil), `{"jsonrpc":"2.0","id":1,"result":{}}`, mcp.KindResponse},
		{"error", mcp.NewErrorResponse(v(`"e"`), mcp.NewError(mcp.CodeMethodNotFound, "method not found")), `{"jsonrpc":"2.0","id":"e","error":{"code":-32601,"message":"method not found"}}`, mcp.KindResponse},
		{"error-nil-id-is-null", mcp.NewErrorResponse(nil, mcp.NewError(mcp.CodeParseError, "parse error")), `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}`, mcp.KindResponse},
		{"error-wins-over-result", &mcp.Message{ID: v(`1`), Result: v(`{}`), Error: mcp.NewError(1, "x")}, `{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}`, mcp.KindResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.m.Encode()
			if string(got) != tt.want {
				t.Errorf("Encode:\n got %s\nwant %s", got, tt.want)
			}
			if !jsontext.Value(got).IsValid() {
				t.Errorf("invalid JSON: %s", got)
			}
			if tt.m.Kind() != tt.kind {
				t.Errorf("Kind = %v, want %v", tt.m.Kind(), tt.kind)
			}
		})
	}
	if k := (&mcp.Message{}).Kind(); k != mcp.KindInvalid {
		t.Errorf("empty message Kind = %v, want KindInvalid", k)
	}
}

func TestErrorAppend(t *testing.T) {
	tests := []struct {
		name string
		e    *mcp.Error
		want string
	}{
		{"plain", &mcp.Error{Code: -32600, Message: "invalid request"}, `{"code":-32600,"message":"invalid request"}`},
		{"empty-message", &mcp.Error{Code: 0}, `{"code":0,"message":""}`},
		{"escapes", &mcp.Error{Code: 1, Message: "a\"b\\c\n\x01"}, `{"code":1,"message":"a\"b\\c\n\u0001"}`},
		{"data", &mcp.Error{Code: mcp.CodeDenied, Message: "denied", Data: v(`{"reason":"r"}`)}, `{"code":-32050,"message":"denied","data":{"reason":"r"}}`},
		{"data-null", &mcp.Error{Code: 1, Message: "m", Data: v(`null`)}, `{"code":1,"message":"m","data":null}`},
		{"max-code", &mcp.Error{Code: 1<<63 - 1, Message: "m"}, `{"code":9223372036854775807,"message":"m"}`},
		{"invalid-utf8-message-is-replaced", &mcp.Error{Code: 1, Message: "a\xffb"}, `{"code":1,"message":"a` + "\ufffd" + `b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.e.Append(nil)
			if string(got) != tt.want {
				t.Errorf("Append:\n got %s\nwant %s", got, tt.want)
			}
			if !jsontext.Value(got).IsValid() {
				t.Errorf("invalid JSON: %s", got)
			}
		})
	}
	if got, want := mcp.NewError(-32601, "method not found").Error(), "jsonrpc error -32601: method not found"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// TestDecodeErrorUnwrap checks that a DecodeError exposes its cause.
func TestDecodeErrorUnwrap(t *testing.T) {
	cause := errors.New("cause")
	de := &mcp.DecodeError{Code: mcp.CodeInvalidRequest, Err: cause}
	if !errors.Is(de, cause) || de.Error() != "cause" {
		t.Errorf("DecodeError does not wrap its cause: %v", de)
	}
}

// TestDecodeDoesNotRetainDecoderState decodes messages of different shapes in
// a row and from several goroutines, since Decode reuses pooled decoders.
func TestDecodeDoesNotRetainDecoderState(t *testing.T) {
	inputs := []string{
		`{"jsonrpc":"2.0","id":1,"method":"a","params":{"x":1}}`,
		`{"jsonrpc":"2.0","id":1,"method":"a"`, // fails half way
		`[1]`,
		`{"jsonrpc":"2.0","id":"s","result":{"k":"v"}}`,
		`{"jsonrpc":"2.0","method":"b"} trailing`,
		`{"jsonrpc":"2.0","id":2,"error":{"code":3,"message":"m"}}`,
	}
	want := make([]string, len(inputs))
	for i, in := range inputs {
		want[i] = decodeSummary(in)
	}
	done := make(chan struct{})
	for g := 0; g < 8; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				for i, in := range inputs {
					if got := decodeSummary(in); got != want[i] {
						t.Errorf("Decode(%s) = %s, want %s", in, got, want[i])
						return
					}
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
}

func decodeSummary(in string) string {
	m, err := mcp.Decode([]byte(in), mcp.Limits{})
	if err != nil {
		return "error: " + err.Error()
	}
	return string(m.Encode())
}

// v makes a jsontext.Value from a string.
func v(s string) jsontext.Value { return jsontext.Value(s) }

// nest returns a request whose deepest value is nested depth levels, the
// message object itself being level 1 (depth must be at least 2).
func nest(depth int) string {
	var b strings.Builder
	b.WriteString(`{"jsonrpc":"2.0","id":1,"method":"m","params":`)
	inner := depth - 1
	for i := range inner {
		if i%2 == 0 {
			if i == inner-1 {
				b.WriteString("{")
			} else {
				b.WriteString(`{"a":`)
			}
		} else {
			b.WriteString("[")
		}
	}
	for i := inner - 1; i >= 0; i-- {
		if i%2 == 0 {
			b.WriteString("}")
		} else {
			b.WriteString("]")
		}
	}
	b.WriteString("}")
	return b.String()
}
