package gateway

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
	wire "github.com/sluicehq/sluice/internal/mcp"
)

func TestAPIKeys(t *testing.T) {
	const ciKey = "ci-key-0123456789abcdef"
	const oldKey = "old-key-0123456789abcdef"
	upURL, upHeaders := echoUpstream(t)
	ag := startAuthGateway(t, func(string) string {
		return `
servers:
  up: {url: "` + upURL + `"}
auth:
  api_key_header: X-Api-Key
  api_keys:
    - id: ci
      hash: "` + authn.HashKey(ciKey) + `"
      principal: {subject: ci-bot, groups: [ci, deploy], attributes: {team: build}}
    - id: old
      hash: "` + authn.HashKey(oldKey) + `"
      expires: "2020-01-01T00:00:00Z"
      principal: {subject: old-bot}
`
	}, nil)
	endpoint := ag.base + "/mcp"
	want := &guard.Principal{Issuer: "api-key", Subject: "ci-bot", Name: "ci-bot", Groups: []string{"ci", "deploy"}, ClientID: "ci", Attributes: map[string]string{"team": "build"}}

	for _, tc := range []struct{ name, header, value string }{
		{"bearer", "Authorization", "Bearer " + ciKey},
		{"header", "X-Api-Key", ciKey},
	} {
		for _, e := range []string{wire.Version20251125, wire.Version20260728} {
			t.Run(tc.name+"/"+e, func(t *testing.T) {
				cs, err := connectWith(t, endpoint, e, &http.Client{Transport: bearerRT{header: tc.header, value: tc.value}})
				if err != nil {
					t.Fatal(err)
				}
				if got := echo(t, cs, "k"); got != "echo:k" {
					t.Errorf("echo = %q", got)
				}
				if diff := cmp.Diff(want, ag.rec.last()); diff != "" {
					t.Errorf("principal (-want +got):\n%s", diff)
				}
			})
		}
	}
	for _, h := range upHeaders.all() {
		if strings.Contains(h, ciKey) {
			t.Fatal("the client's API key reached the upstream")
		}
	}

	for _, tc := range []struct {
		name      string
		hdr       map[string]string
		status    int
		reason    string
		challenge string
	}{
		{"unknown key", map[string]string{"Authorization": "Bearer not-a-configured-key"}, 401, "authn-api-key-unknown", `Bearer error="invalid_token", error_description="unknown API key"`},
		{"unknown key in header", map[string]string{"X-Api-Key": "not-a-configured-key"}, 401, "authn-api-key-unknown", `Bearer error="invalid_token", error_description="unknown API key"`},
		{"expired key", map[string]string{"Authorization": "Bearer " + oldKey}, 401, "authn-api-key-expired", `Bearer error="invalid_token", error_description="the API key has expired"`},
		{"two credentials", map[string]string{"Authorization": "Bearer " + ciKey, "X-Api-Key": ciKey}, 400, "authn-credentials-conflict", `Bearer error="invalid_request", error_description="more than one credential in the request"`},
		{"other scheme", map[string]string{"Authorization": "Basic Y2k6a2V5"}, 401, "authn-scheme-unsupported", `Bearer`},
		{"none", nil, 401, "authn-no-credentials", `Bearer`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rawPost(t, nil, endpoint, initBody, tc.hdr)
			wantChallenge(t, r, tc.status, tc.challenge)
			if got := reasonOf(t, r); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
		})
	}

	t.Run("no metadata without OAuth", func(t *testing.T) {
		resp, err := http.Get(ag.base + authn.WellKnownPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
}

// TestMTLS serves HTTPS with client certificates verified against a CA
// made by the test.
func TestMTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, "test CA")
	other := newCA(t, "other CA")
	serverCert := ca.issue(t, "sluice", func(c *x509.Certificate) {
		c.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	agentURI, _ := url.Parse("spiffe://sluice.test/agent/builder")
	agent := ca.issue(t, "builder", func(c *x509.Certificate) {
		c.URIs = []*url.URL{agentURI}
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	cnOnly := ca.issue(t, "plain-cn", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	stranger := other.issue(t, "stranger", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	caFile := writePEM(t, dir, "ca.pem", ca.certPEM)
	certFile := writePEM(t, dir, "server.pem", serverCert.certPEM)
	keyFile := writePEM(t, dir, "server-key.pem", serverCert.keyPEM)

	upURL, _ := echoUpstream(t)
	var tlsCfg *tls.Config
	ag := startAuthGateway(t, func(string) string {
		yaml := `
servers:
  up: {url: "` + upURL + `"}
tls:
  cert_file: "` + certFile + `"
  key_file: "` + keyFile + `"
  min_version: "1.3"
auth:
  mtls:
    ca_file: "` + caFile + `"
    groups: [machines]
`
		cfg, err := config.Parse([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if tlsCfg, err = authn.ServerTLS(cfg.TLS, cfg.Auth); err != nil {
			t.Fatal(err)
		}
		return yaml
	}, func(srv *httptest.Server) {
		srv.TLS = tlsCfg
		srv.StartTLS()
	})
	endpoint := ag.base + "/mcp"
	client := func(cert *issued) *http.Client {
		c := &tls.Config{RootCAs: ca.pool()}
		if cert != nil {
			c.Certificates = []tls.Certificate{cert.tlsCert(t)}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
	}

	for _, e := range []string{wire.Version20251125, wire.Version20260728} {
		t.Run("certificate/"+e, func(t *testing.T) {
			cs, err := connectWith(t, endpoint, e, client(agent))
			if err != nil {
				t.Fatal(err)
			}
			if got := echo(t, cs, "m"); got != "echo:m" {
				t.Errorf("echo = %q", got)
			}
			want := &guard.Principal{Issuer: "mtls", Subject: "spiffe://sluice.test/agent/builder", Name: "builder", Groups: []string{"machines"}}
			if diff := cmp.Diff(want, ag.rec.last()); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("common name", func(t *testing.T) {
		cs, err := connectWith(t, endpoint, wire.Version20260728, client(cnOnly))
		if err != nil {
			t.Fatal(err)
		}
		echo(t, cs, "cn")
		if p := ag.rec.last(); p == nil || p.Subject != "plain-cn" {
			t.Errorf("principal %+v, want subject plain-cn", p)
		}
	})
	t.Run("no certificate", func(t *testing.T) {
		r := rawPost(t, client(nil), endpoint, initBody, nil)
		if r.status != http.StatusUnauthorized || reasonOf(t, r) != "authn-no-credentials" {
			t.Errorf("without a certificate: %d %s", r.status, r.body)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		// Go's client offers no certificate the server's CA list does not
		// name; force it to, as a hostile client would.
		cert := stranger.tlsCert(t)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:              ca.pool(),
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		}}}
		req, _ := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(initBody))
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a certificate from another CA got an answer: %d", resp.StatusCode)
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error %v, want a refused certificate", err)
		}
		// Without a matching certificate to offer, the client connects
		// anonymously and is asked for credentials.
		r := rawPost(t, client(stranger), endpoint, initBody, nil)
		if r.status != http.StatusUnauthorized {
			t.Errorf("stranger without its certificate: %d", r.status)
		}
	})
}

// TestStdioPrincipal serves stdio and checks the principal of a call: the
// configured one, or the operating-system user.
func TestStdioPrincipal(t *testing.T) {
	upURL, _ := echoUpstream(t)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, auth string
		want       *guard.Principal
	}{
		{"configured", "auth:\n  stdio: {subject: desk-user, name: Desk User, groups: [local]}\n",
			&guard.Principal{Issuer: "stdio", Subject: "desk-user", Name: "Desk User", Groups: []string{"local"}}},
		{"os user", "", &guard.Principal{Issuer: "stdio", Subject: me.Username, Name: me.Username}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte("servers:\n  up: {url: \""+upURL+"\"}\n"+tc.auth), "test.yaml")
			if err != nil {
				t.Fatal(err)
			}
			g, err := New(cfg, Options{BaseEnv: MinimalEnv()})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			rec := recordPrincipals(g)
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- g.ServeStdio(ctx, inR, outW, ""); outW.Close() }()
			lines := bufio.NewScanner(outR)
			send := func(s string) string {
				if _, err := io.WriteString(inW, s+"\n"); err != nil {
					t.Fatal(err)
				}
				if !lines.Scan() {
					t.Fatalf("no answer to %s", s)
				}
				return lines.Text()
			}
			send(initBody)
			if _, err := io.WriteString(inW, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n"); err != nil {
				t.Fatal(err)
			}
			got := send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"arg":"s"}}}`)
			if !strings.Contains(got, "echo:s") {
				t.Fatalf("tools/call answered %s", got)
			}
			if diff := cmp.Diff(tc.want, rec.last()); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			inW.Close()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
}

// TestAuthnGuardFailsClosed: with auth configured, a session that somehow
// has no principal has its calls refused by the authn guard.
func TestAuthnGuardFailsClosed(t *testing.T) {
	upURL, _ := echoUpstream(t)
	cfg, err := config.Parse([]byte("servers:\n  up: {url: \""+upURL+"\"}\nauth:\n  api_keys:\n    - {id: k, hash: \""+authn.HashKey("some-long-key-0123456789")+"\", principal: {subject: x}}\n"), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, Options{BaseEnv: MinimalEnv()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := g.NewSession(SessionOptions{Era: wire.EraLegacy})
	defer s.Close()
	if s.Principal() != nil {
		t.Fatalf("a session without credentials got principal %+v", s.Principal())
	}
	init := s.HandleRequest(ctx, wire.NewRequest(jsontext.Value(`1`), wire.MethodInitialize, jsontext.Value(`{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}`)), nil)
	if init.Error != nil {
		t.Fatalf("initialize: %+v", init.Error)
	}
	resp := s.HandleRequest(ctx, wire.NewRequest(jsontext.Value(`2`), wire.MethodToolsCall, jsontext.Value(`{"name":"echo","arguments":{"arg":"x"}}`)), nil)
	if resp.Error == nil || resp.Error.Code != wire.CodeDenied || !strings.Contains(string(resp.Error.Data), `"reason":"authn-required"`) {
		t.Fatalf("tools/call without a principal: %+v", resp)
	}
}

// testCA is a certificate authority made by a test.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

type issued struct {
	certPEM, keyPEM []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

var serial int64 = 100

func (ca *testCA) issue(t *testing.T, cn string, edit func(*x509.Certificate)) *issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}
}

func (i *issued) tlsCert(t *testing.T) tls.Certificate {
	c, err := tls.X509KeyPair(i.certPEM, i.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writePEM(t *testing.T, dir, name string, b []byte) string {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuthReload changes the keys by reload: the old key stops working and
// the new one works at once, and an unchanged auth section keeps its
// authenticator (its fetched keys and verified tokens).
func TestAuthReload(t *testing.T) {
	const keyA, keyB = "reload-key-a-0123456789", "reload-key-b-0123456789"
	upURL, _ := echoUpstream(t)
	conf := func(key string) string {
		return "servers:\n  up: {url: \"" + upURL + "\"}\nauth:\n  api_keys:\n    - {id: k, hash: \"" + authn.HashKey(key) + "\", principal: {subject: s}}\n"
	}
	ag := startAuthGateway(t, func(string) string { return conf(keyA) }, nil)
	endpoint := ag.base + "/mcp"
	status := func(key string) int {
		return rawPost(t, nil, endpoint, initBody, map[string]string{"Authorization": "Bearer " + key}).status
	}
	if got := status(keyA); got != http.StatusOK {
		t.Fatalf("key A before reload: %d", got)
	}
	reload := func(yaml string) {
		cfg, err := config.Parse([]byte(yaml), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := ag.g.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	before := ag.g.st.Load().authn
	reload(conf(keyA))
	if ag.g.st.Load().authn != before {
		t.Error("an unchanged auth section got a new authenticator")
	}
	reload(conf(keyB))
	if got := status(keyA); got != http.StatusUnauthorized {
		t.Errorf("key A after reload: %d, want 401", got)
	}
	if got := status(keyB); got != http.StatusOK {
		t.Errorf("key B after reload: %d, want 200", got)
	}
}
