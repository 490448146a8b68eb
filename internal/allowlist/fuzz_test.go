package allowlist_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/allowlist"
	"github.com/sluicehq/sluice/internal/guard"
)

// FuzzArguments feeds arbitrary arguments (and arbitrary schemas) to the
// strict controls: a call must either pass or be denied with one of their
// reason codes and a message that names arguments, never panic or fail
// otherwise.
func FuzzArguments(f *testing.F) {
	for _, seed := range []struct{ schema, args string }{
		{fileSchema, `{"path":"/a"}`},
		{fileSchema, `{"path":1,"opts":{"tags":[1,2,{"a":[]}]}}`},
		{fileSchema, `[]`},
		{`{"type":"object","patternProperties":{"^x":{"type":"integer"}}}`, `{"x1":"a","y":1}`},
		{`{"type":"object","properties":{"a":{"$ref":"#"}}}`, `{"a":{"a":{"a":1}}}`},
		{`{"oneOf":[{"type":"object"},{"required":["a"]}]}`, `{"a":1e400}`},
		{`{"$schema":"http://json-schema.org/draft-04/schema#","type":"object","properties":{"n":{"type":"number","maximum":1,"exclusiveMaximum":true}}}`, `{"n":1}`},
	} {
		f.Add(seed.schema, seed.args)
	}
	g, err := allowlist.New(allowlist.Config{})
	if err != nil {
		f.Fatal(err)
	}
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	f.Fuzz(func(t *testing.T, schema, args string) {
		if !jsontext.Value(args).IsValid() || !jsontext.Value(schema).IsValid() {
			return
		}
		c := toolCall(tool("read", schema), args)
		_, err := h.Handle(context.Background(), c)
		if err == nil {
			return
		}
		var de *guard.DeniedError
		if !errors.As(err, &de) {
			t.Fatalf("error %v is not a denial", err)
		}
		switch de.Decision.Reason {
		case allowlist.ReasonSchemaInvalid:
		case allowlist.ReasonArgumentsInvalid:
			if !strings.Contains(de.Decision.Message, "arguments") {
				t.Errorf("message %q does not name the arguments", de.Decision.Message)
			}
		default:
			t.Fatalf("unexpected reason %q", de.Decision.Reason)
		}
	})
}
