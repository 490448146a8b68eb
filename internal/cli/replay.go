package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/policy"
)

func newPolicyReplay() *cobra.Command {
	f := &auditFlags{}
	var (
		policyPath, format string
		w                  window
		failOnChange       bool
	)
	cmd := &cobra.Command{
		Use:   "replay --policy FILE",
		Short: "Decide recorded calls with a candidate policy and report every decision that would change",
		Long: `Read the calls in the audit log, decide each again with the policy of a
candidate configuration, and report every call whose decision would change.

Replay sees what the audit log kept: the principal (subject, groups, scopes,
attributes), the client, the server, the tool, prompt or resource, the
request's headers, the time, and the arguments as they were recorded (see
audit.record.arguments). It does not see a tool's definition (description,
annotations, input schema). Arguments recorded as HMAC tokens, as shapes, or
not at all are unknown: a call whose new decision depends on them is reported
as undetermined, naming what it depends on. Record arguments in full (with
sensitive members still as tokens) to replay conditions on their values.

Calls that a guard before the policy refused (authentication, rate limits,
the allow-list) are not replayed: a new policy would not reach them either.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if policyPath == "" {
				return &exitError{code: 2, err: errors.New("--policy is required")}
			}
			if format != "table" && format != "json" {
				return fmt.Errorf("--format must be table or json, not %q", format)
			}
			cfg, err := loadPolicy(cmd, policyPath)
			if err != nil {
				return err
			}
			e, err := policy.New(cfg.Policy, policy.Options{Approval: true})
			if err != nil {
				return err
			}
			if f.configPath == "" && f.db == "" {
				// The candidate is most often the deployed configuration,
				// edited: its audit section says where the log is.
				f.configPath = policyPath
			}
			flt := audit.Filter{}
			if err := w.apply(&flt, time.Now()); err != nil {
				return err
			}
			st, err := f.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			rp := &replayer{e: e, out: cmd.OutOrStdout(), format: format}
			if format == "table" {
				rp.tw = tabwriter.NewWriter(rp.out, 0, 4, 2, ' ', 0)
			}
			if err := st.Query(cmd.Context(), flt, rp.record); err != nil {
				return err
			}
			if err := rp.finish(); err != nil {
				return err
			}
			if failOnChange && rp.sum.Changed+rp.sum.Undetermined > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d decisions would change, %d may", rp.sum.Changed, rp.sum.Undetermined)}
			}
			return nil
		},
	}
	f.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&policyPath, "policy", "", "configuration file holding the candidate policy (also where the audit log is, without -c or --db)")
	w.register(cmd, "replay calls", "24h")
	fl.StringVar(&format, "format", "table", "output: table, or json (JSON Lines: one object per call, then a summary)")
	fl.BoolVar(&failOnChange, "fail-on-change", false, "exit with status 1 when any decision would or may change")
	return cmd
}

// replaySummary counts what a replay found.
type replaySummary struct {
	Replayed     int `json:"replayed"`
	Same         int `json:"same"`
	Changed      int `json:"changed"`
	Undetermined int `json:"undetermined"`
	// NotReached counts calls a guard before the policy refused.
	NotReached int `json:"not_reached"`
}

// replayChange is one call whose decision would or may change.
type replayChange struct {
	Status    string   `json:"status"` // changed or undetermined
	Time      string   `json:"time"`
	ID        string   `json:"id"`
	Principal string   `json:"principal"`
	Server    string   `json:"server,omitempty"`
	Method    string   `json:"method"`
	Name      string   `json:"name,omitempty"`
	Recorded  []string `json:"recorded"`
	Replayed  []string `json:"replayed"`
	DependsOn []string `json:"depends_on,omitempty"`
}

type replayer struct {
	e      *policy.Engine
	out    io.Writer
	format string
	tw     *tabwriter.Writer
	header bool
	sum    replaySummary
}

// policyRank is where the policy guard sits in the chain.
var policyRank = guard.Rank(policy.Name)

func (rp *replayer) record(r audit.Record) error {
	v, err := audit.ParseView(r.Body)
	if err != nil {
		return fmt.Errorf("record %d: %w", r.Seq, err)
	}
	if v.Kind != "call" {
		return nil
	}
	var recorded []guard.Decision
	for _, d := range v.Decisions {
		if d.Guard == policy.Name {
			recorded = append(recorded, guard.Decision{Guard: d.Guard, Rule: d.Rule, Reason: d.Reason,
				Effect: guard.Effect(d.Effect), Mode: guard.Mode(d.Mode)})
			continue
		}
		if rank := guard.Rank(d.Guard); rank >= 0 && rank < policyRank && d.Effect == string(guard.Deny) && d.Mode == string(guard.Enforce) {
			rp.sum.NotReached++
			return nil
		}
	}
	rp.sum.Replayed++
	got := rp.e.Replay(policy.Recorded{Call: v.Call(), Time: v.When(), Args: v.Args, Placeholder: audit.Placeholder})
	status := ""
	switch {
	case !got.Effects:
		status = "undetermined"
	case !policy.SameEffects(got.Decisions, recorded):
		status = "changed"
	case got.Determined && !policy.SameDecisions(got.Decisions, recorded):
		status = "changed"
	default:
		rp.sum.Same++
		return nil
	}
	if status == "changed" {
		rp.sum.Changed++
	} else {
		rp.sum.Undetermined++
	}
	ch := replayChange{Status: status, Time: v.Time, ID: v.ID, Principal: v.Subject(), Server: v.Server, Method: v.Method,
		Name: v.Name, Recorded: describeDecisions(recorded), Replayed: describeDecisions(got.Decisions), DependsOn: got.Unknown}
	if !got.Determined {
		// One or the other, depending on what was not recorded.
		ch.Replayed = append(ch.Replayed, "or")
		ch.Replayed = append(ch.Replayed, describeDecisions(got.Otherwise)...)
	}
	return rp.print(ch)
}

// describeDecisions writes decisions for people: "deny by no-etc",
// "observe: allow by read-any".
func describeDecisions(ds []guard.Decision) []string {
	out := []string{}
	for _, d := range ds {
		s := string(d.Effect) + " by " + d.Rule
		if d.Reason != "" {
			s += " (" + d.Reason + ")"
		}
		if d.Mode == guard.Observe {
			s = "observe: " + s
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		out = append(out, "no decision")
	}
	return out
}

func (rp *replayer) print(ch replayChange) error {
	if rp.format == "json" {
		return writeJSONLines(rp.out, []replayChange{ch})
	}
	if !rp.header {
		rp.header = true
		fmt.Fprintln(rp.tw, "STATUS\tTIME\tPRINCIPAL\tSERVER\tMETHOD\tNAME\tRECORDED\tREPLAYED\tDEPENDS ON\tID")
	}
	t, _ := time.Parse(time.RFC3339Nano, ch.Time)
	row := []string{ch.Status, t.Format(time.RFC3339), ch.Principal, ch.Server, ch.Method, ch.Name,
		strings.Join(ch.Recorded, "; "), strings.ReplaceAll(strings.Join(ch.Replayed, "; "), "; or; ", " or "), strings.Join(ch.DependsOn, ", "), ch.ID}
	for i, c := range row {
		row[i] = cellSpaces.Replace(c)
	}
	_, err := fmt.Fprintln(rp.tw, strings.Join(row, "\t"))
	return err
}

func (rp *replayer) finish() error {
	s := rp.sum
	if rp.format == "json" {
		type summary struct {
			Summary replaySummary `json:"summary"`
		}
		return writeJSONLines(rp.out, []summary{{s}})
	}
	if err := rp.tw.Flush(); err != nil {
		return err
	}
	if rp.header {
		fmt.Fprintln(rp.out)
	}
	_, err := fmt.Fprintf(rp.out, "%d calls replayed: %d would change, %d may change (they depend on values not recorded), %d the same; %d refused before the policy, not replayed\n",
		s.Replayed, s.Changed, s.Undetermined, s.Same, s.NotReached)
	return err
}
