package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// syncBuffer is a bytes.Buffer that a command may write to from several
// goroutines while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// result is what one run of the command line produced.
type result struct {
	Code   int
	Stdout string
	Stderr string
}

// runMain runs Main with args and stdin and returns what it produced.
func runMain(t *testing.T, ctx context.Context, stdin io.Reader, args ...string) result {
	t.Helper()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr syncBuffer
	code := Main(ctx, args, stdin, &stdout, &stderr)
	return result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

const validConfig = `listen: 127.0.0.1:8787
servers:
  demo:
    command: [sluice, demo-server]
    tools:
      deny: ["send_*"]
profiles:
  readonly:
    servers: [demo]
`

// invalidValues has four problems of value, on lines 3, 5, 9 and 10.
const invalidValues = `listen: 127.0.0.1:8787
log:
  level: loud
servers:
  fs:
    command: [cat]
    url: http://127.0.0.1:9/mcp
profiles:
  Bad:
    servers: [nope]
`

// invalidStructure has two problems of structure, on lines 3 and 4.
const invalidStructure = `servers:
  fs:
    comand: [cat]
    timeout: 5
`

func TestMain_Commands(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"good.yaml":      validConfig,
		"values.yaml":    invalidValues,
		"structure.yaml": invalidStructure,
		"public.yaml":    "listen: 0.0.0.0:8787\n" + validConfig[len("listen: 127.0.0.1:8787\n"):],
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const refusal = "a non-loopback address would expose every upstream server to the network without authentication; configure auth (OAuth, API keys or mTLS) or listen on 127.0.0.1 or localhost\n"
	tests := []struct {
		name string
		args []string
		want result
		// stdoutRE, when set, replaces the exact comparison of Stdout.
		stdoutRE string
	}{
		{
			name:     "version",
			args:     []string{"version"},
			want:     result{Code: 0},
			stdoutRE: `^sluice \S+ \(go\S+, \w+/\w+\)\n$`,
		},
		{
			name: "version takes no arguments",
			args: []string{"version", "x"},
			want: result{Code: 1, Stderr: "sluice: unknown command \"x\" for \"sluice version\"\n"},
		},
		{
			name: "validate valid file",
			args: []string{"validate", "$DIR/good.yaml"},
			want: result{Code: 0, Stdout: "$DIR/good.yaml: ok\n"},
		},
		{
			name: "validate checks only the syntax of listen",
			args: []string{"validate", "$DIR/public.yaml"},
			want: result{Code: 0, Stdout: "$DIR/public.yaml: ok\n"},
		},
		{
			name: "validate lists every problem of value with its line",
			args: []string{"validate", "$DIR/values.yaml"},
			want: result{Code: 1, Stderr: "" +
				"$DIR/values.yaml:3: log.level: must be debug, info, warn or error, not \"loud\"\n" +
				"$DIR/values.yaml:5: servers.fs: set either command or url, not both\n" +
				"$DIR/values.yaml:9: profiles.Bad: profile name must be 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit\n" +
				"$DIR/values.yaml:10: profiles.Bad.servers[0]: no server named \"nope\"\n" +
				"sluice: $DIR/values.yaml is not valid\n"},
		},
		{
			name: "validate lists every problem of structure with its line",
			args: []string{"validate", "$DIR/structure.yaml"},
			want: result{Code: 1, Stderr: "" +
				"$DIR/structure.yaml:3: servers.fs: unknown key \"comand\" (did you mean \"command\"?)\n" +
				"$DIR/structure.yaml:4: servers.fs.timeout: expected a duration such as \"30s\", got \"5\"\n" +
				"sluice: $DIR/structure.yaml is not valid\n"},
		},
		{
			name: "validate missing file",
			args: []string{"validate", "$DIR/missing.yaml"},
			want: result{Code: 1, Stderr: "" +
				"read config: open $DIR/missing.yaml: no such file or directory\n" +
				"sluice: $DIR/missing.yaml is not valid\n"},
		},
		{
			name: "validate needs a file",
			args: []string{"validate"},
			want: result{Code: 1, Stderr: "sluice: accepts 1 arg(s), received 0\n"},
		},
		{
			name: "serve refuses the unspecified IPv4 address",
			args: []string{"serve", "--listen", "0.0.0.0:0"},
			want: result{Code: 1, Stderr: "sluice: refusing to listen on 0.0.0.0:0: " + refusal},
		},
		{
			name: "serve refuses the unspecified IPv6 address",
			args: []string{"serve", "--listen", "[::]:8787"},
			want: result{Code: 1, Stderr: "sluice: refusing to listen on [::]:8787: " + refusal},
		},
		{
			name: "serve refuses a routable address",
			args: []string{"serve", "--listen", "192.0.2.10:8787"},
			want: result{Code: 1, Stderr: "sluice: refusing to listen on 192.0.2.10:8787: " + refusal},
		},
		{
			name: "serve refuses a host name other than localhost",
			args: []string{"serve", "--listen", "mcp.example.com:8787"},
			want: result{Code: 1, Stderr: "sluice: refusing to listen on mcp.example.com:8787: " + refusal},
		},
		{
			name: "serve refuses a non-loopback listen address from the configuration",
			args: []string{"serve", "--config", "$DIR/public.yaml"},
			want: result{Code: 1, Stderr: "sluice: refusing to listen on 0.0.0.0:8787: " + refusal},
		},
		{
			name: "serve listen address without a port",
			args: []string{"serve", "--listen", "nonsense"},
			want: result{Code: 1, Stderr: "sluice: listen address \"nonsense\": address nonsense: missing port in address\n"},
		},
		{
			name: "serve config with upstream",
			args: []string{"serve", "--config", "x", "--upstream", "y"},
			want: result{Code: 1, Stderr: "sluice: --config cannot be combined with --upstream or a command\n"},
		},
		{
			name: "serve config with command",
			args: []string{"serve", "--config", "x", "--", "cat"},
			want: result{Code: 1, Stderr: "sluice: --config cannot be combined with --upstream or a command\n"},
		},
		{
			name: "serve upstream with command",
			args: []string{"serve", "--upstream", "http://127.0.0.1:1/mcp", "--", "cat"},
			want: result{Code: 1, Stderr: "sluice: give either --upstream or a command after --, not both\n"},
		},
		{
			name: "stdio config with upstream",
			args: []string{"stdio", "--config", "x", "--upstream", "y"},
			want: result{Code: 1, Stderr: "sluice: --config cannot be combined with --upstream or a command\n"},
		},
		{
			name: "serve upstream that is not http",
			args: []string{"serve", "--upstream", "ftp://mcp.example.com/"},
			want: result{Code: 1, Stderr: "sluice: (command line): servers.upstream.url: must be an http or https URL\n"},
		},
		{
			name: "serve unknown upstream era",
			args: []string{"serve", "--upstream", "http://127.0.0.1:1/mcp", "--upstream-era", "sideways"},
			want: result{Code: 1, Stderr: "sluice: (command line): servers.upstream.era: must be auto, legacy or modern, not \"sideways\"\n"},
		},
		{
			name: "serve unknown upstream transport",
			args: []string{"serve", "--upstream", "http://127.0.0.1:1/mcp", "--upstream-transport", "carrier-pigeon"},
			want: result{Code: 1, Stderr: "sluice: (command line): servers.upstream.transport: must be stdio, streamable-http or sse, not \"carrier-pigeon\"\n"},
		},
		{
			name: "serve missing config file",
			args: []string{"serve", "--config", "$DIR/missing.yaml"},
			want: result{Code: 1, Stderr: "sluice: read config: open $DIR/missing.yaml: no such file or directory\n"},
		},
		{
			name: "serve invalid config file",
			args: []string{"serve", "--config", "$DIR/structure.yaml"},
			want: result{Code: 1, Stderr: "" +
				"sluice: $DIR/structure.yaml:3: servers.fs: unknown key \"comand\" (did you mean \"command\"?)\n" +
				"$DIR/structure.yaml:4: servers.fs.timeout: expected a duration such as \"30s\", got \"5\"\n"},
		},
		{
			name: "serve unknown log level",
			args: []string{"serve", "--log-level", "loud"},
			want: result{Code: 1, Stderr: "sluice: unknown log level \"loud\"\n"},
		},
		{
			name: "serve unknown log format",
			args: []string{"serve", "--log-format", "xml"},
			want: result{Code: 1, Stderr: "sluice: unknown log format \"xml\"\n"},
		},
		{
			name: "serve unknown flag",
			args: []string{"serve", "--bogus"},
			want: result{Code: 1, Stderr: "sluice: unknown flag: --bogus\n"},
		},
		{
			name: "stdio unknown flag",
			args: []string{"stdio", "--listen", "127.0.0.1:0"},
			want: result{Code: 1, Stderr: "sluice: unknown flag: --listen\n"},
		},
		{
			name: "unknown flag",
			args: []string{"--bogus"},
			want: result{Code: 1, Stderr: "sluice: unknown flag: --bogus\n"},
		},
		{
			name: "unknown shorthand flag",
			args: []string{"validate", "-x", "$DIR/good.yaml"},
			want: result{Code: 1, Stderr: "sluice: unknown shorthand flag: 'x' in -x\n"},
		},
		{
			name: "unknown command",
			args: []string{"frobnicate"},
			want: result{Code: 1, Stderr: "sluice: unknown command \"frobnicate\" for \"sluice\"\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "$DIR", dir)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got := runMain(t, ctx, nil, args...)
			want := tt.want
			want.Stdout = strings.ReplaceAll(want.Stdout, "$DIR", dir)
			want.Stderr = strings.ReplaceAll(want.Stderr, "$DIR", dir)
			if tt.stdoutRE != "" {
				if !regexp.MustCompile(tt.stdoutRE).MatchString(got.Stdout) {
					t.Errorf("stdout %q does not match %s", got.Stdout, tt.stdoutRE)
				}
				got.Stdout = ""
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sluice %s: (-want +got)\n%s", strings.Join(args, " "), diff)
			}
		})
	}
}

func TestMain_Help(t *testing.T) {
	got := runMain(t, context.Background(), nil, "--help")
	if got.Code != 0 || got.Stderr != "" {
		t.Fatalf("sluice --help: code %d, stderr %q", got.Code, got.Stderr)
	}
	for _, cmd := range []string{"serve", "stdio", "validate", "version"} {
		if !regexp.MustCompile(`(?m)^  ` + cmd + ` `).MatchString(got.Stdout) {
			t.Errorf("help does not list %q:\n%s", cmd, got.Stdout)
		}
	}
	if strings.Contains(got.Stdout, "demo-server") {
		t.Errorf("help lists the hidden demo-server command:\n%s", got.Stdout)
	}
}

// TestStdio runs `sluice stdio` in front of a server that is never reached:
// ping and malformed messages are answered by Sluice itself.
func TestStdio(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
		// wantRE, when set, replaces the exact comparison of stdout.
		wantRE string
	}{
		{
			name:  "ping",
			input: `{"jsonrpc":"2.0","id":1,"method":"ping"}` + "\n",
			want:  `{"jsonrpc":"2.0","id":1,"result":{}}` + "\n",
		},
		{
			name:   "parse error",
			input:  "not json\n",
			wantRE: `^\{"jsonrpc":"2\.0","id":null,"error":\{"code":-32700,"message":"[^"]+"\}\}\n$`,
		},
		{
			name:  "member name differing only by case",
			input: `{"jsonrpc":"2.0","id":2,"Method":"ping"}` + "\n",
			want:  `{"jsonrpc":"2.0","id":2,"error":{"code":-32600,"message":"member name differs from a protocol member only by case: \"Method\""}}` + "\n",
		},
		{
			name:  "batch",
			input: `[{"jsonrpc":"2.0","id":1,"method":"ping"}]` + "\n",
			want:  `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"json-rpc batches are not supported"}}` + "\n",
		},
		{
			name:  "request before initialize",
			input: `{"jsonrpc":"2.0","id":"a","method":"tools/list"}` + "\n",
			want:  `{"jsonrpc":"2.0","id":"a","error":{"code":-32600,"message":"session not initialized"}}` + "\n",
		},
		{
			name:  "blank lines are skipped",
			input: "\n\r\n",
			want:  "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got := runMain(t, ctx, strings.NewReader(tt.input), "stdio", "--upstream", "http://127.0.0.1:1/mcp", "--log-level", "error")
			if tt.wantRE != "" {
				if !regexp.MustCompile(tt.wantRE).MatchString(got.Stdout) {
					t.Errorf("stdout %q does not match %s", got.Stdout, tt.wantRE)
				}
				got.Stdout = ""
			}
			want := result{Code: 0, Stdout: tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

// TestServe runs `sluice serve` in process on a free port and stops it by
// ending its context.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:1/mcp"},
			strings.NewReader(""), &stdout, &stderr)
	}()

	addrRE := regexp.MustCompile(`msg="sluice serving" addr=(http://127\.0\.0\.1:\d+)/mcp`)
	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before serving:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		body       string
		wantStatus int
		wantBody   string
	}{
		{
			name: "healthz", method: http.MethodGet, path: "/healthz",
			wantStatus: http.StatusOK, wantBody: "ok\n",
		},
		{
			name: "foreign origin", method: http.MethodPost, path: "/mcp",
			header:     map[string]string{"Origin": "https://attacker.example", "Content-Type": "application/json"},
			body:       `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			wantStatus: http.StatusForbidden,
			wantBody:   `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"origin not allowed"}}`,
		},
		{
			name: "foreign host", method: http.MethodPost, path: "/mcp",
			header:     map[string]string{"Host": "attacker.example", "Content-Type": "application/json"},
			body:       `{"jsonrpc":"2.0","id":1,"method":"ping"}`,
			wantStatus: http.StatusForbidden,
			wantBody:   `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"host not allowed"}}`,
		},
		{
			name: "legacy request without a session", method: http.MethodPost, path: "/mcp",
			header:     map[string]string{"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
			body:       `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`,
			wantStatus: http.StatusBadRequest,
			wantBody:   `{"jsonrpc":"2.0","id":7,"error":{"code":-32600,"message":"missing Mcp-Session-Id header"}}`,
		},
		{
			name: "unknown profile", method: http.MethodPost, path: "/mcp/nope",
			body:       `{}`,
			wantStatus: http.StatusNotFound,
			wantBody:   "404 page not found\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(ctx, tt.method, base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				if k == "Host" {
					req.Host = v
					continue
				}
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			type reply struct {
				Status int
				Body   string
			}
			want := reply{tt.wantStatus, tt.wantBody}
			got := reply{resp.StatusCode, string(body)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s: (-want +got)\n%s", tt.method, tt.path, diff)
			}
		})
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited with %d after its context ended:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not stop after its context ended:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("no shutdown message in the log:\n%s", stderr.String())
	}
}
