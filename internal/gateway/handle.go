package gateway

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/transport/upstream"
)

// callCtx travels with a call through the guard chain to the terminal
// handler: who asked, and where related messages go.
type callCtx struct {
	sess   *Session
	stream Stream
	st     *state
	// passthrough is set when a modern server's result goes unchanged to a
	// modern client.
	passthrough bool
	// ctx is the context of the client's request, for work done on its
	// behalf outside the chain (relaying a server's requests).
	ctx context.Context
	// parked is the upstream call this request left waiting for input
	// (bridged for a modern client), if any.
	parked *parkedCall
	// start is when the request reached the gateway; logs of abandoned
	// calls say how long it had been inside Sluice.
	start time.Time
	// checkOnly makes the terminal handler answer {} without going
	// upstream: the call only asks the guards (see allowSubscription).
	checkOnly bool
	// reqID is the id of the client's request.
	reqID jsontext.Value
}

type callCtxKey struct{}

func withCallCtx(ctx context.Context, cc *callCtx) context.Context {
	return context.WithValue(ctx, callCtxKey{}, cc)
}

func callCtxFrom(ctx context.Context) *callCtx {
	cc, _ := ctx.Value(callCtxKey{}).(*callCtx)
	return cc
}

// HandleRequest answers one client request. Messages related to it go to
// st before the response is returned.
func (s *Session) HandleRequest(ctx context.Context, m *mcp.Message, st Stream) *mcp.Message {
	s.touch()
	defer s.touch() // a long call is activity until it ends
	g := s.g
	state := g.st.Load()
	p := state.profiles[s.profile]
	if p == nil {
		return errResp(m.ID, mcp.CodeInvalidRequest, "unknown profile")
	}
	if s.era == mcp.EraLegacy && m.Method != mcp.MethodInitialize && m.Method != mcp.MethodPing && s.version == "" && !s.ephemeral {
		return errResp(m.ID, mcp.CodeInvalidRequest, "session not initialized")
	}
	// One context carries both the client's cancellation and the call
	// timeout (a server with its own timeout tightens it in forward).
	var cancel context.CancelFunc
	if m.Method == mcp.MethodSubscriptionsListen {
		ctx, cancel = context.WithCancel(ctx)
	} else {
		ctx, cancel = context.WithTimeout(ctx, state.maxTimeout+state.hold)
	}
	defer cancel()
	defer s.track(m.ID, cancel)()
	cc := &callCtx{sess: s, stream: st, st: state, start: time.Now(), reqID: m.ID}
	ctx = withCallCtx(ctx, cc)
	if s.era == mcp.EraLegacy {
		// Guards may ask a legacy client while its call waits (approval).
		ctx = guard.WithAsker(ctx, clientAsker{s: s, stream: st})
	}
	cc.ctx = ctx

	var (
		res jsontext.Value
		err error
	)
	if s.era == mcp.EraModern && removedInModern(m.Method) {
		return errResp(m.ID, mcp.CodeMethodNotFound, "method not found: "+m.Method)
	}
	switch m.Method {
	case mcp.MethodLoggingSetLevel, mcp.MethodSubscriptionsListen, mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsubscribe:
		// Answered (at least partly) without the guard chain: the method
		// filters are applied here.
		if err := state.allow.CheckMethod(s.newCall(ctx, state, p, "", m.Method, "", m.Params)); err != nil {
			return mcp.NewErrorResponse(m.ID, g.rpcError(err, m.Method))
		}
	}
	switch m.Method {
	case mcp.MethodInitialize:
		res, err = s.initialize(ctx, p, m.Params)
	case mcp.MethodDiscover:
		res, err = s.discover(ctx, p)
	case mcp.MethodPing:
		res = jsontext.Value(`{}`)
	case mcp.MethodToolsList, mcp.MethodPromptsList, mcp.MethodResourcesList, mcp.MethodResourceTemplatesList:
		res, err = s.listAll(ctx, state, p, m.Method, m.Params)
	case mcp.MethodToolsCall, mcp.MethodPromptsGet:
		res, err = s.callNamed(ctx, state, p, m.Method, m.Params)
	case mcp.MethodResourcesRead, mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsubscribe:
		res, err = s.callResource(ctx, state, p, m.Method, m.Params)
	case mcp.MethodCompletionComplete:
		res, err = s.complete(ctx, state, p, m.Params)
	case mcp.MethodLoggingSetLevel:
		res, err = s.setLevel(ctx, p, m.Params)
	case mcp.MethodSubscriptionsListen:
		res, err = s.listenSubscriptions(ctx, state, p, m.ID, m.Params, st)
	default:
		return errResp(m.ID, mcp.CodeMethodNotFound, "method not found: "+m.Method)
	}
	if err != nil {
		return mcp.NewErrorResponse(m.ID, g.rpcError(err, m.Method))
	}
	if s.era == mcp.EraModern && !cc.passthrough {
		res = modernResult(m.Method, res)
	}
	return mcp.NewResult(m.ID, res)
}

