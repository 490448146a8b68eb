package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const (
	// OutboxURI is the resource that lists the messages queued by send_email.
	OutboxURI = "demo://outbox"
	// DocumentURITemplate is the resource template for documents.
	DocumentURITemplate = "demo://documents/{id}"
	// QueuedStatus is what send_email reports for every message.
	QueuedStatus = "queued (demo: not sent)"

	defaultFindLimit = 10
	maxFindLimit     = 50
	// maxCompletionValues is the cap the spec puts on completion/complete.
	maxCompletionValues = 100
	snippetRadius       = 60
)

// Run serves the demo server on one stdio-style connection until the peer
// closes it or ctx ends. Sluice calls it from a hidden subcommand of its own
// binary with the process's standard input and output, and its standard
// error as log.
//
// When log is not nil, Run writes one line to it for every request that acts
// on the data (tools/call, resources/read, prompts/get), naming the tool,
// resource or prompt and its arguments. Sluice logs a launched server's
// standard error, so whoever runs the demo behind a policy sees in Sluice's
// log which calls reached the server and which the gateway stopped. The
// data is invented, so its arguments are safe to log.
//
// A peer closing its end is a normal way for a stdio session to end, so Run
// returns nil then; when ctx ends first, Run returns ctx's error. If in or out
// is also an [io.Closer], it is closed when the session ends.
func Run(ctx context.Context, in io.Reader, out, log io.Writer) error {
	t := &mcp.IOTransport{Reader: readCloser(in), Writer: writeCloser(out)}
	s := NewServer()
	if log != nil {
		s.AddReceivingMiddleware(requestLog(log))
	}
	err := s.Run(ctx, t)
	if errors.Is(err, io.EOF) || errors.Is(err, mcp.ErrConnectionClosed) {
		return nil
	}
	return err
}

// NewServer returns a demo server with its own empty outbox.
func NewServer() *mcp.Server {
	d := &demoServer{}
	s := mcp.NewServer(&mcp.Implementation{Name: "sluice-demo", Title: "Sluice demo data", Version: "1.0.0"}, &mcp.ServerOptions{
		Instructions: "Demo server for Sluice. Every customer, document and credential here is fictitious. " +
			"send_email records messages in an outbox (resource " + OutboxURI + ") and never delivers them.",
		// No logging capability: the demo has nothing to log.
		Capabilities:       &mcp.ServerCapabilities{},
		CompletionHandler:  complete,
		SubscribeHandler:   subscribe,
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
	})
	d.server = s

	read := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, DestructiveHint: new(false), OpenWorldHint: new(false)}
	mcp.AddTool(s, &mcp.Tool{
		Name:        "find_customers",
		Title:       "Find customers",
		Description: "Search the customer directory by name, e-mail, city or id. Returns the full customer records.",
		Annotations: withTitle(read, "Find customers"),
	}, d.findCustomers)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "get_customer",
		Title:       "Get customer",
		Description: "Return one customer record by id (for example C-1001).",
		Annotations: withTitle(read, "Get customer"),
	}, d.getCustomer)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "search_documents",
		Title:       "Search documents",
		Description: "Full-text search over the company document store. Every word of the query must appear.",
		Annotations: withTitle(read, "Search documents"),
	}, d.searchDocuments)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "read_document",
		Title:       "Read document",
		Description: "Return the full text of a document by id.",
		Annotations: withTitle(read, "Read document"),
	}, d.readDocument)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "send_email",
		Title:       "Send e-mail",
		Description: "Send an e-mail to any address. (Demo: the message is queued in the outbox and never delivered.)",
		Annotations: &mcp.ToolAnnotations{
			Title:           "Send e-mail",
			ReadOnlyHint:    false,
			DestructiveHint: new(false),
			IdempotentHint:  false,
			OpenWorldHint:   new(true),
		},
	}, d.sendEmail)

	for _, doc := range documents {
		s.AddResource(&mcp.Resource{
			URI:         doc.URI(),
			Name:        doc.ID,
			Title:       doc.Title,
			Description: "Classification: " + doc.Classification,
			MIMEType:    "text/markdown",
			Size:        int64(len(doc.Body)),
		}, d.readDocumentResource)
	}
	s.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: DocumentURITemplate,
		Name:        "document",
		Title:       "Company document",
		Description: "A document of the company document store, by id.",
		MIMEType:    "text/markdown",
	}, d.readDocumentResource)
	s.AddResource(&mcp.Resource{
		URI:         OutboxURI,
		Name:        "outbox",
		Title:       "Outbox",
		Description: "Messages queued by send_email, oldest first (JSON). Subscribe to hear about new ones.",
		MIMEType:    "application/json",
	}, d.readOutbox)

	s.AddPrompt(&mcp.Prompt{
		Name:        "summarize_customer",
		Title:       "Summarize a customer",
		Description: "Ask the model for an account summary of one customer, with the customer record attached.",
		Arguments: []*mcp.PromptArgument{{
			Name:        "customer_id",
			Title:       "Customer id",
			Description: "The customer to summarize, for example C-1001.",
			Required:    true,
		}},
	}, summarizeCustomer)
	return s
}

