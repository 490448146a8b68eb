package cli

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/config"
)

// auditFlags say which audit log a command reads.
type auditFlags struct {
	configPath string
	dataDir    string
	db         string
}

func (f *auditFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVarP(&f.configPath, "config", "c", "", "configuration file whose audit section and data_dir to use (default: the defaults)")
	pf.StringVar(&f.dataDir, "data-dir", "", "data directory holding the audit database and keys (default: data_dir, $SLUICE_DATA_DIR, $XDG_DATA_HOME/sluice or ~/.local/share/sluice)")
	pf.StringVar(&f.db, "db", "", "audit database: a file, or a postgres:// URL (default: the first sink of the configuration, or audit.db in the data directory)")
}

// target resolves the configuration's audit section and data directory.
func (f *auditFlags) target() (*config.Audit, string, error) {
	var cfg *config.Config
	if f.configPath != "" {
		c, err := config.Load(f.configPath)
		if err != nil {
			return nil, "", err
		}
		cfg = c
	} else {
		cfg = &config.Config{}
	}
	if f.dataDir != "" {
		cfg.DataDir = f.dataDir
	}
	dir, err := audit.ResolveDataDir(cfg.DataDir)
	if err != nil {
		return nil, "", err
	}
	return cfg.Audit, dir, nil
}

// openStore opens the audit database read-only: --db (a file, or a
// postgres:// URL), else the configuration's primary sink.
func (f *auditFlags) openStore(ctx context.Context) (audit.Store, error) {
	a, dir, err := f.target()
	if err != nil {
		return nil, err
	}
	dsn := ""
	switch {
	case strings.HasPrefix(f.db, "postgres://"), strings.HasPrefix(f.db, "postgresql://"):
		dsn = f.db
	case f.db == "" && a != nil && len(a.Sinks) > 0 && a.Sinks[0] != nil && a.Sinks[0].Type == config.AuditPostgres:
		dsn = a.Sinks[0].DSN
	}
	if dsn != "" {
		return audit.OpenPostgres(ctx, dsn, audit.PostgresOptions{ReadOnly: true})
	}
	path := f.db
	if path == "" {
		path = audit.DatabasePath(a, dir)
	}
	return audit.OpenSQLite(path, audit.SQLiteOptions{ReadOnly: true})
}

func newAudit() *cobra.Command {
	f := &auditFlags{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, search and export the audit log",
		Long: `Sluice records every call and every decision in a hash-chained audit log
whose head it signs with an Ed25519 key. These commands read that log: they
need the data directory (or --db) and, to verify, the public key (kept in
the data directory beside the signing key).`,
	}
	f.register(cmd)
	cmd.AddCommand(newAuditVerify(f), newAuditHash(f), newAuditQuery(f, false), newAuditQuery(f, true), newAuditExport(f))
	return cmd
}

