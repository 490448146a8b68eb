package cli

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/internal/audit"
	"github.com/sluicehq/sluice/internal/dlp"
)

// lineageFlags select the events a lineage report reads.
type lineageFlags struct {
	label, server, principal, value string
	window
	format string
}

func (q *lineageFlags) register(cmd *cobra.Command, formats string) {
	fl := cmd.Flags()
	fl.StringVar(&q.label, "label", "", "only data carrying this label (pii, secret, a configured label)")
	fl.StringVar(&q.server, "server", "", "only calls of this server (either end of a flow)")
	fl.StringVar(&q.principal, "principal", "", "only calls of this principal (subject)")
	fl.StringVar(&q.value, "value", "", "only this value (an e-mail address, a card number...), matched by its fingerprint")
	q.window.register(cmd, "calls", "")
	fl.StringVar(&q.format, "format", "table", "output: "+formats)
}

// lineageReader holds what the reports read: every call event of the
// window, in order, and the fingerprints of the value searched for.
type lineageReader struct {
	q      *lineageFlags
	events []*audit.View
	byID   map[string]*audit.View
	// tokens are the fingerprints the value may have: the value as given
	// and in each canonical form the detectors give it.
	tokens []string
}

func (q *lineageFlags) read(cmd *cobra.Command, f *auditFlags, formats ...string) (*lineageReader, error) {
	if !slices.Contains(formats, q.format) {
		return nil, fmt.Errorf("--format must be %s, not %q", strings.Join(formats, ", "), q.format)
	}
	var flt audit.Filter
	if err := q.window.apply(&flt, time.Now()); err != nil {
		return nil, err
	}
	r := &lineageReader{q: q, byID: map[string]*audit.View{}}
	if q.value != "" {
		h, err := f.hasher()
		if err != nil {
			return nil, err
		}
		for _, v := range valueForms(q.value) {
			if t := h.Token(v); !slices.Contains(r.tokens, t) {
				r.tokens = append(r.tokens, t)
			}
		}
	}
	st, err := f.openStore(cmd.Context())
	if err != nil {
		return nil, err
	}
	defer st.Close()
	err = st.Query(cmd.Context(), flt, func(rec audit.Record) error {
		v, err := audit.ParseView(rec.Body)
		if err != nil {
			return fmt.Errorf("record %d: %w", rec.Seq, err)
		}
		if v.Kind == "call" {
			r.events = append(r.events, v)
			r.byID[v.ID] = v
		}
		return nil
	})
	return r, err
}

// valueForms are the forms in which a value's fingerprint may have been
// made: as given, and as DLP writes it.
func valueForms(v string) []string { return append([]string{v}, dlp.Forms(v)...) }

// carries reports whether an event's findings include one of the tokens.
func (r *lineageReader) carries(v *audit.View) (sent, returned bool) {
	for _, f := range v.Findings {
		for _, fp := range f.Fingerprints {
			if slices.Contains(r.tokens, fp) {
				if f.Location == "result" {
					returned = true
				} else {
					sent = true
				}
			}
		}
	}
	return sent, returned
}

func (r *lineageReader) principalOK(v *audit.View) bool {
	return r.q.principal == "" || v.Subject() == r.q.principal
}

func newLineage() *cobra.Command {
	f := &auditFlags{}
	cmd := &cobra.Command{
		Use:   "lineage",
		Short: "Show where data went: flows between calls, calls that carried a value, who received which data",
		Long: `Answer lineage and compliance questions from the audit log: which later
calls carried values that earlier results held (flows), every call that carried
a given value (for a data-subject request), and which principals received which
data classes from which servers over a period. Values are matched by their keyed
fingerprints: the log holds none of them. The log is found as for sluice audit.`,
	}
	f.register(cmd)
	cmd.AddCommand(newLineageFlows(f), newLineageCalls(f), newLineageAccess(f))
	return cmd
}