// modernResult completes a result that Sluice built, or that came from a
// legacy server, with what the modern era requires: resultType, and caching
// hints on cacheable results. Lists are filtered per caller, so a shared
// cache must not serve them: the scope is private.
func modernResult(method string, res jsontext.Value) jsontext.Value {
	res = withResultType(res)
	switch method {
	case mcp.MethodDiscover, mcp.MethodToolsList, mcp.MethodPromptsList, mcp.MethodResourcesList, mcp.MethodResourceTemplatesList, mcp.MethodResourcesRead:
		if _, ok, _ := mcp.Lookup(res, "ttlMs"); !ok {
			res, _ = mcp.SetMember(res, "ttlMs", jsontext.Value("0"))
		}
		res, _ = mcp.SetMember(res, "cacheScope", jsontext.Value(`"private"`))
	}
	return res
}

// removedInModern lists methods of the legacy era that 2026-07-28 removed.
func removedInModern(method string) bool {
	switch method {
	case mcp.MethodInitialize, mcp.MethodPing, mcp.MethodLoggingSetLevel, mcp.MethodResourcesSubscribe, mcp.MethodResourcesUnsubscribe:
		return true
	}
	return false
}

func errResp(id jsontext.Value, code int64, msg string) *mcp.Message {
	return mcp.NewErrorResponse(id, mcp.NewError(code, msg))
}

// rpcError decides what the client sees for err: denials and upstream
// errors keep their codes; internal failures are logged with an ID the
// client also gets, and nothing else.
func (g *Gateway) rpcError(err error, method string) *mcp.Error {
	var (
		rpc    *mcp.Error
		denied *guard.DeniedError
	)
	switch {
	case errors.As(err, &denied):
		d := denied.Decision
		g.log.Info("call denied", "id", denied.CallID, "method", method, "guard", d.Guard, "reason", d.Reason, "rule", d.Rule)
		return denied.RPCError()
	case errors.As(err, &rpc):
		return rpc
	case errors.Is(err, context.DeadlineExceeded):
		return mcp.NewError(mcp.CodeTimeout, "sluice: the upstream server did not answer in time")
	case errors.Is(err, context.Canceled):
		return mcp.NewError(mcp.CodeInternalError, "sluice: request cancelled")
	case errors.Is(err, mcp.ErrTooLarge):
		return mcp.NewError(mcp.CodeMessageTooLarge, "sluice: the upstream's answer exceeds the message size limit")
	case errors.Is(err, errUpstream):
		id := g.newCallID()
		g.log.Warn("upstream failure", "id", id, "method", method, "err", err)
		return &mcp.Error{Code: mcp.CodeUpstreamUnavailable, Message: "sluice: upstream server unavailable", Data: idData(id)}
	}
	id := g.newCallID()
	g.log.Error("request failed", "id", id, "method", method, "err", err)
	return &mcp.Error{Code: mcp.CodeInternalError, Message: "sluice: internal error", Data: idData(id)}
}

func idData(id string) jsontext.Value {
	b, _ := jsontext.AppendQuote([]byte(`{"id":`), id)
	return append(b, '}')
}

func invalidParams(msg string) error { return mcp.NewError(mcp.CodeInvalidParams, msg) }

