package gateway_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/mcp"
)

// Robustness tests: what the gateway does with hostile or broken input
// from clients, and with upstream servers that crash, hang or time out.
// Every case checks the exact HTTP status and JSON-RPC error code, and that
// the gateway still serves a valid request afterwards.

const (
	rbMaxBytes = 64 << 10
	rbMaxDepth = 16
)

// rbPadTo pads a message with trailing whitespace to exactly n bytes.
func rbPadTo(msg string, n int) string {
	return msg + strings.Repeat(" ", n-len(msg))
}

// rbNested returns a ping whose JSON nests depth levels deep in total (the
// message object itself is level 1, params level 2), alternating objects
// and arrays.
func rbNested(depth int) string {
	inner := "1"
	for level := depth; level >= 2; level-- {
		if level%2 == 0 {
			inner = `{"a":` + inner + `}`
		} else {
			inner = `[` + inner + `]`
		}
	}
	return `{"jsonrpc":"2.0","id":1,"method":"ping","params":` + inner + `}`
}

func TestRobustMalformedInput(t *testing.T) {
	rbLeakCheck(t)
	everything := rbEverything(t)
	e := rbNewEnv(t, nil, fmt.Sprintf(`
limits:
  max_message_bytes: %d
  max_depth: %d
servers:
  everything:
    command: [%q]
`, rbMaxBytes, rbMaxDepth, everything))
	sid := e.mustInitLegacy(t, "/mcp")

	const ping = `{"jsonrpc":"2.0","id":1,"method":"ping"}`
	// An id of 1000 digits, and a string id of more than 10 KiB full of
	// escapes, which must come back exactly as sent.
	hugeNumber := strings.Repeat("1234567890", 100)
	hugeString := `"` + strings.Repeat(`k\u00e9\\\"/é`, 10<<10/14+1) + `"`
	escapedID := `"\u0041\/\n\t\"é\ud83d\ude00"`
	chunked := func(r *http.Request) {
		// Hide the length so the body travels chunked.
		r.ContentLength = 0
		r.Body = rbReader{r.Body}
	}

	var (
		null    = "null"
		invalid = func(id string) rbOutcome {
			return rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeInvalidRequest, ID: id}
		}
		ok         = func(id string) rbOutcome { return rbOutcome{Status: http.StatusOK, ID: id} }
		rpcErr     = func(code int64, id string) rbOutcome { return rbOutcome{Status: http.StatusOK, Code: code, ID: id} }
		accepted   = rbOutcome{Status: http.StatusAccepted}
		tooLarge   = rbOutcome{Status: http.StatusRequestEntityTooLarge, Code: mcp.CodeMessageTooLarge, ID: null}
		malformed  = rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeParseError, ID: null}
		pingWithID = func(id string) string { return `{"jsonrpc":"2.0","id":` + id + `,"method":"ping"}` }
		simpleText = func(id string) string { return rbCall(id, "test_simple_text", "") }
		toolsCall  = func(params string) string {
			return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":` + params + `}`
		}
	)
	tests := []struct {
		name string
		body string
		mods []rbMod
		want rbOutcome
	}{
		// Not JSON at all, or not one JSON value.
		{name: "json/truncated", body: `{"jsonrpc":"2.0","id":1,"method":"ping"`, want: malformed},
		{name: "json/trailing-comma", body: `{"jsonrpc":"2.0","id":1,"method":"ping",}`, want: malformed},
		{name: "json/single-quotes", body: `{'jsonrpc':'2.0','id':1,'method':'ping'}`, want: malformed},
		{name: "json/bare-word", body: `ping`, want: malformed},
		{name: "json/two-messages", body: ping + ping, want: malformed},
		{name: "json/message-then-garbage", body: ping + `x`, want: malformed},
		{name: "json/nan-id", body: `{"jsonrpc":"2.0","id":NaN,"method":"ping"}`, want: malformed},
		{name: "json/leading-zero-id", body: `{"jsonrpc":"2.0","id":01,"method":"ping"}`, want: malformed},
		{name: "json/raw-tab-in-string", body: "{\"jsonrpc\":\"2.0\",\"id\":\"a\tb\",\"method\":\"ping\"}", want: malformed},
		{name: "json/byte-order-mark", body: "\ufeff" + ping, want: malformed},
		{name: "json/nul-byte", body: ping[:len(ping)-1] + "\x00}", want: malformed},

		// The JSON-RPC version.
		{name: "version/1.0", body: `{"jsonrpc":"1.0","id":1,"method":"ping"}`, want: invalid("1")},
		{name: "version/missing", body: `{"id":1,"method":"ping"}`, want: invalid("1")},
		{name: "version/number", body: `{"jsonrpc":2.0,"id":1,"method":"ping"}`, want: invalid("1")},
		{name: "version/null", body: `{"jsonrpc":null,"id":1,"method":"ping"}`, want: invalid("1")},
		{name: "version/2.00", body: `{"jsonrpc":"2.00","id":1,"method":"ping"}`, want: invalid("1")},
		{name: "version/missing-notification", body: `{"method":"notifications/initialized"}`, want: invalid(null)},

		// Size limit.
		{name: "size/at-limit", body: rbPadTo(ping, rbMaxBytes), want: ok("1")},
		{name: "size/over-limit-by-one", body: rbPadTo(ping, rbMaxBytes+1), want: tooLarge},
		{name: "size/twice-the-limit", body: rbPadTo(ping, 2*rbMaxBytes), want: tooLarge},
		{name: "size/over-limit-chunked", body: rbPadTo(ping, rbMaxBytes+1), mods: []rbMod{chunked}, want: tooLarge},
		{name: "size/over-limit-in-a-string", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"` + strings.Repeat("x", rbMaxBytes) + `"}}`, want: tooLarge},

		// Batches were removed from MCP in 2025-06-18.
		{name: "batch/one-request", body: `[` + ping + `]`, want: invalid(null)},
		{name: "batch/two-requests", body: `[` + ping + `,` + ping + `]`, want: invalid(null)},
		{name: "batch/empty", body: `[]`, want: invalid(null)},
		{name: "batch/nested", body: `[[` + ping + `]]`, want: invalid(null)},

		// Methods.
		{name: "method/unknown", body: `{"jsonrpc":"2.0","id":7,"method":"no/such/method"}`, want: rpcErr(mcp.CodeMethodNotFound, "7")},
		{name: "method/unknown-with-params", body: `{"jsonrpc":"2.0","id":"u","method":"tools/destroy","params":{"name":"x"}}`, want: rpcErr(mcp.CodeMethodNotFound, `"u"`)},
		{name: "method/case-differs", body: `{"jsonrpc":"2.0","id":8,"method":"Tools/List"}`, want: rpcErr(mcp.CodeMethodNotFound, "8")},
		{name: "method/trailing-space", body: `{"jsonrpc":"2.0","id":8,"method":"ping "}`, want: rpcErr(mcp.CodeMethodNotFound, "8")},
		{name: "method/empty", body: `{"jsonrpc":"2.0","id":1,"method":""}`, want: invalid("1")},
		{name: "method/number", body: `{"jsonrpc":"2.0","id":1,"method":1}`, want: invalid("1")},
		{name: "method/null", body: `{"jsonrpc":"2.0","id":1,"method":null}`, want: invalid("1")},

		// Duplicate member names: the gateway and the upstream could
		// otherwise read different values from one message.
		{name: "duplicate/id", body: `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, want: malformed},
		{name: "duplicate/method", body: `{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}`, want: malformed},
		{name: "duplicate/params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text"},"params":{"name":"test_error_handling"}}`, want: malformed},
		{name: "duplicate/escaped-name", body: `{"jsonrpc":"2.0","id":1,"method":"ping","\u006dethod":"tools/call"}`, want: malformed},
		{name: "duplicate/in-params", body: toolsCall(`{"name":"test_simple_text","name":"test_error_handling"}`), want: malformed},
		{name: "duplicate/in-arguments", body: toolsCall(`{"name":"test_simple_text","arguments":{"a":1,"a":2}}`), want: malformed},
		{name: "duplicate/in-meta", body: toolsCall(`{"name":"test_simple_text","_meta":{"progressToken":1,"progressToken":2}}`), want: malformed},
		{name: "duplicate/deep-in-array", body: toolsCall(`{"name":"test_simple_text","arguments":{"x":[{"k":1},{"k":1,"k":2}]}}`), want: malformed},

		// Invalid UTF-8 anywhere.
		{name: "utf8/in-value", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\xff\"}}", want: malformed},
		{name: "utf8/in-member-name", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"\xc3\":1}}", want: malformed},
		{name: "utf8/in-method", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\xe2\x82\"}", want: malformed},
		{name: "utf8/in-id", body: "{\"jsonrpc\":\"2.0\",\"id\":\"\xfe\",\"method\":\"ping\"}", want: malformed},
		{name: "utf8/overlong-slash", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools\xc0\xaflist\"}", want: malformed},
		{name: "utf8/encoded-surrogate", body: "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{\"a\":\"\xed\xa0\x80\"}}", want: malformed},
		{name: "utf8/escaped-lone-surrogate", body: `{"jsonrpc":"2.0","id":"\ud800","method":"ping"}`, want: malformed},

		// Request ids.
		{name: "id/null", body: pingWithID("null"), want: invalid(null)},
		{name: "id/object", body: pingWithID(`{"a":1}`), want: invalid(null)},
		{name: "id/array", body: pingWithID(`[1]`), want: invalid(null)},
		{name: "id/true", body: pingWithID("true"), want: invalid(null)},
		{name: "id/false", body: pingWithID("false"), want: invalid(null)},
		{name: "id/huge-number", body: pingWithID(hugeNumber), want: ok(hugeNumber)},
		{name: "id/huge-string", body: pingWithID(hugeString), want: ok(hugeString)},
		{name: "id/huge-string-through-upstream", body: simpleText(hugeString), want: ok(hugeString)},
		{name: "id/huge-number-through-upstream", body: simpleText(hugeNumber), want: ok(hugeNumber)},
		{name: "id/huge-string-error", body: `{"jsonrpc":"2.0","id":` + hugeString + `,"method":"no/such"}`, want: rpcErr(mcp.CodeMethodNotFound, hugeString)},
		{name: "id/huge-string-bad-version", body: `{"jsonrpc":"1.0","id":` + hugeString + `,"method":"ping"}`, want: invalid(hugeString)},
		{name: "id/escapes-kept", body: pingWithID(escapedID), want: ok(escapedID)},
		{name: "id/escapes-through-upstream", body: simpleText(escapedID), want: ok(escapedID)},
		{name: "id/empty-string", body: pingWithID(`""`), want: ok(`""`)},
		{name: "id/negative-zero", body: pingWithID(`-0`), want: ok(`-0`)},
		{name: "id/exponent", body: pingWithID(`1e3`), want: ok(`1e3`)},
		{name: "id/fraction", body: pingWithID(`1.50`), want: ok(`1.50`)},
		{name: "id/whitespace-around", body: `{"jsonrpc":"2.0","id":  42  ,"method":"ping"}`, want: ok(`42`)},

		// Member names that differ from the protocol's only by case: a
		// case-insensitive decoder upstream would read them.
		{name: "case/Method", body: `{"jsonrpc":"2.0","id":1,"Method":"ping"}`, want: invalid("1")},
		{name: "case/METHOD-beside-method", body: `{"jsonrpc":"2.0","id":1,"method":"ping","METHOD":"tools/call"}`, want: invalid("1")},
		{name: "case/PARAMS", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text"},"PARAMS":{"name":"test_error_handling"}}`, want: invalid("1")},
		{name: "case/Params-alone", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"test_simple_text"}}`, want: invalid("1")},
		{name: "case/ID", body: `{"jsonrpc":"2.0","id":1,"ID":2,"method":"ping"}`, want: invalid("1")},
		{name: "case/JSONRPC", body: `{"JSONRPC":"2.0","id":1,"method":"ping"}`, want: invalid("1")},
		{name: "case/Result", body: `{"jsonrpc":"2.0","id":1,"Result":{}}`, want: invalid("1")},
		{name: "case/long-s-folds-to-s", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_simple_text"},"paramſ":{"name":"test_error_handling"}}`, want: invalid("1")},
		{name: "case/in-params", body: toolsCall(`{"name":"test_simple_text","Name":"test_error_handling"}`), want: rpcErr(mcp.CodeInvalidParams, "1")},
		{name: "case/in-params-variant-only", body: toolsCall(`{"NAME":"test_simple_text"}`), want: rpcErr(mcp.CodeInvalidParams, "1")},

		// Nesting.
		{name: "depth/at-limit", body: rbNested(rbMaxDepth), want: ok("1")},
		{name: "depth/over-limit", body: rbNested(rbMaxDepth + 1), want: invalid(null)},
		{name: "depth/far-over-limit", body: rbNested(5000), want: invalid(null)},
		{name: "depth/brackets-inside-strings", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"` + strings.Repeat("[{", 100) + `"}}`, want: ok("1")},
		{name: "depth/escaped-quote-then-brackets", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\"` + strings.Repeat("[", 100) + `\\"}}`, want: ok("1")},

		// Empty bodies and bodies that are JSON but not an object.
		{name: "body/empty", body: ``, want: malformed},
		{name: "body/whitespace", body: " \r\n\t", want: malformed},
		{name: "body/string", body: `"ping"`, want: invalid(null)},
		{name: "body/number", body: `1`, want: invalid(null)},
		{name: "body/null", body: `null`, want: invalid(null)},
		{name: "body/true", body: `true`, want: invalid(null)},
		{name: "body/empty-object", body: `{}`, want: invalid(null)},

		// Params and message shapes.
		{name: "params/array", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}`, want: invalid("1")},
		{name: "params/string", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}`, want: invalid("1")},
		{name: "params/null", body: `{"jsonrpc":"2.0","id":1,"method":"ping","params":null}`, want: invalid("1")},
		{name: "shape/request-with-result", body: `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, want: invalid("1")},
		{name: "shape/request-with-error", body: `{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":1,"message":"x"}}`, want: invalid("1")},
		{name: "shape/no-method-no-result", body: `{"jsonrpc":"2.0","id":1}`, want: invalid("1")},
		{name: "shape/result-and-error", body: `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`, want: invalid("1")},
		{name: "shape/error-without-code", body: `{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}`, want: invalid("1")},
		{name: "shape/response-to-nothing", body: `{"jsonrpc":"2.0","id":"nobody","result":{}}`, want: accepted},
		{name: "shape/error-response-to-nothing", body: `{"jsonrpc":"2.0","id":"nobody","error":{"code":-1,"message":"x"}}`, want: accepted},
		{name: "notification/unknown", body: `{"jsonrpc":"2.0","method":"notifications/whatever","params":{"a":1}}`, want: accepted},
		{name: "notification/cancelled-bogus-id", body: `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"a":[1]}}}`, want: accepted},
		{name: "notification/cancelled-no-params", body: `{"jsonrpc":"2.0","method":"notifications/cancelled"}`, want: accepted},
		{name: "tools-call/no-name", body: toolsCall(`{}`), want: rpcErr(mcp.CodeInvalidParams, "1")},
		{name: "tools-call/name-number", body: toolsCall(`{"name":1}`), want: rpcErr(mcp.CodeInvalidParams, "1")},
		{name: "tools-call/no-params", body: `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, want: rpcErr(mcp.CodeInvalidParams, "1")},
		{name: "tools-list/foreign-cursor", body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"cursor":"zzz"}}`, want: rpcErr(mcp.CodeInvalidParams, "1")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods := append(rbLegacyHeaders(sid), tc.mods...)
			r := e.post(t, "/mcp", tc.body, mods...)
			got := r.outcome()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				if len(diff) > 2000 {
					diff = diff[:2000] + "..."
				}
				t.Errorf("answer (-want +got):\n%s\nfull answer: %s", diff, r)
			}
			if tc.want.Code != 0 && (r.Msg == nil || r.Msg.Error == nil || r.Msg.Error.Message == "") {
				t.Errorf("error answer without a JSON-RPC error message: %s", r)
			}
			if tc.want == accepted && len(r.Body) != 0 {
				t.Errorf("202 answer has a body: %s", r)
			}
			// The gateway and the session still work.
			after := e.post(t, "/mcp", simpleText(`"after"`), rbLegacyHeaders(sid)...)
			res, err := after.toolResult()
			if err != nil {
				t.Fatalf("valid request after %s: %v", tc.name, err)
			}
			if want := (rbToolResult{Text: "This is a simple text response for testing."}); res != want {
				t.Fatalf("valid request after %s: got %+v, want %+v", tc.name, res, want)
			}
		})
	}
	if n := e.g.SessionCount(); n != 1 {
		t.Errorf("SessionCount() = %d, want 1: malformed input must not open or close sessions", n)
	}
}

