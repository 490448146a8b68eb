package demo

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eras are the protocol versions a client may speak to the demo server.
var eras = []struct{ name, version string }{
	{"legacy", "2025-11-25"},
	{"modern", "2026-07-28"},
}

// connect starts a fresh demo server on in-memory transports and returns a
// client session speaking version, plus a channel that receives the URI of
// every resources/updated notification.
func connect(t *testing.T, version string) (*mcp.ClientSession, <-chan string) {
	t.Helper()
	ctx := t.Context()
	st, ct := mcp.NewInMemoryTransports()
	srv := NewServer()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatalf("server connect: %v", err)
	}
	updates := make(chan string, 16)
	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "1"}, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			updates <- req.Params.URI
		},
	})
	cs, err := client.Connect(ctx, ct, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("client connect: %v", err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	if got := cs.InitializeResult().ProtocolVersion; got != version {
		t.Fatalf("negotiated protocol version %q, want %q", got, version)
	}
	servers.Store(cs, srv)
	t.Cleanup(func() { servers.Delete(cs) })
	return cs, updates
}

// servers maps each test's client session to the server it talks to.
var servers sync.Map

// subscribeAndWait subscribes cs to uri and returns once the server delivers
// updates of it. Under 2026-07-28 the SDK's Subscribe only sends
// subscriptions/listen and returns, so the server may not have registered
// the subscription yet: the server is made to announce updates until one
// arrives, and the probes' updates are drained.
func subscribeAndWait(t *testing.T, cs *mcp.ClientSession, updates <-chan string, uri string) {
	t.Helper()
	if err := cs.Subscribe(t.Context(), &mcp.SubscribeParams{URI: uri}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	v, _ := servers.Load(cs)
	srv := v.(*mcp.Server)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := srv.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: uri}); err != nil {
			t.Fatalf("ResourceUpdated: %v", err)
		}
		select {
		case <-updates:
			for {
				select {
				case <-updates:
				case <-time.After(50 * time.Millisecond):
					return
				}
			}
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscription to %s never took effect", uri)
		}
	}
}

func forEachEra(t *testing.T, f func(t *testing.T, cs *mcp.ClientSession, updates <-chan string)) {
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			cs, updates := connect(t, era.version)
			f(t, cs, updates)
		})
	}
}

func TestCapabilities(t *testing.T) {
	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, _ <-chan string) {
		caps := cs.InitializeResult().Capabilities
		if caps.Tools == nil || caps.Prompts == nil || caps.Completions == nil {
			t.Errorf("capabilities %+v: want tools, prompts and completions", caps)
		}
		if caps.Resources == nil || !caps.Resources.Subscribe {
			t.Errorf("resources capability %+v: want subscribe", caps.Resources)
		}
		if caps.Logging != nil {
			t.Errorf("logging capability advertised, want none")
		}
	})
}

func TestListTools(t *testing.T) {
	type hints struct {
		ReadOnly, Idempotent, Destructive, OpenWorld bool
	}
	want := map[string]hints{
		"find_customers":   {ReadOnly: true, Idempotent: true},
		"get_customer":     {ReadOnly: true, Idempotent: true},
		"read_document":    {ReadOnly: true, Idempotent: true},
		"search_documents": {ReadOnly: true, Idempotent: true},
		"send_email":       {OpenWorld: true},
	}
	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, _ <-chan string) {
		res, err := cs.ListTools(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]hints{}
		for _, tool := range res.Tools {
			a := tool.Annotations
			if a == nil || a.DestructiveHint == nil || a.OpenWorldHint == nil {
				t.Errorf("tool %s: annotations %+v, want every hint set", tool.Name, a)
				continue
			}
			if a.Title == "" || tool.Description == "" || tool.OutputSchema == nil {
				t.Errorf("tool %s: want a title, a description and an output schema", tool.Name)
			}
			got[tool.Name] = hints{a.ReadOnlyHint, a.IdempotentHint, *a.DestructiveHint, *a.OpenWorldHint}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("tools and hints (-want +got):\n%s", diff)
		}
	})
}

