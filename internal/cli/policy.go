package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/policy"
)

func newPolicy() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test and lint the policy of a configuration",
	}
	cmd.AddCommand(newPolicyTest(), newPolicyLint(), newPolicyReplay())
	return cmd
}

// loadPolicy loads a configuration that must have a policy.
func loadPolicy(cmd *cobra.Command, path string) (*config.Config, error) {
	if path == "" {
		return nil, &exitError{code: 2, err: errors.New("--config is required")}
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), err)
		return nil, &exitError{code: 1, err: fmt.Errorf("%s is not valid", path)}
	}
	if cfg.Policy == nil {
		return nil, &exitError{code: 1, err: fmt.Errorf("%s has no policy", path)}
	}
	return cfg, nil
}

func newPolicyTest() *cobra.Command {
	var cfgPath string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test FILE",
		Short: "Run a table of cases against the policy and report every mismatch",
		Long: `Run a table of test cases (a YAML file) against the policy of a configuration.
Each case makes a call as a principal and names the decision the policy must
make (effect, and optionally rule, reason and mode). The exit status is 1 when
any case gets a different decision.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadPolicy(cmd, cfgPath)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read cases: %w", err)
			}
			cases, err := policy.ParseCases(data, args[0])
			if err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return &exitError{code: 1, err: fmt.Errorf("%s is not valid", args[0])}
			}
			e, err := policy.New(cfg.Policy, policy.Options{Approval: true})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, r := range policy.RunCases(e, cfg, cases) {
				switch {
				case r.Err != nil:
					failed++
					fmt.Fprintf(out, "FAIL %s\n     %v\n", r.Where(args[0]), r.Err)
				case r.Failed():
					failed++
					fmt.Fprintf(out, "FAIL %s\n", r.Where(args[0]))
					for _, d := range r.Diffs {
						fmt.Fprintf(out, "     %s\n", d)
					}
				case verbose:
					fmt.Fprintf(out, "ok   %s\n", r.Case.Name)
				}
			}
			n := len(cases.Cases)
			fmt.Fprintf(out, "%d case(s), %d passed, %d failed (policy version %s)\n", n, n-failed, failed, e.Version())
			if failed > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration whose policy is tested (required)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also list the cases that pass")
	return cmd
}

func newPolicyLint() *cobra.Command {
	var cfgPath string
	cmd := &cobra.Command{
		Use:   "lint",
		Short: "Find unreachable rules, unknown servers and tools, and fields that do not exist",
		Long: `Lint the policy of a configuration: rules that never decide anything, targets
naming servers or tools that do not exist, and conditions reading fields that do
not exist. Lint reads the configuration only; it knows a server's tools from its
tools.allow list, and says nothing about servers without one. The exit status is
1 when anything is found.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadPolicy(cmd, cfgPath)
			if err != nil {
				return err
			}
			problems := policy.Lint(cfg)
			for _, p := range problems {
				fmt.Fprintln(cmd.OutOrStdout(), p)
			}
			if len(problems) > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d problem(s) in the policy of %s", len(problems), cfgPath)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: policy ok\n", cfgPath)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration whose policy is linted (required)")
	return cmd
}