// rbReader hides every method of a body but Read and Close, so that the
// HTTP client cannot tell its length.
type rbReader struct{ r io.Reader }

func (r rbReader) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r rbReader) Close() error               { return nil }

func TestRobustModernHeaders(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	events := rbNewEvents(t)
	e := rbNewEnv(t, nil, fmt.Sprintf(`
servers:
  mis:
    command: [%q, "-events", %q]
    era: modern
`, misbehave, string(events)))

	b64 := func(s string) string { return "=?base64?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?=" }
	echo := rbModernCall("1", "echo", `{"text":"hi"}`)
	crash := rbModernCall("1", "crash", "")
	mismatch := rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeHeaderMismatch, ID: "1"}
	withVersion := func(header, meta string) (string, []rbMod) {
		body := strings.Replace(echo, `"io.modelcontextprotocol/protocolVersion":"`+rbModernVersion+`"`, `"io.modelcontextprotocol/protocolVersion":"`+meta+`"`, 1)
		return body, []rbMod{rbHeader("Mcp-Protocol-Version", header), rbHeader("Mcp-Method", "tools/call"), rbHeader("Mcp-Name", "echo")}
	}
	staleBody, staleHeaders := withVersion(rbLegacyVersion, rbModernVersion)
	downBody, downHeaders := withVersion(rbModernVersion, rbLegacyVersion)
	futureBody, futureHeaders := withVersion("2099-01-01", "2099-01-01")
	noMeta := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}`

	tests := []struct {
		name string
		body string
		mods []rbMod
		want rbOutcome
	}{
		{name: "valid", body: echo, mods: rbModernHeaders("tools/call", "echo"), want: rbOutcome{Status: http.StatusOK, ID: "1"}},
		{name: "valid-name-base64", body: echo, mods: rbModernHeaders("tools/call", b64("echo")), want: rbOutcome{Status: http.StatusOK, ID: "1"}},
		{name: "valid-list", body: rbModern("1", "tools/list", ""), mods: rbModernHeaders("tools/list", ""), want: rbOutcome{Status: http.StatusOK, ID: "1"}},

		{name: "method/missing", body: echo, mods: []rbMod{rbHeader("Mcp-Protocol-Version", rbModernVersion), rbHeader("Mcp-Name", "echo")}, want: mismatch},
		{name: "method/other-method", body: echo, mods: rbModernHeaders("tools/list", "echo"), want: mismatch},
		{name: "method/case-differs", body: echo, mods: rbModernHeaders("Tools/Call", "echo"), want: mismatch},
		{name: "method/empty", body: echo, mods: rbModernHeaders("", "echo"), want: mismatch},
		{name: "method/twice", body: echo, mods: append(rbModernHeaders("tools/call", "echo"), rbAddHeader("Mcp-Method", "tools/call")), want: mismatch},
		{name: "method/missing-on-list", body: rbModern("1", "tools/list", ""), mods: []rbMod{rbHeader("Mcp-Protocol-Version", rbModernVersion)}, want: mismatch},

		{name: "name/missing", body: echo, mods: rbModernHeaders("tools/call", ""), want: mismatch},
		{name: "name/other-tool", body: crash, mods: rbModernHeaders("tools/call", "echo"), want: mismatch},
		{name: "name/other-tool-reversed", body: echo, mods: rbModernHeaders("tools/call", "crash"), want: mismatch},
		{name: "name/case-differs", body: echo, mods: rbModernHeaders("tools/call", "Echo"), want: mismatch},
		{name: "name/twice", body: echo, mods: append(rbModernHeaders("tools/call", "echo"), rbAddHeader("Mcp-Name", "echo")), want: mismatch},
		{name: "name/base64-of-other-tool", body: echo, mods: rbModernHeaders("tools/call", b64("crash")), want: mismatch},
		{name: "name/base64-malformed", body: echo, mods: rbModernHeaders("tools/call", "=?base64?!!!?="), want: mismatch},
		{name: "name/raw-non-ascii", body: rbModernCall("1", "écho", ""), mods: rbModernHeaders("tools/call", "écho"), want: mismatch},
		{name: "name/missing-on-resources-read", body: rbModern("1", "resources/read", `"uri":"file:///x"`), mods: rbModernHeaders("resources/read", ""), want: mismatch},
		{name: "name/missing-on-prompts-get", body: rbModern("1", "prompts/get", `"name":"p"`), mods: rbModernHeaders("prompts/get", ""), want: mismatch},

		{name: "version/header-missing", body: echo, mods: []rbMod{rbHeader("Mcp-Method", "tools/call"), rbHeader("Mcp-Name", "echo")}, want: mismatch},
		{name: "version/header-legacy-meta-modern", body: staleBody, mods: staleHeaders, want: mismatch},
		{name: "version/header-modern-meta-legacy", body: downBody, mods: downHeaders, want: mismatch},
		{name: "version/unsupported", body: futureBody, mods: futureHeaders, want: rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeUnsupportedProtocolVersion, ID: "1"}},
		{name: "version/meta-missing", body: noMeta, mods: rbModernHeaders("tools/call", "echo"), want: rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeInvalidParams, ID: "1"}},

		{name: "method-not-found", body: rbModern("1", "no/such", ""), mods: rbModernHeaders("no/such", ""), want: rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeMethodNotFound, ID: "1"}},
		{name: "removed-method-ping", body: rbModern("1", "ping", ""), mods: rbModernHeaders("ping", ""), want: rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeMethodNotFound, ID: "1"}},
		{name: "client-response", body: `{"jsonrpc":"2.0","id":1,"result":{}}`, mods: []rbMod{rbHeader("Mcp-Protocol-Version", rbModernVersion)}, want: rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeInvalidRequest, ID: "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.post(t, "/mcp", tc.body, tc.mods...)
			if diff := cmp.Diff(tc.want, r.outcome()); diff != "" {
				t.Errorf("answer (-want +got):\n%s\nfull answer: %s", diff, r)
			}
			if tc.want.Code == 0 && r.Msg != nil && r.Msg.Error == nil {
				if rt, _, _ := mcp.LookupString(r.Msg.Result, "resultType"); rt != "complete" {
					t.Errorf("modern result without resultType complete: %s", r)
				}
			}
			e.echoModern(t, "/mcp", "still here")
		})
	}
	if n := events.count("crash"); n != 0 {
		t.Errorf("the crash tool ran %d times; requests whose headers disagree with the body must not reach the upstream", n)
	}
}

func TestRobustSessions(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	e := rbNewEnv(t, nil, fmt.Sprintf(`
servers:
  mis:
    command: [%q]
    era: legacy
