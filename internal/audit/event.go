// Package audit keeps Sluice's tamper-evident record of every call and every
// decision a guard made about it.
//
// An [Event] is encoded once as JSON (its body) and chained: record n holds
// the SHA-256 of its sequence number, its time, the hash of record n-1 and
// its body, so changing, removing, inserting or reordering a record breaks
// every link after it. Every so often the [Log] signs the head of the chain
// with an Ed25519 key (a checkpoint); rewriting the chain from some point on
// then contradicts a signature that cannot be forged without the key.
// [Verify] walks a stored chain, checks every link and signature, and names
// the first record that does not hold.
//
// Values the configuration marks sensitive are never stored: they are
// stored as keyed HMACs ([Hasher]), so that an operator with the key can
// search for a value (`sluice audit hash VALUE`) while the log holds none.
//
// The [Guard] is the outermost guard of the chain: it sees every decision
// of the guards inside it, and answers the caller only once the event is
// committed to the primary sink. Events are written in batches by one
// goroutine (group commit), off the request path's CPU, yet an event a
// caller was answered for is on disk when the answer leaves.
package audit

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/go-json-experiment/json/jsontext"
)

// Version is the format version of event bodies.
const Version = 1

// timeLayout is fixed-width UTC, so that times compare as strings (the
// stores index and filter the body's time as text).
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime formats t as event bodies carry it.
func FormatTime(t time.Time) string { return string(appendTime(nil, t)) }

// appendTime appends t in timeLayout, digit by digit: time.Format costs
// more than the rest of an event's encoding.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, sec := t.Clock()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, timeLayout)
	}
	pad := func(b []byte, v, width int) []byte {
		var d [9]byte
		for i := width - 1; i >= 0; i-- {
			d[i] = byte('0' + v%10)
			v /= 10
		}
		return append(b, d[:width]...)
	}
	b = pad(b, year, 4)
	b = append(b, '-')
	b = pad(b, int(month), 2)
	b = append(b, '-')
	b = pad(b, day, 2)
	b = append(b, 'T')
	b = pad(b, hour, 2)
	b = append(b, ':')
	b = pad(b, minute, 2)
	b = append(b, ':')
	b = pad(b, sec, 2)
	b = append(b, '.')
	b = pad(b, t.Nanosecond(), 9)
	return append(b, 'Z')
}

// Event is one audited call.
type Event struct {
	// ID is the gateway's call ID, the one in the agent's error and in logs.
	ID   string
	Time time.Time
	// Kind is "call" for calls through the chain.
	Kind string

	Principal *Principal
	Client    Client
	// Session is the legacy session ID; empty for modern (sessionless)
	// clients, whose calls are tied together by their principal.
	Session   string
	Profile   string
	Server    string
	Era       string
	Direction string
	Method    string
	// Name is the tool or prompt name (upstream-local) or resource URI.
	Name string
	// RequestID is the JSON-RPC id as the client sent it.
	RequestID jsontext.Value
	// Transport is "http" or "stdio"; Remote is the client's address for
	// HTTP.
	Transport string
	Remote    string
	// Headers are the request headers guards may read (never credentials
	// or cookies), as guards see them: lower-cased names.
	Headers map[string]string

	// Outcome is "ok", "error" (the server or the gateway failed the
	// call) or "denied" (a guard refused it).
	Outcome string
	// Reason is the reason code of the decision that settled the call: the
	// denial, else the last decision recorded; empty when none was.
	Reason string
	// ErrorCode is the JSON-RPC error code the caller received, if any.
	ErrorCode int64
	Decisions []Decision
	Findings  []FindingCount
	Labels    []string
	// Flows are values the call sent that an earlier result held.
	Flows []Flow

	ArgsBytes   int
	ResultBytes int
	Latency     time.Duration
	TraceID     string

	// Args and Result are what the configured record modes keep of the
	// call's params and result (nil: nothing).
	Args   jsontext.Value
	Result jsontext.Value
}