func TestListResources(t *testing.T) {
	var wantURIs []string
	for _, d := range documents {
		wantURIs = append(wantURIs, "demo://documents/"+d.ID)
	}
	wantURIs = append(wantURIs, OutboxURI)
	slices.Sort(wantURIs)

	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, _ <-chan string) {
		res, err := cs.ListResources(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range res.Resources {
			got = append(got, r.URI)
			if r.MIMEType == "" || r.Title == "" {
				t.Errorf("resource %s: want a MIME type and a title", r.URI)
			}
		}
		slices.Sort(got)
		if diff := cmp.Diff(wantURIs, got); diff != "" {
			t.Errorf("resources (-want +got):\n%s", diff)
		}

		tres, err := cs.ListResourceTemplates(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		var templates []string
		for _, rt := range tres.ResourceTemplates {
			templates = append(templates, rt.URITemplate)
		}
		if diff := cmp.Diff([]string{DocumentURITemplate}, templates); diff != "" {
			t.Errorf("resource templates (-want +got):\n%s", diff)
		}
	})
}

func TestListPrompts(t *testing.T) {
	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, _ <-chan string) {
		res, err := cs.ListPrompts(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		want := []*mcp.Prompt{{
			Name:        "summarize_customer",
			Title:       "Summarize a customer",
			Description: "Ask the model for an account summary of one customer, with the customer record attached.",
			Arguments: []*mcp.PromptArgument{{
				Name:        "customer_id",
				Title:       "Customer id",
				Description: "The customer to summarize, for example C-1001.",
				Required:    true,
			}},
		}}
		if diff := cmp.Diff(want, res.Prompts); diff != "" {
			t.Errorf("prompts (-want +got):\n%s", diff)
		}
	})
}

// toolOutcome is the part of a tool result that the tests compare.
type toolOutcome struct {
	IsError bool
	// Text is the first text content; a test case names a prefix of it.
	Text string
	// Links lists the URIs of resource_link contents.
	Links []string
}