profiles:
  other:
    servers: [mis]
`, misbehave))
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	notFound := rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeInvalidRequest, ID: "1"}

	tests := []struct {
		name string
		run  func(t *testing.T) *rbResp
		want rbOutcome
	}{
		{
			name: "no-session-id",
			run: func(t *testing.T) *rbResp {
				return e.post(t, "/mcp", list, rbHeader("Mcp-Protocol-Version", rbLegacyVersion))
			},
			want: rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeInvalidRequest, ID: "1"},
		},
		{
			name: "unknown-session-id",
			run: func(t *testing.T) *rbResp {
				return e.post(t, "/mcp", list, rbLegacyHeaders("no-such-session")...)
			},
			want: notFound,
		},
		{
			name: "altered-session-id",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp")
				forged := sid[:len(sid)-1] + "A"
				if sid[len(sid)-1] == 'A' {
					forged = sid[:len(sid)-1] + "B"
				}
				return e.post(t, "/mcp", list, rbLegacyHeaders(forged)...)
			},
			want: notFound,
		},
		{
			name: "deleted-session",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp")
				e.echoLegacy(t, "/mcp", sid, "before delete")
				if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
					t.Fatalf("DELETE = %d, %v; want 204", st, err)
				}
				return e.post(t, "/mcp", list, rbLegacyHeaders(sid)...)
			},
			want: notFound,
		},
		{
			name: "deleted-twice",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp")
				if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
					t.Fatalf("DELETE = %d, %v; want 204", st, err)
				}
				return e.post(t, "/mcp", "", rbMethod(http.MethodDelete), rbSession(sid))
			},
			want: rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeInvalidRequest, ID: "null"},
		},
		{
			name: "delete-without-session-id",
			run: func(t *testing.T) *rbResp {
				return e.post(t, "/mcp", "", rbMethod(http.MethodDelete))
			},
			want: rbOutcome{Status: http.StatusMethodNotAllowed},
		},
		{
			name: "get-stream-of-unknown-session",
			run: func(t *testing.T) *rbResp {
				return e.post(t, "/mcp", "", rbMethod(http.MethodGet), rbSession("no-such-session"), rbHeader("Accept", "text/event-stream"))
			},
			want: rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeInvalidRequest, ID: "null"},
		},
		{
			name: "initialize-with-session-id",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp")
				return e.post(t, "/mcp", rbInitBody, rbSession(sid))
			},
			want: rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeInvalidRequest, ID: "0"},
		},
		{
			name: "session-of-another-profile",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp/other")
				e.echoLegacy(t, "/mcp/other", sid, "in its own profile")
				return e.post(t, "/mcp", list, rbLegacyHeaders(sid)...)
			},
			want: notFound,
		},
		{
			name: "delete-through-another-profile",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp")
				r := e.post(t, "/mcp/other", "", rbMethod(http.MethodDelete), rbSession(sid))
				// The session is not another profile's to end: GET and
				// POST through another profile do not find it either.
				after := e.post(t, "/mcp", rbCall("2", "echo", `{"text":"still open"}`), rbLegacyHeaders(sid)...)
				if res, err := after.toolResult(); err != nil || res.Text != "still open" {
					t.Errorf("the session was closed by a DELETE to another profile: %s", after)
				}
				return r
			},
			want: rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeInvalidRequest, ID: "null"},
		},
		{
			name: "unsupported-protocol-version-header",
			run: func(t *testing.T) *rbResp {
				sid := e.mustInitLegacy(t, "/mcp")
				return e.post(t, "/mcp", list, rbSession(sid), rbHeader("Mcp-Protocol-Version", "1999-01-01"))
			},
			want: rbOutcome{Status: http.StatusBadRequest, Code: mcp.CodeInvalidRequest, ID: "1"},
		},
		{
			name: "unknown-profile",
			run: func(t *testing.T) *rbResp {
				return e.post(t, "/mcp/nope", rbInitBody)
			},
			want: rbOutcome{Status: http.StatusNotFound},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.g.SessionCount()
			r := tc.run(t)
			if diff := cmp.Diff(tc.want, r.outcome()); diff != "" {
				t.Errorf("answer (-want +got):\n%s\nfull answer: %s", diff, r)
			}
			// A fresh session works.
			sid := e.mustInitLegacy(t, "/mcp")
			e.echoLegacy(t, "/mcp", sid, "fresh")
			if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
				t.Fatalf("DELETE = %d, %v; want 204", st, err)
			}
			if after := e.g.SessionCount(); after < before {
				t.Errorf("SessionCount() went from %d to %d", before, after)
			}
		})
	}
}

func TestRobustOriginHost(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	e := rbNewEnv(t, nil, fmt.Sprintf(`
http:
  allowed_origins: ["https://app.example"]
  allowed_hosts: ["mcp.internal:8787"]
