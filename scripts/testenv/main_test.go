package main

import (
	"os/exec"
	"strings"
	"testing"
)

func TestShellQuote(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "plain", in: "/a/b/node"},
		{name: "space", in: "/a b/node"},
		{name: "single quote", in: "/it's/node"},
		{name: "specials", in: "/$HOME/`x`/\"y\"/*/node"},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(tt.in)).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(out); got != tt.in {
				t.Errorf("sh printed %q for %s, want %q", got, shellQuote(tt.in), tt.in)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "none", args: nil},
		{name: "unknown", args: []string{"nope"}},
		{name: "two", args: []string{"node", "node"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			if err == nil || !strings.Contains(err.Error(), "usage") {
				t.Errorf("run(%q) = %v, want usage error", tt.args, err)
			}
		})
	}
}
