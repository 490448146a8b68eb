package config

// Lineage configures the labels data carries as it flows and the
// toxic-flow rules over them: a call to a target carrying one label, from a
// session that has read data carrying others, is denied (or, in observe
// mode, recorded).
type Lineage struct {
	// Mode is the mode of rules that do not set one: observe or enforce
	// (default).
	Mode string `yaml:"mode,omitempty"`
	// Labels attach labels to targets: what a successful call to one of
	// them returns carries them into the caller's session, and rules name
	// them.
	Labels []*LineageLabel `yaml:"labels,omitempty"`
	// Rules are the toxic flows to refuse.
	Rules []*LineageRule `yaml:"rules,omitempty"`
}

// LineageLabel gives labels to the targets it selects.
type LineageLabel struct {
	Target PolicyTarget `yaml:"target"`
	Labels []string     `yaml:"labels,flow"`
}

// LineageRule refuses a call to a target labelled Call from a session that
// has read data carrying every label of After.
type LineageRule struct {
	ID      string   `yaml:"id"`
	Call    string   `yaml:"call"`
	After   []string `yaml:"after,flow"`
	Mode    string   `yaml:"mode,omitempty"`
	Message string   `yaml:"message,omitempty"`
}