func newAuditVerify(f *auditFlags) *cobra.Command {
	var (
		pubPath string
		jsonl   []string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the chain and the signatures; name the first record that does not hold",
		Long: `Check every record's hash, every link of the chain, the sequence, and every
signed checkpoint. Exits with status 1 and names the first record that was
changed, removed, inserted or reordered when the log does not verify.

By default the audit database is verified; with --jsonl, JSON Lines files
written by a jsonl sink are (give rotated files oldest first, or a glob).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a, dir, err := f.target()
			if err != nil {
				return err
			}
			pub, err := verifyKey(a, dir, pubPath)
			if err != nil {
				return err
			}
			var src audit.Source
			if len(jsonl) > 0 {
				files, err := expandFiles(jsonl)
				if err != nil {
					return err
				}
				src = audit.JSONLFiles(files)
			} else {
				st, err := f.openStore(cmd.Context())
				if err != nil {
					return err
				}
				defer st.Close()
				src = st
			}
			rep, err := audit.Verify(cmd.Context(), src, pub)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := json.MarshalWrite(out, verifyJSON(rep), json.Deterministic(true)); err != nil {
					return err
				}
				fmt.Fprintln(out)
			} else {
				printReport(out, rep)
				if len(jsonl) == 0 && f.db == "" {
					// Chains kept beside the default one by other
					// `sluice stdio` processes.
					others, _ := filepath.Glob(filepath.Join(dir, "audit-*.db"))
					for _, o := range others {
						fmt.Fprintf(out, "another chain is in %s: verify it with --db %s\n", o, o)
					}
				}
			}
			if !rep.OK() {
				return &exitError{code: 1, err: fmt.Errorf("the audit log does not verify: %s", rep.Problems[0])}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pubPath, "public-key", "", "PEM public key of the log (default: "+audit.PublicKeyFile+" in the data directory)")
	cmd.Flags().StringSliceVar(&jsonl, "jsonl", nil, "verify these JSON Lines files instead of the database (oldest first; globs allowed)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// verifyKey finds the public key that verifies the log.
func verifyKey(a *config.Audit, dir, pubPath string) ([]byte, error) {
	if pubPath != "" {
		data, err := os.ReadFile(pubPath)
		if err != nil {
			return nil, err
		}
		return audit.ParsePublicKey(data)
	}
	keys, err := audit.LoadKeys(a, dir, false)
	if err != nil {
		return nil, fmt.Errorf("%w (give the log's public key with --public-key)", err)
	}
	return keys.Public, nil
}

func expandFiles(patterns []string) ([]string, error) {
	var files []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("%s: no such file", p)
		}
		slices.Sort(m)
		files = append(files, m...)
	}
	return files, nil
}

func printReport(w io.Writer, rep *audit.Report) {
	if rep.Records == 0 {
		fmt.Fprintln(w, "no records")
	} else {
		fmt.Fprintf(w, "%d records (seq %d to %d), %d checkpoints\n", rep.Records, rep.First, rep.Last, rep.Checkpoints)
	}
	if rep.Purged > 0 {
		fmt.Fprintf(w, "records up to seq %d purged by retention (signed)\n", rep.Purged)
	}
	if rep.Unsigned > 0 {
		fmt.Fprintf(w, "signed through seq %d; the last %d records are not signed yet\n", rep.Signed, rep.Unsigned)
	}
	if rep.OK() {
		fmt.Fprintln(w, "OK: the chain and every signature verify")
		return
	}
	fmt.Fprintf(w, "FAILED: %d problems\n", len(rep.Problems))
	for _, p := range rep.Problems {
		fmt.Fprintln(w, "  "+p.String())
	}
}

func verifyJSON(rep *audit.Report) any {
	problems := make([]map[string]any, len(rep.Problems))
	for i, p := range rep.Problems {
		problems[i] = map[string]any{"kind": p.Kind, "seq": p.Seq, "event_id": p.EventID, "detail": p.Detail}
	}
	return map[string]any{
		"ok": rep.OK(), "records": rep.Records, "checkpoints": rep.Checkpoints, "first": rep.First, "last": rep.Last,
		"signed": rep.Signed, "unsigned": rep.Unsigned, "purged": rep.Purged, "problems": problems,
	}
}

func newAuditHash(f *auditFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "hash VALUE",
		Short: "Print the token a sensitive value is stored as, to search the log for it",
		Long: `Print the keyed HMAC token that the audit log stores instead of VALUE
(an email address, a customer id). Search with: sluice audit query --contains TOKEN,
or directly with: sluice audit query --value VALUE.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := f.hasher()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h.Token(args[0]))
			return nil
		},
	}
}

func (f *auditFlags) hasher() (*audit.Hasher, error) {
	a, dir, err := f.target()
	if err != nil {
		return nil, err
	}
	keys, err := audit.LoadKeys(a, dir, false)
	if err != nil {
		return nil, err
	}
	if keys.HMAC == nil {
		return nil, fmt.Errorf("no audit hmac key in %s and none configured", dir)
	}
	return audit.NewHasher(keys.HMAC), nil
}

// queryFlags select records.
type queryFlags struct {
	principal, server, tool, method, outcome, reason string
	window
	contains, value string
	limit           int
	format          string
}