// Principal is who called.
type Principal struct {
	Issuer  string   `json:"iss,omitempty"`
	Subject string   `json:"sub"`
	Name    string   `json:"name,omitempty"`
	Groups  []string `json:"groups,omitempty"`
	Scopes  []string `json:"scopes,omitempty"`
	Client  string   `json:"client_id,omitempty"`
	// Attributes are the principal's attributes (claims mapped by the
	// configuration), which policies read.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Client is what the client declared about itself (untrusted).
type Client struct {
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
}

// Decision is one guard's verdict as recorded.
type Decision struct {
	Guard   string `json:"guard"`
	Rule    string `json:"rule,omitempty"`
	Version string `json:"version,omitempty"`
	Reason  string `json:"reason"`
	Effect  string `json:"effect"`
	Mode    string `json:"mode"`
}

// FindingCount counts findings of one kind in one place (what the call
// sent, or its result), with the fingerprints of their values.
type FindingCount struct {
	Kind     string `json:"kind"`
	Location string `json:"location,omitempty"`
	Count    int    `json:"count"`
	// Fingerprints are the distinct values' keyed tokens, at most
	// [MaxFingerprints].
	Fingerprints []string `json:"fingerprints,omitempty"`
}

// MaxFingerprints bounds the fingerprints an event keeps per kind.
const MaxFingerprints = 32

// Flow is a value the call sent that an earlier call's result held.
type Flow struct {
	From        string   `json:"from"`
	Kind        string   `json:"kind"`
	Fingerprint string   `json:"fingerprint"`
	Labels      []string `json:"labels,omitempty"`
}

// Body encodes e as the JSON body that is chained and stored. The members
// come in a fixed order and every string is escaped the same way, so the
// same event always gives the same bytes.
func (e *Event) Body() []byte {
	bp := bodyBuffers.Get().(*[]byte)
	b := e.appendBody((*bp)[:0])
	body := bytes.Clone(b)
	if cap(b) <= 64<<10 {
		*bp = b
		bodyBuffers.Put(bp)
	}
	return body
}

// bodyBuffers hold bodies as they are written, so that each body is
// allocated once, at its size.
var bodyBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

func (e *Event) appendBody(b []byte) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = appendStr(b, "id", e.ID)
	b = append(b, `,"time":"`...)
	b = appendTime(b, e.Time)
	b = append(b, '"')
	b = appendStr(b, "kind", e.Kind)
	if p := e.Principal; p != nil {
		b = append(b, `,"principal":{"sub":`...)
		b = appendQuoted(b, p.Subject)
		b = appendStr(b, "iss", p.Issuer)
		b = appendStr(b, "name", p.Name)
		b = appendStrs(b, "groups", p.Groups)
		b = appendStrs(b, "scopes", p.Scopes)
		b = appendStr(b, "client_id", p.Client)
		b = appendMap(b, "attributes", p.Attributes)
		b = append(b, '}')
	}
	if e.Client.Name != "" || e.Client.Version != "" {
		b = append(b, `,"client":{"name":`...)
		b = appendQuoted(b, e.Client.Name)
		b = appendStr(b, "version", e.Client.Version)
		b = append(b, '}')
	}
	b = appendStr(b, "session", e.Session)
	b = appendStr(b, "profile", e.Profile)
	b = appendStr(b, "server", e.Server)
	b = appendStr(b, "era", e.Era)
	b = appendStr(b, "direction", e.Direction)
	b = appendStr(b, "method", e.Method)
	b = appendStr(b, "name", e.Name)
	if len(e.RequestID) > 0 {
		b = append(b, `,"request_id":`...)
		b = append(b, e.RequestID...)
	}
	b = appendStr(b, "transport", e.Transport)
	b = appendStr(b, "remote", e.Remote)
	b = appendMap(b, "headers", e.Headers)
	b = appendStr(b, "outcome", e.Outcome)
	b = appendStr(b, "reason", e.Reason)
	if e.ErrorCode != 0 {
		b = append(b, `,"error_code":`...)
		b = strconv.AppendInt(b, e.ErrorCode, 10)
	}
	if len(e.Decisions) > 0 {
		b = append(b, `,"decisions":[`...)
		for i, d := range e.Decisions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"guard":`...)
			b = appendQuoted(b, d.Guard)
			b = appendStr(b, "rule", d.Rule)
			b = appendStr(b, "version", d.Version)
			b = appendStr(b, "reason", d.Reason)
			b = appendStr(b, "effect", d.Effect)
			b = appendStr(b, "mode", d.Mode)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(e.Findings) > 0 {
		b = append(b, `,"findings":[`...)
		for i, f := range e.Findings {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"kind":`...)
			b = appendQuoted(b, f.Kind)
			b = appendStr(b, "location", f.Location)
			b = append(b, `,"count":`...)
			b = strconv.AppendInt(b, int64(f.Count), 10)
			b = appendStrs(b, "fingerprints", f.Fingerprints)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendStrs(b, "labels", e.Labels)
	if len(e.Flows) > 0 {
		b = append(b, `,"flows":[`...)
		for i, f := range e.Flows {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"from":`...)
			b = appendQuoted(b, f.From)
			b = append(b, `,"kind":`...)
			b = appendQuoted(b, f.Kind)
			b = append(b, `,"fingerprint":`...)
			b = appendQuoted(b, f.Fingerprint)
			b = appendStrs(b, "labels", f.Labels)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"args_bytes":`...)
	b = strconv.AppendInt(b, int64(e.ArgsBytes), 10)
	b = append(b, `,"result_bytes":`...)
	b = strconv.AppendInt(b, int64(e.ResultBytes), 10)
	b = append(b, `,"latency_us":`...)
	b = strconv.AppendInt(b, e.Latency.Microseconds(), 10)
	b = appendStr(b, "trace_id", e.TraceID)
	if e.Args != nil {
		b = append(b, `,"args":`...)
		b = append(b, e.Args...)
	}
	if e.Result != nil {
		b = append(b, `,"result":`...)
		b = append(b, e.Result...)
	}
	return append(b, '}')
}

// appendStr appends ,"k":"v" unless v is empty.
func appendStr(b []byte, k, v string) []byte {
	if v == "" {
		return b
	}
	return appendQuoted(appendKey(b, k), v)
}

// appendKey appends ,"k": for k, a member name of the body's: plain ASCII,
// which needs no quoting.
func appendKey(b []byte, k string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

func appendStrs(b []byte, k string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = appendKey(b, k)
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, v)
	}
	return append(b, ']')
}

// appendMap appends ,"k":{...} with the members in order of name, unless m
// is empty.
func appendMap(b []byte, k string, m map[string]string) []byte {
	if len(m) == 0 {
		return b
	}
	// Few keys (headers, attributes): sorted in place, without allocating.
	var buf [8]string
	keys := buf[:0]
	if len(m) > len(buf) {
		keys = make([]string, 0, len(m))
	}
	for n := range m {
		keys = append(keys, n)
		for i := len(keys) - 1; i > 0 && keys[i] < keys[i-1]; i-- {
			keys[i], keys[i-1] = keys[i-1], keys[i]
		}
	}
	b = appendKey(b, k)
	b = append(b, '{')
	for i, n := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendQuoted(b, n)
		b = append(b, ':')
		b = appendQuoted(b, m[n])
	}
	return append(b, '}')
}

