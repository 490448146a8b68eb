// Package config loads, validates and watches Sluice's YAML configuration.
//
// Loading is strict: keys match case-sensitively, unknown and duplicate keys
// are errors, and every error names the file, the line and the YAML path of
// the value at fault. [Config.Validate] is pure and reports every problem at
// once, so an operator fixes a file in one pass rather than one error per run.
//
// References of the form ${VAR} are replaced by the value of the environment
// variable VAR, but only in the values that carry credentials or locations to
// upstream servers (command, env, dir, url and headers). $${ stands for a
// literal ${. Values of env and headers are secrets: [Config.String],
// [Config.Redacted] and the error messages of this package never contain them.
//
// [Watch] reports changes to a configuration file; the caller reloads it and
// keeps the running configuration when the new one does not load.
package config
