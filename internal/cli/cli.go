// Package cli is Sluice's command line: one file per subcommand, each
// returning an error; [Main] maps errors to exit codes so that main stays
// thin.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/config"
)

// Version is set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// exitError carries an exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Main runs the command line and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if os.Getenv("GOGC") == "" {
		// Sluice's heap is small (tens of MiB with a thousand sessions) and
		// short-lived garbage dominates: collecting at 4x the live heap
		// instead of 2x trades a few MiB for noticeably less CPU per call.
		debug.SetGCPercent(400)
	}
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "sluice:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "sluice:", err)
	return 1
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice is a security gateway for the Model Context Protocol",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServe(), newStdio(), newValidate(), newPolicy(), newApprove(), newAuth(), newAudit(), newLineage(), newDLP(), newVersion(), newDemoServer())
	return root
}

// logFlags are shared by the commands that run Sluice.
type logFlags struct {
	level, format string
}

func (f *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.level, "log-level", "", "log level: debug, info, warn or error (overrides the configuration)")
	cmd.Flags().StringVar(&f.format, "log-format", "", "log format: text or json (overrides the configuration)")
}

// newLogger builds Sluice's structured logger. Secrets never reach it: the
// configuration logs itself redacted.
func newLogger(w io.Writer, cfg *config.Config, f logFlags) (*slog.Logger, error) {
	level, format := cfg.Log.Level, cfg.Log.Format
	if f.level != "" {
		level = f.level
	}
	if f.format != "" {
		format = f.format
	}
	var lv slog.Level
	switch level {
	case "", config.LogInfo:
		lv = slog.LevelInfo
	case config.LogDebug:
		lv = slog.LevelDebug
	case config.LogWarn:
		lv = slog.LevelWarn
	case config.LogError:
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("unknown log level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", config.LogText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case config.LogJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("unknown log format %q", format)
}

func selfExe() string {
	exe, err := os.Executable()
	if err != nil {
		return os.Args[0]
	}
	return exe
}
