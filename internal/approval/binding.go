package approval

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Binding is what an approval is bound to: the exact call a human saw.
// Two calls share an approval only when every field is equal; a changed
// argument changes Digest and so needs a new approval, and a new policy
// (Version) invalidates every approval given under the old one.
type Binding struct {
	Issuer  string // who vouched for Subject (see [guard.Principal.Issuer])
	Subject string // the caller's verified subject ("" when unauthenticated)
	// ClientID is the agent the caller acts through: an approval given
	// for one agent's call does not let another agent make it.
	ClientID string
	Server   string
	Method   string
	Name     string // upstream-local tool or prompt name, or resource URI
	// Digest is "sha256:<hex>" of the canonical arguments: params.arguments
	// of tools/call and prompts/get, the whole params without _meta,
	// requestState and inputResponses for other methods.
	Digest string
	// Version is the policy's content hash; Rule the rule that asked.
	Version string
	Rule    string
}

// Key identifies the binding in a [Store]: a hex SHA-256 over its fields,
// each length-prefixed so that no two bindings share a key.
func (b Binding) Key() string {
	h := sha256.New()
	var n [4]byte
	for _, f := range [...]string{b.Issuer, b.Subject, b.ClientID, b.Server, b.Method, b.Name, b.Digest, b.Version, b.Rule} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// errArguments is returned for arguments that cannot be canonicalized
// (duplicate member names, invalid UTF-8); such a call is never approved.
var errArguments = errors.New("arguments are not canonical JSON")

// bind computes the binding of c under the require-approval decision d,
// and the canonical form of the arguments (for the summary humans see).
func bind(c *guard.Call, d guard.Decision) (Binding, jsontext.Value, error) {
	b := Binding{Server: c.Server, Method: c.Method, Name: c.Name, Version: d.Version, Rule: d.Rule}
	if c.Principal != nil {
		b.Issuer, b.Subject, b.ClientID = c.Principal.Issuer, c.Principal.Subject, c.Principal.ClientID
	}
	canon, err := canonicalArguments(c.Method, c.Params)
	if err != nil {
		return Binding{}, nil, err
	}
	sum := sha256.Sum256(canon)
	b.Digest = "sha256:" + hex.EncodeToString(sum[:])
	return b, canon, nil
}

// canonicalArguments returns what a human approves of a call, in
// canonical form: params.arguments for tools/call and prompts/get (absent
// arguments are "null", distinct from "{}"), and for other methods the
// params without the members that change between two sendings of the same
// call (_meta, requestState, inputResponses). Canonical means members
// sorted (RFC 8785 order), no white space, strings in their minimal
// escaping. Numbers keep their exact text: RFC 8785 would map them to
// doubles, which makes 9007199254740993 and 9007199254740992 the same
// digest; here two spellings of one number only cost a second approval.
func canonicalArguments(method string, params jsontext.Value) (jsontext.Value, error) {
	var v jsontext.Value
	switch method {
	case mcp.MethodToolsCall, mcp.MethodPromptsGet:
		args, ok, err := mcp.Lookup(params, "arguments")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errArguments, err)
		}
		if !ok {
			return jsontext.Value("null"), nil
		}
		v = jsontext.Value(bytes.Clone(args))
	default:
		if len(params) == 0 {
			return jsontext.Value("null"), nil
		}
		v = jsontext.Value(bytes.Clone(params))
		for _, k := range [...]string{"_meta", "requestState", "inputResponses"} {
			out, err := mcp.DeleteMember(v, k)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", errArguments, err)
			}
			v = out
		}
	}
	if err := v.Canonicalize(jsontext.CanonicalizeRawInts(false), jsontext.CanonicalizeRawFloats(false)); err != nil {
		return nil, fmt.Errorf("%w: %w", errArguments, err)
	}
	return v, nil
}

// maxSummary bounds the argument summary shown to humans, in bytes.
const maxSummary = 600

// summarize returns the canonical arguments as text a human can read
// safely (see [escapeText]), cut at maxSummary bytes.
func summarize(canon jsontext.Value) string { return escapeText(string(canon), maxSummary) }

// escapeText returns s as text a human can read safely: control, format
// (bidi overrides, zero-width) and other non-graphic characters, and bytes
// that are not UTF-8, are shown as \u escapes, so what is displayed is
// what will be sent and nothing can steer a terminal, and the text is cut
// at about max bytes with a note of how much was left out.
func escapeText(s string, max int) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= max {
			fmt.Fprintf(&b, "… (%d more bytes)", len(s)-i)
			break
		}
		if r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) {
			fmt.Fprintf(&b, `\u%04x`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sanitize makes a short text from outside (an approver's reason, a name)
// safe to display: non-graphic and format characters are dropped and the
// text is cut at n bytes.
func sanitize(s string, n int) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || (!unicode.IsGraphic(r) && r != ' ') || unicode.Is(unicode.Cf, r) {
			continue
		}
		if b.Len()+utf8.RuneLen(r) > n {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}