// initialize answers a legacy client's handshake from what the upstreams
// declared; upstream sessions are opened on first use.
func (s *Session) initialize(ctx context.Context, p *profile, params jsontext.Value) (jsontext.Value, error) {
	if s.era != mcp.EraLegacy {
		return nil, mcp.NewError(mcp.CodeInvalidRequest, "initialize is not part of protocol version "+s.version)
	}
	v, _, err := mcp.LookupString(params, "protocolVersion")
	if err != nil {
		return nil, invalidParams(err.Error())
	}
	version := mcp.LatestLegacy
	if slices.Contains(mcp.LegacyVersions, v) {
		version = v
	}
	s.caps, _, _ = mcp.Lookup(params, "capabilities")
	s.clientInfo, _, _ = mcp.Lookup(params, "clientInfo")
	s.client.Name, _, _ = mcp.LookupString(s.clientInfo, "name")
	s.client.Version, _, _ = mcp.LookupString(s.clientInfo, "version")
	s.client.Capabilities = s.caps
	s.version = version

	caps, info, instr := s.g.describe(ctx, p)
	out := []byte(`{"protocolVersion":`)
	out, _ = jsontext.AppendQuote(out, version)
	out = append(out, `,"capabilities":`...)
	out = append(out, caps...)
	out = append(out, `,"serverInfo":`...)
	out = append(out, info...)
	if instr != "" {
		out = append(out, `,"instructions":`...)
		out, _ = jsontext.AppendQuote(out, instr)
	}
	return append(out, '}'), nil
}

// discover answers server/discover.
func (s *Session) discover(ctx context.Context, p *profile) (jsontext.Value, error) {
	caps, info, instr := s.g.describe(ctx, p)
	out := []byte(`{"supportedVersions":["` + mcp.LatestModern + `"],"capabilities":`)
	out = append(out, caps...)
	if instr != "" {
		out = append(out, `,"instructions":`...)
		out, _ = jsontext.AppendQuote(out, instr)
	}
	out = append(out, `,"_meta":{"`+mcp.MetaServerInfo+`":`...)
	out = append(out, info...)
	out = append(out, `}}`...)
	return out, nil
}

// describe returns the capabilities, serverInfo and instructions Sluice
// presents for a profile: the upstream's own when it fronts one server, a
// merge otherwise.
func (g *Gateway) describe(ctx context.Context, p *profile) (caps, info jsontext.Value, instructions string) {
	self, _ := jsontext.AppendQuote([]byte(`{"name":"sluice","version":`), g.opts.Version)
	self = append(self, '}')
	infos := make([]*serverInfo, 0, len(p.servers))
	for _, name := range p.servers {
		up := g.upstream(name)
		if up == nil {
			continue
		}
		si, err := up.serverInfo(ctx)
		if err != nil {
			g.log.Warn("upstream capabilities unknown", "server", name, "err", err)
			continue
		}
		infos = append(infos, si)
	}
	if len(p.servers) == 1 && len(infos) == 1 {
		si := infos[0]
		caps = si.caps
		if len(caps) == 0 {
			caps = jsontext.Value(`{}`)
		}
		info = si.serverInfo
		if len(info) == 0 {
			info = self
		}
		return withoutTasks(caps), info, si.instructions
	}
	var tools, prompts, resources, subscribe, logging, completions bool
	var instr []string
	for _, si := range infos {
		has := func(k string) bool { _, ok, _ := mcp.Lookup(si.caps, k); return ok }
		tools = tools || has("tools")
		prompts = prompts || has("prompts")
		resources = resources || has("resources")
		logging = logging || has("logging")
		completions = completions || has("completions")
		if v, ok, _ := mcp.LookupPath(si.caps, "resources", "subscribe"); ok && string(v) == "true" {
			subscribe = true
		}
		if si.instructions != "" {
			instr = append(instr, si.instructions)
		}
	}
	var b strings.Builder
	b.WriteString("{")
	sep := ""
	add := func(s string) { b.WriteString(sep); b.WriteString(s); sep = "," }
	if tools {
		add(`"tools":{"listChanged":true}`)
	}
	if prompts {
		add(`"prompts":{"listChanged":true}`)
	}
	if resources {
		add(`"resources":{"listChanged":true,"subscribe":` + strconv.FormatBool(subscribe) + `}`)
	}
	if logging {
		add(`"logging":{}`)
	}
	if completions {
		add(`"completions":{}`)
	}
	b.WriteString("}")
	return jsontext.Value(b.String()), self, strings.Join(instr, "\n\n")
}

// withoutTasks drops capabilities Sluice does not carry yet.
func withoutTasks(caps jsontext.Value) jsontext.Value {
	out, err := mcp.DeleteMember(caps, "tasks")
	if err != nil {
		return caps
	}
	return out
}

