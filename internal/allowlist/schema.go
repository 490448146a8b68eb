package allowlist

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Input schemas are compiled with github.com/santhosh-tekuri/jsonschema/v6
// rather than github.com/google/jsonschema-go (which the go-sdk uses):
// the latter reports where in the schema validation failed but not where
// in the arguments, decodes numbers only as float64, and accepts schemas
// that are not valid against their meta-schema ("type": "objectx") or name
// a dialect it cannot validate, failing only later. This one checks a
// schema against its meta-schema when it compiles, knows drafts 4, 6, 7,
// 2019-09 and 2020-12 (the MCP default), keeps numbers exact, and names
// the instance location of every failure, which is what the agent needs to
// correct its call.

// schemaURL is the name a tool's input schema is compiled under. Nothing
// is ever loaded from it or from any other URL: see [compileSchema].
const schemaURL = "urn:sluice:input-schema"

// maxSchemaCache bounds the compiled schemas kept; past it the cache starts
// over (the gateway hands out a new *guard.Tool only when a server's tool
// list changes, so this is reached only by very many tools).
const maxSchemaCache = 4096

// compiled is the outcome of compiling one tool's input schema: a schema,
// or the reason it could not be compiled.
type compiled struct {
	once   sync.Once
	schema *jsonschema.Schema
	fast   *fastSchema // nil when the schema is left to the library
	err    error
}

// schemaCache holds compiled input schemas keyed by the tool definition
// they came from.
type schemaCache struct {
	mu sync.Mutex
	m  map[*guard.Tool]*compiled
}

// get returns the compiled input schema of t, compiling it on first use;
// concurrent first calls wait for one compilation. The second result
// reports whether this call compiled it (so that a schema that cannot be
// compiled is logged once, not on every call).
func (sc *schemaCache) get(t *guard.Tool) (*compiled, bool) {
	sc.mu.Lock()
	c, ok := sc.m[t]
	if !ok {
		if sc.m == nil || len(sc.m) >= maxSchemaCache {
			sc.m = map[*guard.Tool]*compiled{}
		}
		c = &compiled{}
		sc.m[t] = c
	}
	sc.mu.Unlock()
	fresh := false
	c.once.Do(func() {
		c.schema, c.fast, c.err = compileTool(t)
		fresh = true
	})
	return c, fresh
}

var errNoInputSchema = errors.New(`the tool has no "inputSchema" object`)

// compileTool compiles the inputSchema of a tool definition, and its fast
// path when it has one.
func compileTool(t *guard.Tool) (*jsonschema.Schema, *fastSchema, error) {
	raw, ok, err := mcp.Lookup(t.Raw, "inputSchema")
	switch {
	case err != nil:
		return nil, nil, err
	case !ok || raw.Kind() != '{':
		return nil, nil, errNoInputSchema
	}
	return compileSchema(raw)
}

// compileSchema compiles a JSON Schema. A schema without "$schema" is read
// as draft 2020-12, as MCP specifies. The compiler is given a loader that
// loads nothing: a "$ref" to a file or a remote URL makes the schema fail
// to compile instead of making Sluice read local files or fetch URLs an
// upstream server chose. Meta-schemas of the known drafts are built in.
// Patterns are Go regular expressions (RE2): an ECMA-262 feature RE2 lacks
// (look-around, back-references) makes the schema fail to compile.
//
// The fast path ([compileFast]) is compiled from the same document, after
// the library accepted it.
func compileSchema(raw jsontext.Value) (*jsonschema.Schema, *fastSchema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(jsonschema.SchemeURLLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, nil, err
	}
	s, err := c.Compile(schemaURL)
	if err != nil {
		return nil, nil, err
	}
	return s, compileFast(doc, s), nil
}

// printer renders the library's messages.
var printer = message.NewPrinter(language.English)

// maxProblems bounds how many problems one error message lists.
const maxProblems = 3

// maxProblemLen bounds one problem's text, which may quote a value.
const maxProblemLen = 160