servers:
  mis:
    command: [%q]
`, misbehave))
	port := e.url[strings.LastIndex(e.url, ":")+1:]
	forbidden := rbOutcome{Status: http.StatusForbidden, Code: mcp.CodeInvalidRequest, ID: "null"}
	admitted := rbOutcome{Status: http.StatusOK, ID: "0"}

	tests := []struct {
		name string
		mods []rbMod
		want rbOutcome
	}{
		{name: "no-origin", want: admitted},
		{name: "origin/loopback-ip", mods: []rbMod{rbOrigin("http://127.0.0.1:" + port)}, want: admitted},
		{name: "origin/localhost", mods: []rbMod{rbOrigin("http://localhost:3000")}, want: admitted},
		{name: "origin/ipv6-loopback", mods: []rbMod{rbOrigin("http://[::1]:8080")}, want: admitted},
		{name: "origin/allowed-by-config", mods: []rbMod{rbOrigin("https://app.example")}, want: admitted},
		{name: "origin/evil", mods: []rbMod{rbOrigin("https://evil.example")}, want: forbidden},
		{name: "origin/allowed-host-other-scheme", mods: []rbMod{rbOrigin("http://app.example")}, want: forbidden},
		{name: "origin/allowed-as-prefix", mods: []rbMod{rbOrigin("https://app.example.evil.example")}, want: forbidden},
		{name: "origin/localhost-as-subdomain", mods: []rbMod{rbOrigin("http://localhost.evil.example")}, want: forbidden},
		{name: "origin/loopback-ip-as-subdomain", mods: []rbMod{rbOrigin("http://127.0.0.1.evil.example")}, want: forbidden},
		{name: "origin/userinfo-trick", mods: []rbMod{rbOrigin("http://localhost@evil.example")}, want: forbidden},
		{name: "origin/null", mods: []rbMod{rbOrigin("null")}, want: forbidden},
		{name: "origin/file", mods: []rbMod{rbOrigin("file://")}, want: forbidden},
		{name: "origin/private-ip", mods: []rbMod{rbOrigin("http://192.168.1.10")}, want: forbidden},
		{name: "host/evil", mods: []rbMod{rbHost("evil.example")}, want: forbidden},
		{name: "host/evil-with-port", mods: []rbMod{rbHost("evil.example:" + port)}, want: forbidden},
		{name: "host/localhost-subdomain", mods: []rbMod{rbHost("localhost.evil.example:" + port)}, want: forbidden},
		{name: "host/unspecified", mods: []rbMod{rbHost("0.0.0.0:" + port)}, want: forbidden},
		{name: "host/localhost", mods: []rbMod{rbHost("localhost:" + port)}, want: admitted},
		{name: "host/ipv6-loopback", mods: []rbMod{rbHost("[::1]:" + port)}, want: admitted},
		{name: "host/allowed-by-config", mods: []rbMod{rbHost("mcp.internal:8787")}, want: admitted},
		{name: "host/allowed-name-other-port", mods: []rbMod{rbHost("mcp.internal:9999")}, want: forbidden},
		{name: "host-and-origin/evil-origin-good-host", mods: []rbMod{rbHost("localhost:" + port), rbOrigin("https://evil.example")}, want: forbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.g.SessionCount()
			r := e.post(t, "/mcp", rbInitBody, tc.mods...)
			if diff := cmp.Diff(tc.want, r.outcome()); diff != "" {
				t.Errorf("answer (-want +got):\n%s\nfull answer: %s", diff, r)
			}
			if tc.want.Status == http.StatusForbidden {
				if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
					t.Errorf("a forbidden request got a session id")
				}
				if after := e.g.SessionCount(); after != before {
					t.Errorf("SessionCount() went from %d to %d on a forbidden request", before, after)
				}
			} else if sid := r.Header.Get("Mcp-Session-Id"); sid != "" {
				if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
					t.Errorf("DELETE = %d, %v; want 204", st, err)
				}
			}
			sid := e.mustInitLegacy(t, "/mcp")
			e.echoLegacy(t, "/mcp", sid, "fine")
			if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
				t.Errorf("DELETE = %d, %v; want 204", st, err)
			}
		})
	}

	t.Run("forbidden-requests-touch-no-session", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp")
		for _, m := range []string{http.MethodDelete, http.MethodGet, http.MethodPost} {
			for _, mod := range []rbMod{rbOrigin("https://evil.example"), rbHost("evil.example")} {
				r := e.post(t, "/mcp", `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, rbMethod(m), rbSession(sid), rbHeader("Accept", "application/json, text/event-stream"), mod)
				if r.Status != http.StatusForbidden {
					t.Errorf("%s: status %d, want 403: %s", m, r.Status, r)
				}
			}
		}
		e.echoLegacy(t, "/mcp", sid, "session survived")
		if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
			t.Errorf("DELETE = %d, %v; want 204", st, err)
		}
	})
}

