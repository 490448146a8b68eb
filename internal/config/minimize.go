package config

// Minimize configures data minimization: what of a result reaches the
// agent. The first rule whose target matches a call applies.
type Minimize struct {
	// Mode of rules that do not set one: observe (record what would have
	// been cut) or enforce (default).
	Mode  string          `yaml:"mode,omitempty"`
	Rules []*MinimizeRule `yaml:"rules"`
}

// MinimizeRule caps and projects the results of the calls it targets.
type MinimizeRule struct {
	ID     string       `yaml:"id"`
	Target PolicyTarget `yaml:"target,omitempty"`
	// MaxResultBytes caps a tool result's size; Oversize says what happens
	// past it: truncate (default: the text is cut, with a notice the agent
	// can read) or refuse.
	MaxResultBytes int    `yaml:"max_result_bytes,omitempty"`
	Oversize       string `yaml:"oversize,omitempty"`
	// MaxItems caps the items of a tool result's content blocks and of
	// every array in its structured content.
	MaxItems int `yaml:"max_items,omitempty"`
	// Fields projects structured content: members matching a deny pointer
	// are removed; with allow pointers, only members on the way to or
	// under one of them are kept. Pointers are JSON pointers whose
	// segments may be "*" (any member or index).
	Fields MinimizeFields `yaml:"fields,omitempty"`
	// MaxResourceBytes caps the text of each resource read (cut, with a
	// notice); a larger binary resource is refused.
	MaxResourceBytes int    `yaml:"max_resource_bytes,omitempty"`
	Mode             string `yaml:"mode,omitempty"`
}

// MinimizeFields are JSON pointers into structured content.
type MinimizeFields struct {
	Allow []string `yaml:"allow,omitempty"`
	Deny  []string `yaml:"deny,omitempty"`
}

// What happens to a result larger than max_result_bytes.
const (
	OversizeTruncate = "truncate"
	OversizeRefuse   = "refuse"
)