// listAll aggregates a list method over the profile's servers, each page
// through the guard chain so guards can filter what the caller sees.
func (s *Session) listAll(ctx context.Context, st *state, p *profile, method string, params jsontext.Value) (jsontext.Value, error) {
	offset := 0
	if c, ok, _ := mcp.Lookup(params, "cursor"); ok && string(c) != "null" {
		cursor, err := unquote(c)
		if err != nil {
			return nil, invalidParams("invalid cursor")
		}
		if offset, ok = s.g.cursors.parse(cursor, s.profile, method); !ok {
			return nil, invalidParams("invalid cursor")
		}
	}
	member := listMember(method)
	type part struct {
		items []jsontext.Value
		extra jsontext.Value
		err   error
	}
	parts := make([]part, len(p.servers))
	var wg sync.WaitGroup
	for i, server := range p.servers {
		if !s.g.offers(ctx, server, method) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := s.newCall(ctx, st, p, server, method, "", params)
			res, err := st.chain.Handle(ctx, c)
			if err != nil {
				parts[i].err = err
				return
			}
			if res.Error != nil {
				parts[i].err = res.Error
				return
			}
			arr, _, _ := mcp.Lookup(res.Result, member)
			items := splitArray(arr)
			if p.prefix && (method == mcp.MethodToolsList || method == mcp.MethodPromptsList) {
				for j, it := range items {
					name, _, err := mcp.LookupString(it, "name")
					if err != nil {
						continue
					}
					q, _ := jsontext.AppendQuote(nil, st.expose(p, server, name))
					if out, err := mcp.SetMember(it, "name", q); err == nil {
						items[j] = out
					}
				}
			}
			parts[i].items = items
			parts[i].extra = res.Result
		}()
	}
	wg.Wait()
	var all []jsontext.Value
	var firstErr error
	ok := 0
	for i, pt := range parts {
		if pt.items == nil && pt.err == nil && pt.extra == nil {
			continue // the server does not offer this feature
		}
		if pt.err != nil {
			if firstErr == nil {
				firstErr = pt.err
			}
			s.g.log.Warn("list failed on an upstream", "server", p.servers[i], "method", method, "err", pt.err)
			continue
		}
		ok++
		all = append(all, pt.items...)
	}
	if ok == 0 && firstErr != nil {
		return nil, firstErr
	}
	// Sluice pages what it merged with cursors of its own.
	offset = min(offset, len(all))
	end := min(offset+listPageSize, len(all))
	out := []byte(`{"`)
	out = append(out, member...)
	out = append(out, `":`...)
	out = mcp.AppendArray(out, all[offset:end])
	if end < len(all) {
		out = append(out, `,"nextCursor":`...)
		out, _ = jsontext.AppendQuote(out, s.g.cursors.make(s.profile, method, end))
	}
	if len(p.servers) == 1 && parts[0].extra != nil {
		// Keep what the server said besides the list (ttlMs, _meta, ...).
		out = appendListExtras(out, parts[0].extra, member)
	}
	return append(out, '}'), nil
}

func (s *Session) newCall(ctx context.Context, st *state, p *profile, server, method, name string, params jsontext.Value) *guard.Call {
	principal := s.callPrincipal(ctx)
	if principal == anonymous {
		principal = nil // guards must not take the placeholder for an identity
	}
	c := &guard.Call{
		ID:        s.g.newCallID(),
		Principal: principal,
		Client:    s.client,
		Transport: transportFrom(ctx),
		Era:       s.era,
		Direction: guard.ToServer,
		Profile:   p.name,
		Server:    server,
		Prefix:    st.prefix(p, server),
		Method:    method,
		Name:      name,
		Params:    params,
	}
	if !s.ephemeral {
		c.Session = s.id
	}
	if cc := callCtxFrom(ctx); cc != nil {
		c.RequestID = cc.reqID
	}
	return c
}

