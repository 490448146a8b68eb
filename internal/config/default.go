package config

import (
	_ "embed"
	"fmt"
)

//go:embed default.yaml
var defaultYAML []byte

// DefaultSource is the [Config.Source] of the configuration [Default] returns.
const DefaultSource = "(default)"

// Default returns the embedded default configuration: a listener on
// 127.0.0.1:8787 in front of one server, "demo", which runs selfExe (the
// sluice binary) with its hidden demo-server subcommand.
func Default(selfExe string) *Config {
	c, err := parse(defaultYAML, DefaultSource, func(string) (string, bool) { return "", false })
	if err != nil {
		panic(fmt.Sprintf("config: embedded default is invalid: %v", err))
	}
	c.embedded = true
	c.Servers["demo"].Command[0] = selfExe
	return c
}
