package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

func TestScenarioName(t *testing.T) {
	tests := []struct {
		name string
		rel  string
		want string
	}{
		{name: "server", rel: "server-tools-list-2026-11-25T03-41-58-876Z", want: "tools-list"},
		{name: "name starting with server", rel: "server-server-sse-polling-2026-11-25T03-41-26-566Z", want: "server-sse-polling"},
		{name: "nested", rel: "server-auth/scope-step-up-2026-11-25T03-41-58-876Z", want: "auth/scope-step-up"},
		{name: "client", rel: "client-initialize-2026-01-02T00-00-00-000Z", want: "initialize"},
		{name: "authorization server", rel: "authorization-server-metadata-2026-01-02T00-00-00-000Z", want: "metadata"},
		{name: "no timestamp", rel: "server-ping", want: "ping"},
		{name: "no role", rel: "ping-2026-01-02T00-00-00-000Z", want: "ping"},
		{name: "date inside name kept", rel: "server-json-schema-2020-12-2026-11-25T03-41-26-559Z", want: "json-schema-2020-12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scenarioName(filepath.FromSlash(tt.rel)); got != tt.want {
				t.Errorf("scenarioName(%q) = %q, want %q", tt.rel, got, tt.want)
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		name     string
		statuses []string // nil: no scenario at all
		want     outcome
		wantCell string
	}{
		{name: "missing", statuses: nil, want: missing, wantCell: "missing"},
		{name: "all success", statuses: []string{"SUCCESS", "SUCCESS"}, want: passed, wantCell: "pass"},
		{name: "info does not count", statuses: []string{"SUCCESS", "INFO"}, want: passed, wantCell: "pass"},
		{name: "warning", statuses: []string{"SUCCESS", "WARNING"}, want: warned, wantCell: "warn"},
		{name: "failure wins", statuses: []string{"SUCCESS", "WARNING", "FAILURE", "INFO"}, want: failed, wantCell: "FAIL 1/3"},
		{name: "only skipped", statuses: []string{"SKIPPED", "INFO"}, want: skipped, wantCell: "skip"},
		{name: "empty list", statuses: []string{}, want: skipped, wantCell: "skip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *scenario
			if tt.statuses != nil {
				s = &scenario{name: "x"}
				for i, st := range tt.statuses {
					s.checks = append(s.checks, check{ID: fmt.Sprint(i), Status: st})
				}
			}
			if got := s.outcome(); got != tt.want {
				t.Errorf("outcome() = %v, want %v", got, tt.want)
			}
			if got := s.cell(); got != tt.wantCell {
				t.Errorf("cell() = %q, want %q", got, tt.wantCell)
			}
		})
	}
}

// checks is a compact fixture: check id to status.
type checks map[string]string