// callNamed routes tools/call and prompts/get by their exposed name.
func (s *Session) callNamed(ctx context.Context, st *state, p *profile, method string, params jsontext.Value) (jsontext.Value, error) {
	exposed, ok, err := mcp.LookupString(params, "name")
	if err != nil || !ok {
		return nil, invalidParams(`"name" is required`)
	}
	server, local, ok := st.route(p, exposed)
	if !ok {
		if method == mcp.MethodToolsCall {
			return nil, invalidParams("unknown tool: " + exposed)
		}
		return nil, invalidParams("unknown prompt: " + exposed)
	}
	if local != exposed {
		q, _ := jsontext.AppendQuote(nil, local)
		params, err = mcp.SetMember(params, "name", q)
		if err != nil {
			return nil, invalidParams(err.Error())
		}
	}
	c := s.newCall(ctx, st, p, server, method, local, params)
	if method == mcp.MethodToolsCall {
		if up := s.g.upstream(server); up != nil {
			c.Tool = up.tool(ctx, local)
		}
	}
	return s.runCall(ctx, st, c)
}

func (s *Session) run(ctx context.Context, st *state, p *profile, server, method, name string, params jsontext.Value) (jsontext.Value, error) {
	return s.runCall(ctx, st, s.newCall(ctx, st, p, server, method, name, params))
}

func (s *Session) runCall(ctx context.Context, st *state, c *guard.Call) (jsontext.Value, error) {
	res, err := st.chain.Handle(ctx, c)
	if err != nil {
		if cc := callCtxFrom(ctx); cc != nil && cc.parked != nil {
			s.g.bridge.abandon(cc.parked, abandonedError(err))
		}
		return nil, err
	}
	if res.Error != nil {
		return nil, res.Error
	}
	return res.Result, nil
}

// callResource routes resources/read, subscribe and unsubscribe by URI.
func (s *Session) callResource(ctx context.Context, st *state, p *profile, method string, params jsontext.Value) (jsontext.Value, error) {
	uri, ok, err := mcp.LookupString(params, "uri")
	if err != nil || !ok {
		return nil, invalidParams(`"uri" is required`)
	}
	servers := s.g.resourceServers(p, uri)
	if method != mcp.MethodResourcesRead && len(servers) > 0 {
		if res, handled, err := s.subscribeModern(ctx, st, p, servers[0], method, uri); handled {
			return res, err
		}
	}
	var lastErr error
	for _, server := range servers {
		res, err := s.run(ctx, st, p, server, method, uri, params)
		if err == nil {
			switch method {
			case mcp.MethodResourcesSubscribe:
				s.mu.Lock()
				s.subs[uri] = server
				s.mu.Unlock()
			case mcp.MethodResourcesUnsubscribe:
				s.mu.Lock()
				delete(s.subs, uri)
				s.mu.Unlock()
			}
			return res, nil
		}
		lastErr = err
		var rpc *mcp.Error
		if errors.As(err, &rpc) && (rpc.Code == mcp.CodeResourceNotFound || rpc.Code == mcp.CodeInvalidParams) && len(servers) > 1 {
			continue
		}
		return nil, err
	}
	if lastErr == nil {
		lastErr = mcp.NewError(mcp.CodeResourceNotFound, "resource not found")
	}
	return nil, lastErr
}

// resourceServers orders the profile's servers by how likely they own uri:
// those that listed it or a template matching it first.
func (g *Gateway) resourceServers(p *profile, uri string) []string {
	if len(p.servers) <= 1 {
		return p.servers
	}
	var first, rest []string
	for _, name := range p.servers {
		if g.ownsResource(name, uri) {
			first = append(first, name)
		} else {
			rest = append(rest, name)
		}
	}
	return append(first, rest...)
}

func (g *Gateway) ownsResource(server, uri string) bool {
	up := g.upstream(server)
	if up == nil {
		return false
	}
	up.mu.Lock()
	sessions := make([]*USession, 0, len(up.sessions))
	for _, us := range up.sessions {
		sessions = append(sessions, us)
	}
	up.mu.Unlock()
	for _, us := range sessions {
		if items, ok := us.cachedList(mcp.MethodResourcesList); ok {
			for _, it := range items {
				if u, _, _ := mcp.LookupString(it, "uri"); u == uri {
					return true
				}
			}
		}
		if items, ok := us.cachedList(mcp.MethodResourceTemplatesList); ok {
			for _, it := range items {
				t, _, _ := mcp.LookupString(it, "uriTemplate")
				if prefix, _, _ := strings.Cut(t, "{"); prefix != "" && strings.HasPrefix(uri, prefix) {
					return true
				}
			}
		}
	}
	return false
}

