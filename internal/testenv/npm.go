package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
)

// The npm packages of test/npm, pinned exactly by its package-lock.json.
const (
	ConformancePackage = "@modelcontextprotocol/conformance"
	EverythingPackage  = "@modelcontextprotocol/server-everything"
	FilesystemPackage  = "@modelcontextprotocol/server-filesystem"
	MemoryPackage      = "@modelcontextprotocol/server-memory"
	// OIDCProviderPackage is a certified OpenID Connect provider that
	// authentication tests run as the authorization server.
	OIDCProviderPackage = "oidc-provider"
)

// npmDir is where the package.json and package-lock.json of the npm peers live, relative
// to the module root.
const npmDir = "test/npm"

var (
	npmMemo     memo
	npmPkgsMemo memo
)

// NPM returns the path of the machine's npm. It is only used to install packages, so
// the npm that comes with any node works.
func NPM(t testing.TB) string {
	t.Helper()
	p, err := npmMemo.get(InstallNPM)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return p
}

// InstallNPM is [NPM] for programs. npm cannot be installed from a package registry
// without npm, so it only looks it up.
func InstallNPM() (string, error) {
	p, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm: %w (install node and npm)", errNoTool)
	}
	return filepath.Abs(p)
}

// NPMPackages returns the node_modules directory holding the packages of test/npm,
// installed by npm ci from its lock file. It changes when the lock file does.
func NPMPackages(t testing.TB) string {
	t.Helper()
	p, err := npmPkgsMemo.get(InstallNPMPackages)
	if err != nil {
		t.Fatalf("testenv: npm packages: %v", err)
	}
	return p
}

// InstallNPMPackages is [NPMPackages] for programs.
func InstallNPMPackages() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	pkgJSON, err := os.ReadFile(filepath.Join(root, npmDir, "package.json"))
	if err != nil {
		return "", fmt.Errorf("npm packages: %w", err)
	}
	lockJSON, err := os.ReadFile(filepath.Join(root, npmDir, "package-lock.json"))
	if err != nil {
		return "", fmt.Errorf("npm packages: %w", err)
	}
	h := sha256.New()
	h.Write(pkgJSON)
	h.Write([]byte{0})
	h.Write(lockJSON)
	sum := hex.EncodeToString(h.Sum(nil))

	dir, err := ensure("npm", "sha256:"+sum, func(dir string) error {
		npm, err := InstallNPM()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "package.json"), pkgJSON, 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "package-lock.json"), lockJSON, 0o644); err != nil {
			return err
		}
		return run(dir, npmEnv(), npm, "ci", "--no-audit", "--no-fund")
	})
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "node_modules"), nil
}

// npmEnv quiets npm's network extras that have no business in a test install.
func npmEnv() []string {
	return []string{
		"npm_config_update_notifier=false",
		"npm_config_audit=false",
		"npm_config_fund=false",
	}
}

// ServerCommand returns the argv that runs the bin of the npm package pkg (one of
// test/npm's, such as [EverythingPackage]) with node [MinNodeMajor]+. The bin is read
// from the package's package.json, so a package that moves its entry point still runs.
func ServerCommand(t testing.TB, pkg string) []string {
	t.Helper()
	argv, err := PackageCommand(pkg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return argv
}

// Conformance returns the argv that runs the official MCP conformance suite's CLI.
func Conformance(t testing.TB) []string {
	t.Helper()
	return ServerCommand(t, ConformancePackage)
}

// PackageCommand is [ServerCommand] for programs.
func PackageCommand(pkg string) ([]string, error) {
	node, err := nodeMemo.get(InstallNode)
	if err != nil {
		return nil, err
	}
	modules, err := npmPkgsMemo.get(InstallNPMPackages)
	if err != nil {
		return nil, err
	}
	bin, err := packageBin(filepath.Join(modules, filepath.FromSlash(pkg)))
	if err != nil {
		return nil, fmt.Errorf("npm package %s: %w", pkg, err)
	}
	return []string{node, bin}, nil
}

// packageBin returns the absolute path of the one bin declared by the package in dir.
func packageBin(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return "", err
	}
	var meta struct {
		Name string          `json:"name"`
		Bin  json.RawMessage `json:"bin"`
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return "", fmt.Errorf("package.json: %w", err)
	}
	var rel string
	var one string
	var many map[string]string
	switch {
	case len(meta.Bin) == 0:
		return "", fmt.Errorf("package.json declares no bin")
	case json.Unmarshal(meta.Bin, &one) == nil:
		rel = one
	case json.Unmarshal(meta.Bin, &many) == nil:
		if len(many) != 1 {
			names := make([]string, 0, len(many))
			for n := range many {
				names = append(names, n)
			}
			sort.Strings(names)
			return "", fmt.Errorf("package.json declares %d bins %v, want one", len(many), names)
		}
		for _, v := range many {
			rel = v
		}
	default:
		return "", fmt.Errorf("package.json bin is neither a string nor an object")
	}
	if rel == "" {
		return "", fmt.Errorf("package.json declares an empty bin")
	}
	bin := filepath.Join(dir, filepath.FromSlash(rel))
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}