func (q *queryFlags) register(cmd *cobra.Command, tail bool) {
	fl := cmd.Flags()
	fl.StringVar(&q.principal, "principal", "", "principal's subject")
	fl.StringVar(&q.server, "server", "", "upstream server")
	fl.StringVar(&q.tool, "tool", "", "tool or prompt name (upstream-local) or resource URI")
	fl.StringVar(&q.method, "method", "", "JSON-RPC method, such as tools/call")
	fl.StringVar(&q.outcome, "decision", "", "outcome: ok, denied or error")
	fl.StringVar(&q.reason, "reason", "", "reason code of any decision, such as policy-denied")
	q.window.register(cmd, "records", "")
	fl.StringVar(&q.contains, "contains", "", "records whose event contains this text (a token from sluice audit hash)")
	fl.StringVar(&q.value, "value", "", "records that carried this sensitive value (searched by its token, and those of its canonical forms)")
	fl.StringVar(&q.format, "format", "table", "output: table, json (JSON Lines of events) or csv")
	def := 0
	if tail {
		def = 20
	}
	fl.IntVarP(&q.limit, "limit", "n", def, "at most this many records, the newest (0: all)")
}

func (q *queryFlags) filter(f *auditFlags, now time.Time) (audit.Filter, error) {
	flt := audit.Filter{Principal: q.principal, Server: q.server, Name: q.tool, Method: q.method, Outcome: q.outcome,
		Reason: q.reason, Contains: q.contains, Limit: q.limit}
	if err := q.window.apply(&flt, now); err != nil {
		return flt, err
	}
	if q.value != "" {
		if q.contains != "" {
			return flt, errors.New("give --value or --contains, not both")
		}
		h, err := f.hasher()
		if err != nil {
			return flt, err
		}
		// The value as given, and as DLP writes it before fingerprinting
		// it (a phone number in E.164, an address in lower case).
		for _, v := range valueForms(q.value) {
			flt.ContainsAny = append(flt.ContainsAny, h.Token(v))
		}
	}
	switch q.format {
	case "table", "json", "csv":
	default:
		return flt, fmt.Errorf("--format must be table, json or csv, not %q", q.format)
	}
	return flt, nil
}

// window is a time window given by --since and --until.
type window struct{ since, until string }

func (w *window) register(cmd *cobra.Command, what, since string) {
	cmd.Flags().StringVar(&w.since, "since", since, what+" from this time (RFC 3339) or this long ago (24h, 7d)")
	cmd.Flags().StringVar(&w.until, "until", "", what+" before this time (RFC 3339) or this long ago")
}

// apply sets the filter's bounds.
func (w *window) apply(f *audit.Filter, now time.Time) error {
	var err error
	if f.Since, err = parseWhen(w.since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if f.Until, err = parseWhen(w.until, now); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	return nil
}

// parseWhen reads a time as RFC 3339, or as a duration before now (Go's
// notation, or whole days such as 7d).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.AddDate(0, 0, -n), nil
		}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a time (RFC 3339) nor a duration", s)
	}
	return t, nil
}

func newAuditQuery(f *auditFlags, tail bool) *cobra.Command {
	q := &queryFlags{}
	var follow bool
	cmd := &cobra.Command{
		Use:   "query",
		Short: "Find recorded calls by principal, server, tool, decision, reason, time or value",
		Args:  cobra.NoArgs,
	}
	if tail {
		cmd.Use, cmd.Short = "tail", "Print the newest records, and with -f those that follow"
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		flt, err := q.filter(f, time.Now())
		if err != nil {
			return err
		}
		st, err := f.openStore(cmd.Context())
		if err != nil {
			return err
		}
		defer st.Close()
		p := newPrinter(cmd.OutOrStdout(), q.format)
		var last uint64
		emit := func(r audit.Record) error {
			last = r.Seq
			return p.print(r)
		}
		if err := st.Query(cmd.Context(), flt, emit); err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		for follow {
			select {
			case <-cmd.Context().Done():
				return nil
			case <-time.After(500 * time.Millisecond):
			}
			flt.AfterSeq, flt.Limit = last, 0
			if err := st.Query(cmd.Context(), flt, emit); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			if err := p.flush(); err != nil {
				return err
			}
		}
		return nil
	}
	q.register(cmd, tail)
	if tail {
		cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing records as they are written")
	}
	return cmd
}

