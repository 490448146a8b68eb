package config

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// startWatch runs watch on path with a short debounce. It returns a channel
// that receives a value for each onChange call, a channel that is closed
// when watch returns, and a function that cancels the watch, waits for it
// and returns what it returned.
func startWatch(t *testing.T, path string) (<-chan struct{}, <-chan struct{}, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 100)
	finished := make(chan struct{})
	var result error
	go func() {
		defer close(finished)
		result = watch(ctx, path, 50*time.Millisecond, func() { changes <- struct{}{} })
	}()
	stop := func() error {
		cancel()
		select {
		case <-finished:
			return result
		case <-time.After(5 * time.Second):
			t.Error("watch did not return after cancel")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return changes, finished, stop
}

// eventually repeats step (with 0, 1, 2, ...) until changes receives a value,
// so a test does not depend on when the watcher has started. It fails the
// test after a few seconds.
func eventually(t *testing.T, changes <-chan struct{}, what string, step func(i int)) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for i := 0; ; i++ {
		step(i)
		select {
		case <-changes:
			return
		case <-time.After(300 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no change reported after %s", what)
		}
	}
}

// quiet checks that changes receives nothing for a while.
func quiet(t *testing.T, changes <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-changes:
		t.Errorf("change reported after %s", what)
	case <-time.After(300 * time.Millisecond):
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replace writes content to a temporary file and renames it over path, the
// way editors and deploy tools do.
func replace(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, path string, i int)
	}{
		{"write in place", func(t *testing.T, path string, i int) {
			writeFile(t, path, "listen: write-"+strconv.Itoa(i)+"\n")
		}},
		{"rename over", func(t *testing.T, path string, i int) {
			replace(t, path, "listen: rename-"+strconv.Itoa(i)+"\n")
		}},
		{"remove and create", func(t *testing.T, path string, i int) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, "listen: recreate-"+strconv.Itoa(i)+"\n")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sluice.yaml")
			writeFile(t, path, "listen: first\n")
			changes, _, stop := startWatch(t, path)
			eventually(t, changes, tt.name, func(i int) { tt.change(t, path, i) })
			// Once the watcher is known to run, one more change is reported
			// exactly once, however many events it makes.
			tt.change(t, path, 1000)
			select {
			case <-changes:
			case <-time.After(5 * time.Second):
				t.Fatalf("second %s not reported", tt.name)
			}
			quiet(t, changes, "a single "+tt.name)
			if err := stop(); err != nil {
				t.Errorf("watch returned %v, want nil", err)
			}
		})
	}
}

func TestWatchIgnores(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	writeFile(t, path, "listen: a\n")
	changes, _, _ := startWatch(t, path)
	eventually(t, changes, "write", func(i int) { writeFile(t, path, "listen: "+strconv.Itoa(i)+"\n") })

	writeFile(t, filepath.Join(dir, "other.yaml"), "x")
	quiet(t, changes, "a write to another file")

	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, string(content))
	quiet(t, changes, "a write of the same content")

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	quiet(t, changes, "a chmod")
}

// TestWatchSurvivesRemoval checks that the watcher keeps going while the
// file is missing and reports it once it is back.
func TestWatchSurvivesRemoval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, "listen: a\n")
	changes, _, stop := startWatch(t, path)
	eventually(t, changes, "write", func(i int) { writeFile(t, path, "listen: "+strconv.Itoa(i)+"\n") })

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	quiet(t, changes, "removal")
	writeFile(t, path, "listen: back\n")
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Fatal("file coming back not reported")
	}
	if err := stop(); err != nil {
		t.Errorf("watch returned %v, want nil", err)
	}
}

// TestWatchSymlinkSwap mimics a Kubernetes ConfigMap volume, where the file
// is a link through a "..data" link that an update swaps to a new directory.
func TestWatchSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	version := func(i int) {
		v := filepath.Join(dir, "..v"+strconv.Itoa(i))
		if err := os.Mkdir(v, 0o700); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(v, "sluice.yaml"), "listen: v"+strconv.Itoa(i)+"\n")
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(filepath.Base(v), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version(0)
	path := filepath.Join(dir, "sluice.yaml")
	if err := os.Symlink(filepath.Join("..data", "sluice.yaml"), path); err != nil {
		t.Fatal(err)
	}
	changes, _, stop := startWatch(t, path)
	eventually(t, changes, "a swap of ..data", func(i int) { version(i + 1) })
	if err := stop(); err != nil {
		t.Errorf("watch returned %v, want nil", err)
	}
}

func TestWatchErrors(t *testing.T) {
	err := Watch(context.Background(), filepath.Join(t.TempDir(), "missing-dir", "sluice.yaml"), func() {})
	if err == nil {
		t.Error("Watch of a file in a missing directory returned nil")
	}

	// Removing the directory ends the watch with an error.
	dir := filepath.Join(t.TempDir(), "conf")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sluice.yaml")
	writeFile(t, path, "listen: a\n")
	changes, done, stop := startWatch(t, path)
	eventually(t, changes, "write", func(i int) { writeFile(t, path, "listen: "+strconv.Itoa(i)+"\n") })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if err := stop(); err == nil {
			t.Error("watch returned nil after its directory was removed")
		}
	case <-time.After(5 * time.Second):
		t.Error("watch still running after its directory was removed")
	}
}

// TestWatchDefaultDebounce runs the exported Watch, with its real debounce,
// against a rename-replace.
func TestWatchDefaultDebounce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeFile(t, path, "listen: a\n")
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 100)
	finished := make(chan error, 1)
	go func() { finished <- Watch(ctx, path, func() { changes <- struct{}{} }) }()
	eventually(t, changes, "rename over", func(i int) { replace(t, path, "listen: "+strconv.Itoa(i)+"\n") })
	cancel()
	select {
	case err := <-finished:
		if err != nil {
			t.Errorf("Watch returned %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after cancel")
	}
}
