package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sluicehq/sluice/internal/testenv"
)

// era is one protocol era a client negotiates with Sluice.
type era struct {
	name    string
	version string
}

var eras = []era{
	{name: "modern", version: modernVersion},
	{name: "legacy", version: legacyVersion},
}

// fixture is what one era's subtests share: one client session to one
// Sluice, and what that client has received.
type fixture struct {
	era  era
	cs   *mcp.ClientSession
	ev   *events
	wire *wire
	u    *upstreams
}

// TestServe runs one sluice serve in front of the three reference servers and
// checks, with a client of each era, every feature the servers offer.
func TestServe(t *testing.T) {
	u, url := startServe(t)
	checks := []struct {
		name string
		run  func(*testing.T, *fixture)
	}{
		{"tools/list", testToolsList},
		{"tools/call", testToolsCall},
		{"progress", testProgress},
		{"cancellation", testCancellation},
		{"elicitation", testElicitation},
		{"sampling", testSampling},
		{"resources", testResources},
		{"subscriptions", testSubscriptions},
		{"prompts", testPrompts},
		{"completion", testCompletion},
	}
	for _, e := range eras {
		t.Run(e.name, func(t *testing.T) {
			ev, w := newEvents(), &wire{}
			f := &fixture{era: e, cs: connectHTTP(t, url, e.version, ev, w), ev: ev, wire: w, u: u}
			for _, c := range checks {
				t.Run(c.name, func(t *testing.T) { c.run(t, f) })
			}
		})
	}
}

// wantTools are tools of each server that the checks use, under the names
// Sluice exposes them by. The reference servers have more; these are read
// from their sources at the pinned versions.
var wantTools = []string{
	"everything__echo",
	"everything__get-sum",
	"everything__toggle-subscriber-updates",
	"everything__trigger-elicitation-request",
	"everything__trigger-long-running-operation",
	"everything__trigger-sampling-request",
	"filesystem__list_directory",
	"filesystem__read_text_file",
	"filesystem__write_file",
	"memory__create_entities",
	"memory__open_nodes",
	"memory__read_graph",
}

func testToolsList(t *testing.T, f *fixture) {
	ctx := subtestContext(t)
	names := toolNames(ctx, t, f.cs)
	// Every tool is namespaced by the server that owns it, and each server
	// contributes.
	perServer := map[string]int{}
	for _, n := range names {
		server, tool, ok := strings.Cut(n, "__")
		if !ok || tool == "" {
			t.Errorf("tool %q is not namespaced", n)
			continue
		}
		perServer[server]++
	}
	if got, want := slices.Sorted(maps.Keys(perServer)), []string{everythingServer, filesystemServer, memoryServer}; !slices.Equal(got, want) {
		t.Errorf("servers contributing tools = %v, want %v (tools: %v)", got, want, names)
	}
	checkWantTools(t, names)
}