func TestRobustUpstreamCrash(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	events := rbNewEvents(t)
	sharedEvents := rbNewEvents(t)
	e := rbNewEnv(t, nil, fmt.Sprintf(`
servers:
  mis:
    command: [%q, "-events", %q]
    restart: {initial_backoff: 50ms, max_backoff: 200ms}
  shared:
    command: [%q, "-events", %q]
    shared: true
    era: legacy
    restart: {initial_backoff: 50ms, max_backoff: 200ms}
profiles:
  mis: {servers: [mis]}
  shared: {servers: [shared]}
`, misbehave, string(events), misbehave, string(sharedEvents)))

	unavailable := func(id string) rbOutcome {
		return rbOutcome{Status: http.StatusOK, Code: mcp.CodeUpstreamUnavailable, ID: id}
	}
	timed := func(t *testing.T, f func() *rbResp) *rbResp {
		start := time.Now()
		r := f()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("the failed call took %v", d)
		}
		return r
	}

	t.Run("legacy-client", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp/mis")
		e.echoLegacy(t, "/mcp/mis", sid, "before")
		crashes := events.count("crash")
		r := timed(t, func() *rbResp { return e.post(t, "/mcp/mis", rbCall("2", "crash", ""), rbLegacyHeaders(sid)...) })
		if diff := cmp.Diff(unavailable("2"), r.outcome()); diff != "" {
			t.Errorf("crash call (-want +got):\n%s\nfull answer: %s", diff, r)
		}
		if got := events.count("crash"); got != crashes+1 {
			t.Errorf("crash events = %d, want %d", got, crashes+1)
		}
		// The upstream is restarted for the next call, in the same session.
		e.echoLegacy(t, "/mcp/mis", sid, "after")
		e.echoLegacy(t, "/mcp/mis", sid, "after again")
	})

	t.Run("modern-client", func(t *testing.T) {
		e.echoModern(t, "/mcp/mis", "before")
		r := timed(t, func() *rbResp {
			return e.post(t, "/mcp/mis", rbModernCall("3", "crash", ""), rbModernHeaders("tools/call", "crash")...)
		})
		if diff := cmp.Diff(unavailable("3"), r.outcome()); diff != "" {
			t.Errorf("crash call (-want +got):\n%s\nfull answer: %s", diff, r)
		}
		e.echoModern(t, "/mcp/mis", "after")
	})

	t.Run("crash-fails-other-calls-in-flight", func(t *testing.T) {
		a := e.mustInitLegacy(t, "/mcp/shared")
		b := e.mustInitLegacy(t, "/mcp/shared")
		e.echoLegacy(t, "/mcp/shared", a, "warm")
		hangs := sharedEvents.count("hang-start")
		done := make(chan *rbResp, 1)
		go func() {
			r, err := e.do(context.Background(), "/mcp/shared", []byte(rbCall("4", "hang", `{"tag":"victim"}`)), rbLegacyHeaders(a)...)
			if err != nil {
				t.Errorf("hang call: %v", err)
			}
			done <- r
		}()
		sharedEvents.wait(t, "hang-start", hangs+1, 10*time.Second)
		r := timed(t, func() *rbResp { return e.post(t, "/mcp/shared", rbCall("5", "crash", ""), rbLegacyHeaders(b)...) })
		if diff := cmp.Diff(unavailable("5"), r.outcome()); diff != "" {
			t.Errorf("crash call (-want +got):\n%s\nfull answer: %s", diff, r)
		}
		select {
		case v := <-done:
			if v != nil {
				if diff := cmp.Diff(unavailable("4"), v.outcome()); diff != "" {
					t.Errorf("call in flight during the crash (-want +got):\n%s\nfull answer: %s", diff, v)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the call in flight when the upstream crashed never ended")
		}
		e.echoLegacy(t, "/mcp/shared", a, "a after")
		e.echoLegacy(t, "/mcp/shared", b, "b after")
	})

	t.Run("repeated-crashes", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp/mis")
		for i := range 3 {
			id := fmt.Sprint(10 + i)
			r := e.post(t, "/mcp/mis", rbCall(id, "crash", ""), rbLegacyHeaders(sid)...)
			if diff := cmp.Diff(unavailable(id), r.outcome()); diff != "" {
				t.Errorf("crash %d (-want +got):\n%s\nfull answer: %s", i, diff, r)
			}
		}
		e.echoLegacy(t, "/mcp/mis", sid, "survived three crashes")
	})
}