// flowEdge is one flow: a value a call sent that an earlier result held.
type flowEdge struct {
	Time        string   `json:"time"`
	Principal   string   `json:"principal"`
	From        string   `json:"from"`
	FromServer  string   `json:"from_server,omitempty"`
	FromName    string   `json:"from_name,omitempty"`
	To          string   `json:"to"`
	ToServer    string   `json:"to_server"`
	ToName      string   `json:"to_name"`
	Outcome     string   `json:"outcome"`
	Kind        string   `json:"kind"`
	Labels      []string `json:"labels,omitempty"`
	Fingerprint string   `json:"fingerprint"`
}

func newLineageFlows(f *auditFlags) *cobra.Command {
	q := &lineageFlags{}
	cmd := &cobra.Command{
		Use:   "flows",
		Short: "List flows: values that calls sent and earlier results held (table, JSON or Graphviz DOT)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := q.read(cmd, f, "table", "json", "dot")
			if err != nil {
				return err
			}
			var edges []flowEdge
			for _, v := range r.events {
				if !r.principalOK(v) {
					continue
				}
				for _, fl := range v.Flows {
					e := flowEdge{Time: v.Time, Principal: v.Subject(), From: fl.From, To: v.ID, ToServer: v.Server, ToName: v.Name,
						Outcome: v.Outcome, Kind: fl.Kind, Labels: fl.Labels, Fingerprint: fl.Fingerprint}
					if src := r.byID[fl.From]; src != nil {
						e.FromServer, e.FromName = src.Server, src.Name
					}
					if q.label != "" && !slices.Contains(e.Labels, q.label) && !strings.HasPrefix(e.Kind, q.label+"/") {
						continue
					}
					if q.server != "" && e.FromServer != q.server && e.ToServer != q.server {
						continue
					}
					if q.value != "" && !slices.Contains(r.tokens, e.Fingerprint) {
						continue
					}
					edges = append(edges, e)
				}
			}
			out := cmd.OutOrStdout()
			switch q.format {
			case "json":
				return writeJSONLines(out, edges)
			case "dot":
				return writeDOT(out, edges)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tPRINCIPAL\tFROM\tTO\tOUTCOME\tKIND\tLABELS\tFROM CALL\tTO CALL")
			for _, e := range edges {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortTime(e.Time), cell(e.Principal), cell(target(e.FromServer, e.FromName)),
					cell(target(e.ToServer, e.ToName)), e.Outcome, e.Kind, strings.Join(e.Labels, ","), e.From, e.To)
			}
			return tw.Flush()
		},
	}
	q.register(cmd, "table, json (one flow per line) or dot (Graphviz: servers and tools as nodes, flows as edges)")
	return cmd
}

func newLineageCalls(f *auditFlags) *cobra.Command {
	q := &lineageFlags{}
	cmd := &cobra.Command{
		Use:   "calls --value VALUE",
		Short: "List every call that sent or returned a value (for a data-subject request)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if q.value == "" {
				return &exitError{code: 2, err: fmt.Errorf("--value is required")}
			}
			r, err := q.read(cmd, f, "table", "json")
			if err != nil {
				return err
			}
			type row struct {
				Time      string `json:"time"`
				ID        string `json:"id"`
				Principal string `json:"principal"`
				Server    string `json:"server"`
				Method    string `json:"method"`
				Name      string `json:"name,omitempty"`
				Outcome   string `json:"outcome"`
				Sent      bool   `json:"sent"`
				Returned  bool   `json:"returned"`
			}
			var rows []row
			for _, v := range r.events {
				sent, returned := r.carries(v)
				if !sent && !returned || !r.principalOK(v) || q.server != "" && v.Server != q.server ||
					q.label != "" && !slices.Contains(v.Labels, q.label) {
					continue
				}
				rows = append(rows, row{v.Time, v.ID, v.Subject(), v.Server, v.Method, v.Name, v.Outcome, sent, returned})
			}
			out := cmd.OutOrStdout()
			if q.format == "json" {
				return writeJSONLines(out, rows)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tPRINCIPAL\tSERVER\tMETHOD\tNAME\tOUTCOME\tVALUE\tID")
			for _, x := range rows {
				how := []string{}
				if x.Sent {
					how = append(how, "sent")
				}
				if x.Returned {
					how = append(how, "returned")
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortTime(x.Time), cell(x.Principal), cell(x.Server), x.Method, cell(x.Name),
					x.Outcome, strings.Join(how, ","), x.ID)
			}
			return tw.Flush()
		},
	}
	q.register(cmd, "table or json")
	return cmd
}

