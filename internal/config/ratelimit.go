package config

// RateLimit is one token bucket family: Rate tokens per second refilled up
// to Burst, one bucket per distinct key.
type RateLimit struct {
	ID string `yaml:"id"`
	// Per says what a bucket is kept for: "principal", "tool", "server",
	// or combinations joined with "+" ("principal+tool").
	Per string `yaml:"per"`
	// Rate is a number of calls per unit: "10/s", "600/m", "5000/h".
	Rate  string `yaml:"rate"`
	Burst int    `yaml:"burst,omitempty"` // default: the per-second rate rounded up, at least 1
	// Target limits which calls count (servers, tools, methods globs).
	Target PolicyTarget `yaml:"target,omitempty"`
	Mode   string       `yaml:"mode,omitempty"` // observe or enforce (default)
}