func TestRobustUpstreamTimeout(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	tests := []struct {
		name    string
		limits  string
		server  string // server settings; era: legacy when empty
		modern  bool   // the client's era
		timeout time.Duration
	}{
		{name: "limits-call-timeout", limits: "call_timeout: 500ms", timeout: 500 * time.Millisecond},
		{name: "server-timeout-overrides-limits", limits: "call_timeout: 30s", server: "timeout: 300ms", timeout: 300 * time.Millisecond},
		{name: "modern-client", limits: "call_timeout: 500ms", modern: true, timeout: 500 * time.Millisecond},
		{name: "modern-upstream", limits: "call_timeout: 500ms", server: "era: modern", timeout: 500 * time.Millisecond},
		{name: "modern-client-modern-upstream", limits: "call_timeout: 500ms", server: "era: modern", modern: true, timeout: 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := rbNewEvents(t)
			server := tc.server
			if server == "" {
				server = "era: legacy"
			}
			e := rbNewEnv(t, nil, fmt.Sprintf(`
limits:
  %s
servers:
  mis:
    command: [%q, "-events", %q]
    %s
`, tc.limits, misbehave, string(events), server))
			var (
				sid  string
				call func(id, tool, args string) *rbResp
				echo func(text string)
			)
			if tc.modern {
				call = func(id, tool, args string) *rbResp {
					return e.post(t, "/mcp", rbModernCall(id, tool, args), rbModernHeaders("tools/call", tool)...)
				}
				echo = func(text string) { e.echoModern(t, "/mcp", text) }
			} else {
				sid = e.mustInitLegacy(t, "/mcp")
				call = func(id, tool, args string) *rbResp {
					return e.post(t, "/mcp", rbCall(id, tool, args), rbLegacyHeaders(sid)...)
				}
				echo = func(text string) { e.echoLegacy(t, "/mcp", sid, text) }
			}
			echo("warm up")

			start := time.Now()
			r := call("9", "hang", `{"tag":"timeout"}`)
			elapsed := time.Since(start)
			want := rbOutcome{Status: http.StatusOK, Code: mcp.CodeTimeout, ID: "9"}
			if diff := cmp.Diff(want, r.outcome()); diff != "" {
				t.Errorf("hang call (-want +got):\n%s\nfull answer: %s", diff, r)
			}
			if elapsed < tc.timeout-50*time.Millisecond || elapsed > tc.timeout+2*time.Second {
				t.Errorf("the timeout came after %v, want about %v", elapsed, tc.timeout)
			}
			// The upstream was told to stop working on the call
			// (notifications/cancelled on stdio, in both eras).
			events.wait(t, "hang-cancelled timeout", 1, 5*time.Second)

			// A call that finishes within the timeout still works, and so
			// does the next one.
			r = call("10", "slow", fmt.Sprintf(`{"ms":%d}`, tc.timeout.Milliseconds()/4))
			if res, err := r.toolResult(); err != nil || res.IsError {
				t.Errorf("slow call within the timeout: %+v, %v", res, err)
			}
			echo("after the timeout")
		})
	}
}