func newAuditExport(f *auditFlags) *cobra.Command {
	var (
		w      window
		format string
	)
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write the records as JSON Lines, in the OCSF API Activity shape for SIEMs",
		Long: `Write the selected records to standard output, one JSON object per line:
with --format ocsf (default), as OCSF ` + audit.OCSFVersion + ` API Activity events (class 6003);
with --format jsonl, as the chained records themselves, which verify on
their own with sluice audit verify --jsonl.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			var flt audit.Filter
			var err error
			if err := w.apply(&flt, now); err != nil {
				return err
			}
			st, err := f.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			switch format {
			case "ocsf":
				return st.Query(cmd.Context(), flt, func(r audit.Record) error {
					ev, err := audit.OCSF(r)
					if err != nil {
						return fmt.Errorf("record %d: %w", r.Seq, err)
					}
					_, err = fmt.Fprintf(out, "%s\n", ev)
					return err
				})
			case "jsonl":
				j := audit.NewJSONLWriter(out)
				cps, err := st.Checkpoints(cmd.Context())
				if err != nil {
					return err
				}
				err = st.Query(cmd.Context(), flt, func(r audit.Record) error {
					var mine []audit.Checkpoint
					for _, c := range cps {
						if c.Seq == r.Seq || (c.Seq == r.Seq-1 && c.Kind == audit.KindRetention) {
							mine = append(mine, c)
						}
					}
					return j.Write(cmd.Context(), []audit.Record{r}, mine)
				})
				return err
			}
			return fmt.Errorf("--format must be ocsf or jsonl, not %q", format)
		},
	}
	w.register(cmd, "records", "")
	cmd.Flags().StringVar(&format, "format", "ocsf", "ocsf or jsonl")
	return cmd
}

// printer writes records as a table, JSON Lines or CSV.
type printer struct {
	w      io.Writer
	format string
	tw     *tabwriter.Writer
	cw     *csv.Writer
	header bool
}

// cellSpaces keeps a table cell on one line and in one column.
var cellSpaces = strings.NewReplacer("\t", " ", "\n", " ")

var tableColumns = []string{"SEQ", "TIME", "PRINCIPAL", "SERVER", "METHOD", "NAME", "OUTCOME", "REASON", "LATENCY", "ID"}

func newPrinter(w io.Writer, format string) *printer {
	p := &printer{w: w, format: format}
	switch format {
	case "table":
		p.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	case "csv":
		p.cw = csv.NewWriter(w)
	}
	return p
}

func (p *printer) print(r audit.Record) error {
	if p.format == "json" {
		_, err := fmt.Fprintf(p.w, "%s\n", r.Body)
		return err
	}
	v, err := audit.ParseView(r.Body)
	if err != nil {
		return fmt.Errorf("record %d: %w", r.Seq, err)
	}
	row := []string{strconv.FormatUint(r.Seq, 10), v.When().Format(time.RFC3339Nano), v.Subject(), v.Server, v.Method, v.Name,
		v.Outcome, v.Reason, (time.Duration(v.LatencyUS) * time.Microsecond).String(), v.ID}
	if !p.header {
		p.header = true
		if p.tw != nil {
			fmt.Fprintln(p.tw, strings.Join(tableColumns, "\t"))
		} else {
			p.cw.Write(strings.Split(strings.ToLower(strings.Join(tableColumns, ",")), ","))
		}
	}
	if p.tw != nil {
		for i, c := range row {
			row[i] = cellSpaces.Replace(c)
		}
		_, err := fmt.Fprintln(p.tw, strings.Join(row, "\t"))
		return err
	}
	return p.cw.Write(row)
}

func (p *printer) flush() error {
	if p.tw != nil {
		return p.tw.Flush()
	}
	if p.cw != nil {
		p.cw.Flush()
		return p.cw.Error()
	}
	return nil
}
