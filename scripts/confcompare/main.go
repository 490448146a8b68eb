// Command confcompare compares two result directories of the official MCP conformance
// suite (`conformance server -o DIR`): one from a run against an upstream server
// directly, one from a run against the same upstream through Sluice. It prints a table of
// every scenario with its outcome on both sides and exits 1 when Sluice made anything
// worse:
//
//   - a scenario that passes directly (possibly with warnings) fails or is missing
//     through Sluice, or one that passes cleanly directly warns or has no applicable
//     check through Sluice (skipped). A scenario whose checks only warned directly may be
//     skipped through Sluice: a warning marks optional behaviour (a SHOULD), such as
//     SSE response streams, that Sluice may legitimately not use;
//   - a check that succeeds directly fails through Sluice, even in a scenario that
//     already fails directly.
//
// Usage:
//
//	confcompare [-label NAME] [-summary FILE] DIRECT_DIR SLUICE_DIR
//
// -summary appends one tab-separated line to FILE: label, scenarios passed and failed
// directly, passed and failed through Sluice, and the number of regressions. Exit status
// is 0 without regressions, 1 with, 2 on a usage or read error.
//
// The suite writes one directory per scenario, named <role>-<scenario>-<timestamp>, each
// holding checks.json: a list of checks with a status of SUCCESS, FAILURE, WARNING, INFO
// or SKIPPED. A scenario that crashed the suite leaves no directory.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("confcompare", flag.ContinueOnError)
	fl.SetOutput(stderr)
	label := fl.String("label", "", "name of this comparison in the output and the summary line")
	summary := fl.String("summary", "", "append a tab-separated summary line to this file")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: confcompare [-label NAME] [-summary FILE] DIRECT_DIR SLUICE_DIR")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 2 {
		fl.Usage()
		return 2
	}
	direct, err := readResults(fl.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "confcompare:", err)
		return 2
	}
	through, err := readResults(fl.Arg(1))
	if err != nil {
		fmt.Fprintln(stderr, "confcompare:", err)
		return 2
	}
	c := compare(direct, through)
	if *label == "" {
		*label = filepath.Base(filepath.Clean(fl.Arg(1)))
	}
	c.print(stdout, *label)
	if *summary != "" {
		if err := c.appendSummary(*summary, *label); err != nil {
			fmt.Fprintln(stderr, "confcompare:", err)
			return 2
		}
	}
	if len(c.regressions) > 0 {
		return 1
	}
	return 0
}

// Check statuses written by the suite.
const (
	statusSuccess = "SUCCESS"
	statusFailure = "FAILURE"
	statusWarning = "WARNING"
)

// check is the part of one entry of checks.json that the comparison reads.
type check struct {
	ID           string `json:"id"`
	Status       string `json:"status"`
	ErrorMessage string `json:"errorMessage"`
}

// scenario is the result of one scenario of one run.
type scenario struct {
	name   string
	checks []check
}

// outcome ranks what a scenario came to; a higher value is better.
type outcome int

const (
	missing outcome = iota // no checks.json: the suite crashed on it or did not run it
	failed                 // at least one FAILURE
	skipped                // neither a FAILURE nor a SUCCESS nor a WARNING
	warned                 // no FAILURE, at least one WARNING
	passed                 // no FAILURE, no WARNING, at least one SUCCESS
)

func (o outcome) String() string {
	switch o {
	case passed:
		return "pass"
	case warned:
		return "warn"
	case skipped:
		return "skip"
	case failed:
		return "FAIL"
	default:
		return "missing"
	}
}

// ok tells whether the outcome counts as a pass, as the suite's own summary counts it.
func (o outcome) ok() bool { return o == passed || o == warned }

func (s *scenario) outcome() outcome {
	if s == nil {
		return missing
	}
	var ok, fail, warn int
	for _, c := range s.checks {
		switch c.Status {
		case statusSuccess:
			ok++
		case statusFailure:
			fail++
		case statusWarning:
			warn++
		}
	}
	switch {
	case fail > 0:
		return failed
	case warn > 0:
		return warned
	case ok > 0:
		return passed
	default:
		return skipped
	}
}

// cell renders a scenario's outcome with its failing-check count.
func (s *scenario) cell() string {
	o := s.outcome()
	if o != failed {
		return o.String()
	}
	var fail, counted int
	for _, c := range s.checks {
		switch c.Status {
		case statusFailure:
			fail++
			counted++
		case statusSuccess, statusWarning:
			counted++
		}
	}
	return fmt.Sprintf("FAIL %d/%d", fail, counted)
}

// statusByID returns the worst status of each check id of the scenario (an id may occur
// more than once).
func (s *scenario) statusByID() map[string]string {
	rank := map[string]int{statusFailure: 3, statusWarning: 2, statusSuccess: 1}
	m := make(map[string]string)
	if s == nil {
		return m
	}
	for _, c := range s.checks {
		if cur, ok := m[c.ID]; !ok || rank[c.Status] > rank[cur] {
			m[c.ID] = c.Status
		}
	}
	return m
}

// timestampSuffix matches the -2026-11-25T03-41-25-756Z the suite appends to a
// scenario's directory.
var timestampSuffix = regexp.MustCompile(`-\d{4}-\d{2}-\d{2}T[0-9-]+Z$`)

// scenarioName recovers the scenario's name from its directory, relative to the results
// directory. Scenario names may contain slashes (auth/...), which become subdirectories.
func scenarioName(rel string) string {
	name := filepath.ToSlash(rel)
	name = timestampSuffix.ReplaceAllString(name, "")
	for _, role := range []string{"authorization-server-", "server-", "client-"} {
		if n, ok := strings.CutPrefix(name, role); ok {
			return n
		}
	}
	return name
}

