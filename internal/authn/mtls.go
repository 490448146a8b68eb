package authn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/guard"
)

// Certificate fields a principal's subject may come from (auth.mtls.subject).
const (
	SubjectSANURI   = "san-uri"
	SubjectSANEmail = "san-email"
	SubjectSANDNS   = "san-dns"
	SubjectCN       = "cn"
)

// SubjectFields are the valid values of auth.mtls.subject, in the order
// tried when none is configured.
var SubjectFields = []string{SubjectSANURI, SubjectSANEmail, SubjectSANDNS, SubjectCN}

// mtlsVerifier turns a verified client certificate into a principal.
type mtlsVerifier struct {
	pool    *x509.CertPool
	subject string
	groups  []string
}

func newMTLSVerifier(m *config.MTLS) (*mtlsVerifier, error) {
	pool, err := loadCAs(m.CAFile)
	if err != nil {
		return nil, err
	}
	return &mtlsVerifier{pool: pool, subject: m.Subject, groups: m.Groups}, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, errors.New("ca_file is required")
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificates", path)
	}
	return pool, nil
}

// principal verifies the peer's certificate chain against the configured
// CA (again: the TLS layer already did, but the listener's configuration
// is not this package's to trust) and maps the leaf to a principal.
func (m *mtlsVerifier) principal(cs *tls.ConnectionState, now time.Time) (*guard.Principal, error) {
	certs := cs.PeerCertificates
	leaf := certs[0]
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         m.pool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the client certificate is not trusted", Reason: ReasonCertificateInvalid, cause: err}
	}
	subject := certSubject(leaf, m.subject)
	if subject == "" {
		return nil, &Error{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "the client certificate names no subject", Reason: ReasonCertificateInvalid}
	}
	name := leaf.Subject.CommonName
	if name == "" {
		name = subject
	}
	return &guard.Principal{
		Issuer:  IssuerMTLS,
		Subject: subject,
		Name:    name,
		Groups:  append([]string(nil), m.groups...),
	}, nil
}

// certSubject returns the certificate field that names the principal: the
// configured one, else the first SAN URI, e-mail or DNS name, else the
// common name.
func certSubject(c *x509.Certificate, field string) string {
	get := func(f string) string {
		switch f {
		case SubjectSANURI:
			if len(c.URIs) > 0 {
				return c.URIs[0].String()
			}
		case SubjectSANEmail:
			if len(c.EmailAddresses) > 0 {
				return c.EmailAddresses[0]
			}
		case SubjectSANDNS:
			if len(c.DNSNames) > 0 {
				return c.DNSNames[0]
			}
		case SubjectCN:
			return c.Subject.CommonName
		}
		return ""
	}
	if field != "" {
		return get(field)
	}
	for _, f := range SubjectFields {
		if s := get(f); s != "" {
			return s
		}
	}
	return ""
}

// ServerTLS returns the TLS configuration of a listener: its certificate
// and minimum version from tlsCfg and, when auth configures mTLS, client
// certificates requested and verified against the CA. A client without a
// certificate may still connect (it may carry a token); one with an
// untrusted certificate fails the handshake.
func ServerTLS(tlsCfg *config.TLS, auth *config.Auth) (*tls.Config, error) {
	if tlsCfg == nil {
		return nil, errors.New("no tls configuration")
	}
	cert, err := tls.LoadX509KeyPair(tlsCfg.CertFile, tlsCfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	c := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	switch tlsCfg.MinVersion {
	case "", "1.2":
	case "1.3":
		c.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls.min_version: %q is not 1.2 or 1.3", tlsCfg.MinVersion)
	}
	if auth != nil && auth.MTLS != nil {
		pool, err := loadCAs(auth.MTLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("auth.mtls: %w", err)
		}
		c.ClientCAs = pool
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}