func TestCompare(t *testing.T) {
	type counts struct{ DirectPass, DirectFail, ThroughPass, ThroughFail int }
	tests := []struct {
		name            string
		direct, through map[string]checks
		wantRegressions []string
		wantCounts      counts
		wantNotes       map[string]string
	}{
		{
			name:       "identical",
			direct:     map[string]checks{"ping": {"ping": "SUCCESS"}, "bad": {"b": "FAILURE"}},
			through:    map[string]checks{"ping": {"ping": "SUCCESS"}, "bad": {"b": "FAILURE"}},
			wantCounts: counts{1, 1, 1, 1},
			wantNotes:  map[string]string{"ping": "", "bad": ""},
		},
		{
			name:            "pass to fail",
			direct:          map[string]checks{"tools-list": {"tools-list": "SUCCESS"}},
			through:         map[string]checks{"tools-list": {"tools-list": "FAILURE"}},
			wantRegressions: []string{"tools-list"},
			wantCounts:      counts{1, 0, 0, 1},
			wantNotes:       map[string]string{"tools-list": "REGRESSION; check tools-list fails"},
		},
		{
			name:            "pass to missing",
			direct:          map[string]checks{"ping": {"ping": "SUCCESS"}},
			through:         map[string]checks{},
			wantRegressions: []string{"ping"},
			wantCounts:      counts{1, 0, 0, 1},
			wantNotes:       map[string]string{"ping": "REGRESSION"},
		},
		{
			name:            "pass to skipped",
			direct:          map[string]checks{"ping": {"ping": "SUCCESS"}},
			through:         map[string]checks{"ping": {"ping": "SKIPPED"}},
			wantRegressions: []string{"ping"},
			wantCounts:      counts{1, 0, 0, 0},
			wantNotes:       map[string]string{"ping": "REGRESSION"},
		},
		{
			name:            "new warning",
			direct:          map[string]checks{"delete": {"d": "SUCCESS"}},
			through:         map[string]checks{"delete": {"d": "WARNING"}},
			wantRegressions: []string{"delete"},
			wantCounts:      counts{1, 0, 1, 0},
			wantNotes:       map[string]string{"delete": "REGRESSION"},
		},
		{
			name:       "optional behaviour not used",
			direct:     map[string]checks{"sse-polling": {"p": "WARNING", "r": "SUCCESS"}},
			through:    map[string]checks{"sse-polling": {"i": "INFO"}},
			wantCounts: counts{1, 0, 0, 0},
			wantNotes:  map[string]string{"sse-polling": ""},
		},
		{
			name:       "warning kept",
			direct:     map[string]checks{"delete": {"d": "WARNING", "e": "SUCCESS"}},
			through:    map[string]checks{"delete": {"d": "WARNING", "e": "SUCCESS"}},
			wantCounts: counts{1, 0, 1, 0},
			wantNotes:  map[string]string{"delete": ""},
		},
		{
			name:       "fail to pass",
			direct:     map[string]checks{"sampling": {"s": "FAILURE", "w": "SUCCESS"}},
			through:    map[string]checks{"sampling": {"s": "SUCCESS", "w": "SUCCESS"}},
			wantCounts: counts{0, 1, 1, 0},
			wantNotes:  map[string]string{"sampling": "better through sluice"},
		},
		{
			name:            "check regression inside a failing scenario",
			direct:          map[string]checks{"stateless": {"a": "SUCCESS", "b": "FAILURE", "c": "SUCCESS"}},
			through:         map[string]checks{"stateless": {"a": "SUCCESS", "b": "FAILURE", "c": "FAILURE"}},
			wantRegressions: []string{"stateless:c"},
			wantCounts:      counts{0, 1, 0, 1},
			wantNotes:       map[string]string{"stateless": "REGRESSION; check c fails"},
		},
		{
			name:       "fewer failing checks is no regression",
			direct:     map[string]checks{"headers": {"a": "FAILURE", "b": "FAILURE"}},
			through:    map[string]checks{"headers": {"a": "SUCCESS", "b": "FAILURE"}},
			wantCounts: counts{0, 1, 0, 1},
			wantNotes:  map[string]string{"headers": ""},
		},
		{
			name:       "failing directly, missing through sluice",
			direct:     map[string]checks{"bad": {"b": "FAILURE"}},
			through:    map[string]checks{},
			wantCounts: counts{0, 1, 0, 1},
			wantNotes:  map[string]string{"bad": ""},
		},
		{
			name:       "only through sluice",
			direct:     map[string]checks{},
			through:    map[string]checks{"extra": {"x": "FAILURE"}},
			wantCounts: counts{0, 0, 0, 1},
			wantNotes:  map[string]string{"extra": "only through sluice"},
		},
		{
			name:       "skipped both",
			direct:     map[string]checks{"tasks": {"t": "SKIPPED"}},
			through:    map[string]checks{"tasks": {"t": "SKIPPED"}},
			wantCounts: counts{0, 0, 0, 0},
			wantNotes:  map[string]string{"tasks": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			direct := readFixture(t, tt.direct)
			through := readFixture(t, tt.through)
			c := compare(direct, through)
			if diff := cmp.Diff(tt.wantRegressions, c.regressions); diff != "" {
				t.Errorf("regressions mismatch (-want +got):\n%s", diff)
			}
			got := counts{c.counts.directPass, c.counts.directFail, c.counts.throughPass, c.counts.throughFail}
			if diff := cmp.Diff(tt.wantCounts, got); diff != "" {
				t.Errorf("counts mismatch (-want +got):\n%s", diff)
			}
			notes := make(map[string]string)
			for _, r := range c.rows {
				notes[r.name] = r.note
			}
			if diff := cmp.Diff(tt.wantNotes, notes); diff != "" {
				t.Errorf("notes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// readFixture writes scenarios as the suite lays them out and reads them back.
func readFixture(t *testing.T, scenarios map[string]checks) map[string]*scenario {
	t.Helper()
	dir := t.TempDir()
	for name, cs := range scenarios {
		var list []map[string]string
		for id, st := range cs {
			list = append(list, map[string]string{"id": id, "name": id, "status": st})
		}
		writeChecks(t, filepath.Join(dir, "server-"+name+"-2026-11-25T03-41-25-726Z"), list)
	}
	got, err := readResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func writeChecks(t *testing.T, dir string, list any) {
	t.Helper()
	data, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "checks.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadResultsLatestRunWins(t *testing.T) {
	dir := t.TempDir()
	writeChecks(t, filepath.Join(dir, "server-ping-2026-11-25T03-41-25-726Z"), []check{{ID: "ping", Status: "FAILURE"}})
	writeChecks(t, filepath.Join(dir, "server-ping-2026-11-25T04-00-00-000Z"), []check{{ID: "ping", Status: "SUCCESS"}})
	got, err := readResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o := got["ping"].outcome(); len(got) != 1 || o != passed {
		t.Errorf("readResults() = %d scenarios, ping %v; want 1, pass", len(got), o)
	}
}

func TestReadResultsErrors(t *testing.T) {
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "server-ping-x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "server-ping-x", "checks.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
	}{
		{name: "malformed checks.json", dir: bad},
		{name: "not a directory", dir: file},
		{name: "missing", dir: filepath.Join(t.TempDir(), "nope")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := readResults(tt.dir); err == nil {
				t.Errorf("readResults(%s) = %d scenarios, want error", tt.dir, len(got))
			}
		})
	}
}

// TestRunGolden runs the command on testdata/basic, a direct run and a run through
// Sluice laid out as the suite writes them, and compares the report with a golden file.
func TestRunGolden(t *testing.T) {
	summary := filepath.Join(t.TempDir(), "summary.tsv")
	var stdout, stderr bytes.Buffer
	code := run([]string{"-label", "basic", "-summary", summary, "testdata/basic/direct", "testdata/basic/sluice"}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1 (regressions); stderr:\n%s", code, stderr.String())
	}
	golden := filepath.Join("testdata", "basic", "want.txt")
	if *update {
		if err := os.WriteFile(golden, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), stdout.String()); diff != "" {
		t.Errorf("report mismatch (-want +got), rerun with -update if intended:\n%s", diff)
	}
	gotSummary, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("basic\t4\t2\t4\t3\t3\n", string(gotSummary)); diff != "" {
		t.Errorf("summary line mismatch (-want +got):\n%s", diff)
	}
}

func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{name: "same run", args: []string{"testdata/basic/direct", "testdata/basic/direct"}, want: 0},
		{name: "regressions", args: []string{"testdata/basic/direct", "testdata/basic/sluice"}, want: 1},
		{name: "reversed", args: []string{"testdata/basic/sluice", "testdata/basic/direct"}, want: 1},
		{name: "one dir", args: []string{"testdata/basic/direct"}, want: 2},
		{name: "bad flag", args: []string{"-nope", "a", "b"}, want: 2},
		{name: "missing dir", args: []string{"testdata/basic/direct", "testdata/none"}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d, want %d\nstdout:\n%s\nstderr:\n%s", tt.args, got, tt.want, stdout.String(), stderr.String())
			}
			if tt.want == 2 && !strings.Contains(stderr.String(), "confcompare") && !strings.Contains(stderr.String(), "usage") {
				t.Errorf("run(%q) gave no diagnostic on stderr: %q", tt.args, stderr.String())
			}
		})
	}
}
