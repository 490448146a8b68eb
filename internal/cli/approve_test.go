package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApproveUsage checks the errors `sluice approve` gives before and
// instead of reaching the endpoint, and what it sends when it does.
func TestApproveUsage(t *testing.T) {
	t.Setenv(tokenEnv, "")
	var got struct{ auth, path, ctype, body string }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(r.Body)
		got.auth, got.path, got.ctype, got.body = r.Header.Get("Authorization"), r.URL.Path, r.Header.Get("Content-Type"), b.String()
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost {
			_, _ = w.Write([]byte(`{"id":"apr_1","decision":"deny","approver":"sam"}`))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("<html>busy</html>"))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	tok := filepath.Join(dir, "tok")
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(tok, []byte(" secret-token \n"), 0o600)
	_ = os.WriteFile(empty, []byte("\n"), 0o600)

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"no token", []string{"list", "--url", srv.URL}, 1, "sluice: no token: give --token-file or set SLUICE_TOKEN\n"},
		{"empty token file", []string{"list", "--url", srv.URL, "--token-file", empty}, 1, "is empty"},
		{"missing token file", []string{"list", "--url", srv.URL, "--token-file", filepath.Join(dir, "none")}, 1, "token file:"},
		{"bad url", []string{"list", "--url", "ftp://x", "--token-file", tok}, 1, `--url "ftp://x": want http(s)://HOST[:PORT]`},
		{"id with a slash", []string{"grant", "../x", "--url", srv.URL, "--token-file", tok}, 1, `"../x" is not an approval ID`},
		{"non-JSON error", []string{"list", "--url", srv.URL, "--token-file", tok}, 1, "approvals endpoint: HTTP 503"},
		{"deny", []string{"deny", "apr_1", "--reason", "no", "--url", srv.URL + "/", "--token-file", tok}, 0, "denied apr_1 as sam\n"},
		{"missing id", []string{"grant", "--url", srv.URL, "--token-file", tok}, 1, "accepts 1 arg(s), received 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			code := Main(context.Background(), append([]string{"approve"}, tt.args...), strings.NewReader(""), &out, &out)
			if code != tt.code || !strings.Contains(out.String(), tt.out) {
				t.Errorf("exit %d, output %q; want %d with %q", code, out.String(), tt.code, tt.out)
			}
		})
	}
	want := struct{ auth, path, ctype, body string }{"Bearer secret-token", "/approvals/apr_1", "application/json", `{"decision":"deny","reason":"no"}`}
	if got != want {
		t.Errorf("last request %+v, want %+v", got, want)
	}
}
