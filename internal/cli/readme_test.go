package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/demo"
	"github.com/sluicehq/sluice/internal/testenv"
)

// The README's quick start is two commands: `go run ./cmd/sluice serve`, and
// one curl that calls a demo tool through it. TestReadmeQuickStart runs
// exactly that request against a real `sluice serve`, so that the README
// cannot drift from what Sluice does.

const (
	readmePath        = "../../README.md"
	quickStartHeading = "## Quick start"
	quickStartServe   = "go run ./cmd/sluice serve"
)

// httpCall is a request as a curl command line describes it.
type httpCall struct {
	Method string
	URL    string
	Header http.Header
	Body   string
}

func TestReadmeQuickStart(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	section, err := markdownSection(string(readme), quickStartHeading)
	if err != nil {
		t.Fatal(err)
	}
	blocks := fencedBlocks(section, "sh")
	var curl []string
	serveFound := false
	for _, b := range blocks {
		switch {
		case strings.TrimSpace(b) == quickStartServe:
			serveFound = true
		case strings.HasPrefix(strings.TrimSpace(b), "curl "):
			if curl != nil {
				t.Fatalf("README %q has more than one curl block", quickStartHeading)
			}
			if curl, err = shellWords(b); err != nil {
				t.Fatalf("README quick-start curl: %v", err)
			}
		}
	}
	if !serveFound {
		t.Fatalf("README %q has no sh block holding exactly %q", quickStartHeading, quickStartServe)
	}
	if curl == nil {
		t.Fatalf("README %q has no sh block with a curl command", quickStartHeading)
	}
	call, err := parseCurl(curl)
	if err != nil {
		t.Fatalf("README quick-start curl: %v", err)
	}
	u, err := url.Parse(call.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != config.DefaultListen || u.Path != "/mcp" {
		t.Fatalf("README quick-start curl goes to %s; `sluice serve` listens on http://%s/mcp", call.URL, config.DefaultListen)
	}

	// What `go run ./cmd/sluice serve` runs, on a free port instead of the
	// default one, which a developer's own Sluice may hold.
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	startSluice(t, "serve", "--listen", addr)
	testenv.WaitPort(t, port, 60*time.Second)
	u.Host = addr

	req, err := http.NewRequest(call.Method, u.String(), strings.NewReader(call.Body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = call.Header
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("quick-start request: HTTP %d: %s", resp.StatusCode, raw)
	}
	msg, err := responseMessage(resp.Header.Get("Content-Type"), raw)
	if err != nil {
		t.Fatalf("quick-start response: %v\n%s", err, raw)
	}

	var sent struct {
		ID json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal([]byte(call.Body), &sent); err != nil {
		t.Fatalf("README quick-start body is not JSON: %v", err)
	}
	var got struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   json.RawMessage `json:"error"`
		Result  *struct {
			IsError bool `json:"isError"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
			StructuredContent struct {
				Customers []demo.Customer `json:"customers"`
			} `json:"structuredContent"`
			ResultType string `json:"resultType"`
		} `json:"result"`
	}
	if err := json.Unmarshal(msg, &got); err != nil {
		t.Fatalf("quick-start response: %v\n%s", err, msg)
	}
	if got.Error != nil || got.Result == nil {
		t.Fatalf("quick-start request failed: %s", msg)
	}
	if got.JSONRPC != "2.0" || string(got.ID) != string(sent.ID) {
		t.Errorf("quick-start response has jsonrpc %q and id %s, want \"2.0\" and %s", got.JSONRPC, got.ID, sent.ID)
	}
	if got.Result.IsError {
		t.Fatalf("quick-start tool call returned an error result: %s", msg)
	}
	if got.Result.ResultType != "complete" {
		t.Errorf("quick-start result has resultType %q, want \"complete\"", got.Result.ResultType)
	}
	if len(got.Result.StructuredContent.Customers) == 0 {
		t.Fatalf("quick-start result names no customer: %s", msg)
	}
	known := map[string]demo.Customer{}
	for _, c := range demo.Customers() {
		known[c.ID] = c
	}
	var text strings.Builder
	for _, c := range got.Result.Content {
		text.WriteString(c.Text)
	}
	for _, c := range got.Result.StructuredContent.Customers {
		if diff := cmp.Diff(known[c.ID], c); diff != "" {
			t.Errorf("customer %s is not the demo's (-demo +got)\n%s", c.ID, diff)
		}
		if !strings.Contains(text.String(), c.Name) {
			t.Errorf("the text content does not name %s:\n%s", c.Name, text.String())
		}
		// The README shows the answer too; it must name the same customer.
		if !strings.Contains(section, c.Name) {
			t.Errorf("README %q does not show %s, whom the quick-start call returns", quickStartHeading, c.Name)
		}
	}
}

// startSluice builds sluice and runs it with args until the test ends, then
// stops it with SIGINT, as a user's ^C would.
func startSluice(t *testing.T, args ...string) {
	t.Helper()
	bin := testenv.Sluice(t)
	var log syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("sluice %s: %v\n%s", strings.Join(args, " "), err, log.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("sluice %s did not stop on SIGINT\n%s", strings.Join(args, " "), log.String())
		}
		if t.Failed() {
			t.Logf("sluice log:\n%s", log.String())
		}
	})
}

// responseMessage returns the JSON-RPC response in a Streamable HTTP
// answer: the body itself, or the last SSE event that is a response.
func responseMessage(contentType string, body []byte) ([]byte, error) {
	switch {
	case strings.HasPrefix(contentType, "application/json"):
		return body, nil
	case strings.HasPrefix(contentType, "text/event-stream"):
		var last []byte
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data:")
			if !ok {
				continue
			}
			var m struct {
				Result json.RawMessage `json:"result"`
				Error  json.RawMessage `json:"error"`
			}
			if json.Unmarshal([]byte(data), &m) == nil && (m.Result != nil || m.Error != nil) {
				last = []byte(strings.TrimSpace(data))
			}
		}
		if last == nil {
			return nil, errors.New("the event stream holds no response")
		}
		return last, sc.Err()
	}
	return nil, fmt.Errorf("unexpected Content-Type %q", contentType)
}

// markdownSection returns the part of doc from the line holding heading up
// to the next heading of the same or a higher level.
func markdownSection(doc, heading string) (string, error) {
	level := strings.IndexFunc(heading, func(r rune) bool { return r != '#' })
	lines := strings.SplitAfter(doc, "\n")
	start := -1
	inFence := false
	for i, l := range lines {
		trimmed := strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(trimmed, "```") {
			inFence = !inFence
		}
		if inFence {
			continue
		}
		if start < 0 {
			if trimmed == heading {
				start = i
			}
			continue
		}
		if n := strings.IndexFunc(trimmed, func(r rune) bool { return r != '#' }); n > 0 && n <= level && trimmed[n] == ' ' {
			return strings.Join(lines[start:i], ""), nil
		}
	}
	if start < 0 {
		return "", fmt.Errorf("no %q heading", heading)
	}
	return strings.Join(lines[start:], ""), nil
}

// fencedBlocks returns the contents of the ``` blocks of doc whose info
// string is lang.
func fencedBlocks(doc, lang string) []string {
	var (
		out     []string
		cur     strings.Builder
		inBlock bool
		keep    bool // the block in progress is of lang
	)
	for _, l := range strings.SplitAfter(doc, "\n") {
		info, fence := strings.CutPrefix(strings.TrimRight(l, "\r\n"), "```")
		switch {
		case fence && !inBlock:
			inBlock, keep = true, strings.TrimSpace(info) == lang
			cur.Reset()
		case fence:
			if keep {
				out = append(out, cur.String())
			}
			inBlock = false
		case inBlock:
			cur.WriteString(l)
		}
	}
	return out
}

// shellWords splits a POSIX shell command line the way sh would for the
// forms a README uses: words separated by blanks, 'single quotes', "double
// quotes" with \" and \\ escapes, and backslash-newline continuations. It
// refuses what it does not emulate (expansions, redirections, pipes,
// several commands), so that a README command the test cannot run exactly
// fails loudly instead of being misread.
func shellWords(s string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // a word is in progress
	)
	flush := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			if s[i] == '\n' {
				continue
			}
			cur.WriteByte(s[i])
			in = true
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += end + 1
			in = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch s[i] {
				case '$', '`':
					return nil, fmt.Errorf("unsupported %q in double quotes", s[i])
				case '\\':
					if i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
						i++
						if s[i] == '\n' {
							continue
						}
					}
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			in = true
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case strings.IndexByte("$`|&;<>()*?[#~{}", c) >= 0:
			return nil, fmt.Errorf("unsupported shell syntax %q", c)
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	flush()
	return words, nil
}

// parseCurl reads the curl options a README example uses. Any other option
// is an error: the test would not send what the README's reader sends.
func parseCurl(args []string) (*httpCall, error) {
	if len(args) == 0 || args[0] != "curl" {
		return nil, errors.New("not a curl command")
	}
	call := &httpCall{Header: http.Header{}}
	hasData := false
	for i := 1; i < len(args); i++ {
		a := args[i]
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", a)
			}
			i++
			return args[i], nil
		}
		switch a {
		case "-s", "-S", "-sS", "-Ss", "--silent", "--show-error":
		case "-H", "--header":
			v, err := value()
			if err != nil {
				return nil, err
			}
			name, val, ok := strings.Cut(v, ":")
			if !ok || strings.TrimSpace(name) == "" {
				return nil, fmt.Errorf("header %q is not Name: value", v)
			}
			call.Header.Add(strings.TrimSpace(name), strings.TrimSpace(val))
		case "-d", "--data", "--data-raw", "--data-binary":
			v, err := value()
			if err != nil {
				return nil, err
			}
			if strings.HasPrefix(v, "@") && a != "--data-raw" {
				return nil, fmt.Errorf("%s @file is not supported", a)
			}
			if hasData {
				call.Body += "&"
			}
			call.Body += v
			hasData = true
		case "-X", "--request":
			v, err := value()
			if err != nil {
				return nil, err
			}
			call.Method = v
		default:
			if strings.HasPrefix(a, "-") {
				return nil, fmt.Errorf("curl option %s is not supported by this test", a)
			}
			if call.URL != "" {
				return nil, fmt.Errorf("more than one URL: %s and %s", call.URL, a)
			}
			call.URL = a
		}
	}
	if call.URL == "" {
		return nil, errors.New("no URL")
	}
	if call.Method == "" {
		call.Method = http.MethodGet
		if hasData {
			call.Method = http.MethodPost
		}
	}
	if hasData && call.Header.Get("Content-Type") == "" {
		call.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return call, nil
}

