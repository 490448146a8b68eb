package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DirEnv names the environment variable that overrides the cache directory.
const DirEnv = "SLUICE_TESTENV_DIR"

// installTimeout bounds one install command (a download and an unpack, or a go install).
const installTimeout = 15 * time.Minute

// ModuleRoot returns the directory holding the go.mod of the module, found by walking up
// from the working directory. Test binaries run in their package's directory, so this is
// the root of the Sluice checkout.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	return findModuleRoot(dir)
}

func findModuleRoot(dir string) (string, error) {
	for d := dir; ; {
		if fi, err := os.Stat(filepath.Join(d, "go.mod")); err == nil && !fi.IsDir() {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any parent", dir)
		}
		d = parent
	}
}

// CacheDir returns the directory installs go into, creating it: $SLUICE_TESTENV_DIR when
// set, else <module root>/.cache/testenv.
func CacheDir() (string, error) {
	dir := os.Getenv(DirEnv)
	if dir == "" {
		root, err := ModuleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "testenv")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return dir, nil
}

const stampFile = ".stamp"

// ensure makes <cache>/name hold what stamp describes. It takes <cache>/name.lock, and
// when the stamp file in the directory does not match it empties the directory, runs
// install on it and writes the stamp last, so an interrupted install is redone.
func ensure(name, stamp string, install func(dir string) error) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, name)
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	defer unlock()

	if got, err := os.ReadFile(filepath.Join(dir, stampFile)); err == nil && string(got) == stamp {
		return dir, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	if err := install(dir); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, stampFile), []byte(stamp), 0o644); err != nil {
		return "", fmt.Errorf("install %s: %w", name, err)
	}
	return dir, nil
}

// run runs a command in dir and returns an error carrying its combined output when it
// fails. extraEnv entries override the inherited environment.
func run(dir string, extraEnv []string, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = mergeEnv(os.Environ(), extraEnv)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w after %v", ctx.Err(), installTimeout)
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, tail(out.String(), 8000))
	}
	return nil
}

// mergeEnv returns base with the KEY=value entries of extra replacing those of base.
func mergeEnv(base, extra []string) []string {
	keys := make(map[string]bool, len(extra))
	for _, kv := range extra {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !keys[k] {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// tail returns at most the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// memo remembers the outcome of one install per process, so that a test binary asks the
// file system (and the lock) once, and a failed install fails every later caller with
// the same error instead of retrying it.
type memo struct {
	mu   sync.Mutex
	done bool
	val  string
	err  error
}

func (m *memo) get(f func() (string, error)) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.done {
		m.val, m.err = f()
		m.done = true
	}
	return m.val, m.err
}

// errNoTool reports a program the environment must provide and testenv cannot install.
var errNoTool = errors.New("not found on PATH")