// demoServer holds the mutable state of one [NewServer]: the outbox.
type demoServer struct {
	server *mcp.Server

	mu     sync.Mutex
	outbox []Email
}

// An Email is a message recorded by send_email.
type Email struct {
	ID       string    `json:"id"`
	To       string    `json:"to"`
	Subject  string    `json:"subject"`
	Body     string    `json:"body"`
	QueuedAt time.Time `json:"queued_at"`
}

type findCustomersInput struct {
	Query string `json:"query" jsonschema:"words to match against name, e-mail, city or id; empty matches everyone"`
	Limit int    `json:"limit,omitempty" jsonschema:"maximum number of customers to return (default 10, at most 50)"`
}

// CustomerList is the structured result of find_customers.
type CustomerList struct {
	Customers []Customer `json:"customers"`
	// Total counts every match, including those cut by the limit.
	Total int `json:"total"`
}

func (d *demoServer) findCustomers(_ context.Context, _ *mcp.CallToolRequest, in findCustomersInput) (*mcp.CallToolResult, CustomerList, error) {
	limit := in.Limit
	switch {
	case limit < 0:
		return nil, CustomerList{}, fmt.Errorf("limit must not be negative")
	case limit == 0:
		limit = defaultFindLimit
	case limit > maxFindLimit:
		limit = maxFindLimit
	}
	words := strings.Fields(strings.ToLower(in.Query))
	out := CustomerList{Customers: []Customer{}}
	for _, c := range customers {
		hay := strings.ToLower(strings.Join([]string{c.ID, c.Name, c.Email, c.City}, " "))
		if !containsAll(hay, words) {
			continue
		}
		out.Total++
		if len(out.Customers) < limit {
			out.Customers = append(out.Customers, c)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d customer(s) match %q", out.Total, in.Query)
	if out.Total > len(out.Customers) {
		fmt.Fprintf(&b, " (showing %d)", len(out.Customers))
	}
	b.WriteString(".\n")
	for _, c := range out.Customers {
		b.WriteString("\n")
		writeCustomer(&b, c)
	}
	return textResult(b.String()), out, nil
}

type customerIDInput struct {
	ID string `json:"id" jsonschema:"customer id, for example C-1001"`
}

func (d *demoServer) getCustomer(_ context.Context, _ *mcp.CallToolRequest, in customerIDInput) (*mcp.CallToolResult, Customer, error) {
	c, ok := findCustomer(in.ID)
	if !ok {
		return nil, Customer{}, fmt.Errorf("no customer with id %q", in.ID)
	}
	var b strings.Builder
	writeCustomer(&b, c)
	return textResult(b.String()), c, nil
}

type searchDocumentsInput struct {
	Query string `json:"query" jsonschema:"words that must all appear in the title or text; empty lists every document"`
}

// DocumentHit is one result of search_documents.
type DocumentHit struct {
	ID             string `json:"id"`
	Title          string `json:"title"`
	URI            string `json:"uri"`
	Classification string `json:"classification"`
	Snippet        string `json:"snippet"`
}

// DocumentHits is the structured result of search_documents.
type DocumentHits struct {
	Documents []DocumentHit `json:"documents"`
}

func (d *demoServer) searchDocuments(_ context.Context, _ *mcp.CallToolRequest, in searchDocumentsInput) (*mcp.CallToolResult, DocumentHits, error) {
	words := strings.Fields(strings.ToLower(in.Query))
	out := DocumentHits{Documents: []DocumentHit{}}
	res := &mcp.CallToolResult{}
	var b strings.Builder
	for _, doc := range documents {
		body := strings.ToLower(doc.Body)
		if !containsAll(strings.ToLower(doc.Title)+"\n"+body, words) {
			continue
		}
		hit := DocumentHit{
			ID:             doc.ID,
			Title:          doc.Title,
			URI:            doc.URI(),
			Classification: doc.Classification,
			Snippet:        snippet(doc.Body, body, words),
		}
		out.Documents = append(out.Documents, hit)
		fmt.Fprintf(&b, "\n- %s (%s, %s): %s", hit.Title, hit.ID, hit.Classification, hit.Snippet)
		res.Content = append(res.Content, &mcp.ResourceLink{
			URI:         hit.URI,
			Name:        hit.ID,
			Title:       hit.Title,
			Description: "Classification: " + hit.Classification,
			MIMEType:    "text/markdown",
		})
	}
	summary := fmt.Sprintf("%d document(s) match %q.", len(out.Documents), in.Query)
	res.Content = slices.Insert(res.Content, 0, mcp.Content(&mcp.TextContent{Text: summary + b.String()}))
	return res, out, nil
}

type documentIDInput struct {
	ID string `json:"id" jsonschema:"document id, for example handbook"`
}

func (d *demoServer) readDocument(_ context.Context, _ *mcp.CallToolRequest, in documentIDInput) (*mcp.CallToolResult, Document, error) {
	doc, ok := findDocument(in.ID)
	if !ok {
		return nil, Document{}, fmt.Errorf("no document with id %q", in.ID)
	}
	return textResult(doc.Body), doc, nil
}

type sendEmailInput struct {
	To      string `json:"to" jsonschema:"recipient e-mail address"`
	Subject string `json:"subject" jsonschema:"subject line"`
	Body    string `json:"body" jsonschema:"message text"`
}

// SendEmailResult is the structured result of send_email.
type SendEmailResult struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (d *demoServer) sendEmail(ctx context.Context, _ *mcp.CallToolRequest, in sendEmailInput) (*mcp.CallToolResult, SendEmailResult, error) {
	to := strings.TrimSpace(in.To)
	if at := strings.LastIndexByte(to, '@'); at <= 0 || at == len(to)-1 || strings.ContainsAny(to, " \t\r\n,;<>") {
		return nil, SendEmailResult{}, fmt.Errorf("invalid recipient address %q", in.To)
	}
	d.mu.Lock()
	m := Email{
		ID:       fmt.Sprintf("msg-%04d", len(d.outbox)+1),
		To:       to,
		Subject:  in.Subject,
		Body:     in.Body,
		QueuedAt: time.Now().UTC().Truncate(time.Millisecond),
	}
	d.outbox = append(d.outbox, m)
	d.mu.Unlock()
	// Subscribers learn about the new message before the caller sees the
	// result, so a client that reads the outbox on notification sees it.
	if err := d.server.ResourceUpdated(ctx, &mcp.ResourceUpdatedNotificationParams{URI: OutboxURI}); err != nil {
		return nil, SendEmailResult{}, fmt.Errorf("notifying outbox subscribers: %w", err)
	}
	return textResult(QueuedStatus), SendEmailResult{ID: m.ID, Status: QueuedStatus}, nil
}

func (d *demoServer) readDocumentResource(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, documentURIPrefix)
	if !ok {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	doc, ok := findDocument(id)
	if !ok {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{
		URI:      uri,
		MIMEType: "text/markdown",
		Text:     doc.Body,
	}}}, nil
}

func (d *demoServer) readOutbox(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	d.mu.Lock()
	msgs := slices.Clone(d.outbox)
	d.mu.Unlock()
	if msgs == nil {
		msgs = []Email{}
	}
	data, err := json.MarshalIndent(msgs, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding outbox: %w", err)
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{
		URI:      OutboxURI,
		MIMEType: "application/json",
		Text:     string(data),
	}}}, nil
}

