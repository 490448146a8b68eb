package cli

import (
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/demo"
)

// newDemoServer is the built-in demo MCP server that the embedded default
// configuration launches as a child process of Sluice's own binary. It logs
// the requests it serves to stderr, which Sluice logs as the server's.
func newDemoServer() *cobra.Command {
	return &cobra.Command{
		Use:    "demo-server",
		Short:  "Run the built-in demo MCP server on stdin and stdout",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Run(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
}
