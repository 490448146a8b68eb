//go:build !unix

package upstream

import (
	"os/exec"
)

// Without process groups and SIGTERM, only the server process itself can be
// stopped, and only forcibly.

func setProcessGroup(*exec.Cmd) {}

func terminateProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}

func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
