package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/testenv"
)

// oidcProvider is a real OpenID provider (npm oidc-provider) run by
// testdata/oidc-provider.mjs on a loopback port.
type oidcProvider struct {
	issuer string
}

func startOIDC(t *testing.T) *oidcProvider {
	t.Helper()
	node := testenv.Node(t)
	mods := testenv.NPMPackages(t)
	entry := (&url.URL{Scheme: "file", Path: filepath.Join(mods, testenv.OIDCProviderPackage, "lib", "index.js")}).String()
	script, err := filepath.Abs(filepath.Join("testdata", "oidc-provider.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, script, entry)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuf
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	select {
	case line := <-lines:
		issuer, ok := strings.CutPrefix(line, "issuer ")
		if !ok {
			t.Fatalf("oidc-provider said %q", line)
		}
		return &oidcProvider{issuer: issuer}
	case <-exited:
		t.Fatalf("oidc-provider exited: %s", stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("oidc-provider did not start: %s", stderr.String())
	}
	return nil
}

// token gets an access token for resource with the client credentials
// grant.
func (op *oidcProvider) token(t *testing.T, client, resource, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "resource": {resource}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest(http.MethodPost, op.issuer+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, client+"-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
		t.Fatalf("token for %s: %d %s", client, resp.StatusCode, body)
	}
	return tr.AccessToken
}

// rotate makes the provider sign with a new key (new kid) and publish only
// that one.
func (op *oidcProvider) rotate(t *testing.T) {
	t.Helper()
	resp, err := http.Post(op.issuer+"/test/rotate", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("rotate: %d", resp.StatusCode)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// echoUpstream serves an MCP server with one tool, "echo", over Streamable
// HTTP on loopback. It records the Authorization headers it receives.
func echoUpstream(t *testing.T) (string, *headerLog) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "up", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct {
		Arg string `json:"arg"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo:" + in.Arg}}}, nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	hl := &headerLog{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hl.add(r.Header.Get("Authorization"))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, hl
}

type headerLog struct {
	mu   sync.Mutex
	vals []string
}

func (h *headerLog) add(v string) {
	h.mu.Lock()
	h.vals = append(h.vals, v)
	h.mu.Unlock()
}

func (h *headerLog) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.vals...)
}

// principalLog records the principal of every call that enters the guard
// chain.
type principalLog struct {
	mu sync.Mutex
	ps []*guard.Principal
}

func (l *principalLog) last() *guard.Principal {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ps) == 0 {
		return nil
	}
	return l.ps[len(l.ps)-1]
}

// recordPrincipals wraps the gateway's chain so that every call's principal
// is recorded before the guards see it.
func recordPrincipals(g *Gateway) *principalLog {
	l := &principalLog{}
	st := g.st.Load()
	inner := st.chain
	st.chain = guard.HandlerFunc(func(ctx context.Context, c *guard.Call) (*guard.Result, error) {
		l.mu.Lock()
		l.ps = append(l.ps, c.Principal)
		l.mu.Unlock()
		return inner.Handle(ctx, c)
	})
	return l
}

// authGateway is a gateway behind an HTTP server on loopback whose URL is
// known before the configuration is written (auth.resource names it).
type authGateway struct {
	g    *Gateway
	base string
	rec  *principalLog
	logs *lockedLog // the gateway's log, at warn level and above
}

// startAuthGateway listens on loopback, writes the configuration with
// yaml(base), and serves the gateway there. With tlsConf the server speaks
// HTTPS.
func startAuthGateway(t *testing.T, yaml func(base string) string, serveTLS func(*httptest.Server)) *authGateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	if serveTLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + ln.Addr().String()
	cfg, err := config.Parse([]byte(yaml(base)), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedLog{}
	log := slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, logs), &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := New(cfg, Options{Logger: log, BaseEnv: MinimalEnv()})
	if err != nil {
		t.Fatal(err)
	}
	rec := recordPrincipals(g)
	mux := http.NewServeMux()
	h := NewHTTPHandler(g, HTTPOptions{})
	mux.Handle("/mcp", h)
	mux.Handle("/mcp/", h)
	mux.Handle(authn.WellKnownPath, h)
	mux.Handle(authn.WellKnownPath+"/", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	if serveTLS != nil {
		serveTLS(srv)
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		g.Close()
	})
	return &authGateway{g: g, base: base, rec: rec, logs: logs}
}

// bearerRT adds a bearer token to every request.
type bearerRT struct {
	header, value string
	next          http.RoundTripper
}

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(b.header, b.value)
	next := b.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}

func withBearer(tok string) *http.Client {
	return &http.Client{Transport: bearerRT{header: "Authorization", value: "Bearer " + tok}}
}

// connectWith connects a go-sdk client to endpoint with hc.
func connectWith(t *testing.T, endpoint, version string, hc *http.Client) (*mcp.ClientSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "authn-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { cs.Close() })
	return cs, nil
}

func echo(t *testing.T, cs *mcp.ClientSession, arg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"arg": arg}})
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("echo: error result %+v", res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// rawResponse is an HTTP answer read whole.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// rawPost posts an initialize request (legacy) to endpoint with the given
// extra headers, using hc (nil: the default client).
func rawPost(t *testing.T, hc *http.Client, endpoint, body string, hdr map[string]string) rawResponse {
	t.Helper()
	if hc == nil {
		hc = http.DefaultClient
	}
	req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// lockedLog collects a gateway's log for assertions.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
