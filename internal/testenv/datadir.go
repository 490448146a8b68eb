package testenv

import (
	"fmt"
	"os"
	"testing"
)

// RunWithDataDir runs a package's tests with SLUICE_DATA_DIR set to a
// temporary directory, removed afterwards, so that the Sluice processes
// the tests start keep their audit logs and keys there, never in the
// user's data directory. A TestMain calls os.Exit with its result.
func RunWithDataDir(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-test-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Setenv("SLUICE_DATA_DIR", dir)
	return m.Run()
}