// toolNames lists the names of all tools, page after page.
func toolNames(ctx context.Context, t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			t.Fatalf("tools/list: %v", err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// checkWantTools checks that names has every tool of [wantTools].
func checkWantTools(t *testing.T, names []string) {
	t.Helper()
	var got []string
	for _, n := range names {
		if slices.Contains(wantTools, n) {
			got = append(got, n)
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff(wantTools, got); diff != "" {
		t.Errorf("tools/list lacks tools (-want +got):\n%s\nall tools: %v", diff, names)
	}
}

// graph is the structured result of the memory server's open_nodes.
type graph struct {
	Entities []struct {
		Name         string   `json:"name"`
		EntityType   string   `json:"entityType"`
		Observations []string `json:"observations"`
	} `json:"entities"`
}

func testToolsCall(t *testing.T, f *fixture) {
	written := filepath.Join(f.u.root, "written-"+f.era.name+".txt")
	writtenTxt := "written through sluice by a " + f.era.name + " client\n"
	entity := "sluice-e2e-" + f.era.name
	observation := "created through sluice by a " + f.era.name + " client"

	steps := []struct {
		name  string
		tool  string
		args  map[string]any
		want  string                                      // the text of the result, when check is nil
		check func(t *testing.T, res *mcp.CallToolResult) // further checks
	}{
		{
			name: "everything echo",
			tool: "everything__echo",
			args: map[string]any{"message": "hello " + f.era.name},
			want: "Echo: hello " + f.era.name,
		},
		{
			name: "everything get-sum",
			tool: "everything__get-sum",
			args: map[string]any{"a": 2, "b": 40},
			want: "The sum of 2 and 40 is 42.",
		},
		{
			name: "filesystem read seed",
			tool: "filesystem__read_text_file",
			args: map[string]any{"path": f.u.seed},
			want: f.u.seedTxt,
		},
		{
			name: "filesystem write",
			tool: "filesystem__write_file",
			args: map[string]any{"path": written, "content": writtenTxt},
			want: "Successfully wrote to " + written,
			check: func(t *testing.T, _ *mcp.CallToolResult) {
				got, err := os.ReadFile(written)
				if err != nil {
					t.Fatalf("the file written through sluice: %v", err)
				}
				if diff := cmp.Diff(writtenTxt, string(got)); diff != "" {
					t.Errorf("file on disk (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "filesystem read back",
			tool: "filesystem__read_text_file",
			args: map[string]any{"path": written},
			want: writtenTxt,
		},
		{
			name: "filesystem list",
			tool: "filesystem__list_directory",
			args: map[string]any{"path": f.u.root},
			check: func(t *testing.T, res *mcp.CallToolResult) {
				lines := strings.Split(text(res), "\n")
				for _, want := range []string{"[FILE] seed.txt", "[DIR] sub", "[FILE] " + filepath.Base(written)} {
					if !slices.Contains(lines, want) {
						t.Errorf("list_directory lacks %q:\n%s", want, text(res))
					}
				}
			},
		},
		{
			name: "memory create",
			tool: "memory__create_entities",
			args: map[string]any{"entities": []map[string]any{
				{"name": entity, "entityType": "test", "observations": []string{observation}},
			}},
			check: func(t *testing.T, _ *mcp.CallToolResult) {
				// The memory server saves to the file given in its
				// environment by Sluice's configuration.
				data, err := os.ReadFile(f.u.memFile)
				if err != nil {
					t.Fatalf("memory file: %v", err)
				}
				if !strings.Contains(string(data), `"name":"`+entity+`"`) {
					t.Errorf("memory file lacks entity %q:\n%s", entity, data)
				}
			},
		},
		{
			name: "memory open",
			tool: "memory__open_nodes",
			args: map[string]any{"names": []string{entity}},
			check: func(t *testing.T, res *mcp.CallToolResult) {
				var g graph
				if err := json.Unmarshal([]byte(text(res)), &g); err != nil {
					t.Fatalf("open_nodes result: %v\n%s", err, text(res))
				}
				if len(g.Entities) != 1 {
					t.Fatalf("open_nodes returned %d entities, want 1:\n%s", len(g.Entities), text(res))
				}
				e := g.Entities[0]
				if diff := cmp.Diff([]string{entity, "test", observation}, append([]string{e.Name, e.EntityType}, e.Observations...)); diff != "" {
					t.Errorf("entity read back (-want +got):\n%s", diff)
				}
			},
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			ctx := subtestContext(t)
			res := call(ctx, t, f.cs, s.tool, s.args)
			if s.check == nil || s.want != "" {
				if diff := cmp.Diff(s.want, text(res)); diff != "" {
					t.Errorf("%s result (-want +got):\n%s", s.tool, diff)
				}
			}
			if s.check != nil {
				s.check(t, res)
			}
		})
	}
}

// longRunning is the everything server's tool that sleeps in steps and
// reports progress after each.
const longRunning = "everything__trigger-long-running-operation"

func testProgress(t *testing.T, f *fixture) {
	ctx := subtestContext(t)
	drain(f.ev.progress)
	token := "progress-" + f.era.name
	params := &mcp.CallToolParams{Name: longRunning, Arguments: map[string]any{"duration": 1.2, "steps": 3}}
	params.SetProgressToken(token)
	res, err := f.cs.CallTool(ctx, params)
	if err != nil {
		t.Fatalf("call %s: %v", longRunning, err)
	}
	if diff := cmp.Diff("Long running operation completed. Duration: 1.2 seconds, Steps: 3.", text(res)); diff != "" {
		t.Errorf("result (-want +got):\n%s", diff)
	}
	type step struct {
		Token           any
		Progress, Total float64
	}
	var got []step
	timeout := time.After(5 * time.Second)
	for len(got) < 3 {
		select {
		case p := <-f.ev.progress:
			got = append(got, step{p.ProgressToken, p.Progress, p.Total})
		case <-timeout:
			t.Fatalf("got %d progress notifications, want 3: %+v", len(got), got)
		}
	}
	want := []step{{token, 1, 3}, {token, 2, 3}, {token, 3, 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("progress notifications (-want +got):\n%s", diff)
	}
}

func testCancellation(t *testing.T, f *fixture) {
	ctx := subtestContext(t)
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	drain(f.ev.progress)
	token := "cancelled-" + f.era.name
	// A progress step every two seconds; the call is cancelled well before
	// the first.
	params := &mcp.CallToolParams{Name: longRunning, Arguments: map[string]any{"duration": 40, "steps": 20}}
	params.SetProgressToken(token)
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		_, err := f.cs.CallTool(callCtx, params)
		done <- err
	}()
	// Let the call reach the server before cancelling it.
	time.Sleep(500 * time.Millisecond)
	cancel()
	cancelled := time.Now()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("cancelled call succeeded after %v", time.Since(started))
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call returned %v, want context.Canceled", err)
		}
		if d := time.Since(cancelled); d > 2*time.Second {
			t.Errorf("cancelled call returned %v after cancellation", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled call did not return within 5s")
	}
	// The reference server goes on with the operation it was told to
	// cancel (it ignores the cancellation), but the client asked for no more
	// of it: its progress must not reach the client.
	quiet := time.After(2500 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case p := <-f.ev.progress:
			if p.ProgressToken == token {
				t.Errorf("progress %v/%v of the cancelled call reached the client", p.Progress, p.Total)
			}
		case <-quiet:
			waiting = false
		}
	}
	// The session goes on working.
	res := call(ctx, t, f.cs, "everything__echo", map[string]any{"message": "after cancel"})
	if diff := cmp.Diff("Echo: after cancel", text(res)); diff != "" {
		t.Errorf("call after cancellation (-want +got):\n%s", diff)
	}
	res = call(ctx, t, f.cs, longRunning, map[string]any{"duration": 0.2, "steps": 2})
	if diff := cmp.Diff("Long running operation completed. Duration: 0.2 seconds, Steps: 2.", text(res)); diff != "" {
		t.Errorf("long-running call after cancellation (-want +got):\n%s", diff)
	}
}

// Patterns of how a server-to-client request reaches the client: in the
// modern era as an input_required result, answered by retrying the call with
// inputResponses; in the legacy era as a JSON-RPC request on an SSE stream.
var (
	inputRequiredRE  = regexp.MustCompile(`"resultType"\s*:\s*"input_required"`)
	inputResponsesRE = regexp.MustCompile(`"inputResponses"\s*:\s*\{`)
)

// checkCarried checks that the server's request of the given method crossed
// to the client as its era requires, in what the client sent and received
// after m.
func checkCarried(t *testing.T, f *fixture, m wireMark, method string) {
	t.Helper()
	sent, received := f.wire.since(m)
	inputRequired := inputRequiredRE.MatchString(received)
	retried := inputResponsesRE.MatchString(sent)
	// Without an input_required result, the method's name can only have come
	// in a request.
	request := regexp.MustCompile(`"method"\s*:\s*"` + regexp.QuoteMeta(method) + `"`).MatchString(received)
	switch f.era.version {
	case modernVersion:
		if !inputRequired || !retried {
			t.Errorf("modern era: %s was not carried as input_required (input_required result: %v, retry with inputResponses: %v)\nreceived:\n%s\nsent:\n%s",
				method, inputRequired, retried, received, sent)
		}
	case legacyVersion:
		if !request || inputRequired {
			t.Errorf("legacy era: %s was not carried as a request to the client (request: %v, input_required result: %v)\nreceived:\n%s",
				method, request, inputRequired, received)
		}
	}
}

func testElicitation(t *testing.T, f *fixture) {
	ctx := subtestContext(t)
	drain(f.ev.elicit)
	m := f.wire.mark()
	res := call(ctx, t, f.cs, "everything__trigger-elicitation-request", nil)
	checkCarried(t, f, m, "elicitation/create")
	select {
	case p := <-f.ev.elicit:
		if diff := cmp.Diff("Please provide inputs for the following fields:", p.Message); diff != "" {
			t.Errorf("elicitation message (-want +got):\n%s", diff)
		}
		schema, err := json.Marshal(p.RequestedSchema)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(schema), `"name"`) {
			t.Errorf("requested schema lacks the name field: %s", schema)
		}
	default:
		t.Fatal("the elicitation handler was not called")
	}
	got := text(res)
	for _, want := range []string{
		"User provided the requested information!",
		"- Name: Ada Lovelace",
		"- Agreed to terms: true",
		"- Email: ada@example.com",
		"- Favorite Integer: 7",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("result lacks %q:\n%s", want, got)
		}
	}
}

func testSampling(t *testing.T, f *fixture) {
	ctx := subtestContext(t)
	drain(f.ev.sample)
	prompt := "say something, " + f.era.name + " client"
	m := f.wire.mark()
	defer checkCarried(t, f, m, "sampling/createMessage")
	res := call(ctx, t, f.cs, "everything__trigger-sampling-request", map[string]any{"prompt": prompt, "maxTokens": 20})
	select {
	case p := <-f.ev.sample:
		if p.MaxTokens != 20 || len(p.Messages) != 1 {
			t.Errorf("sampling request: maxTokens %d, %d messages; want 20, 1", p.MaxTokens, len(p.Messages))
		} else if tc, ok := p.Messages[0].Content.(*mcp.TextContent); !ok || !strings.HasSuffix(tc.Text, prompt) {
			t.Errorf("sampling message %#v does not carry the prompt %q", p.Messages[0].Content, prompt)
		}
	default:
		t.Fatal("the sampling handler was not called")
	}
	got := text(res)
	for _, want := range []string{samplingText, samplingModel} {
		if !strings.Contains(got, want) {
			t.Errorf("result lacks %q:\n%s", want, got)
		}
	}
}

// Resources of the everything and memory servers.
const (
	docURI       = "demo://resource/static/document/instructions.md"
	textTemplate = "demo://resource/dynamic/text/{resourceId}"
	graphURI     = "memory://knowledge-graph"
)

func testResources(t *testing.T, f *fixture) {
	t.Run("list", func(t *testing.T) {
		ctx := subtestContext(t)
		var uris []string
		for r, err := range f.cs.Resources(ctx, nil) {
			if err != nil {
				t.Fatalf("resources/list: %v", err)
			}
			uris = append(uris, r.URI)
		}
		for _, want := range []string{docURI, graphURI} {
			if !slices.Contains(uris, want) {
				t.Errorf("resources/list lacks %s: %v", want, uris)
			}
		}
		var templates []string
		for r, err := range f.cs.ResourceTemplates(ctx, nil) {
			if err != nil {
				t.Fatalf("resources/templates/list: %v", err)
			}
			templates = append(templates, r.URITemplate)
		}
		if !slices.Contains(templates, textTemplate) {
			t.Errorf("resources/templates/list lacks %s: %v", textTemplate, templates)
		}
	})

	// The everything server serves this document from its package.
	doc, err := os.ReadFile(filepath.Join(testenv.NPMPackages(t), filepath.FromSlash(testenv.EverythingPackage), "dist", "docs", "instructions.md"))
	if err != nil {
		t.Fatal(err)
	}
	reads := []struct {
		name  string
		uri   string
		check func(t *testing.T, c *mcp.ResourceContents)
	}{
		{"static document", docURI, func(t *testing.T, c *mcp.ResourceContents) {
			if diff := cmp.Diff(string(doc), c.Text); diff != "" {
				t.Errorf("document (-want +got):\n%s", diff)
			}
		}},
		{"template", "demo://resource/dynamic/text/3", func(t *testing.T, c *mcp.ResourceContents) {
			if want := "Resource 3: This is a plaintext resource created at "; !strings.HasPrefix(c.Text, want) {
				t.Errorf("text = %q, want prefix %q", c.Text, want)
			}
		}},
		{"memory graph", graphURI, func(t *testing.T, c *mcp.ResourceContents) {
			var g graph
			if err := json.Unmarshal([]byte(c.Text), &g); err != nil {
				t.Fatalf("graph: %v\n%s", err, c.Text)
			}
		}},
	}
	for _, r := range reads {
		t.Run("read "+r.name, func(t *testing.T) {
			ctx := subtestContext(t)
			res, err := f.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: r.uri})
			if err != nil {
				t.Fatalf("resources/read %s: %v", r.uri, err)
			}
			if len(res.Contents) != 1 {
				t.Fatalf("resources/read %s: %d contents, want 1", r.uri, len(res.Contents))
			}
			if res.Contents[0].URI != r.uri {
				t.Errorf("content URI = %q, want %q", res.Contents[0].URI, r.uri)
			}
			r.check(t, res.Contents[0])
		})
	}
}

// testSubscriptions subscribes to a resource of two servers, has each server
// change it, and checks that the update arrives while subscribed and no
// longer after unsubscribing.
func testSubscriptions(t *testing.T, f *fixture) {
	toggle := "everything__toggle-subscriber-updates"
	seq := 0
	createEntity := func(ctx context.Context, t *testing.T) {
		seq++
		call(ctx, t, f.cs, "memory__create_entities", map[string]any{"entities": []map[string]any{
			{"name": "subscription-" + f.era.name + "-" + strconv.Itoa(seq), "entityType": "test", "observations": []string{}},
		}})
	}
	cases := []struct {
		name string
		uri  string
		// change makes the server send an update for uri to its subscribers.
		change func(ctx context.Context, t *testing.T)
		// stop undoes what change left running, if anything.
		stop func(ctx context.Context, t *testing.T)
	}{
		{
			// Turning simulated updates on sends one at once for every
			// subscribed resource, then one every five seconds.
			name:   "everything",
			uri:    docURI,
			change: func(ctx context.Context, t *testing.T) { call(ctx, t, f.cs, toggle, nil) },
			stop:   func(ctx context.Context, t *testing.T) { call(ctx, t, f.cs, toggle, nil) },
		},
		{
			name:   "memory",
			uri:    graphURI,
			change: createEntity,
			stop:   func(context.Context, *testing.T) {},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := subtestContext(t)
			drain(f.ev.updated)
			if err := f.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: c.uri}); err != nil {
				t.Fatalf("subscribe %s: %v", c.uri, err)
			}
			c.change(ctx, t)
			select {
			case got := <-f.ev.updated:
				if got != c.uri {
					t.Errorf("update for %q, want %q", got, c.uri)
				}
			case <-time.After(8 * time.Second):
				t.Errorf("no update for %s within 8s", c.uri)
			}
			c.stop(ctx, t)

			if err := f.cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: c.uri}); err != nil {
				t.Fatalf("unsubscribe %s: %v", c.uri, err)
			}
			drain(f.ev.updated)
			c.change(ctx, t)
			select {
			case got := <-f.ev.updated:
				t.Errorf("update for %q after unsubscribing", got)
			case <-time.After(time.Second):
			}
			c.stop(ctx, t)
		})
	}
}