func TestCallTools(t *testing.T) {
	ada := customers[0]
	tests := []struct {
		name string
		tool string
		args map[string]any
		// structured, when set, is the expected structuredContent.
		structured any
		// textHas lists strings the first text content must contain.
		textHas []string
		want    toolOutcome
	}{
		{
			name:       "find by name",
			tool:       "find_customers",
			args:       map[string]any{"query": "whitfield"},
			structured: CustomerList{Customers: []Customer{ada}, Total: 1},
			textHas:    []string{"1 customer(s)", ada.Email, ada.Phone, ada.CardNumber},
		},
		{
			name:       "find by city words in any case",
			tool:       "find_customers",
			args:       map[string]any{"query": "SAN francisco"},
			structured: CustomerList{Customers: []Customer{customers[5]}, Total: 1},
			textHas:    []string{"Farah Haddad", "078-05-1120"},
		},
		{
			name:       "find with limit",
			tool:       "find_customers",
			args:       map[string]any{"query": "example.com", "limit": 3},
			structured: CustomerList{Customers: []Customer{customers[0], customers[3], customers[4]}, Total: 10},
			textHas:    []string{"10 customer(s)", "(showing 3)"},
		},
		{
			name:       "find everyone with the default limit",
			tool:       "find_customers",
			args:       map[string]any{"query": ""},
			structured: CustomerList{Customers: customers[:defaultFindLimit], Total: len(customers)},
		},
		{
			name:       "find nobody",
			tool:       "find_customers",
			args:       map[string]any{"query": "nobody-by-this-name"},
			structured: CustomerList{Customers: []Customer{}, Total: 0},
			textHas:    []string{"0 customer(s)"},
		},
		{
			name: "find with a negative limit",
			tool: "find_customers",
			args: map[string]any{"query": "a", "limit": -1},
			want: toolOutcome{IsError: true, Text: "limit must not be negative"},
		},
		{
			name: "find without the required query",
			tool: "find_customers",
			args: map[string]any{},
			want: toolOutcome{IsError: true, Text: "validating"},
		},
		{
			name:       "get customer",
			tool:       "get_customer",
			args:       map[string]any{"id": "c-1011"},
			structured: customers[10],
			textHas:    []string{"Kavya Raman", "audit-archive@mailbox.example"},
		},
		{
			name: "get unknown customer",
			tool: "get_customer",
			args: map[string]any{"id": "C-9999"},
			want: toolOutcome{IsError: true, Text: `no customer with id "C-9999"`},
		},
		{
			name: "search documents",
			tool: "search_documents",
			args: map[string]any{"query": "payment key"},
			structured: DocumentHits{Documents: []DocumentHit{
				{ID: "board-minutes", Title: "Board Meeting Minutes (draft)", URI: "demo://documents/board-minutes", Classification: "restricted",
					Snippet: "...3. **Security.** The CISO summarised INC-2031 (leaked payment key); rotation completed."},
				{ID: "incident-2031", Title: "Incident Report INC-2031: payment API key exposed", URI: "demo://documents/incident-2031", Classification: "restricted",
					Snippet: "# INC-2031: payment API key exposed in a support ticket **Severity:**..."},
			}},
			want: toolOutcome{Links: []string{"demo://documents/board-minutes", "demo://documents/incident-2031"}},
		},
		{
			name:       "search with no match",
			tool:       "search_documents",
			args:       map[string]any{"query": "quantum teleporter"},
			structured: DocumentHits{Documents: []DocumentHit{}},
			want:       toolOutcome{Text: `0 document(s) match "quantum teleporter".`},
		},
		{
			name:       "read document",
			tool:       "read_document",
			args:       map[string]any{"id": "incident-2031"},
			structured: documents[4],
			textHas:    []string{"PAYMENT_API_KEY=sk_live_"},
		},
		{
			name: "read unknown document",
			tool: "read_document",
			args: map[string]any{"id": "../etc/passwd"},
			want: toolOutcome{IsError: true, Text: `no document with id "../etc/passwd"`},
		},
		{
			name:       "send e-mail",
			tool:       "send_email",
			args:       map[string]any{"to": "someone@example.org", "subject": "hi", "body": "hello"},
			structured: SendEmailResult{ID: "msg-0001", Status: QueuedStatus},
			want:       toolOutcome{Text: QueuedStatus},
		},
		{
			name: "send e-mail to a bad address",
			tool: "send_email",
			args: map[string]any{"to": "not-an-address", "subject": "hi", "body": "hello"},
			want: toolOutcome{IsError: true, Text: `invalid recipient address "not-an-address"`},
		},
	}
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cs, _ := connect(t, era.version)
					res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: tt.tool, Arguments: tt.args})
					if err != nil {
						t.Fatalf("CallTool: %v", err)
					}
					got := outcome(res)
					for _, sub := range tt.textHas {
						if !strings.Contains(got.Text, sub) {
							t.Errorf("text does not contain %q:\n%s", sub, got.Text)
						}
					}
					// The start of the text is enough to tell the result apart;
					// the rest is checked through textHas.
					if len(got.Text) > len(tt.want.Text) && strings.HasPrefix(got.Text, tt.want.Text) {
						got.Text = tt.want.Text
					}
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("result (-want +got):\n%s", diff)
					}
					if tt.structured != nil {
						wantJSON, err := json.Marshal(tt.structured)
						if err != nil {
							t.Fatal(err)
						}
						if diff := cmp.Diff(decode(t, wantJSON), structured(t, res)); diff != "" {
							t.Errorf("structured content (-want +got):\n%s", diff)
						}
					}
				})
			}
		})
	}
}

