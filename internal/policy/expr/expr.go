// Package expr declares the CEL environment in which policy conditions are
// written, so that the configuration validator, the policy engine and the
// linter all compile a condition against the same variables and functions.
//
// It is a leaf package (it depends on cel-go only) because the configuration
// package compiles every condition at load time to report a rule that does
// not compile as a validation problem with its location, and the policy
// package, which depends on the configuration, compiles them again into
// programs.
//
// The variables are:
//
//	principal  map: issuer, subject, name, groups (list), scopes (list), client_id,
//	           attributes (map of strings), authenticated (bool)
//	client     map: name, version (what the client declared; untrusted)
//	server     string: the upstream server's name
//	tool       map: name, description, annotations (map), input_schema (map)
//	args       map: the call's arguments (tools/call and prompts/get)
//	resource   map: uri
//	prompt     map: name
//	time       timestamp: when the call is decided
//	request    map: method, direction, transport, remote_addr, headers (map),
//	           profile
//
// Besides the standard functions the environment has the cel-go extensions
// for strings, lists, sets, math, encoders and networks (ip, cidr), and
// optional values (args.?path.orValue("")).
package expr

import (
	"fmt"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/ext"
)

// Variable names.
const (
	Principal = "principal"
	Client    = "client"
	Server    = "server"
	Tool      = "tool"
	Args      = "args"
	Resource  = "resource"
	Prompt    = "prompt"
	Time      = "time"
	Request   = "request"
)

// Fields lists the fields of each map variable whose fields are fixed. The
// maps under them (principal.attributes, tool.annotations, request.headers)
// and args are open.
var Fields = map[string][]string{
	Principal: {"issuer", "subject", "name", "groups", "scopes", "client_id", "attributes", "authenticated"},
	Client:    {"name", "version"},
	Tool:      {"name", "description", "annotations", "input_schema"},
	Resource:  {"uri"},
	Prompt:    {"name"},
	Request:   {"method", "direction", "transport", "remote_addr", "headers", "profile"},
}

// Limits on the size of a condition, well above anything written by hand.
const (
	maxExprBytes = 16 << 10
	maxNodes     = 4096
)

var env = sync.OnceValues(func() (*cel.Env, error) {
	m := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable(Principal, m),
		cel.Variable(Client, m),
		cel.Variable(Server, cel.StringType),
		cel.Variable(Tool, m),
		cel.Variable(Args, m),
		cel.Variable(Resource, m),
		cel.Variable(Prompt, m),
		cel.Variable(Time, cel.TimestampType),
		cel.Variable(Request, m),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		ext.Math(),
		ext.Encoders(),
		ext.Network(),
		cel.OptionalTypes(),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxExprBytes),
		cel.ExpressionNodeLimit(maxNodes),
	)
})

// Env returns the shared environment. It is built once; the error is only
// possible if the declarations above are wrong.
func Env() (*cel.Env, error) { return env() }

// Error is a condition that does not compile: the first problem CEL
// reports, located in the condition's own text (line 1-based, column
// 1-based), plus how many more there were.
type Error struct {
	Line, Column int
	Msg          string
	More         int
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	b.WriteString(e.Msg)
	if e.More > 0 {
		fmt.Fprintf(&b, " (and %d more)", e.More)
	}
	return b.String()
}

// Compile parses and type-checks a condition. The result type must be bool
// (or dyn, checked when evaluated).
func Compile(src string) (*cel.Ast, error) {
	e, err := Env()
	if err != nil {
		return nil, err
	}
	ast, iss := e.Compile(src)
	if iss != nil && iss.Err() != nil {
		errs := iss.Errors()
		first := errs[0]
		out := &Error{Msg: first.Message, More: len(errs) - 1}
		if loc := first.Location; loc != nil && loc.Line() > 0 {
			out.Line, out.Column = loc.Line(), loc.Column()+1
		}
		return nil, out
	}
	switch t := ast.OutputType(); {
	case t.IsExactType(cel.BoolType), t.IsExactType(cel.DynType):
	default:
		return nil, &Error{Msg: fmt.Sprintf("condition must be a boolean, not %s", t)}
	}
	return ast, nil
}
