package cli

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/approval"
	"github.com/sluicehq/sluice/internal/config"
)

// approveFlags say where the approvals endpoint is and who is asking.
type approveFlags struct {
	url       string
	tokenFile string
	asJSON    bool
	timeout   time.Duration
}

// tokenEnv is the environment variable that may carry the approver's
// bearer token. A token is never taken from the command line, where other
// users of the machine could read it in the process list.
const tokenEnv = "SLUICE_TOKEN"

func newApprove() *cobra.Command {
	f := &approveFlags{}
	cmd := &cobra.Command{
		Use:   "approve",
		Short: "List, grant and deny calls waiting for a human's approval",
		Long: `Decide on calls that a policy holds for approval, through the approvals
endpoint of a running Sluice (/approvals). The approver authenticates with a
bearer token (an API key or an access token) read from --token-file or the
SLUICE_TOKEN environment variable, and must be listed in approval.approvers
(by subject, or as group:NAME). An approver may deny their own call but not
approve it.`,
	}
	pf := cmd.PersistentFlags()
	def := os.Getenv("SLUICE_URL")
	if def == "" {
		def = "http://" + config.DefaultListen
	}
	pf.StringVar(&f.url, "url", def, "base URL of the running Sluice (env SLUICE_URL)")
	pf.StringVar(&f.tokenFile, "token-file", "", "file holding the approver's bearer token (default: env "+tokenEnv+")")
	pf.BoolVar(&f.asJSON, "json", false, "print the endpoint's JSON answer")
	pf.DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for Sluice to answer")
	cmd.AddCommand(
		&cobra.Command{
			Use:   "list",
			Short: "List the calls waiting for approval, oldest first",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				var res approval.ListResponse
				raw, err := f.do(cmd.Context(), http.MethodGet, "", nil, &res)
				if err != nil {
					return err
				}
				if f.asJSON {
					_, err := cmd.OutOrStdout().Write(raw)
					return err
				}
				return printPending(cmd.OutOrStdout(), res.Approvals)
			},
		},
		&cobra.Command{
			Use:   "show ID",
			Short: "Show one waiting call in full",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var p approval.Pending
				raw, err := f.do(cmd.Context(), http.MethodGet, args[0], nil, &p)
				if err != nil {
					return err
				}
				if f.asJSON {
					_, err := cmd.OutOrStdout().Write(raw)
					return err
				}
				return printOne(cmd.OutOrStdout(), p)
			},
		},
		f.decisionCmd(approval.DecisionApprove),
		f.decisionCmd(approval.DecisionDeny),
	)
	return cmd
}

// decisionCmd is `sluice approve grant ID` or `sluice approve deny ID`.
func (f *approveFlags) decisionCmd(decision string) *cobra.Command {
	var reason string
	use, short := "grant ID", "Approve a waiting call: it runs, and the same exact call passes until the approval expires"
	if decision == approval.DecisionDeny {
		use, short = "deny ID", "Deny a waiting call: the agent gets an error with the reason"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := json.Marshal(approval.DecisionRequest{Decision: decision, Reason: reason})
			if err != nil {
				return err
			}
			var res approval.DecisionResponse
			raw, err := f.do(cmd.Context(), http.MethodPost, args[0], body, &res)
			if err != nil {
				return err
			}
			if f.asJSON {
				_, err := cmd.OutOrStdout().Write(raw)
				return err
			}
			verb := "approved"
			if res.Decision == approval.DecisionDeny {
				verb = "denied"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s %s as %s\n", verb, res.ID, res.Approver)
			return err
		},
	}
	if decision == approval.DecisionApprove {
		cmd.Aliases = []string{"approve", "allow"}
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown to the agent on a denial")
	return cmd
}

// token returns the approver's bearer token.
func (f *approveFlags) token() (string, error) {
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("token file %s is empty", f.tokenFile)
		}
		return tok, nil
	}
	if tok := strings.TrimSpace(os.Getenv(tokenEnv)); tok != "" {
		return tok, nil
	}
	return "", errors.New("no token: give --token-file or set " + tokenEnv)
}

// endpoint returns the URL of /approvals, or of /approvals/{id}.
func (f *approveFlags) endpoint(id string) (string, error) {
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http(s)://HOST[:PORT]", f.url)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/approvals"
	if id != "" {
		u.Path += "/" + id
		u.RawPath = ""
	}
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// maxAnswer bounds what is read of an answer.
const maxAnswer = 4 << 20

// do makes one request to the endpoint and decodes a 2xx answer into out.
// It returns the raw answer for --json.
func (f *approveFlags) do(ctx context.Context, method, id string, body []byte, out any) ([]byte, error) {
	if strings.ContainsAny(id, "/?#") {
		return nil, fmt.Errorf("%q is not an approval ID", id)
	}
	tok, err := f.token()
	if err != nil {
		return nil, err
	}
	u, err := f.endpoint(id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("approvals endpoint: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("approvals endpoint: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e approval.ErrorResponse
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("approvals endpoint: %s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return nil, fmt.Errorf("approvals endpoint: HTTP %d", resp.StatusCode)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("approvals endpoint: unexpected answer: %w", err)
	}
	return raw, nil
}

// printPending writes one line per waiting call.
func printPending(w io.Writer, ps []approval.Pending) error {
	if len(ps) == 0 {
		_, err := fmt.Fprintln(w, "no calls wait for approval")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEXPIRES IN\tPRINCIPAL\tSERVER\tMETHOD\tNAME\tRULE\tARGUMENTS")
	now := time.Now()
	for _, p := range ps {
		args := p.Arguments
		if r := []rune(args); len(r) > 60 {
			args = string(r[:57]) + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Expires.Sub(now).Round(time.Second),
			cmp.Or(p.Principal, "(unauthenticated)"), orDash(p.Server), p.Method, orDash(p.Tool), orDash(p.Rule), args)
	}
	return tw.Flush()
}

// printOne writes a waiting call in full.
func printOne(w io.Writer, p approval.Pending) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	principal := p.Principal
	if principal == "" {
		principal = "(unauthenticated)"
	}
	if p.PrincipalName != "" {
		principal += " (" + p.PrincipalName + ")"
	}
	for _, row := range [][2]string{
		{"id", p.ID},
		{"principal", principal},
		{"server", orDash(p.Server)},
		{"method", p.Method},
		{"name", orDash(p.Tool)},
		{"arguments", p.Arguments},
		{"digest", p.Digest},
		{"rule", orDash(p.Rule)},
		{"policy version", orDash(p.PolicyVersion)},
		{"created", p.Created.Format(time.RFC3339)},
		{"expires", p.Expires.Format(time.RFC3339)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