func outcome(res *mcp.CallToolResult) toolOutcome {
	var o toolOutcome
	o.IsError = res.IsError
	for _, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			if o.Text == "" {
				o.Text = c.Text
			}
		case *mcp.ResourceLink:
			o.Links = append(o.Links, c.URI)
		}
	}
	return o
}

func structured(t *testing.T, res *mcp.CallToolResult) any {
	t.Helper()
	data, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, data)
}

func decode(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return v
}

func TestReadResources(t *testing.T) {
	type content struct{ URI, MIMEType, Text string }
	tests := []struct {
		name    string
		uri     string
		want    content
		wantErr bool
	}{
		{name: "handbook", uri: "demo://documents/handbook",
			want: content{"demo://documents/handbook", "text/markdown", documents[3].Body}},
		{name: "contract with an IBAN", uri: "demo://documents/contract-northwind",
			want: content{"demo://documents/contract-northwind", "text/markdown", documents[1].Body}},
		{name: "empty outbox", uri: OutboxURI,
			want: content{OutboxURI, "application/json", "[]"}},
		{name: "unknown document", uri: "demo://documents/missing", wantErr: true},
		{name: "unknown scheme", uri: "file:///etc/passwd", wantErr: true},
	}
	for _, era := range eras {
		t.Run(era.name, func(t *testing.T) {
			cs, _ := connect(t, era.version)
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					res, err := cs.ReadResource(t.Context(), &mcp.ReadResourceParams{URI: tt.uri})
					if tt.wantErr {
						if err == nil {
							t.Fatalf("ReadResource(%s) succeeded, want an error", tt.uri)
						}
						return
					}
					if err != nil {
						t.Fatalf("ReadResource(%s): %v", tt.uri, err)
					}
					var got []content
					for _, c := range res.Contents {
						got = append(got, content{c.URI, c.MIMEType, c.Text})
					}
					if diff := cmp.Diff([]content{tt.want}, got); diff != "" {
						t.Errorf("contents (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestOutboxSubscription(t *testing.T) {
	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, updates <-chan string) {
		ctx := t.Context()
		subscribeAndWait(t, cs, updates, OutboxURI)
		mails := []sendEmailInput{
			{To: "audit-archive@mailbox.example", Subject: "customer list", Body: "C-1001 4111111111111111"},
			{To: "ada.whitfield@example.com", Subject: "renewal", Body: "See you in September."},
		}
		for i, m := range mails {
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "send_email", Arguments: m})
			if err != nil || res.IsError {
				t.Fatalf("send_email %d: %v %+v", i, err, res)
			}
			select {
			case uri := <-updates:
				if uri != OutboxURI {
					t.Errorf("update for %q, want %q", uri, OutboxURI)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no resources/updated notification after send_email %d", i)
			}
		}

		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: OutboxURI})
		if err != nil {
			t.Fatal(err)
		}
		var got []Email
		if err := json.Unmarshal([]byte(res.Contents[0].Text), &got); err != nil {
			t.Fatalf("decoding outbox: %v", err)
		}
		for i := range got {
			if got[i].QueuedAt.IsZero() {
				t.Errorf("message %d has no queue time", i)
			}
			got[i].QueuedAt = time.Time{}
		}
		want := []Email{
			{ID: "msg-0001", To: mails[0].To, Subject: mails[0].Subject, Body: mails[0].Body},
			{ID: "msg-0002", To: mails[1].To, Subject: mails[1].Subject, Body: mails[1].Body},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("outbox (-want +got):\n%s", diff)
		}
	})
}

func TestSubscribeUnknownResource(t *testing.T) {
	cs, _ := connect(t, "2025-11-25")
	if err := cs.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "demo://documents/missing"}); err == nil {
		t.Error("Subscribe to an unknown resource succeeded, want an error")
	}
	if err := cs.Subscribe(t.Context(), &mcp.SubscribeParams{URI: "demo://documents/handbook"}); err != nil {
		t.Errorf("Subscribe to a document: %v", err)
	}
}

