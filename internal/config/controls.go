package config

// Settings of [Controls].
const (
	ArgumentsValidate = "validate"
	ArgumentsOff      = "off"

	InvalidSchemaDeny  = "deny"
	InvalidSchemaAllow = "allow"
)

// Controls configures the strict API controls: a tools/call must name a
// tool its server lists, with arguments valid against the tool's input
// schema, and requests must pass the method filters of servers and
// profiles ([Server.Methods], [Profile.Methods]).
type Controls struct {
	// Mode of the controls and method filters: observe (record, let
	// through) or enforce (default). The tool filters keep their own.
	Mode string `yaml:"mode,omitempty"`
	// Arguments is validate (default) or off.
	Arguments string `yaml:"arguments,omitempty"`
	// InvalidSchema says what happens to calls of a tool whose input schema
	// cannot be compiled: deny (default) or allow (let through unchecked,
	// with a logged warning and a recorded decision).
	InvalidSchema string `yaml:"invalid_schema,omitempty"`
}