func testPrompts(t *testing.T, f *fixture) {
	ctx := subtestContext(t)
	var names []string
	for p, err := range f.cs.Prompts(ctx, nil) {
		if err != nil {
			t.Fatalf("prompts/list: %v", err)
		}
		names = append(names, p.Name)
	}
	for _, want := range []string{"everything__simple-prompt", "everything__args-prompt", "everything__completable-prompt"} {
		if !slices.Contains(names, want) {
			t.Errorf("prompts/list lacks %s: %v", want, names)
		}
	}

	gets := []struct {
		name string
		args map[string]string
		want string
	}{
		{"everything__simple-prompt", nil, "This is a simple prompt without arguments."},
		{"everything__args-prompt", map[string]string{"city": "Lisbon"}, "What's weather in Lisbon?"},
		{"everything__args-prompt", map[string]string{"city": "Porto", "state": "Norte"}, "What's weather in Porto, Norte?"},
		{"everything__completable-prompt", map[string]string{"department": "Sales", "name": "Eve"}, "Please promote Eve to the head of the Sales team."},
	}
	for _, g := range gets {
		res, err := f.cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: g.name, Arguments: g.args})
		if err != nil {
			t.Errorf("prompts/get %s %v: %v", g.name, g.args, err)
			continue
		}
		var got []string
		for _, m := range res.Messages {
			if tc, ok := m.Content.(*mcp.TextContent); ok {
				got = append(got, tc.Text)
			}
		}
		if diff := cmp.Diff([]string{g.want}, got); diff != "" {
			t.Errorf("prompts/get %s %v (-want +got):\n%s", g.name, g.args, diff)
		}
	}
}

