// Command load drives tools/call of the benchmark's echo tool at an MCP
// endpoint and reports throughput and latency.
//
// Each of -clients concurrent clients has its own MCP session (over HTTP) or
// its own server process (with -cmd), and issues one call at a time. After
// -warmup, calls are measured for -duration, or until -calls calls have been
// measured. The report is one JSON object on standard output and one human
// line on standard error:
//
//	load -url http://127.0.0.1:8931/mcp -clients 16 -duration 5s -size 65536
//	load -cmd "./echo" -clients 4 -calls 10000
//
// -era picks the protocol era the client speaks: legacy (2025-11-25, with
// initialize and a session) or modern (2026-07-28, with server/discover and no
// session). A run fails when the server does not negotiate the era asked for,
// so that a report never mislabels what it measured.
//
// -bearer-file FILE sends the token held in FILE as "Authorization: Bearer"
// on every HTTP request, for a gateway that authenticates its callers (an API
// key or a JWT). The token is read from a file rather than the command line
// so that it stays out of process listings, and it is never printed.
//
// With -idle-sessions N, load makes no calls: it opens N legacy sessions over
// HTTP, reports once they are all open, and holds them until SIGINT or
// SIGTERM, or until -hold has passed; then it closes them and exits. This is
// how the benchmark measures what idle sessions cost a gateway.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Protocol versions of the two eras.
const (
	legacyVersion = "2025-11-25"
	modernVersion = "2026-07-28"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

type config struct {
	url          string
	cmd          []string
	clients      int
	duration     time.Duration
	calls        int
	size         int
	records      bool
	warmup       time.Duration
	era          string
	version      string
	timeout      time.Duration
	idleSessions int
	hold         time.Duration
	sse          bool
	parallel     int
	cpuProfile   string
	bearerFile   string
	bearer       string // read from bearerFile; a secret, never printed
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var cmd string
	fs.StringVar(&c.url, "url", "", "streamable HTTP MCP endpoint, such as http://127.0.0.1:8931/mcp")
	fs.StringVar(&cmd, "cmd", "", "stdio server to launch, once per client: `PROG ARGS` split on white space")
	fs.IntVar(&c.clients, "clients", 1, "concurrent clients, each with its own session or process")
	fs.DurationVar(&c.duration, "duration", 5*time.Second, "how long to measure (ignored with -calls)")
	fs.IntVar(&c.calls, "calls", 0, "measure this many calls instead of a duration")
	fs.IntVar(&c.size, "size", 0, "bytes of text each call returns; 0 echoes \"hello\"")
	fs.BoolVar(&c.records, "records", false, "with -size, ask for order records holding personal data instead of filler text")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured calls before measuring")
	fs.StringVar(&c.era, "era", "legacy", "protocol era the client speaks: legacy or modern")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "limit for one call, and for opening one session")
	fs.IntVar(&c.idleSessions, "idle-sessions", 0, "open `N` idle legacy sessions and hold them instead of calling")
	fs.DurationVar(&c.hold, "hold", 0, "with -idle-sessions, close the sessions after this long (0: wait for a signal)")
	fs.BoolVar(&c.sse, "sse", false, "open the standalone GET stream of each session, as a listening client does")
	fs.IntVar(&c.parallel, "parallel", 32, "with -idle-sessions, sessions opened at once")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the load tool itself to `FILE`")
	fs.StringVar(&c.bearerFile, "bearer-file", "", "send the token in `FILE` (one line) as Authorization: Bearer on every HTTP request")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.cmd = strings.Fields(cmd)
	switch {
	case (c.url == "") == (len(c.cmd) == 0):
		return nil, errors.New("exactly one of -url and -cmd is required")
	case c.clients < 1:
		return nil, errors.New("-clients must be at least 1")
	case c.calls < 0 || c.size < 0 || c.duration < 0 || c.warmup < 0 || c.hold < 0:
		return nil, errors.New("-calls, -size, -duration, -warmup and -hold must not be negative")
	case c.calls == 0 && c.duration == 0:
		return nil, errors.New("one of -duration and -calls must be positive")
	case c.records && c.size == 0:
		return nil, errors.New("-records needs a positive -size")
	case c.idleSessions < 0 || c.parallel < 1:
		return nil, errors.New("-idle-sessions must not be negative and -parallel must be positive")
	}
	switch c.era {
	case "legacy":
		c.version = legacyVersion
	case "modern":
		c.version = modernVersion
	default:
		return nil, fmt.Errorf("-era %q: want legacy or modern", c.era)
	}
	if c.bearerFile != "" {
		if c.url == "" {
			return nil, errors.New("-bearer-file needs -url")
		}
		tok, err := readBearer(c.bearerFile)
		if err != nil {
			return nil, err
		}
		c.bearer = tok
	}
	if c.idleSessions > 0 {
		if c.url == "" {
			return nil, errors.New("-idle-sessions needs -url")
		}
		if c.era != "legacy" {
			return nil, errors.New("-idle-sessions opens legacy sessions; modern clients have none")
		}
	}
	return &c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.idleSessions > 0 {
		return holdIdle(ctx, c, stdout, stderr)
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := measure(ctx, c)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(rep); err != nil {
		return err
	}
	fmt.Fprintln(stderr, rep.line())
	return nil
}

// maxBearer bounds the token file: a JWT with many claims is a few KiB.
const maxBearer = 64 << 10

// readBearer reads the token of -bearer-file: one line, without white space
// inside. Errors name the file, never its content.
func readBearer(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("-bearer-file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBearer+1))
	if err != nil {
		return "", fmt.Errorf("-bearer-file: %w", err)
	}
	if len(b) > maxBearer {
		return "", fmt.Errorf("-bearer-file %s: longer than %d bytes", path, maxBearer)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	switch {
	case tok == "":
		return "", fmt.Errorf("-bearer-file %s: empty", path)
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", fmt.Errorf("-bearer-file %s: the token holds white space, a control character or more than one line", path)
	}
	return tok, nil
}

// bearerTransport adds the caller's token to every request. The SDK's
// streamable client sends every POST, GET and DELETE of a session through
// the HTTP client it is given, so this covers the whole session.
type bearerTransport struct {
	next  http.RoundTripper
	value string // "Bearer " + token
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", t.value)
	return t.next.RoundTrip(r)
}

// CloseIdleConnections lets [http.Client.CloseIdleConnections] reach the
// transport underneath.
func (t *bearerTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// dialer opens client sessions to the target.
type dialer struct {
	c      *config
	client *mcp.Client
	http   *http.Client
}

func newDialer(c *config, conns int) *dialer {
	d := &dialer{c: c, client: mcp.NewClient(&mcp.Implementation{Name: "sluice-bench-load", Version: "1.0.0"},
		&mcp.ClientOptions{Capabilities: &mcp.ClientCapabilities{}})}
	if c.url != "" {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil // a benchmark measures the target, never a proxy on the way
		// One idle connection per concurrent request, so that no call pays
		// for a new TCP connection in the steady state.
		tr.MaxIdleConns = conns + 16
		tr.MaxIdleConnsPerHost = conns + 16
		var rt http.RoundTripper = tr
		if c.bearer != "" {
			rt = &bearerTransport{next: tr, value: "Bearer " + c.bearer}
		}
		d.http = &http.Client{Transport: rt}
	}
	return d
}

func (d *dialer) dial(ctx context.Context, version string) (*mcp.ClientSession, error) {
	var t mcp.Transport
	if d.c.url != "" {
		t = &mcp.StreamableClientTransport{
			Endpoint:             d.c.url,
			HTTPClient:           d.http,
			MaxRetries:           -1,
			DisableStandaloneSSE: !d.c.sse,
		}
	} else {
		cmd := exec.Command(d.c.cmd[0], d.c.cmd[1:]...)
		cmd.Stderr = os.Stderr
		t = &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	}
	ctx, cancel := context.WithTimeout(ctx, d.c.timeout)
	defer cancel()
	cs, err := d.client.Connect(ctx, t, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		return nil, err
	}
	if got := cs.InitializeResult().ProtocolVersion; (got >= modernVersion) != (version >= modernVersion) {
		cs.Close()
		return nil, fmt.Errorf("asked for protocol version %s, server negotiated %s", version, got)
	}
	return cs, nil
}

func (d *dialer) close() {
	if d.http != nil {
		d.http.CloseIdleConnections()
	}
}

// report is what one measured run found. Durations are in microseconds.
type report struct {
	Target          string  `json:"target"`
	Transport       string  `json:"transport"`
	Era             string  `json:"era"`
	ProtocolVersion string  `json:"protocol_version"`
	Clients         int     `json:"clients"`
	Size            int     `json:"size"`
	Seconds         float64 `json:"seconds"`
	Calls           int     `json:"calls"`
	TotalCalls      int     `json:"total_calls"`
	Errors          int     `json:"errors"`
	Reconnects      int     `json:"reconnects"`
	CallsPerSecond  float64 `json:"calls_per_s"`
	MeanMicros      float64 `json:"mean_us"`
	P50Micros       float64 `json:"p50_us"`
	P90Micros       float64 `json:"p90_us"`
	P99Micros       float64 `json:"p99_us"`
	MaxMicros       float64 `json:"max_us"`
	FirstError      string  `json:"first_error,omitempty"`
}

func (r *report) line() string {
	ms := func(us float64) string { return fmt.Sprintf("%.3f ms", us/1000) }
	return fmt.Sprintf("%s %s %s, %d client(s), size %d: %.0f calls/s over %.1fs (%d calls), p50 %s, p90 %s, p99 %s, errors %d",
		r.Transport, r.Target, r.Era, r.Clients, r.Size, r.CallsPerSecond, r.Seconds, r.Calls,
		ms(r.P50Micros), ms(r.P90Micros), ms(r.P99Micros), r.Errors) + reconnected(r.Reconnects)
}

func reconnected(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %d broken session(s) replaced", n)
}

// worker is one client's share of a run.
type worker struct {
	cs        *mcp.ClientSession
	latencies []time.Duration
	calls     int // every call, warm-up included
	errors    int
	firstErr  error
	lastEnd   time.Time
	// reconnects counts sessions opened to replace one that broke.
	reconnects int
}

func measure(ctx context.Context, c *config) (*report, error) {
	d := newDialer(c, c.clients)
	defer d.close()

	workers := make([]*worker, c.clients)
	errs := make([]error, c.clients)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			cs, err := d.dial(ctx, c.version)
			if err != nil {
				errs[i] = fmt.Errorf("client %d: connecting: %w", i, err)
				return
			}
			workers[i] = &worker{cs: cs, latencies: make([]time.Duration, 0, 1<<14)}
		})
	}
	wg.Wait()
	defer func() {
		var wg sync.WaitGroup
		for _, w := range workers {
			if w != nil && w.cs != nil {
				wg.Go(func() { w.cs.Close() })
			}
		}
		wg.Wait()
	}()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	protocolVersion := workers[0].cs.InitializeResult().ProtocolVersion
	args := map[string]any{"text": "hello"}
	wantLen := len("hello")
	if c.size > 0 {
		args = map[string]any{"size": c.size}
		if c.records {
			args["records"] = true
		}
		wantLen = c.size
	}

	start := time.Now()
	measureFrom := start.Add(c.warmup)
	measureUntil := measureFrom.Add(c.duration)
	var tickets atomic.Int64
	tickets.Store(int64(c.calls))

	for _, w := range workers {
		wg.Go(func() {
			// The SDK writes the request metadata of the modern era into
			// the params it is given, so each client has its own.
			params := &mcp.CallToolParams{Name: "echo", Arguments: args}
			for ctx.Err() == nil {
				t0 := time.Now()
				measured := !t0.Before(measureFrom)
				if measured {
					if c.calls > 0 {
						if tickets.Add(-1) < 0 {
							return
						}
					} else if !t0.Before(measureUntil) {
						return
					}
				}
				err := call(ctx, w.cs, params, wantLen, c.timeout)
				t1 := time.Now()
				w.calls++
				if measured {
					w.latencies = append(w.latencies, t1.Sub(t0))
					w.lastEnd = t1
				}
				if err != nil {
					w.errors++
					if w.firstErr == nil {
						w.firstErr = err
					}
					// A session that broke is replaced, so that one failure
					// costs one error rather than the rest of the run.
					if errors.Is(err, mcp.ErrConnectionClosed) {
						w.cs.Close()
						cs, err := d.dial(ctx, c.version)
						if err != nil {
							w.cs = nil
							return
						}
						w.cs = cs
						w.reconnects++
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	rep := &report{
		Target:          c.url,
		Transport:       "http",
		Era:             c.era,
		ProtocolVersion: protocolVersion,
		Clients:         c.clients,
		Size:            c.size,
	}
	if c.url == "" {
		rep.Target, rep.Transport = strings.Join(c.cmd, " "), "stdio"
	}
	var all []time.Duration
	end := measureFrom
	for _, w := range workers {
		all = append(all, w.latencies...)
		rep.TotalCalls += w.calls
		rep.Errors += w.errors
		rep.Reconnects += w.reconnects
		if w.firstErr != nil && rep.FirstError == "" {
			rep.FirstError = w.firstErr.Error()
		}
		if w.lastEnd.After(end) {
			end = w.lastEnd
		}
	}
	rep.Calls = len(all)
	if rep.Calls == 0 {
		return nil, fmt.Errorf("no call was measured (%d warm-up calls, %d errors, first: %v); lengthen -duration",
			rep.TotalCalls, rep.Errors, cmp.Or(rep.FirstError, "none"))
	}
	rep.Seconds = end.Sub(measureFrom).Seconds()
	if rep.Seconds > 0 {
		rep.CallsPerSecond = float64(rep.Calls) / rep.Seconds
	}
	s := summarize(all)
	rep.MeanMicros, rep.P50Micros, rep.P90Micros, rep.P99Micros, rep.MaxMicros = s.mean, s.p50, s.p90, s.p99, s.max
	return rep, nil
}

// call makes one echo call and checks that the answer has the expected size.
func call(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams, wantLen int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool error: %s", firstText(res))
	}
	if len(res.Content) != 1 {
		return fmt.Errorf("%d contents, want 1", len(res.Content))
	}
	if got := len(firstText(res)); got != wantLen {
		return fmt.Errorf("%d bytes of text, want %d", got, wantLen)
	}
	return nil
}

func firstText(res *mcp.CallToolResult) string {
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			return t.Text
		}
	}
	return ""
}

// summary holds latency statistics in microseconds.
type summary struct{ mean, p50, p90, p99, max float64 }

// summarize sorts ds and computes its statistics. Percentiles use the
// nearest-rank method: the p-th percentile is the smallest sample that at
// least p% of the samples do not exceed.
func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	slices.Sort(ds)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	rank := func(p int) float64 {
		i := (p*len(ds)+99)/100 - 1
		return us(ds[max(i, 0)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return summary{
		mean: us(sum / time.Duration(len(ds))),
		p50:  rank(50),
		p90:  rank(90),
		p99:  rank(99),
		max:  us(ds[len(ds)-1]),
	}
}

// idleReport is printed once every idle session is open.
type idleReport struct {
	Target       string  `json:"target"`
	IdleSessions int     `json:"idle_sessions"`
	Errors       int     `json:"errors"`
	OpenSeconds  float64 `json:"open_seconds"`
	SSE          bool    `json:"sse"`
	FirstError   string  `json:"first_error,omitempty"`
}

func holdIdle(ctx context.Context, c *config, stdout, stderr io.Writer) error {
	d := newDialer(c, c.parallel)
	defer d.close()

	start := time.Now()
	sessions := make([]*mcp.ClientSession, c.idleSessions)
	var failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	sem := make(chan struct{}, c.parallel)
	var wg sync.WaitGroup
	for i := range sessions {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			cs, err := d.dial(ctx, legacyVersion)
			if err != nil {
				failed.Add(1)
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
				return
			}
			sessions[i] = cs
		})
	}
	wg.Wait()
	defer func() {
		var wg sync.WaitGroup
		for _, cs := range sessions {
			if cs != nil {
				sem <- struct{}{}
				wg.Go(func() { defer func() { <-sem }(); cs.Close() })
			}
		}
		wg.Wait()
	}()

	rep := idleReport{
		Target:       c.url,
		IdleSessions: c.idleSessions - int(failed.Load()),
		Errors:       int(failed.Load()),
		OpenSeconds:  time.Since(start).Seconds(),
		SSE:          c.sse,
	}
	if firstErr != nil {
		rep.FirstError = firstErr.Error()
	}
	if err := json.NewEncoder(stdout).Encode(rep); err != nil {
		return err
	}
	if f, ok := stdout.(*os.File); ok {
		f.Sync()
	}
	fmt.Fprintf(stderr, "ready: %d idle session(s) open at %s in %.1fs, %d error(s)\n",
		rep.IdleSessions, c.url, rep.OpenSeconds, rep.Errors)
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d sessions failed to open: %s", rep.Errors, c.idleSessions, rep.FirstError)
	}

	var hold <-chan time.Time
	if c.hold > 0 {
		hold = time.After(c.hold)
	}
	select {
	case <-ctx.Done():
	case <-hold:
	}
	return nil
}
