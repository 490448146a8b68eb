package config

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// env returns a lookup function over vars, for parse.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

// noEnv is a lookup function with no variables set.
func noEnv(string) (string, bool) { return "", false }

// problemStrings returns the message of each problem in err.
func problemStrings(err error) []string {
	var out []string
	for _, p := range Problems(err) {
		out = append(out, p.Error())
	}
	return out
}
