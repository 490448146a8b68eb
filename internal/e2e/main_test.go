package e2e

import (
	"os"
	"testing"

	"github.com/sluicehq/sluice/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithDataDir(m)) }
