package config

// DLP configures the detection of secrets and personal data in what
// agents send (tool arguments) and what servers return, and what is done
// about it. Detection runs over every call once the section exists; what
// happens to a finding is decided by the first rule that matches it, else
// by the defaults: a secret in arguments is blocked, anything else is
// recorded (alert).
type DLP struct {
	// Mode of rules that do not set one: observe (record what would have
	// been blocked) or enforce (default).
	Mode string `yaml:"mode,omitempty"`
	// MinConfidence drops findings below it: low, medium (default) or high.
	MinConfidence string `yaml:"min_confidence,omitempty"`
	// Detectors add detectors of the deployment's own data.
	Detectors []*DLPDetector `yaml:"detectors,omitempty"`
	// Allow lists values never reported (documented example keys, test
	// accounts).
	Allow DLPAllow `yaml:"allow,omitempty"`
	// Disable names built-in types not to report (such as ip-address).
	Disable []string `yaml:"disable,omitempty,flow"`
	// Rules say what happens to findings.
	Rules []*DLPRule `yaml:"rules,omitempty"`
}

// DLPDetector is a detector from configuration.
type DLPDetector struct {
	// Type names what it finds (kebab-case), as findings and rules name it.
	Type string `yaml:"type"`
	// Class is pii or secret (default secret).
	Class string `yaml:"class,omitempty"`
	// Pattern is an RE2 regular expression; group 1, when there is one, is
	// the value.
	Pattern string `yaml:"pattern"`
	// Keywords make the pattern run only near one of them (faster).
	Keywords []string `yaml:"keywords,omitempty,flow"`
	// Validator checks the value: luhn or mod97.
	Validator string `yaml:"validator,omitempty"`
	// Entropy is the least Shannon entropy of the value, in bits per byte.
	Entropy float64 `yaml:"entropy,omitempty"`
	// Confidence of its findings: low, medium (default) or high.
	Confidence string `yaml:"confidence,omitempty"`
}

// DLPAllow lists values that are never findings.
type DLPAllow struct {
	Values   []string `yaml:"values,omitempty"`
	Patterns []string `yaml:"patterns,omitempty"` // RE2, matched against the whole value
}

// DLPRule decides what happens to the findings it matches.
type DLPRule struct {
	ID string `yaml:"id"`
	// Types are finding types (email, aws-access-key-id) or classes (pii,
	// secret); empty matches every finding.
	Types []string `yaml:"types,omitempty,flow"`
	// Direction is arguments (what agents send), results (what servers
	// return) or both (default).
	Direction string `yaml:"direction,omitempty"`
	// Target restricts the rule to servers, tools, resources or prompts.
	Target PolicyTarget `yaml:"target,omitempty"`
	// Action is block (the call is refused), redact (the value becomes
	// [REDACTED:type]), mask (all but its last four characters hidden),
	// hash (the value becomes its keyed fingerprint) or alert (recorded
	// only).
	Action string `yaml:"action"`
	Mode   string `yaml:"mode,omitempty"`
}

// DLP actions and directions.
const (
	DLPBlock  = "block"
	DLPRedact = "redact"
	DLPMask   = "mask"
	DLPHash   = "hash"
	DLPAlert  = "alert"

	DLPArguments = "arguments"
	DLPResults   = "results"
	DLPBoth      = "both"
)