func TestShellWords(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr bool
	}{
		{name: "plain", in: "curl -sS http://x/mcp", want: []string{"curl", "-sS", "http://x/mcp"}},
		{name: "single quotes", in: `-H 'A: b c' '{"x":"y z"}'`, want: []string{"-H", "A: b c", `{"x":"y z"}`}},
		{name: "double quotes", in: `"a \"b\" \\ c" d`, want: []string{`a "b" \ c`, "d"}},
		{name: "continuation", in: "curl \\\n  -s \\\n  u\n", want: []string{"curl", "-s", "u"}},
		{name: "adjacent quotes join", in: `a'b'"c"d`, want: []string{"abcd"}},
		{name: "empty quotes are a word", in: `'' x`, want: []string{"", "x"}},
		{name: "escaped blank", in: `a\ b`, want: []string{"a b"}},
		{name: "variable", in: "curl $URL", wantErr: true},
		{name: "variable in double quotes", in: `curl "$URL"`, wantErr: true},
		{name: "pipe", in: "curl u | jq .", wantErr: true},
		{name: "two commands", in: "curl u; curl v", wantErr: true},
		{name: "redirection", in: "curl u > out", wantErr: true},
		{name: "comment", in: "curl u # note", wantErr: true},
		{name: "unterminated single quote", in: "curl 'u", wantErr: true},
		{name: "unterminated double quote", in: `curl "u`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := shellWords(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("shellWords(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); !tt.wantErr && diff != "" {
				t.Errorf("shellWords(%q) (-want +got)\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseCurl(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    *httpCall
		wantErr bool
	}{
		{
			name: "post with headers",
			args: []string{"curl", "-sS", "http://h/mcp", "-H", "Content-Type: application/json", "-H", "Mcp-Name:  x ", "-d", `{"a":1}`},
			want: &httpCall{Method: "POST", URL: "http://h/mcp", Body: `{"a":1}`,
				Header: http.Header{"Content-Type": {"application/json"}, "Mcp-Name": {"x"}}},
		},
		{
			name: "get",
			args: []string{"curl", "http://h/healthz"},
			want: &httpCall{Method: "GET", URL: "http://h/healthz", Header: http.Header{}},
		},
		{
			name: "explicit method and form default",
			args: []string{"curl", "-X", "PUT", "--data-raw", "a=b", "http://h/"},
			want: &httpCall{Method: "PUT", URL: "http://h/", Body: "a=b",
				Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
		},
		{name: "unknown option", args: []string{"curl", "-k", "http://h/"}, wantErr: true},
		{name: "data from a file", args: []string{"curl", "-d", "@body.json", "http://h/"}, wantErr: true},
		{name: "missing value", args: []string{"curl", "http://h/", "-H"}, wantErr: true},
		{name: "no URL", args: []string{"curl", "-s"}, wantErr: true},
		{name: "two URLs", args: []string{"curl", "http://a/", "http://b/"}, wantErr: true},
		{name: "not curl", args: []string{"wget", "http://h/"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseCurl(tt.args)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseCurl(%q) error %v, want error %v", tt.args, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); !tt.wantErr && diff != "" {
				t.Errorf("parseCurl(%q) (-want +got)\n%s", tt.args, diff)
			}
		})
	}
}

func TestMarkdownHelpers(t *testing.T) {
	doc := "# T\n\n## Quick start\n\ntext\n\n```sh\nrun a\n```\n\n```json\n## not a heading\n```\n\n### Sub\n\n```sh\nrun b\n```\n\n## Next\n\n```sh\nrun c\n```\n"
	section, err := markdownSection(doc, "## Quick start")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"run a\n", "run b\n"}, fencedBlocks(section, "sh")); diff != "" {
		t.Errorf("blocks of the section (-want +got)\n%s", diff)
	}
	if _, err := markdownSection(doc, "## Missing"); err == nil {
		t.Error("markdownSection found a missing heading")
	}
}