// readResults reads every checks.json under dir. When a scenario was run more than once
// into the same directory, the latest run counts.
func readResults(dir string) (map[string]*scenario, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	type found struct {
		rel string
		sc  *scenario
	}
	latest := make(map[string]found)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "checks.json" {
			return nil
		}
		rel, err := filepath.Rel(dir, filepath.Dir(path))
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var checks []check
		if err := json.Unmarshal(data, &checks); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		name := scenarioName(rel)
		// Timestamps sort as text, so the greatest directory name is the latest run.
		if prev, ok := latest[name]; !ok || rel > prev.rel {
			latest[name] = found{rel: rel, sc: &scenario{name: name, checks: checks}}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	out := make(map[string]*scenario, len(latest))
	for name, f := range latest {
		out[name] = f.sc
	}
	return out, nil
}

// row is one scenario of the comparison.
type row struct {
	name            string
	direct, through *scenario
	note            string
	regression      bool     // the scenario, or one of its checks, does worse through Sluice
	scenarioWorse   bool     // the scenario as a whole does worse
	worseChecks     []string // checks that succeed directly and fail through Sluice
}

type comparison struct {
	rows        []row
	regressions []string // scenario names, or scenario:check for check-level ones
	directFails []string
	counts      struct{ directPass, directFail, throughPass, throughFail int }
}

// compare lines up the scenarios of both runs, in the order the direct run has them by
// name, then those only seen through Sluice.
func compare(direct, through map[string]*scenario) comparison {
	var c comparison
	names := make([]string, 0, len(direct)+len(through))
	for n := range direct {
		names = append(names, n)
	}
	for n := range through {
		if _, ok := direct[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		d, s := direct[n], through[n]
		r := row{name: n, direct: d, through: s}
		do, so := d.outcome(), s.outcome()
		var notes []string
		switch {
		case d == nil:
			notes = append(notes, "only through sluice")
		case do.ok() && (so == failed || so == missing || (do == passed && so < passed)):
			r.regression = true
			r.scenarioWorse = true
			c.regressions = append(c.regressions, n)
			notes = append(notes, "REGRESSION")
		case so > do && do != missing:
			notes = append(notes, "better through sluice")
		}
		// Check-level: a check that succeeds directly must not fail through Sluice,
		// also where the scenario as a whole already fails directly.
		if d != nil && s != nil {
			ds, ss := d.statusByID(), s.statusByID()
			var ids []string
			for id, st := range ds {
				if st == statusSuccess && ss[id] == statusFailure {
					ids = append(ids, id)
				}
			}
			slices.Sort(ids)
			r.worseChecks = ids
			for _, id := range ids {
				if !r.regression {
					notes = append(notes, "REGRESSION")
					r.regression = true
				}
				notes = append(notes, "check "+id+" fails")
				if !slices.Contains(c.regressions, n) {
					c.regressions = append(c.regressions, n+":"+id)
				}
			}
		}
		r.note = strings.Join(notes, "; ")
		if d != nil {
			if do.ok() {
				c.counts.directPass++
			} else if do == failed || do == missing {
				c.counts.directFail++
				c.directFails = append(c.directFails, n)
			}
		}
		if so.ok() {
			c.counts.throughPass++
		} else if so == failed || (so == missing && d != nil) {
			c.counts.throughFail++
		}
		c.rows = append(c.rows, r)
	}
	return c
}

func (c *comparison) print(w io.Writer, label string) {
	fmt.Fprintf(w, "--- %s: conformance scenarios, direct vs through sluice\n", label)
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tdirect\tthrough sluice\t")
	for _, r := range c.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.direct.cell(), r.through.cell(), r.note)
	}
	tw.Flush()
	for line := range strings.Lines(table.String()) {
		fmt.Fprintln(w, strings.TrimRight(line, " \n"))
	}
	if len(c.directFails) > 0 {
		fmt.Fprintf(w, "failing directly (%d): %s\n", len(c.directFails), strings.Join(c.directFails, ", "))
	}
	fmt.Fprintf(w, "%s: direct %d pass / %d fail; through sluice %d pass / %d fail; regressions %d\n",
		label, c.counts.directPass, c.counts.directFail, c.counts.throughPass, c.counts.throughFail, len(c.regressions))
	if len(c.regressions) == 0 {
		return
	}
	fmt.Fprintf(w, "regressions through sluice: %s\n", strings.Join(c.regressions, ", "))
	// What the suite said through Sluice, so that a CI log is enough to start on a fix.
	for _, r := range c.rows {
		if !r.regression {
			continue
		}
		if r.through == nil {
			fmt.Fprintf(w, "  %s: no result through sluice (the suite crashed or timed out on it)\n", r.name)
			continue
		}
		shown := false
		for _, ch := range r.through.checks {
			if ch.Status != statusFailure && ch.Status != statusWarning {
				continue
			}
			if !r.scenarioWorse && !slices.Contains(r.worseChecks, ch.ID) {
				continue // failed directly too
			}
			fmt.Fprintf(w, "  %s: %s %s: %s\n", r.name, ch.Status, ch.ID, clip(ch.ErrorMessage, maxMessage))
			shown = true
		}
		if !shown {
			fmt.Fprintf(w, "  %s: %s through sluice, no failing check\n", r.name, r.through.outcome())
		}
	}
}

// maxMessage bounds an error message in the report; the full text is in checks.json.
const maxMessage = 300

// clip shortens s to n bytes on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func (c *comparison) appendSummary(path, label string) (err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	_, err = fmt.Fprintf(f, "%s\t%d\t%d\t%d\t%d\t%d\n", label,
		c.counts.directPass, c.counts.directFail, c.counts.throughPass, c.counts.throughFail, len(c.regressions))
	return err
}