func testCompletion(t *testing.T, f *fixture) {
	cases := []struct {
		name    string
		ref     *mcp.CompleteReference
		arg     mcp.CompleteParamsArgument
		context map[string]string
		want    []string
	}{
		{
			name: "prompt argument",
			ref:  &mcp.CompleteReference{Type: "ref/prompt", Name: "everything__completable-prompt"},
			arg:  mcp.CompleteParamsArgument{Name: "department", Value: "S"},
			want: []string{"Sales", "Support"},
		},
		{
			name:    "prompt argument with context",
			ref:     &mcp.CompleteReference{Type: "ref/prompt", Name: "everything__completable-prompt"},
			arg:     mcp.CompleteParamsArgument{Name: "name", Value: ""},
			context: map[string]string{"department": "Engineering"},
			want:    []string{"Alice", "Bob", "Charlie"},
		},
		{
			name: "resource template",
			ref:  &mcp.CompleteReference{Type: "ref/resource", URI: textTemplate},
			arg:  mcp.CompleteParamsArgument{Name: "resourceId", Value: "12"},
			want: []string{"12"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := subtestContext(t)
			params := &mcp.CompleteParams{Ref: c.ref, Argument: c.arg}
			if c.context != nil {
				params.Context = &mcp.CompleteContext{Arguments: c.context}
			}
			res, err := f.cs.Complete(ctx, params)
			if err != nil {
				t.Fatalf("completion/complete: %v", err)
			}
			if diff := cmp.Diff(c.want, res.Completion.Values); diff != "" {
				t.Errorf("completions (-want +got):\n%s", diff)
			}
		})
	}
}

// drain empties a channel of what earlier checks left in it.
func drain[T any](c chan T) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