// validateArguments checks a tools/call's arguments against a compiled
// schema and returns "" or a message naming each offending field, such as
// `arguments.path: got number, want string`. Absent arguments are checked
// as an empty object, so that required properties are reported.
//
// Arguments with two member names in one object that differ only by case
// are refused first (see [caseVariantNames]). Arguments the fast path
// accepts are valid; anything else is validated by the library, which
// decides and words the message.
func validateArguments(cs *compiled, params jsontext.Value) (string, error) {
	args, ok, err := mcp.Lookup(params, "arguments")
	if err != nil {
		return "", err
	}
	if !ok {
		args = jsontext.Value(`{}`)
	}
	if p := caseVariantNames(args); p != "" {
		return p, nil
	}
	if cs.fast != nil && validFast(cs.fast, args) {
		return "", nil
	}
	return validateSlow(cs.schema, args)
}

// validateSlow validates arguments with the library.
func validateSlow(s *jsonschema.Schema, args jsontext.Value) (string, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(args))
	if err != nil {
		return "", err
	}
	err = s.Validate(inst)
	if err == nil {
		return "", nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "", err
	}
	var problems []string
	collect(ve, &problems)
	if len(problems) == 0 {
		problems = []string{"arguments: do not match the tool's input schema"}
	}
	more := len(problems) - maxProblems
	if more > 0 {
		problems = problems[:maxProblems]
	}
	msg := strings.Join(problems, "; ")
	if more > 0 {
		msg += fmt.Sprintf(" (and %d more)", more)
	}
	return msg, nil
}

// collect appends a readable line for each leaf of a validation error.
func collect(e *jsonschema.ValidationError, out *[]string) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			collect(c, out)
		}
		return
	}
	loc := fieldPath(e.InstanceLocation)
	var text string
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		for _, m := range k.Missing {
			add(out, fieldPath(append(e.InstanceLocation[:len(e.InstanceLocation):len(e.InstanceLocation)], m))+": is required")
		}
		return
	case *kind.AdditionalProperties:
		for _, p := range k.Properties {
			add(out, fieldPath(append(e.InstanceLocation[:len(e.InstanceLocation):len(e.InstanceLocation)], p))+": is not allowed")
		}
		return
	case *kind.FalseSchema:
		text = "is not allowed"
	case *kind.Minimum:
		text = "must be at least " + number(k.Want)
	case *kind.Maximum:
		text = "must be at most " + number(k.Want)
	case *kind.ExclusiveMinimum:
		text = "must be more than " + number(k.Want)
	case *kind.ExclusiveMaximum:
		text = "must be less than " + number(k.Want)
	case *kind.MultipleOf:
		text = "must be a multiple of " + number(k.Want)
	default:
		text = e.ErrorKind.LocalizedString(printer)
	}
	add(out, loc+": "+text)
}

// number renders a schema bound exactly, without the locale formatting of
// the library's own messages: "9007199254740993", "0.5".
func number(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	s := strings.TrimRight(r.FloatString(9), "0")
	return strings.TrimSuffix(s, ".")
}

func add(out *[]string, s string) {
	if len(s) > maxProblemLen {
		s = s[:maxProblemLen] + "..."
	}
	for _, have := range *out {
		if have == s {
			return
		}
	}
	*out = append(*out, s)
}

// fieldPath renders an instance location as "arguments.a.b[2]"; property
// names that are not plain identifiers are quoted: arguments["a b"].
func fieldPath(loc []string) string {
	var b strings.Builder
	b.WriteString("arguments")
	for _, p := range loc {
		switch {
		case isIndex(p):
			b.WriteString("[" + p + "]")
		case isIdent(p):
			b.WriteString("." + p)
		default:
			b.WriteString("[" + strconv.Quote(p) + "]")
		}
	}
	return b.String()
}

func isIndex(s string) bool {
	if s == "" || len(s) > 9 {
		return false
	}
	_, err := strconv.Atoi(s)
	return err == nil && s[0] != '-' && s[0] != '+'
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