// complete routes completion/complete by its reference.
func (s *Session) complete(ctx context.Context, st *state, p *profile, params jsontext.Value) (jsontext.Value, error) {
	ref, ok, err := mcp.Lookup(params, "ref")
	if err != nil || !ok || ref.Kind() != '{' {
		return nil, invalidParams(`"ref" is required`)
	}
	typ, _, _ := mcp.LookupString(ref, "type")
	switch typ {
	case "ref/prompt":
		exposed, _, _ := mcp.LookupString(ref, "name")
		server, local, ok := st.route(p, exposed)
		if !ok {
			return nil, invalidParams("unknown prompt: " + exposed)
		}
		if local != exposed {
			q, _ := jsontext.AppendQuote(nil, local)
			ref, _ = mcp.SetMember(ref, "name", q)
			params, _ = mcp.SetMember(params, "ref", ref)
		}
		return s.run(ctx, st, p, server, mcp.MethodCompletionComplete, local, params)
	case "ref/resource":
		uri, _, _ := mcp.LookupString(ref, "uri")
		servers := s.g.resourceServers(p, uri)
		if len(servers) == 0 {
			return nil, invalidParams("no server")
		}
		return s.run(ctx, st, p, servers[0], mcp.MethodCompletionComplete, uri, params)
	}
	return nil, invalidParams("unknown reference type")
}

