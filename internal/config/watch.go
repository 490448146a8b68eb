package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the file must stay quiet after a change before
// onChange is called: editors and deploy tools often write a file in
// several steps.
const watchDebounce = 200 * time.Millisecond

// Watch calls onChange each time the configuration file at path changes,
// until ctx is done; it then returns nil. It returns an error when the
// watch cannot be set up or the file's directory goes away.
//
// Watch observes the directory rather than the file, because editors and
// deploy tools replace a file by renaming a new one over it, and it follows
// a path that is a symbolic link, both when the link is swapped (as in a
// Kubernetes ConfigMap volume) and when the file it points to is edited. Events are debounced, and
// onChange is called only when the file exists and its content differs from
// what it was when last reported (or when Watch started), so a file that
// disappears for a while and comes back with new content is reported once
// it is back. onChange runs on Watch's goroutine, never concurrently with
// itself; the caller reloads the file there and keeps its running
// configuration when the new one does not load.
func Watch(ctx context.Context, path string, onChange func()) error {
	return watch(ctx, path, watchDebounce, onChange)
}

func watch(ctx context.Context, path string, debounce time.Duration, onChange func()) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	dir, base := filepath.Split(abs)
	dir = filepath.Clean(dir)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch config: %w", err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch config directory: %w", err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil && filepath.Dir(real) != dir {
		// A link to a file elsewhere: an edit in place happens over there.
		// Best effort; the link's own directory is watched in any case.
		_ = w.Add(filepath.Dir(real))
	}
	last, _ := fileDigest(abs)

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	arm := func() { timer.Reset(debounce) }

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("watch config: watcher closed")
			}
			if ev.Name == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("watch config: directory %s was removed or renamed", dir)
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			// Any change to the file's own name counts; other names in the
			// directory matter only when the path is a link whose target
			// may have been swapped.
			if filepath.Base(ev.Name) == base || isSymlink(abs) {
				arm()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("watch config: watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				arm() // events were lost: look at the file again
				continue
			}
			return fmt.Errorf("watch config: %w", err)
		case <-timer.C:
			sum, err := fileDigest(abs)
			if err != nil || bytes.Equal(sum, last) {
				// Missing or unreadable (the next event re-arms the
				// timer), or unchanged.
				continue
			}
			last = sum
			onChange()
		}
	}
}

// fileDigest returns the SHA-256 of the file at path, following links.
func fileDigest(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func isSymlink(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode()&os.ModeSymlink != 0
}
