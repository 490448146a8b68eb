package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// RateLimit is one token bucket family: Rate tokens per second refilled up
// to Burst, one bucket per distinct key.
type RateLimit struct {
	ID string `yaml:"id"`
	// Per says what a bucket is kept for: "principal", "tool", "server",
	// or combinations joined with "+" ("principal+tool"). A tool is one
	// server's tool, so "tool" keeps a bucket per server and tool.
	Per string `yaml:"per"`
	// Rate is a number of calls per unit: "10/s", "600/m", "5000/h", "0.5/s".
	Rate  string `yaml:"rate"`
	Burst int    `yaml:"burst,omitempty"` // default: the per-second rate rounded up, at least 1
	// Target limits which calls count (servers, tools, methods globs). With
	// no methods listed, only requests from clients count, not the
	// handshake, ping, list methods or notifications.
	Target PolicyTarget `yaml:"target,omitempty"`
	Mode   string       `yaml:"mode,omitempty"` // observe or enforce (default)
}

// What a rate limit's buckets are kept for; see [RateLimit.Per].
const (
	PerPrincipal = "principal"
	PerServer    = "server"
	PerTool      = "tool"
)

// MaxRate is the highest rate accepted, in calls per second.
const MaxRate = 1e6

// rateUnits are the units of [RateLimit.Rate], in seconds.
var rateUnits = map[string]float64{"s": 1, "m": 60, "h": 3600, "d": 86400}

// ParseRate returns the calls per second that a rate such as "10/s",
// "600/m", "5000/h" or "0.5/s" stands for. The count is a positive decimal
// number without exponent; the unit is s, m, h or d.
func ParseRate(s string) (float64, error) {
	num, unit, ok := strings.Cut(s, "/")
	if !ok {
		return 0, errors.New(`must be a count per unit such as "10/s", "600/m" or "5000/h"`)
	}
	secs, ok := rateUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unit %q must be s, m, h or d", truncate(unit, 20))
	}
	n, err := strconv.ParseFloat(num, 64)
	if !decimal(num) || err != nil {
		return 0, fmt.Errorf("count %q must be a positive decimal number", truncate(num, 20))
	}
	perSec := n / secs
	switch {
	case n <= 0:
		return 0, errors.New("count must be more than zero")
	case perSec > MaxRate:
		return 0, fmt.Errorf("must be at most %g calls per second", float64(MaxRate))
	}
	return perSec, nil
}

// decimal reports whether s is digits with at most one '.' between them.
func decimal(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Count(s, ".") > 1 {
		return false
	}
	return strings.Trim(s, "0123456789.") == ""
}

// ParsePer splits a [RateLimit.Per] value into its parts, each one of
// [PerPrincipal], [PerServer] or [PerTool], once.
func ParsePer(s string) ([]string, error) {
	if s == "" {
		return nil, errors.New(`must name what a bucket is kept for: principal, server, tool or a combination such as "principal+tool"`)
	}
	parts := strings.Split(s, "+")
	seen := map[string]bool{}
	for _, p := range parts {
		switch p {
		case PerPrincipal, PerServer, PerTool:
		default:
			return nil, fmt.Errorf("%q is not principal, server or tool", truncate(p, 20))
		}
		if seen[p] {
			return nil, fmt.Errorf("%q is listed twice", p)
		}
		seen[p] = true
	}
	return parts, nil
}
