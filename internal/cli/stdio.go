package cli

import (
	"errors"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/gateway"
	"github.com/sluicehq/sluice/internal/procs"
)

func newStdio() *cobra.Command {
	var (
		src     sourceFlags
		logs    logFlags
		profile string
	)
	cmd := &cobra.Command{
		Use:   "stdio [flags] [-- COMMAND ARGS...]",
		Short: "Serve one MCP client on stdin and stdout (for Claude Desktop, Cursor, VS Code)",
		Long: `Serve one MCP client over the stdio transport, in front of the configured
upstream servers. Logs go to stderr. Configure your MCP client to launch
"sluice stdio --config /path/to/sluice.yaml" instead of the server itself.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := src.load(args)
			if err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), cfg, logs)
			if err != nil {
				return err
			}
			if cfg.Audit != nil && slices.ContainsFunc(cfg.Audit.Sinks, func(s *config.AuditSink) bool { return s != nil && s.Type == config.AuditStdout }) {
				return errors.New("audit.sinks: a stdout sink cannot be used with sluice stdio, whose standard output is the MCP connection")
			}
			opts, err := src.gatewayOptions(cfg, log)
			if err != nil {
				return err
			}
			opts.AuditAlternates = true
			g, err := gateway.New(cfg, opts)
			if err != nil {
				return err
			}
			defer g.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if procs.Enabled() {
				go procs.Adapt(ctx, procs.Config{})
			}
			watchConfig(ctx, src.configPath, log, g.Reload)
			return g.ServeStdio(ctx, cmd.InOrStdin(), cmd.OutOrStdout(), profile)
		},
	}
	src.register(cmd)
	logs.register(cmd)
	cmd.Flags().StringVar(&profile, "profile", "", "profile to serve (default: all servers)")
	return cmd
}