// appendQuoted appends s as a JSON string. Invalid UTF-8 is replaced, so
// a body is always valid JSON.
func appendQuoted(b []byte, s string) []byte {
	// Most strings (names, identifiers, addresses, tokens) are printable
	// ASCII without quotes or backslashes, which AppendQuote would copy
	// as they are, a byte at a time: they are looked at eight at a time.
	if plainASCII(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	// On invalid UTF-8, AppendQuote has written U+FFFD in its place and
	// reports it; the replacement is what we want.
	out, _ := jsontext.AppendQuote(b, s)
	return out
}

// plainASCII reports whether s has only bytes that a JSON string holds as
// they are: none below a space, no quote, no backslash, nothing past ASCII.
func plainASCII(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	b := unsafe.Slice(unsafe.StringData(s), len(s)) // read, never written
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// Each term has a byte's high bit set when, and only when (for
		// the word as a whole), some byte is below a space, is a quote,
		// is a backslash, or is past ASCII.
		quote, backslash := x^(ones*'"'), x^(ones*'\\')
		if ((x-ones*' ')&^x|(quote-ones)&^quote|(backslash-ones)&^backslash|x)&highs != 0 {
			return false
		}
	}
	for ; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			return false
		}
	}
	return true
}

// jsonPlain holds the bytes that plainASCII accepts.
var jsonPlain = func() (t [256]bool) {
	for c := ' '; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// hexHash formats a chain hash for people.
func hexHash(h [32]byte) string { return hex.EncodeToString(h[:]) }
