package allowlist_test

import (
	"context"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/allowlist"
	"github.com/sluicehq/sluice/internal/guard"
)

// BenchmarkCompile measures compiling a typical input schema: what the
// first call of a tool costs.
func BenchmarkCompile(b *testing.B) {
	g, err := allowlist.New(allowlist.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	for b.Loop() {
		c := toolCall(tool("read", fileSchema), `{"path":"/a"}`)
		if _, err := h.Handle(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate measures a call of a tool whose schema is compiled.
func BenchmarkValidate(b *testing.B) {
	g, err := allowlist.New(allowlist.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	read := tool("read", fileSchema)
	b.ReportAllocs()
	for b.Loop() {
		c := toolCall(read, `{"path":"/a/b/c","mode":"r","opts":{"depth":2,"tags":["x","y"]}}`)
		if _, err := h.Handle(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateEcho measures a call of the bench/echo tool, the
// smallest call of the load benchmark.
func BenchmarkValidateEcho(b *testing.B) {
	g, err := allowlist.New(allowlist.Config{})
	if err != nil {
		b.Fatal(err)
	}
	h := g.Wrap(guard.HandlerFunc(func(context.Context, *guard.Call) (*guard.Result, error) {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}))
	echo := tool("echo", `{"type":"object","properties":{"text":{"type":"string"},"size":{"type":"integer","minimum":0}}}`)
	b.ReportAllocs()
	for b.Loop() {
		c := toolCall(echo, `{"text":"hello"}`)
		if _, err := h.Handle(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
