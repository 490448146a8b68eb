package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests below that install (Node, NPMPackages, EverythingServer) download on the
// first run into the shared cache, which takes tens of seconds; later runs reuse it.

func TestParseNodeMajor(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr bool
	}{
		{name: "release", in: "v22.23.3", want: 22},
		{name: "old", in: "v20.20.2", want: 20},
		{name: "prerelease", in: "v26.0.0-nightly2026", want: 26},
		{name: "no v", in: "22.1.0", wantErr: true},
		{name: "garbage", in: "vX.1", wantErr: true},
		{name: "empty", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseNodeMajor(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseNodeMajor(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseNodeMajor(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestFindModuleRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "a", "b", "c")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory named go.mod is not a module file.
	if err := os.Mkdir(filepath.Join(root, "a", "go.mod"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		from string
	}{
		{name: "root", from: root},
		{name: "nested", from: deep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findModuleRoot(tt.from)
			if err != nil {
				t.Fatal(err)
			}
			if got != root {
				t.Errorf("findModuleRoot(%s) = %s, want %s", tt.from, got, root)
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		if got, err := findModuleRoot("/"); err == nil {
			t.Errorf("findModuleRoot(/) = %s, want error", got)
		}
	})
}

func TestModuleRootIsThisCheckout(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("module github.com/sluicehq/sluice\n")) {
		t.Errorf("go.mod at %s is not Sluice's:\n%s", root, data)
	}
}

func TestCacheDir(t *testing.T) {
	t.Run("override", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "nested", "cache")
		t.Setenv(DirEnv, dir)
		got, err := CacheDir()
		if err != nil {
			t.Fatal(err)
		}
		if got != dir {
			t.Errorf("CacheDir() = %s, want %s", got, dir)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("CacheDir() did not create %s: %v", dir, err)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Setenv(DirEnv, "")
		root, err := ModuleRoot()
		if err != nil {
			t.Fatal(err)
		}
		got, err := CacheDir()
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, ".cache", "testenv"); got != want {
			t.Errorf("CacheDir() = %s, want %s", got, want)
		}
	})
}

func TestLockFileExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := lockFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tryLock := func() error {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err := tryLock(); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Errorf("second flock while held = %v, want EWOULDBLOCK", err)
	}
	unlock()
	if err := tryLock(); err != nil {
		t.Errorf("flock after unlock = %v, want nil", err)
	}
}

func TestEnsure(t *testing.T) {
	t.Setenv(DirEnv, t.TempDir())
	var installs int
	install := func(content string) func(string) error {
		return func(dir string) error {
			installs++
			return os.WriteFile(filepath.Join(dir, "file"), []byte(content), 0o644)
		}
	}
	read := func(dir string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "file"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	dir, err := ensure("tool", "v1", install("one"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ensure("tool", "v1", install("two")); err != nil {
		t.Fatal(err)
	}
	if installs != 1 || read(dir) != "one" {
		t.Errorf("same stamp: installs = %d, content %q; want 1, %q", installs, read(dir), "one")
	}

	// A stale leftover must not survive a reinstall.
	if err := os.WriteFile(filepath.Join(dir, "leftover"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ensure("tool", "v2", install("three")); err != nil {
		t.Fatal(err)
	}
	if installs != 2 || read(dir) != "three" {
		t.Errorf("new stamp: installs = %d, content %q; want 2, %q", installs, read(dir), "three")
	}
	if _, err := os.Stat(filepath.Join(dir, "leftover")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover survived a reinstall: %v", err)
	}

	// A failed install leaves no stamp, so the next call installs again.
	boom := errors.New("boom")
	if _, err := ensure("tool", "v3", func(string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing install: err = %v, want %v", err, boom)
	}
	if _, err := ensure("tool", "v3", install("four")); err != nil {
		t.Fatal(err)
	}
	if installs != 3 || read(dir) != "four" {
		t.Errorf("after failure: installs = %d, content %q; want 3, %q", installs, read(dir), "four")
	}
}

func TestEnsureConcurrent(t *testing.T) {
	t.Setenv(DirEnv, t.TempDir())
	var installs atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = ensure("shared", "v1", func(dir string) error {
				installs.Add(1)
				time.Sleep(50 * time.Millisecond)
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if n := installs.Load(); n != 1 {
		t.Errorf("%d installs by concurrent callers, want 1", n)
	}
}

func TestPackageBin(t *testing.T) {
	tests := []struct {
		name    string
		pkgJSON string
		files   []string
		want    string
		wantErr string
	}{
		{name: "string", pkgJSON: `{"name":"a","bin":"cli.js"}`, files: []string{"cli.js"}, want: "cli.js"},
		{name: "one entry", pkgJSON: `{"name":"a","bin":{"a":"dist/index.js"}}`, files: []string{"dist/index.js"}, want: "dist/index.js"},
		{name: "two entries", pkgJSON: `{"name":"a","bin":{"b":"b.js","a":"a.js"}}`, wantErr: "declares 2 bins [a b]"},
		{name: "no bin", pkgJSON: `{"name":"a"}`, wantErr: "declares no bin"},
		{name: "empty bin", pkgJSON: `{"name":"a","bin":""}`, wantErr: "empty bin"},
		{name: "bad bin", pkgJSON: `{"name":"a","bin":42}`, wantErr: "neither a string nor an object"},
		{name: "missing file", pkgJSON: `{"name":"a","bin":"gone.js"}`, wantErr: "gone.js"},
		{name: "bad json", pkgJSON: `{`, wantErr: "package.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(tt.pkgJSON), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				p := filepath.Join(dir, filepath.FromSlash(f))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := packageBin(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("packageBin() = %q, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(dir, filepath.FromSlash(tt.want)); got != want {
				t.Errorf("packageBin() = %s, want %s", got, want)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"A=1", "B=2", "C=3"}, []string{"B=x", "D=4"})
	want := []string{"A=1", "C=3", "B=x", "D=4"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mergeEnv() mismatch (-want +got):\n%s", diff)
	}
}

func TestFreePortWaitPort(t *testing.T) {
	port := FreePort(t)
	if err := AwaitPort(port, 200*time.Millisecond); err == nil {
		t.Fatalf("AwaitPort(%d) on a free port succeeded", port)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	WaitPort(t, port, 5*time.Second)
}

func TestNode(t *testing.T) {
	node := Node(t)
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	major, err := parseNodeMajor(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if major < MinNodeMajor {
		t.Errorf("Node() = %s, version %s, want %d or later", node, out, MinNodeMajor)
	}
	if again := Node(t); again != node {
		t.Errorf("second Node() = %s, want %s", again, node)
	}
}

func TestNPM(t *testing.T) {
	npm := NPM(t)
	if out, err := exec.Command(npm, "--version").CombinedOutput(); err != nil {
		t.Fatalf("%s --version: %v\n%s", npm, err, out)
	}
}

func TestNPMPackages(t *testing.T) {
	modules := NPMPackages(t)
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	readJSON(t, filepath.Join(root, npmDir, "package.json"), &manifest)

	want := map[string]string{
		ConformancePackage:  "0.2.0-alpha.12",
		EverythingPackage:   "2026.8.31",
		FilesystemPackage:   "2026.8.31",
		MemoryPackage:       "2026.8.31",
		OIDCProviderPackage: "9.13.3",
	}
	if diff := cmp.Diff(want, manifest.Dependencies); diff != "" {
		t.Errorf("test/npm/package.json dependencies mismatch (-want +got):\n%s", diff)
	}
	got := make(map[string]string)
	for pkg := range want {
		var meta struct {
			Version string `json:"version"`
		}
		readJSON(t, filepath.Join(modules, filepath.FromSlash(pkg), "package.json"), &meta)
		got[pkg] = meta.Version
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("installed versions mismatch (-want +got):\n%s", diff)
	}
}

func TestConformance(t *testing.T) {
	argv := Conformance(t)
	out, err := exec.Command(argv[0], append(argv[1:], "--version")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v --version: %v\n%s", argv, err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "0.2.0-alpha.12"; got != want {
		t.Errorf("conformance --version = %q, want %q", got, want)
	}
}

// TestServerCommand starts each npm reference server over stdio and checks that it
// answers initialize.
func TestServerCommand(t *testing.T) {
	tests := []struct {
		name string
		pkg  string
		args func(t *testing.T) []string
		env  func(t *testing.T) []string
	}{
		{name: "everything", pkg: EverythingPackage, args: func(*testing.T) []string { return []string{"stdio"} }},
		{name: "filesystem", pkg: FilesystemPackage, args: func(t *testing.T) []string { return []string{t.TempDir()} }},
		{name: "memory", pkg: MemoryPackage, env: func(t *testing.T) []string {
			return []string{"MEMORY_FILE_PATH=" + filepath.Join(t.TempDir(), "memory.jsonl")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv := ServerCommand(t, tt.pkg)
			if tt.args != nil {
				argv = append(argv, tt.args(t)...)
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			if tt.env != nil {
				cmd.Env = append(os.Environ(), tt.env(t)...)
			}
			resp := stdioInitialize(t, cmd)
			if resp.Result.ServerInfo.Name == "" || resp.Result.ProtocolVersion == "" {
				t.Errorf("initialize result lacks serverInfo.name or protocolVersion: %+v", resp)
			}
		})
	}
}

type initializeResponse struct {
	ID     int `json:"id"`
	Result struct {
		ProtocolVersion string `json:"protocolVersion"`
		ServerInfo      struct {
			Name string `json:"name"`
		} `json:"serverInfo"`
	} `json:"result"`
}

const initializeRequest = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"testenv","version":"0"}}}`

// stdioInitialize starts cmd, sends initialize on its stdin and returns the response.
func stdioInitialize(t *testing.T, cmd *exec.Cmd) initializeResponse {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	if _, err := io.WriteString(stdin, initializeRequest+"\n"); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.Contains(line, `"id":1`) {
				lines <- line
				return
			}
		}
		close(lines)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("server closed stdout without answering initialize; stderr:\n%s", stderr.String())
		}
		var resp initializeResponse
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			t.Fatalf("initialize response %q: %v", line, err)
		}
		return resp
	case <-time.After(30 * time.Second):
		t.Fatalf("no initialize response within 30s; stderr:\n%s", stderr.String())
	}
	panic("unreachable")
}

func TestEverythingServer(t *testing.T) {
	bin := EverythingServer(t)
	tests := []struct {
		name        string
		args        []string
		wantSession bool
	}{
		{name: "stateless", wantSession: false},
		{name: "stateful", args: []string{"-stateless=false"}, wantSession: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := FreePort(t)
			var logs bytes.Buffer
			cmd := exec.Command(bin, append([]string{"-http", fmt.Sprintf("127.0.0.1:%d", port)}, tt.args...)...)
			cmd.Stdout = &logs
			cmd.Stderr = &logs
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				cmd.Process.Kill()
				cmd.Wait()
			})
			WaitPort(t, port, 10*time.Second)

			req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/mcp", port), strings.NewReader(initializeRequest))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("initialize: status %d, body %s; server log:\n%s", resp.StatusCode, body, logs.String())
			}
			if !bytes.Contains(body, []byte(`"mcp-conformance-test-server"`)) {
				t.Errorf("initialize response lacks the server's name: %s", body)
			}
			if got := resp.Header.Get("Mcp-Session-Id") != ""; got != tt.wantSession {
				t.Errorf("Mcp-Session-Id present = %v, want %v", got, tt.wantSession)
			}
		})
	}
}

func TestSluiceFromEnv(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sluice")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(SluiceBinEnv, bin)
	got, err := BuildSluice()
	if err != nil {
		t.Fatal(err)
	}
	if got != bin {
		t.Errorf("BuildSluice() with %s set = %s, want %s", SluiceBinEnv, got, bin)
	}
	t.Setenv(SluiceBinEnv, filepath.Join(t.TempDir(), "missing"))
	if got, err := BuildSluice(); err == nil {
		t.Errorf("BuildSluice() with a missing %s = %s, want error", SluiceBinEnv, got)
	}
}

func TestSluice(t *testing.T) {
	t.Setenv(SluiceBinEnv, "")
	bin := Sluice(t)
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Errorf("Sluice() = %s, mode %v, not executable", bin, fi.Mode())
	}
	if again := Sluice(t); again != bin {
		t.Errorf("second Sluice() = %s, want %s (built once)", again, bin)
	}
}

func TestRemoveStaleBuilds(t *testing.T) {
	builds := t.TempDir()
	// A pid far above any pid_max that Linux allows belongs to no process.
	dead := filepath.Join(builds, "2147483646")
	live := filepath.Join(builds, strconv.Itoa(os.Getppid()))
	other := filepath.Join(builds, "not-a-pid")
	for _, d := range []string{dead, live, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	removeStaleBuilds(builds)
	for _, tt := range []struct {
		dir  string
		want bool
	}{{dead, false}, {live, true}, {other, true}} {
		_, err := os.Stat(tt.dir)
		if got := err == nil; got != tt.want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(tt.dir), got, tt.want)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
