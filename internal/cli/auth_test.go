package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/testenv"
)

func TestAuthHashKey(t *testing.T) {
	// printf correct-horse-battery-staple | sha256sum
	const want = "sha256:87cbebfeebc05f7c54ac9336c4b4bbec831227a641951a4bde7edd56020f8590\n"
	tests := []struct {
		name, stdin string
		want        result
	}{
		{"key with newline", "correct-horse-battery-staple\n", result{Stdout: want}},
		{"key without newline", "correct-horse-battery-staple", result{Stdout: want}},
		{"key with CRLF", "correct-horse-battery-staple\r\n", result{Stdout: want}},
		{"empty", "", result{Code: 1, Stderr: "sluice: no key on stdin\n"}},
		{"short", "short\n", result{Code: 1, Stderr: "sluice: the key is shorter than 16 characters; use a long random key (openssl rand -base64 32)\n"}},
		{"spaces", " correct-horse-battery-staple\n", result{Code: 1, Stderr: "sluice: the key has leading or trailing spaces; clients would not send them\n"}},
		{"two lines", "correct-horse-battery-staple\nanother-key-0123456789\n", result{Code: 1, Stderr: "sluice: stdin has more than one line; give one key\n"}},
		{"too long", strings.Repeat("k", 17<<10), result{Code: 1, Stderr: "sluice: the key is longer than 16384 bytes\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runMain(t, context.Background(), strings.NewReader(tt.stdin), "auth", "hash-key")
			if tt.want.Stdout != "" {
				// The hash must be what the configuration accepts.
				cfg := &config.Config{Servers: map[string]*config.Server{"s": {URL: "http://127.0.0.1:1/mcp"}}, Auth: &config.Auth{
					APIKeys: []*config.APIKey{{ID: "k", Hash: strings.TrimSpace(got.Stdout), Principal: config.PrincipalSpec{Subject: "s"}}},
				}}
				if err := cfg.Validate(); err != nil {
					t.Errorf("the printed hash does not validate: %v", err)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestCheckListen(t *testing.T) {
	auth := &config.Auth{APIKeys: []*config.APIKey{{ID: "k"}}}
	const refusal = "a non-loopback address would expose every upstream server to the network without authentication; configure auth (OAuth, API keys or mTLS) or listen on 127.0.0.1 or localhost"
	tests := []struct {
		addr string
		auth *config.Auth
		want string
	}{
		{"127.0.0.1:8787", nil, ""},
		{"localhost:8787", nil, ""},
		{"[::1]:8787", nil, ""},
		{"0.0.0.0:8787", nil, "refusing to listen on 0.0.0.0:8787: " + refusal},
		{"mcp.example.com:443", nil, "refusing to listen on mcp.example.com:443: " + refusal},
		{"0.0.0.0:8787", auth, ""},
		{"[::]:443", auth, ""},
		{"192.0.2.10:443", auth, ""},
	}
	for _, tt := range tests {
		got := ""
		if err := checkListen(tt.addr, tt.auth); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("checkListen(%q, auth=%v) = %q, want %q", tt.addr, tt.auth != nil, got, tt.want)
		}
	}
}

// TestServeTLSAPIKey runs `sluice serve` with HTTPS and an API key, and
// connects with the go-sdk client: with the key it works, without it the
// answer is 401.
func TestServeTLSAPIKey(t *testing.T) {
	bin := testenv.Sluice(t)
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := selfSignedServer(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile, keyFile := write("cert.pem", certPEM), write("key.pem", keyPEM)
	const key = "sluice-test-key-0123456789"
	hash := runMain(t, context.Background(), strings.NewReader(key+"\n"), "auth", "hash-key").Stdout
	cfgPath := write("sluice.yaml", []byte(demoConfig(bin, "nothing")+fmt.Sprintf(`tls:
  cert_file: %q
  key_file: %q
auth:
  api_keys:
    - id: ci
      hash: %q
      principal: {subject: ci-bot, groups: [ci]}
`, certFile, keyFile, strings.TrimSpace(hash))))
	if got := runMain(t, context.Background(), nil, "validate", cfgPath); got.Code != 0 {
		t.Fatalf("validate: %+v", got)
	}
	port := testenv.FreePort(t)
	var logs syncBuffer
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sluice log:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), key) {
			t.Errorf("the API key appears in the log")
		}
	})
	testenv.WaitPort(t, port, 20*time.Second)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	endpoint := fmt.Sprintf("https://127.0.0.1:%d/mcp", port)
	transport := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}

	resp, err := (&http.Client{Transport: transport}).Post(endpoint, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("without a key: %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hc := &http.Client{Transport: keyRT{key: key, next: transport}}
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.ListTools(ctx, nil)
	if err != nil || len(res.Tools) == 0 {
		t.Fatalf("tools/list over HTTPS with a key: %v", err)
	}
}

type keyRT struct {
	key  string
	next http.RoundTripper
}

func (k keyRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return k.next.RoundTrip(r)
}

// selfSignedServer makes a CA and a server certificate for 127.0.0.1.
func selfSignedServer(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "sluice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}
