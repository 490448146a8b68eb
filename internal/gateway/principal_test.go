package gateway

import (
	"testing"

	"github.com/sluicehq/sluice/internal/guard"
)

// TestPrincipalKey checks what makes two principals the same caller for
// binding sessions and upstream sessions: issuer, subject and client id,
// not the groups or scopes a refreshed token may change.
func TestPrincipalKey(t *testing.T) {
	base := &guard.Principal{Issuer: "https://a.example", Subject: "ada", ClientID: "agent", Groups: []string{"x"}}
	same := &guard.Principal{Issuer: "https://a.example", Subject: "ada", ClientID: "agent", Scopes: []string{"more"}}
	if principalKey(base) != principalKey(same) {
		t.Error("groups and scopes changed the key")
	}
	for name, p := range map[string]*guard.Principal{
		"issuer":    {Issuer: "https://b.example", Subject: "ada", ClientID: "agent"},
		"subject":   {Issuer: "https://a.example", Subject: "bob", ClientID: "agent"},
		"client":    {Issuer: "https://a.example", Subject: "ada", ClientID: "other"},
		"boundary":  {Issuer: "https://a.example\x00ada", Subject: "", ClientID: "agent"},
		"nobody":    nil,
		"anonymous": anonymous,
	} {
		if principalKey(p) == principalKey(base) {
			t.Errorf("a different %s kept the key", name)
		}
	}
}
