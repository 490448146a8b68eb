package cli

import (
	"fmt"
	"os"
	"testing"
)

// TestMain gives the Sluice processes the tests start a data directory of
// their own (the audit log and its keys), never the user's.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-test-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("SLUICE_DATA_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