// subscribe accepts subscriptions to the resources the server has. Documents
// never change; the outbox changes whenever send_email queues a message.
func subscribe(_ context.Context, req *mcp.SubscribeRequest) error {
	uri := req.Params.URI
	if uri == OutboxURI {
		return nil
	}
	if id, ok := strings.CutPrefix(uri, documentURIPrefix); ok {
		if _, ok := findDocument(id); ok {
			return nil
		}
	}
	return mcp.ResourceNotFoundError(uri)
}

func summarizeCustomer(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	id := req.Params.Arguments["customer_id"]
	if id == "" {
		return nil, fmt.Errorf("missing argument customer_id")
	}
	c, ok := findCustomer(id)
	if !ok {
		return nil, fmt.Errorf("no customer with id %q", id)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Summarize the account of %s (%s) for the quarterly account review. "+
		"Cover the relationship, open issues and anything that needs follow-up. "+
		"Do not repeat payment card numbers or other personal identifiers in the summary.\n\nCustomer record:\n", c.Name, c.ID)
	writeCustomer(&b, c)
	return &mcp.GetPromptResult{
		Description: "Account summary for " + c.Name,
		Messages: []*mcp.PromptMessage{{
			Role:    "user",
			Content: &mcp.TextContent{Text: b.String()},
		}},
	}, nil
}

