package config

// Policy effects.
const (
	EffectAllow           = "allow"
	EffectDeny            = "deny"
	EffectRequireApproval = "require-approval"
)

// Modes of a guard or rule.
const (
	ModeObserve = "observe"
	ModeEnforce = "enforce"
)

// Policy is the ordered rule set that decides who may call what. Once a
// policy is configured, a call no rule allows is denied.
type Policy struct {
	// Mode of the policy as a whole: observe (record, let through) or
	// enforce (default).
	Mode  string        `yaml:"mode,omitempty"`
	Rules []*PolicyRule `yaml:"rules"`
}

// PolicyRule is one rule. It applies to a call when the target matches and
// the condition (a CEL expression) is true. Deny overrides allow.
type PolicyRule struct {
	ID     string `yaml:"id"`
	Effect string `yaml:"effect"`
	// Mode of this rule; default the policy's mode.
	Mode        string       `yaml:"mode,omitempty"`
	Description string       `yaml:"description,omitempty"`
	Target      PolicyTarget `yaml:"target,omitempty"`
	// When is a CEL expression over principal, client, server, tool, args,
	// resource, prompt, time and request; empty means true.
	When string `yaml:"when,omitempty"`
	// Reason is the reason code a denial by this rule carries; default
	// "policy-denied-by-rule" (or "policy-approval-required").
	Reason string `yaml:"reason,omitempty"`
	// Message is shown to the agent on a denial.
	Message string `yaml:"message,omitempty"`
}

// PolicyTarget selects what a rule is about, with globs over exposed server
// names and upstream-local tool and prompt names or resource URIs. An empty
// target matches every call.
type PolicyTarget struct {
	Servers   []string `yaml:"servers,omitempty,flow"`
	Tools     []string `yaml:"tools,omitempty,flow"`
	Resources []string `yaml:"resources,omitempty,flow"`
	Prompts   []string `yaml:"prompts,omitempty,flow"`
	// Methods restricts the rule to JSON-RPC methods (e.g. "tools/call").
	Methods []string `yaml:"methods,omitempty,flow"`
}