// setLevel records the client's log level and passes it to every legacy
// upstream of the session (modern ones get it per request).
func (s *Session) setLevel(ctx context.Context, p *profile, params jsontext.Value) (jsontext.Value, error) {
	level, ok, err := mcp.LookupString(params, "level")
	if err != nil || !ok {
		return nil, invalidParams(`"level" is required`)
	}
	// The guards judge the request for every server before any gets it.
	for _, server := range p.servers {
		if err := s.check(ctx, callCtxFrom(ctx).st, p, server, mcp.MethodLoggingSetLevel, "", params); err != nil {
			return nil, err
		}
	}
	s.logLevel = level
	var firstErr error
	for _, server := range p.servers {
		us, err := s.upstreamSession(ctx, server)
		if err != nil {
			firstErr = err
			continue
		}
		_, info := us.current()
		if info == nil || info.era != mcp.EraLegacy {
			continue
		}
		if _, ok, _ := mcp.Lookup(info.caps, "logging"); !ok {
			continue
		}
		resp, err := us.call(ctx, s, mcp.MethodLoggingSetLevel, params, nil)
		if err == nil && resp.Error != nil {
			err = resp.Error
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil && len(p.servers) == 1 {
		return nil, firstErr
	}
	return jsontext.Value(`{}`), nil
}

// forward is the terminal handler of the guard chain: it sends the call to
// its upstream server and returns the raw result.
func (g *Gateway) forward(ctx context.Context, c *guard.Call) (*guard.Result, error) {
	cc := callCtxFrom(ctx)
	if cc == nil {
		return nil, errors.New("call without context")
	}
	s := cc.sess
	if cc.checkOnly {
		return &guard.Result{Result: jsontext.Value(`{}`)}, nil
	}
	if c.Direction == guard.ToClient {
		// A server's request to the client, which the chain has let through.
		if s.era != mcp.EraLegacy {
			return nil, mcp.NewError(mcp.CodeMethodNotFound, "the client cannot answer requests here")
		}
		m, err := s.ask(ctx, cc.stream, c.Method, c.Params)
		if err != nil {
			return nil, err
		}
		return &guard.Result{Result: m.Result, Error: m.Error}, nil
	}
	up := g.upstream(c.Server)
	if up == nil {
		return nil, mcp.NewError(mcp.CodeInvalidParams, "unknown server")
	}
	timeout := time.Duration(up.timeout.Load())
	if timeout <= 0 {
		timeout = cc.st.timeout
	}
	if (timeout < cc.st.maxTimeout || cc.st.hold > 0) && c.Method != mcp.MethodSubscriptionsListen {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	us, err := s.upstreamSession(ctx, c.Server)
	if err != nil {
		return nil, err
	}
	if member := listMember(c.Method); member != "" {
		items, first, err := us.list(ctx, c.Method)
		if err != nil {
			return nil, err
		}
		out := []byte(`{"`)
		out = append(out, member...)
		out = append(out, `":`...)
		out = mcp.AppendArray(out, items)
		out = appendListExtras(out, first, member)
		return &guard.Result{Result: append(out, '}')}, nil
	}
	params := c.Params
	if tok, ok, _ := mcp.LookupPath(params, "_meta", "progressToken"); ok && cc.stream != nil {
		upTok := g.progress.add(tok, cc.stream, us)
		defer g.progress.remove(upTok)
		meta, _, _ := mcp.Lookup(params, "_meta")
		meta, _ = mcp.SetMember(meta, "progressToken", upTok)
		params, _ = mcp.SetMember(params, "_meta", meta)
	}
	_, info := us.current()
	switch {
	case s.era == mcp.EraModern && info.era == mcp.EraLegacy && mrtrMethod(c.Method):
		return g.bridgeToLegacy(ctx, cc, us, c, params)
	case s.era == mcp.EraLegacy && info.era == mcp.EraModern && mrtrMethod(c.Method):
		return g.bridgeToModern(ctx, cc, us, c, params)
	}
	if c.Method == mcp.MethodToolsCall && info.era == mcp.EraModern {
		if b := us.up.toolBindings(ctx, c.Name); len(b) > 0 {
			args, _, _ := mcp.Lookup(params, "arguments")
			if h := paramHeaders(b, args); h != nil {
				ctx = upstream.WithHeader(ctx, h)
			}
		}
	}
	resp, err := us.call(ctx, s, c.Method, params, func(m *mcp.Message) { cc.relay(us, m) })
	if err != nil {
		return nil, err
	}
	cc.passthrough = s.era == mcp.EraModern && info.era == mcp.EraModern
	if s.era == mcp.EraLegacy && info.era == mcp.EraModern {
		return &guard.Result{Result: stripResultType(resp.Result), Error: resp.Error}, nil
	}
	return &guard.Result{Result: resp.Result, Error: resp.Error}, nil
}

// clientAsker asks a legacy client on behalf of a guard, on the stream of
// the request being held.
type clientAsker struct {
	s      *Session
	stream Stream
}

// Ask sends method to the client if it declared the capability the method
// needs, and returns its result; an error answer is an error.
func (a clientAsker) Ask(ctx context.Context, method string, params jsontext.Value) (jsontext.Value, error) {
	need := requiredCapability(method)
	if need == "" {
		return nil, errors.New("cannot ask the client " + method)
	}
	if _, ok, _ := mcp.Lookup(a.s.caps, need); !ok {
		return nil, errors.New("the client did not declare " + need)
	}
	m, err := a.s.ask(ctx, a.stream, method, params)
	if err != nil {
		return nil, err
	}
	if m.Error != nil {
		return nil, m.Error
	}
	return m.Result, nil
}

// relay passes what an upstream sent in relation to a call to the client.
func (cc *callCtx) relay(us *USession, m *mcp.Message) {
	switch {
	case m.IsNotification():
		if cc.stream != nil {
			_ = cc.stream.Send(m)
		}
	case m.IsRequest():
		if cc.sess.era == mcp.EraLegacy {
			cc.sess.forwardServerRequest(cc.ctx, us, m, cc.stream)
			return
		}
		e := mcp.NewError(mcp.CodeMethodNotFound, "the client cannot answer requests here")
		_ = us.respond(context.Background(), mcp.NewErrorResponse(m.ID, e))
	}
}

func mrtrMethod(method string) bool {
	return method == mcp.MethodToolsCall || method == mcp.MethodPromptsGet || method == mcp.MethodResourcesRead
}

// stripResultType removes the modern "resultType" member for legacy clients.
func stripResultType(res jsontext.Value) jsontext.Value {
	if len(res) == 0 {
		return res
	}
	out, err := mcp.DeleteMember(res, "resultType")
	if err != nil {
		return res
	}
	return out
}

// subscribeModern serves a legacy client's resources/subscribe and
// unsubscribe when the owning server is modern.
func (s *Session) subscribeModern(ctx context.Context, st *state, p *profile, server, method, uri string) (jsontext.Value, bool, error) {
	us, err := s.upstreamSession(ctx, server)
	if err != nil {
		return nil, true, err
	}
	if _, info := us.current(); info == nil || info.era != mcp.EraModern {
		return nil, false, nil
	}
	if method == mcp.MethodResourcesSubscribe {
		if err := s.allowSubscription(ctx, st, p, server, uri); err != nil {
			return nil, true, err
		}
	}
	s.mu.Lock()
	_, had := s.subs[uri]
	if method == mcp.MethodResourcesSubscribe {
		s.subs[uri] = server
	} else {
		delete(s.subs, uri)
	}
	s.mu.Unlock()
	switch {
	case method == mcp.MethodResourcesSubscribe && !had:
		us.subscribe(uri, 1)
	case method == mcp.MethodResourcesUnsubscribe && had:
		us.subscribe(uri, -1)
	}
	return jsontext.Value(`{}`), true, nil
}

// allowSubscription puts a subscription that Sluice serves itself (a
// legacy client's on a modern server, the resources of a modern client's
// subscriptions/listen) through the guard chain as the resources/subscribe
// it stands for, without sending that upstream, so that guards judge it as
// they judge a forwarded subscription.
func (s *Session) allowSubscription(ctx context.Context, st *state, p *profile, server, uri string) error {
	params, _ := jsontext.AppendQuote([]byte(`{"uri":`), uri)
	params = append(params, '}')
	return s.check(ctx, st, p, server, mcp.MethodResourcesSubscribe, uri, params)
}

// check puts a call through the guard chain without sending it upstream:
// for what Sluice does itself on the client's behalf.
func (s *Session) check(ctx context.Context, st *state, p *profile, server, method, name string, params jsontext.Value) error {
	cc := &callCtx{sess: s, st: st, checkOnly: true, ctx: ctx, start: time.Now()}
	if outer := callCtxFrom(ctx); outer != nil {
		cc.stream = outer.stream
	}
	_, err := s.run(withCallCtx(ctx, cc), st, p, server, method, name, params)
	return err
}

// offers reports whether a server declared the feature a list method
// belongs to; servers that did not are not asked. When the server's
// capabilities are unknown it is asked anyway.
func (g *Gateway) offers(ctx context.Context, server, method string) bool {
	up := g.upstream(server)
	if up == nil {
		return false
	}
	up.infoMu.Lock()
	info := up.info
	up.infoMu.Unlock()
	if info == nil {
		return true
	}
	feature := "tools"
	switch method {
	case mcp.MethodPromptsList:
		feature = "prompts"
	case mcp.MethodResourcesList, mcp.MethodResourceTemplatesList:
		feature = "resources"
	}
	_, ok, _ := mcp.Lookup(info.caps, feature)
	return ok
}

// appendListExtras appends, as further members, what a list result holds
// besides the list itself and its cursor.
func appendListExtras(out []byte, result jsontext.Value, member string) []byte {
	_ = mcp.EachMember(result, func(name string, v jsontext.Value) error {
		if name == member || name == "nextCursor" {
			return nil
		}
		out = append(out, ',')
		out, _ = jsontext.AppendQuote(out, name)
		out = append(out, ':')
		out = append(out, v...)
		return nil
	})
	return out
}

// decodeFailure is the error response to a message that did not decode,
// with the id when it could be recovered.
func decodeFailure(err error) *mcp.Message {
	code := int64(mcp.CodeParseError)
	var id jsontext.Value
	var de *mcp.DecodeError
	if errors.As(err, &de) {
		code, id = de.Code, de.ID
	}
	return mcp.NewErrorResponse(id, mcp.NewError(code, err.Error()))
}

type transportKey struct{}

// withTransport records how the calls of ctx arrived.
func withTransport(ctx context.Context, t *guard.Transport) context.Context {
	return context.WithValue(ctx, transportKey{}, t)
}

type principalKeyT struct{}

// withPrincipal records who authenticated the request behind ctx.
func withPrincipal(ctx context.Context, p *guard.Principal) context.Context {
	return context.WithValue(ctx, principalKeyT{}, p)
}

// callPrincipal is the principal of a call: the one that authenticated the
// request carrying it (a legacy session's later requests may present a
// refreshed token, with the scopes and groups it has now), else the
// session's.
func (s *Session) callPrincipal(ctx context.Context) *guard.Principal {
	if p, ok := ctx.Value(principalKeyT{}).(*guard.Principal); ok && p != nil {
		return p
	}
	return s.principal
}

func transportFrom(ctx context.Context) guard.Transport {
	if t, ok := ctx.Value(transportKey{}).(*guard.Transport); ok {
		return *t
	}
	return guard.Transport{}
}
