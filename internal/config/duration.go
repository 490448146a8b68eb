package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// Duration is a [time.Duration] written in YAML as a Go duration string such
// as "500ms", "30s" or "1m30s". A bare number is rejected: it would be
// ambiguous between seconds and nanoseconds.
type Duration time.Duration

// String returns the duration in Go's notation, e.g. "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements [yaml.Unmarshaler].
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration such as \"30s\"", n.Line)
	}
	return d.UnmarshalText([]byte(n.Value))
}

// MarshalYAML implements [yaml.Marshaler].
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (expected a value such as \"30s\" or \"500ms\")", truncate(string(b), 40))
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements [encoding.TextMarshaler].
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// truncate shortens s to at most n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