func TestGetPrompt(t *testing.T) {
	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, _ <-chan string) {
		res, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{
			Name:      "summarize_customer",
			Arguments: map[string]string{"customer_id": "C-1005"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Messages) != 1 || res.Messages[0].Role != "user" {
			t.Fatalf("messages %+v, want one user message", res.Messages)
		}
		text := res.Messages[0].Content.(*mcp.TextContent).Text
		for _, s := range []string{"Elif Demir (C-1005)", "elif.demir@example.com", "5555555555554444"} {
			if !strings.Contains(text, s) {
				t.Errorf("prompt does not contain %q:\n%s", s, text)
			}
		}
		for _, args := range []map[string]string{{"customer_id": "C-0000"}, {}} {
			if _, err := cs.GetPrompt(t.Context(), &mcp.GetPromptParams{Name: "summarize_customer", Arguments: args}); err == nil {
				t.Errorf("GetPrompt(%v) succeeded, want an error", args)
			}
		}
	})
}

func TestComplete(t *testing.T) {
	prompt := &mcp.CompleteReference{Type: "ref/prompt", Name: "summarize_customer"}
	template := &mcp.CompleteReference{Type: "ref/resource", URI: DocumentURITemplate}
	var allIDs []string
	for _, c := range customers {
		allIDs = append(allIDs, c.ID)
	}
	tests := []struct {
		name  string
		ref   *mcp.CompleteReference
		arg   string
		value string
		want  mcp.CompletionResultDetails
	}{
		{"every customer", prompt, "customer_id", "", mcp.CompletionResultDetails{Values: allIDs, Total: len(allIDs)}},
		{"id prefix", prompt, "customer_id", "c-101", mcp.CompletionResultDetails{
			Values: []string{"C-1010", "C-1011", "C-1012", "C-1013", "C-1014", "C-1015", "C-1016", "C-1017", "C-1018", "C-1019"}, Total: 10}},
		{"part of a name", prompt, "customer_id", "nov", mcp.CompletionResultDetails{Values: []string{"C-1020"}, Total: 1}},
		{"no match", prompt, "customer_id", "zz", mcp.CompletionResultDetails{Values: []string{}}},
		{"other argument", prompt, "other", "", mcp.CompletionResultDetails{Values: []string{}}},
		{"document ids", template, "id", "in", mcp.CompletionResultDetails{Values: []string{"incident-2031"}, Total: 1}},
		{"other template", &mcp.CompleteReference{Type: "ref/resource", URI: "demo://other/{id}"}, "id", "",
			mcp.CompletionResultDetails{Values: []string{}}},
	}
	forEachEra(t, func(t *testing.T, cs *mcp.ClientSession, _ <-chan string) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res, err := cs.Complete(t.Context(), &mcp.CompleteParams{
					Ref:      tt.ref,
					Argument: mcp.CompleteParamsArgument{Name: tt.arg, Value: tt.value},
				})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.want, res.Completion); diff != "" {
					t.Errorf("completion (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// TestData checks that the fake data keeps the properties the gateway demos
// rely on: card numbers pass the Luhn check, IBANs pass ISO 13616, the
// secrets look like secrets, and ids are unique.
func TestData(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range customers {
		t.Run(c.ID, func(t *testing.T) {
			if seen[c.ID] {
				t.Errorf("duplicate id")
			}
			seen[c.ID] = true
			if !luhn(c.CardNumber) {
				t.Errorf("card %q fails the Luhn check", c.CardNumber)
			}
			if !strings.HasSuffix(c.Email, ".com") && !strings.HasSuffix(c.Email, ".org") && !strings.HasSuffix(c.Email, ".net") ||
				!strings.Contains(c.Email, "@example.") {
				t.Errorf("e-mail %q is not under a domain reserved for examples", c.Email)
			}
		})
	}
	if len(customers) != 20 {
		t.Errorf("%d customers, want 20", len(customers))
	}

	all := ""
	for _, d := range documents {
		if seen[d.ID] {
			t.Errorf("duplicate document id %q", d.ID)
		}
		seen[d.ID] = true
		all += d.Body + "\n"
	}
	for _, c := range customers {
		all += c.Notes + "\n"
	}
	ibans := regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b`).FindAllString(all, -1)
	if diff := cmp.Diff([]string{"GB82 WEST 1234 5698 7654 32", "DK50 0040 0440 1162 43"}, ibans); diff != "" {
		t.Errorf("IBANs (-want +got):\n%s", diff)
	}
	for _, iban := range ibans {
		if !ibanValid(iban) {
			t.Errorf("IBAN %q fails the ISO 13616 check", iban)
		}
	}
	for _, re := range []string{`sk_live_[0-9A-Za-z]{24,}`, `AKIA[0-9A-Z]{16}`, `postgres://[^:]+:[^@]+@`} {
		if !regexp.MustCompile(re).MatchString(all) {
			t.Errorf("no match for %s in the documents", re)
		}
	}
}

func luhn(s string) bool {
	digits := strings.NewReplacer(" ", "", "-", "").Replace(s)
	if len(digits) < 12 {
		return false
	}
	sum, double := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func ibanValid(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	s = s[4:] + s[:4]
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteString(big.NewInt(int64(r - 'A' + 10)).String())
		} else {
			b.WriteRune(r)
		}
	}
	n, ok := new(big.Int).SetString(b.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

// TestRun drives Run over a pair of pipes, the way Sluice drives the demo
// server over a child's standard input and output.
func TestRun(t *testing.T) {
	ctx := t.Context()
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	var log syncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(ctx, serverIn, serverOut, &log) }()

	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.IOTransport{Reader: clientIn, Writer: clientOut}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if got := cs.InitializeResult().ServerInfo.Name; got != "sluice-demo" {
		t.Errorf("server name %q, want sluice-demo", got)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_customer", Arguments: map[string]any{"id": "C-1001"}})
	if err != nil || res.IsError {
		t.Fatalf("get_customer: %v %+v", err, res)
	}
	if got := outcome(res).Text; !strings.Contains(got, "4111111111111111") {
		t.Errorf("get_customer text lacks the card number:\n%s", got)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: OutboxURI}); err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "summarize_customer", Arguments: map[string]string{"customer_id": "C-1002"}}); err != nil {
		t.Fatalf("get prompt: %v", err)
	}
	// A request that does not act on the data is not logged.
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("list tools: %v", err)
	}
	if err := cs.Close(); err != nil {
		t.Errorf("client close: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after the client closed: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the client closed")
	}
	want := "" +
		"demo-server: tools/call get_customer {\"id\":\"C-1001\"}\n" +
		"demo-server: resources/read demo://outbox\n" +
		"demo-server: prompts/get summarize_customer {\"customer_id\":\"C-1002\"}\n"
	if diff := cmp.Diff(want, log.String()); diff != "" {
		t.Errorf("request log (-want +got)\n%s", diff)
	}
}

// syncBuffer collects what Run logs while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func TestLogArgs(t *testing.T) {
	long := `{"body":"` + strings.Repeat("é", 400) + `"}`
	tests := []struct{ name, in, want string }{
		{"empty", "", "{}"},
		{"compacted", "{ \"a\" : [1, 2] }", `{"a":[1,2]}`},
		{"invalid", "{", "(invalid JSON)"},
		{"shortened on a rune boundary", long, long[:maxLoggedArgs-1] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := logArgs([]byte(tt.in)); got != tt.want {
				t.Errorf("logArgs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestRunCancel checks that Run returns when its context ends, even though
// the peer keeps its end open.
func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	serverIn, clientOut := io.Pipe()
	_, serverOut := io.Pipe()
	defer clientOut.Close()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, serverIn, serverOut, nil) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