func TestRobustClientHangUp(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	logs := &rbLog{}
	ev := map[string]rbEvents{}
	for _, name := range []string{"legacy_stdio", "modern_stdio", "legacy_http", "modern_http"} {
		ev[name] = rbNewEvents(t)
	}
	legacyHTTP := rbStartHTTP(t, logs, misbehave, "-events", string(ev["legacy_http"]))
	modernHTTP := rbStartHTTP(t, logs, misbehave, "-stateless", "-events", string(ev["modern_http"]))
	e := rbNewEnv(t, logs, fmt.Sprintf(`
servers:
  legacy_stdio:
    command: [%q, "-events", %q]
    era: legacy
  modern_stdio:
    command: [%q, "-events", %q]
    era: modern
  legacy_http:
    url: %q
    era: legacy
  modern_http:
    url: %q
    era: modern
profiles:
  legacy_stdio: {servers: [legacy_stdio]}
  modern_stdio: {servers: [modern_stdio]}
  legacy_http: {servers: [legacy_http]}
  modern_http: {servers: [modern_http]}
`, misbehave, string(ev["legacy_stdio"]), misbehave, string(ev["modern_stdio"]), legacyHTTP, modernHTTP))

	tests := []struct {
		server string
		modern bool // the client's era
	}{
		{server: "legacy_stdio"},
		{server: "modern_stdio"},
		{server: "legacy_http"},
		{server: "modern_http"},
		{server: "legacy_stdio", modern: true},
		{server: "modern_stdio", modern: true},
		{server: "legacy_http", modern: true},
		{server: "modern_http", modern: true},
	}
	for _, tc := range tests {
		client := "legacy-client"
		if tc.modern {
			client = "modern-client"
		}
		t.Run(client+"/"+tc.server, func(t *testing.T) {
			path := "/mcp/" + tc.server
			events := ev[tc.server]
			tag := client
			var (
				body string
				mods []rbMod
				echo func(string)
			)
			if tc.modern {
				body = rbModernCall("1", "hang", fmt.Sprintf(`{"tag":%q}`, tag))
				mods = rbModernHeaders("tools/call", "hang")
				echo = func(s string) { e.echoModern(t, path, s) }
			} else {
				sid := e.mustInitLegacy(t, path)
				body = rbCall("1", "hang", fmt.Sprintf(`{"tag":%q}`, tag))
				mods = rbLegacyHeaders(sid)
				echo = func(s string) { e.echoLegacy(t, path, sid, s) }
			}
			echo("warm up")
			abandoned := strings.Count(e.logs.tail(1<<24), `msg="upstream call abandoned"`)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				r, err := e.do(ctx, path, []byte(body), mods...)
				if err == nil {
					err = fmt.Errorf("the call answered: %s", r)
				}
				errc <- err
			}()
			events.wait(t, "hang-start "+tag, 1, 10*time.Second)
			cancel()
			if err := <-errc; !rbIsTimeout(err) {
				t.Errorf("hung-up call: %v, want a cancellation", err)
			}
			// The upstream stops working on the abandoned call: a legacy
			// upstream on notifications/cancelled, a modern HTTP one when
			// its response stream closes.
			events.wait(t, "hang-cancelled "+tag, 1, 5*time.Second)
			// The log says where the time went: in Sluice before the call
			// left, or waiting for the server.
			// The server may see the hang-up before Sluice logs it.
			var line string
			got := 0
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				logs := e.logs.tail(1 << 24)
				if got = strings.Count(logs, `msg="upstream call abandoned"`); got > abandoned {
					for _, l := range strings.Split(logs, "\n") {
						if strings.Contains(l, `msg="upstream call abandoned"`) {
							line = l
						}
					}
					break
				}
			}
			if got != abandoned+1 || !strings.Contains(line, " waited=") || !strings.Contains(line, " in_sluice=") {
				t.Errorf("%d new abandoned-call log lines, want 1 with waited and in_sluice; last: %s", got-abandoned, line)
			}
			echo("after the hang-up")
		})
	}
}

func TestRobustConcurrentSessions(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	const n = 200
	tests := []struct {
		name string
		http bool
	}{
		{name: "http-upstream", http: true},
		{name: "stdio-upstream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &rbLog{}
			server := fmt.Sprintf("command: [%q]", misbehave)
			if tc.http {
				server = fmt.Sprintf("url: %q", rbStartHTTP(t, logs, misbehave))
			}
			e := rbNewEnv(t, logs, fmt.Sprintf(`
servers:
  mis:
    %s
    era: legacy
`, server))
			sids := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					sid, err := e.initLegacy(ctx, "/mcp")
					if err != nil {
						t.Errorf("session %d: %v", i, err)
						return
					}
					sids[i] = sid
					text := fmt.Sprintf("session %d", i)
					r, err := e.do(ctx, "/mcp", []byte(rbCall(fmt.Sprint(i), "echo", fmt.Sprintf(`{"text":%q}`, text))), rbLegacyHeaders(sid)...)
					if err != nil {
						t.Errorf("session %d: echo: %v", i, err)
						return
					}
					res, err := r.toolResult()
					if err != nil || res.Text != text || string(r.Msg.ID) != fmt.Sprint(i) {
						t.Errorf("session %d: echo answered %s (%v)", i, r, err)
					}
				}()
			}
			wg.Wait()
			if got := e.g.SessionCount(); got != n {
				t.Errorf("SessionCount() = %d with %d sessions open", got, n)
			}
			for i, sid := range sids {
				if sid == "" {
					continue
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, err := e.deleteSession(context.Background(), "/mcp", sid)
					if err != nil || st != http.StatusNoContent {
						t.Errorf("session %d: DELETE = %d, %v; want 204", i, st, err)
					}
				}()
			}
			wg.Wait()
			if got := e.g.SessionCount(); got != 0 {
				t.Errorf("SessionCount() = %d after closing every session, want 0", got)
			}
			// The gateway still takes new sessions.
			sid := e.mustInitLegacy(t, "/mcp")
			e.echoLegacy(t, "/mcp", sid, "after the crowd")
		})
	}
}

func TestRobustUpstreamGarbage(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	logs := &rbLog{}
	httpURL := rbStartHTTP(t, logs, misbehave, "-stateless")
	e := rbNewEnv(t, logs, fmt.Sprintf(`
limits:
  max_message_bytes: %d
  call_timeout: 3s
servers:
  stdio_legacy:
    command: [%q]
    era: legacy
  stdio_modern:
    command: [%q]
    era: modern
  http_modern:
    url: %q
    era: modern
profiles:
  stdio_legacy: {servers: [stdio_legacy]}
  stdio_modern: {servers: [stdio_modern]}
  http_modern: {servers: [http_modern]}
`, rbMaxBytes, misbehave, misbehave, httpURL))

	tests := []struct {
		name    string
		profile string
		tool    string
		args    string
		want    rbOutcome
		text    string // the echo expected for a result
	}{
		// Lines that are not messages are skipped; the call still gets
		// its answer.
		{name: "noise/stdio-legacy", profile: "stdio_legacy", tool: "noise", args: `{"text":"through the noise"}`, want: rbOutcome{Status: http.StatusOK, ID: "1"}, text: "through the noise"},
		{name: "noise/stdio-modern", profile: "stdio_modern", tool: "noise", args: `{"text":"through the noise"}`, want: rbOutcome{Status: http.StatusOK, ID: "1"}, text: "through the noise"},
		// A result under the limit passes whole.
		{name: "big-under-limit/stdio", profile: "stdio_legacy", tool: "big", args: fmt.Sprintf(`{"bytes":%d}`, rbMaxBytes/2), want: rbOutcome{Status: http.StatusOK, ID: "1"}, text: strings.Repeat("b", rbMaxBytes/2)},
		{name: "big-under-limit/http", profile: "http_modern", tool: "big", args: fmt.Sprintf(`{"bytes":%d}`, rbMaxBytes/2), want: rbOutcome{Status: http.StatusOK, ID: "1"}, text: strings.Repeat("b", rbMaxBytes/2)},
		// A result over max_message_bytes is refused, and the caller
		// learns it at once rather than after the call timeout.
		{name: "big-over-limit/http", profile: "http_modern", tool: "big", args: fmt.Sprintf(`{"bytes":%d}`, 2*rbMaxBytes), want: rbOutcome{Status: http.StatusOK, Code: mcp.CodeMessageTooLarge, ID: "1"}},
		{name: "big-over-limit/stdio-legacy", profile: "stdio_legacy", tool: "big", args: fmt.Sprintf(`{"bytes":%d}`, 2*rbMaxBytes), want: rbOutcome{Status: http.StatusOK, Code: mcp.CodeMessageTooLarge, ID: "1"}},
		{name: "big-over-limit/stdio-modern", profile: "stdio_modern", tool: "big", args: fmt.Sprintf(`{"bytes":%d}`, 2*rbMaxBytes), want: rbOutcome{Status: http.StatusOK, Code: mcp.CodeMessageTooLarge, ID: "1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := "/mcp/" + tc.profile
			sid := e.mustInitLegacy(t, path)
			e.echoLegacy(t, path, sid, "warm up")
			start := time.Now()
			r := e.post(t, path, rbCall("1", tc.tool, tc.args), rbLegacyHeaders(sid)...)
			elapsed := time.Since(start)
			if diff := cmp.Diff(tc.want, r.outcome()); diff != "" {
				t.Errorf("answer after %v (-want +got):\n%s\nfull answer: %s", elapsed.Round(time.Millisecond), diff, r)
			}
			if tc.want.Code == 0 {
				res, err := r.toolResult()
				if err != nil || res.Text != tc.text {
					t.Errorf("result: %v; text of %d bytes, want %d", err, len(res.Text), len(tc.text))
				}
			} else if elapsed > 2*time.Second {
				t.Errorf("the refusal took %v; the upstream had answered at once", elapsed.Round(time.Millisecond))
			}
			e.echoLegacy(t, path, sid, "still working")
		})
	}
}