// accessRow is what one principal received of one data class from one
// server.
type accessRow struct {
	Principal string `json:"principal"`
	Server    string `json:"server"`
	Class     string `json:"class"`
	Calls     int    `json:"calls"`
	First     string `json:"first"`
	Last      string `json:"last"`
}

func newLineageAccess(f *auditFlags) *cobra.Command {
	q := &lineageFlags{}
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Report which principals received which data classes from which servers",
		Long: `Report, for the period, which principals received which data classes from
which servers: the labels of what successful calls returned (configured labels,
and the classes DLP found, pii and secret) and the kinds of data DLP found in
results (pii/email, ...), with how many calls and when first and last.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := q.read(cmd, f, "table", "json")
			if err != nil {
				return err
			}
			type key struct{ p, s, c string }
			agg := map[key]*accessRow{}
			for _, v := range r.events {
				if v.Outcome != "ok" || !r.principalOK(v) || q.server != "" && v.Server != q.server {
					continue
				}
				if len(r.tokens) > 0 {
					if _, returned := r.carries(v); !returned {
						continue
					}
				}
				classes := slices.Clone(v.Labels)
				for _, fd := range v.Findings {
					if fd.Location == "result" && !slices.Contains(classes, fd.Kind) {
						classes = append(classes, fd.Kind)
					}
				}
				for _, c := range classes {
					if q.label != "" && c != q.label && !strings.HasPrefix(c, q.label+"/") {
						continue
					}
					k := key{v.Subject(), v.Server, c}
					a := agg[k]
					if a == nil {
						a = &accessRow{Principal: k.p, Server: k.s, Class: c, First: v.Time}
						agg[k] = a
					}
					a.Calls++
					a.Last = v.Time
				}
			}
			rows := make([]accessRow, 0, len(agg))
			for _, a := range agg {
				rows = append(rows, *a)
			}
			sort.Slice(rows, func(i, j int) bool {
				a, b := rows[i], rows[j]
				if a.Principal != b.Principal {
					return a.Principal < b.Principal
				}
				if a.Server != b.Server {
					return a.Server < b.Server
				}
				return a.Class < b.Class
			})
			out := cmd.OutOrStdout()
			if q.format == "json" {
				return writeJSONLines(out, rows)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PRINCIPAL\tSERVER\tDATA\tCALLS\tFIRST\tLAST")
			for _, a := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", cell(a.Principal), cell(a.Server), a.Class, a.Calls, shortTime(a.First), shortTime(a.Last))
			}
			return tw.Flush()
		},
	}
	q.register(cmd, "table or json")
	return cmd
}

func writeJSONLines[T any](w io.Writer, rows []T) error {
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
			return err
		}
	}
	return nil
}

// writeDOT writes flows as a Graphviz graph: a node per server and tool,
// an edge per kind of data between two of them, with how many flows.
func writeDOT(w io.Writer, edges []flowEdge) error {
	type key struct{ from, to, kind string }
	count := map[key]int{}
	var keys []key
	for _, e := range edges {
		k := key{target(e.FromServer, e.FromName), target(e.ToServer, e.ToName), e.Kind}
		if k.from == "" {
			k.from = "call " + e.From
		}
		if count[k] == 0 {
			keys = append(keys, k)
		}
		count[k]++
	}
	var b strings.Builder
	b.WriteString("digraph lineage {\n  rankdir=LR;\n  node [shape=box];\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "  %s -> %s [label=%s];\n", strconv.Quote(k.from), strconv.Quote(k.to), strconv.Quote(fmt.Sprintf("%s (%d)", k.kind, count[k])))
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func target(server, name string) string {
	switch {
	case server == "":
		return name
	case name == "":
		return server
	}
	return server + "/" + name
}

func shortTime(t string) string {
	if tm, err := time.Parse(time.RFC3339Nano, t); err == nil {
		return tm.Format(time.RFC3339)
	}
	return t
}

func cell(s string) string {
	if s == "" {
		return "-"
	}
	return cellSpaces.Replace(s)
}