// complete offers customer ids for the summarize_customer prompt and
// document ids for the document resource template. An id matches when it
// starts with the typed value; a customer also matches on any part of the
// name, since people remember names better than ids.
func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	ref, arg := req.Params.Ref, req.Params.Argument
	value := strings.ToLower(strings.TrimSpace(arg.Value))
	var values []string
	switch {
	case ref.Type == "ref/prompt" && ref.Name == "summarize_customer" && arg.Name == "customer_id":
		for _, c := range customers {
			if strings.HasPrefix(strings.ToLower(c.ID), value) || strings.Contains(strings.ToLower(c.Name), value) {
				values = append(values, c.ID)
			}
		}
	case ref.Type == "ref/resource" && ref.URI == DocumentURITemplate && arg.Name == "id":
		for _, d := range documents {
			if strings.HasPrefix(d.ID, value) {
				values = append(values, d.ID)
			}
		}
	}
	res := &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}, Total: len(values)}}
	if len(values) > maxCompletionValues {
		values, res.Completion.HasMore = values[:maxCompletionValues], true
	}
	res.Completion.Values = append(res.Completion.Values, values...)
	return res, nil
}

func writeCustomer(b *strings.Builder, c Customer) {
	fmt.Fprintf(b, "%s  %s\n  email: %s\n  phone: %s\n  card:  %s\n  city:  %s\n  notes: %s\n",
		c.ID, c.Name, c.Email, c.Phone, c.CardNumber, c.City, c.Notes)
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func withTitle(a *mcp.ToolAnnotations, title string) *mcp.ToolAnnotations {
	c := *a
	c.Title = title
	return &c
}

func containsAll(hay string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}

// snippet returns the text around the first query word found in body (lower
// is body in lower case), or the start of body when there is no query.
func snippet(body, lower string, words []string) string {
	at := -1
	for _, w := range words {
		if i := strings.Index(lower, w); i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	start, end := 0, min(2*snippetRadius, len(body))
	if at >= 0 {
		start, end = max(at-snippetRadius, 0), min(at+snippetRadius, len(body))
	}
	// Cut at white space, so that the snippet keeps whole words (and whole
	// UTF-8 sequences), unless a word is longer than the radius.
	if i := strings.IndexAny(body[start:], " \n"); start > 0 && i >= 0 && start+i < at {
		start += i + 1
	}
	if i := strings.LastIndexAny(body[:end], " \n"); end < len(body) && i > max(at, start) {
		end = i
	}
	for start > 0 && !utf8Start(body[start]) {
		start--
	}
	for end < len(body) && !utf8Start(body[end]) {
		end++
	}
	s := strings.Join(strings.Fields(body[start:end]), " ")
	if start > 0 {
		s = "..." + s
	}
	if end < len(body) {
		s += "..."
	}
	return s
}

// RequestLogPrefix starts every line [Run] logs about a request.
const RequestLogPrefix = "demo-server: "

// maxLoggedArgs bounds the arguments shown in one request log line.
const maxLoggedArgs = 512

// requestLog returns a middleware that writes a line to w for each request
// acting on the data, before it is handled:
//
//	demo-server: tools/call find_customers {"limit":20,"query":"berlin"}
//	demo-server: resources/read demo://outbox
func requestLog(w io.Writer) mcp.Middleware {
	var mu sync.Mutex
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			var line string
			switch p := req.GetParams().(type) {
			case *mcp.CallToolParamsRaw:
				line = method + " " + p.Name + " " + logArgs(p.Arguments)
			case *mcp.ReadResourceParams:
				line = method + " " + p.URI
			case *mcp.GetPromptParams:
				args, _ := json.Marshal(p.Arguments)
				line = method + " " + p.Name + " " + logArgs(args)
			}
			if line != "" {
				mu.Lock()
				fmt.Fprintf(w, "%s%s\n", RequestLogPrefix, strings.ToValidUTF8(strings.ReplaceAll(line, "\n", " "), "?"))
				mu.Unlock()
			}
			return next(ctx, method, req)
		}
	}
}

// logArgs renders raw JSON arguments on one line, shortened past
// [maxLoggedArgs] bytes.
func logArgs(raw []byte) string {
	var b bytes.Buffer
	if len(raw) == 0 {
		return "{}"
	}
	if err := json.Compact(&b, raw); err != nil {
		return "(invalid JSON)"
	}
	if b.Len() > maxLoggedArgs {
		cut := maxLoggedArgs
		for cut > 0 && !utf8Start(b.Bytes()[cut]) {
			cut--
		}
		return string(b.Bytes()[:cut]) + "..."
	}
	return b.String()
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func readCloser(r io.Reader) io.ReadCloser {
	if rc, ok := r.(io.ReadCloser); ok {
		return rc
	}
	return io.NopCloser(r)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func writeCloser(w io.Writer) io.WriteCloser {
	if wc, ok := w.(io.WriteCloser); ok {
		return wc
	}
	return nopWriteCloser{w}
}