func TestRobustInFlightEnd(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)

	// Each case starts a hang call in a legacy session and ends it by
	// other means than the client hanging up.
	tests := []struct {
		name string
		end  func(t *testing.T, e *rbEnv, sid string)
		// cancelled: the upstream is told to stop (it stays up); otherwise
		// it may just be shut down.
		cancelled bool
	}{
		{
			name: "client-notifications-cancelled",
			end: func(t *testing.T, e *rbEnv, sid string) {
				r := e.post(t, "/mcp", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"hang-1","reason":"user gave up"}}`, rbLegacyHeaders(sid)...)
				if r.Status != http.StatusAccepted {
					t.Errorf("notifications/cancelled: %s", r)
				}
			},
			cancelled: true,
		},
		{
			name: "session-deleted",
			end: func(t *testing.T, e *rbEnv, sid string) {
				if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
					t.Errorf("DELETE = %d, %v; want 204", st, err)
				}
			},
		},
		{
			name: "gateway-closed",
			end: func(t *testing.T, e *rbEnv, sid string) {
				e.g.BeginShutdown()
				if err := e.g.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events := rbNewEvents(t)
			e := rbNewEnv(t, nil, fmt.Sprintf(`
servers:
  mis:
    command: [%q, "-events", %q]
    era: legacy
`, misbehave, string(events)))
			sid := e.mustInitLegacy(t, "/mcp")
			e.echoLegacy(t, "/mcp", sid, "warm up")
			done := make(chan *rbResp, 1)
			go func() {
				r, err := e.do(context.Background(), "/mcp", []byte(rbCall(`"hang-1"`, "hang", `{"tag":"in-flight"}`)), rbLegacyHeaders(sid)...)
				if err != nil {
					t.Errorf("hang call: %v", err)
				}
				done <- r
			}()
			events.wait(t, "hang-start in-flight", 1, 10*time.Second)
			tc.end(t, e, sid)
			select {
			case r := <-done:
				// The call ends with an error for its id; the client is
				// not left waiting.
				if r != nil && (r.Msg == nil || r.Msg.Error == nil || string(r.Msg.ID) != `"hang-1"`) {
					t.Errorf("the ended call answered %s, want an error for its id", r)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the call did not end")
			}
			if tc.cancelled {
				events.wait(t, "hang-cancelled in-flight", 1, 5*time.Second)
				e.echoLegacy(t, "/mcp", sid, "after")
			}
		})
	}
}

func TestRobustGetStream(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	e := rbNewEnv(t, nil, fmt.Sprintf(`
servers:
  mis:
    command: [%q]
    era: legacy
`, misbehave))
	sid := e.mustInitLegacy(t, "/mcp")
	e.echoLegacy(t, "/mcp", sid, "warm up")

	openStream := func() (*http.Response, error) {
		req, err := http.NewRequest(http.MethodGet, e.url+"/mcp", nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", rbLegacyVersion)
		return e.client.Do(req)
	}
	resp, err := openStream()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	t.Run("second-stream-refused", func(t *testing.T) {
		r, err := openStream()
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusConflict {
			t.Errorf("second GET stream: HTTP %d, want 409", r.StatusCode)
		}
		e.echoLegacy(t, "/mcp", sid, "calls work beside the stream")
	})

	t.Run("delete-ends-the-stream", func(t *testing.T) {
		ended := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, resp.Body)
			ended <- err
		}()
		if st, err := e.deleteSession(context.Background(), "/mcp", sid); err != nil || st != http.StatusNoContent {
			t.Fatalf("DELETE = %d, %v; want 204", st, err)
		}
		select {
		case err := <-ended:
			if err != nil {
				t.Errorf("stream ended with %v, want a clean end", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the GET stream outlived its session")
		}
		if n := e.g.SessionCount(); n != 0 {
			t.Errorf("SessionCount() = %d, want 0", n)
		}
	})
}

func TestRobustIdleSessions(t *testing.T) {
	rbLeakCheck(t)
	misbehave := rbMisbehave(t)
	const idle = 400 * time.Millisecond
	e := rbNewEnv(t, nil, fmt.Sprintf(`
limits:
  session_idle: %s
servers:
  mis:
    command: [%q]
    era: legacy
`, idle, misbehave))
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`

	t.Run("idle-session-closed", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp")
		e.echoLegacy(t, "/mcp", sid, "once")
		deadline := time.Now().Add(5 * time.Second)
		for e.g.Session(sid) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("an idle session is still open after 5s (session_idle %v)", idle)
			}
			time.Sleep(20 * time.Millisecond)
		}
		r := e.post(t, "/mcp", list, rbLegacyHeaders(sid)...)
		want := rbOutcome{Status: http.StatusNotFound, Code: mcp.CodeInvalidRequest, ID: "1"}
		if diff := cmp.Diff(want, r.outcome()); diff != "" {
			t.Errorf("request in a swept session (-want +got):\n%s\nfull answer: %s", diff, r)
		}
	})

	t.Run("active-session-kept", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp")
		for i := range 10 {
			e.echoLegacy(t, "/mcp", sid, fmt.Sprint("tick ", i))
			time.Sleep(idle / 4)
		}
	})

	t.Run("long-call-not-cut", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp")
		r := e.post(t, "/mcp", rbCall("2", "slow", fmt.Sprintf(`{"ms":%d}`, 3*idle.Milliseconds())), rbLegacyHeaders(sid)...)
		if res, err := r.toolResult(); err != nil || res.IsError {
			t.Fatalf("a call longer than session_idle: %+v, %v", res, err)
		}
		// The session answered a moment ago: it is not idle.
		time.Sleep(idle / 4)
		e.echoLegacy(t, "/mcp", sid, "right after the long call")
	})

	t.Run("open-stream-keeps-session", func(t *testing.T) {
		sid := e.mustInitLegacy(t, "/mcp")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/mcp", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		resp, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET stream: HTTP %d", resp.StatusCode)
		}
		time.Sleep(3 * idle)
		e.echoLegacy(t, "/mcp", sid, "the stream kept it open")
	})
}
