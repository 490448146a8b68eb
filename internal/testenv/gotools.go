package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// GoSDKVersion is the version of the Go MCP SDK whose conformance server [EverythingServer]
// installs; it is the same version go.mod requires.
const GoSDKVersion = "v1.8.0"

const everythingServerPkg = "github.com/modelcontextprotocol/go-sdk/conformance/everything-server"

// SluiceBinEnv names the environment variable that makes [Sluice] return a prebuilt
// binary instead of building one.
const SluiceBinEnv = "SLUICE_BIN"

var (
	everythingMemo memo
	sluiceMemo     memo
)

// EverythingServer returns the path of the Go SDK's conformance server, the upstream the
// conformance suite is run against. With -http ADDR it serves Streamable HTTP on ADDR
// (every path; use /mcp), stateless (modern era) by default and with sessions (legacy
// era) under -stateless=false; without -http it serves stdio.
func EverythingServer(t testing.TB) string {
	t.Helper()
	p, err := everythingMemo.get(InstallEverythingServer)
	if err != nil {
		t.Fatalf("testenv: everything-server: %v", err)
	}
	return p
}

// InstallEverythingServer is [EverythingServer] for programs.
func InstallEverythingServer() (string, error) {
	goTool, err := goCommand()
	if err != nil {
		return "", err
	}
	dir, err := ensure("everything-server-"+GoSDKVersion, everythingServerPkg+"@"+GoSDKVersion, func(dir string) error {
		// Outside any module and with GOFLAGS cleared, so that neither the checkout's
		// go.mod nor a -mod flag changes what is built.
		return run(dir, []string{"GOBIN=" + dir, "GOFLAGS=", "GOWORK=off"},
			goTool, "install", everythingServerPkg+"@"+GoSDKVersion)
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "everything-server"), nil
}

// Sluice returns the path of a sluice binary built from ./cmd/sluice of this checkout,
// built once per test binary (with -race when the test binary has it), or the binary
// named by $SLUICE_BIN.
func Sluice(t testing.TB) string {
	t.Helper()
	p, err := sluiceMemo.get(BuildSluice)
	if err != nil {
		t.Fatalf("testenv: build sluice: %v", err)
	}
	return p
}

// BuildSluice is [Sluice] for programs.
func BuildSluice() (string, error) {
	if p := os.Getenv(SluiceBinEnv); p != "" {
		p, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w", SluiceBinEnv, err)
		}
		return p, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	goTool, err := goCommand()
	if err != nil {
		return "", err
	}
	// Each process builds into a directory of its own: a binary that another test
	// process is running cannot be overwritten. Directories of processes that have
	// exited are removed here.
	builds := filepath.Join(cache, "sluice-builds")
	removeStaleBuilds(builds)
	dir := filepath.Join(builds, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "sluice")
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/sluice")
	if err := run(root, []string{"GOWORK=off"}, goTool, args...); err != nil {
		return "", err
	}
	return out, nil
}

// removeStaleBuilds removes the build directories, named by pid, of processes that no
// longer run.
func removeStaleBuilds(builds string) {
	entries, err := os.ReadDir(builds)
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(filepath.Join(builds, e.Name()))
		}
	}
}

// goCommand returns the go command on PATH. go test puts the bin directory of the
// toolchain that runs it first on the PATH of test binaries, so a test builds with the
// same go.
func goCommand() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go: %w", errNoTool)
	}
	return p, nil
}
