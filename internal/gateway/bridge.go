package gateway

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Era bridging. A legacy server asks its client for input with a request of
// its own (elicitation/create, sampling/createMessage, roots/list) sent in
// the middle of a call; a modern server instead returns an input_required
// result and expects the call again with inputResponses. Sluice translates
// both ways:
//
//   - modern client, legacy server: the upstream call stays open while the
//     client gets input_required with a requestState naming the parked call;
//     the client's retry answers the server's pending requests and waits on.
//   - legacy client, modern server: Sluice asks the client each input
//     request as a request of its own, then retries the upstream call.

// bridgeStatePrefix marks requestState values minted by Sluice.
const bridgeStatePrefix = "sluice1."

// progressTable maps the progress tokens Sluice sends upstream back to the
// client's token and the stream of the request.
type progressTable struct {
	mu  sync.Mutex
	seq uint64
	m   map[string]progressRoute
}

type progressRoute struct {
	clientTok jsontext.Value
	stream    Stream
	// us is the upstream session the call went to: only its server may
	// report progress under the token (tokens are numbered, so guessable).
	us *USession
}

func (t *progressTable) add(clientTok jsontext.Value, st Stream, us *USession) jsontext.Value {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	tok := jsontext.Value(`"sluice-p-` + strconv.FormatUint(t.seq, 10) + `"`)
	if t.m == nil {
		t.m = map[string]progressRoute{}
	}
	t.m[string(tok)] = progressRoute{clientTok: clientTok, stream: st, us: us}
	return tok
}

func (t *progressTable) remove(tok jsontext.Value) {
	t.mu.Lock()
	delete(t.m, string(tok))
	t.mu.Unlock()
}

func (t *progressTable) get(tok jsontext.Value) (progressRoute, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.m[string(tok)]
	return r, ok
}

// routeProgress relays a progress notification from upstream session us to
// the request it belongs to, under the client's own token.
func (g *Gateway) routeProgress(us *USession, m *mcp.Message) {
	tok, ok, _ := mcp.Lookup(m.Params, "progressToken")
	if !ok {
		return
	}
	r, ok := g.progress.get(tok)
	if !ok || r.stream == nil || r.us != us {
		return
	}
	params, err := mcp.SetMember(m.Params, "progressToken", r.clientTok)
	if err != nil {
		return
	}
	_ = r.stream.Send(mcp.NewNotification(mcp.NotifProgress, params))
}

// bridgeTable holds upstream calls parked while a modern client gathers
// input for them.
type bridgeTable struct {
	mu sync.Mutex
	m  map[string]*parkedCall
}

func newBridgeTable() *bridgeTable { return &bridgeTable{m: map[string]*parkedCall{}} }

func (t *bridgeTable) put(pc *parkedCall) string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	tok := bridgeStatePrefix + base64.RawURLEncoding.EncodeToString(b[:])
	t.mu.Lock()
	t.m[tok] = pc
	t.mu.Unlock()
	return tok
}

func (t *bridgeTable) take(tok string) *parkedCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	pc := t.m[tok]
	delete(t.m, tok)
	return pc
}

// abandon ends a parked call whose input_required result never reached
// the client (a guard refused it, with e): no retry can come for it.
func (t *bridgeTable) abandon(pc *parkedCall, e *mcp.Error) {
	t.drop(pc)
	pc.end(e)
}

// closeAll ends every parked call (the gateway is closing).
func (t *bridgeTable) closeAll() {
	t.mu.Lock()
	pcs := make([]*parkedCall, 0, len(t.m))
	for k, pc := range t.m {
		pcs = append(pcs, pc)
		delete(t.m, k)
	}
	t.mu.Unlock()
	e := mcp.NewError(mcp.CodeUpstreamUnavailable, "the gateway is shutting down")
	for _, pc := range pcs {
		pc.end(e)
	}
}

func (t *bridgeTable) drop(pc *parkedCall) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, v := range t.m {
		if v == pc {
			delete(t.m, k)
		}
	}
}

// parkedCall is an upstream call of a modern client that waits for input.
type parkedCall struct {
	us        *USession
	subject   string
	method    string
	name      string
	cancel    context.CancelFunc
	events    chan bridgeEvent
	mu        sync.Mutex
	stream    Stream
	waiting   map[string]*mcp.Message // input key -> the server's request
	seq       int
	clientCap jsontext.Value
}

type bridgeEvent struct {
	req  *mcp.Message // a server-to-client request
	resp *mcp.Message // the final response
	err  error
}

// end stops the parked call. The server's requests that still wait for
// the client are answered with e first: a server blocked on its own request
// then returns at once, rather than waiting for a cancellation that may
// reach it only after its session is gone (and a server that waits for its
// handlers before closing a session would wait forever).
func (pc *parkedCall) end(e *mcp.Error) {
	pc.mu.Lock()
	waiting := pc.waiting
	pc.waiting = map[string]*mcp.Message{}
	pc.mu.Unlock()
	if len(waiting) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), answerTimeout)
		for _, req := range waiting {
			if err := pc.us.respond(ctx, mcp.NewErrorResponse(req.ID, e)); err != nil {
				pc.us.up.g.log.Debug("could not answer an abandoned server request", "server", pc.us.up.name, "method", req.Method, "err", err)
			}
		}
		cancel()
	}
	pc.cancel()
}

// abandonedError is what a server hears about its request when the call
// that carried it ends without the client's answer: the denial or error
// that ended it, as a legacy client's server would hear it.
func abandonedError(err error) *mcp.Error {
	var (
		denied *guard.DeniedError
		rpc    *mcp.Error
	)
	switch {
	case errors.As(err, &denied):
		return denied.RPCError()
	case errors.As(err, &rpc):
		return rpc
	}
	return mcp.NewError(mcp.CodeInternalError, "the call ended before the client answered")
}

// answerTimeout bounds the answers to a server's requests that end sends.
const answerTimeout = 2 * time.Second

func (pc *parkedCall) setStream(st Stream) {
	pc.mu.Lock()
	pc.stream = st
	pc.mu.Unlock()
}

func (pc *parkedCall) send(m *mcp.Message) {
	pc.mu.Lock()
	st := pc.stream
	pc.mu.Unlock()
	if st != nil {
		_ = st.Send(m)
	}
}

// bridgeToLegacy runs an MRTR-capable call of a modern client on a legacy
// upstream.
func (g *Gateway) bridgeToLegacy(ctx context.Context, cc *callCtx, us *USession, c *guard.Call, params jsontext.Value) (*guard.Result, error) {
	s := cc.sess
	if rs, ok, _ := mcp.LookupString(params, "requestState"); ok && strings.HasPrefix(rs, bridgeStatePrefix) {
		pc := g.bridge.take(rs)
		if pc == nil || pc.subject != principalKey(c.Principal) || pc.method != c.Method || pc.name != c.Name || pc.us != us {
			return nil, invalidParams("requestState is unknown, expired or not yours")
		}
		responses, _, _ := mcp.Lookup(params, "inputResponses")
		pc.mu.Lock()
		for key, req := range pc.waiting {
			resp, ok, _ := mcp.Lookup(responses, key)
			if !ok || resp.Kind() != '{' {
				continue
			}
			delete(pc.waiting, key)
			out := &mcp.Message{ID: req.ID, Result: resp}
			if err := us.respond(ctx, out); err != nil {
				g.log.Warn("could not pass input to the upstream", "server", us.up.name, "err", err)
			}
		}
		pc.mu.Unlock()
		return g.bridgeWait(ctx, cc, pc)
	}
	// Strip MRTR members a legacy server does not know.
	params, _ = mcp.DeleteMember(params, "inputResponses")
	params, _ = mcp.DeleteMember(params, "requestState")
	// The upstream call outlives this client request: it lives until it
	// completes or its parked state expires.
	timeout := time.Duration(us.up.timeout.Load())
	if timeout <= 0 {
		timeout = cc.st.timeout
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	pc := &parkedCall{
		us: us, subject: principalKey(c.Principal), method: c.Method, name: c.Name,
		cancel: cancel, events: make(chan bridgeEvent, 16), waiting: map[string]*mcp.Message{},
		clientCap: s.caps,
	}
	pc.setStream(cc.stream)
	related := func(m *mcp.Message) {
		switch {
		case m.IsRequest():
			pc.events <- bridgeEvent{req: m}
		case m.IsNotification():
			pc.send(m)
		}
	}
	go func() {
		resp, err := us.call(uctx, s, c.Method, params, related)
		pc.events <- bridgeEvent{resp: resp, err: err}
	}()
	context.AfterFunc(uctx, func() { g.bridge.drop(pc) })
	return g.bridgeWait(ctx, cc, pc)
}

// bridgeWait waits for the parked call's next step: its final response, or
// requests for input that go back to the client as input_required.
func (g *Gateway) bridgeWait(ctx context.Context, cc *callCtx, pc *parkedCall) (*guard.Result, error) {
	pc.setStream(cc.stream)
	defer pc.setStream(nil)
	pc.mu.Lock()
	pending := len(pc.waiting)
	pc.mu.Unlock()
	if pending > 0 {
		cc.parked = pc
		return g.inputRequired(pc), nil
	}
	for {
		select {
		case ev := <-pc.events:
			if ev.req != nil {
				if err := g.acceptInputRequest(pc, ev.req); err != nil {
					pc.end(abandonedError(err))
					return nil, err
				}
				// Servers often ask several things at once: gather what
				// arrives together into one round.
				timer := time.NewTimer(25 * time.Millisecond)
			gather:
				for {
					select {
					case ev2 := <-pc.events:
						if ev2.req == nil {
							// Final answer arrived meanwhile: push it back.
							pc.events <- ev2
							break gather
						}
						if err := g.acceptInputRequest(pc, ev2.req); err != nil {
							timer.Stop()
							pc.end(abandonedError(err))
							return nil, err
						}
					case <-timer.C:
						break gather
					}
				}
				timer.Stop()
				cc.parked = pc
				return g.inputRequired(pc), nil
			}
			pc.cancel()
			if ev.err != nil {
				return nil, ev.err
			}
			return &guard.Result{Result: withResultType(ev.resp.Result), Error: ev.resp.Error}, nil
		case <-ctx.Done():
			pc.cancel()
			return nil, ctx.Err()
		}
	}
}

// acceptInputRequest records a legacy server's request for the client.
func (g *Gateway) acceptInputRequest(pc *parkedCall, req *mcp.Message) error {
	need := requiredCapability(req.Method)
	if need == "" {
		e := mcp.NewError(mcp.CodeMethodNotFound, "method not found")
		_ = pc.us.respond(context.Background(), mcp.NewErrorResponse(req.ID, e))
		return nil
	}
	if _, ok, _ := mcp.Lookup(pc.clientCap, need); !ok {
		e := mcp.NewError(mcp.CodeInvalidRequest, "client does not support "+need)
		_ = pc.us.respond(context.Background(), mcp.NewErrorResponse(req.ID, e))
		data := []byte(`{"requiredCapabilities":{"` + need + `":{}}}`)
		return &mcp.Error{Code: mcp.CodeMissingRequiredClientCapability, Message: "the client must support " + need, Data: data}
	}
	pc.mu.Lock()
	pc.seq++
	pc.waiting["input-"+strconv.Itoa(pc.seq)] = req
	pc.mu.Unlock()
	return nil
}

func requiredCapability(method string) string {
	switch method {
	case mcp.MethodElicitationCreate:
		return "elicitation"
	case mcp.MethodSamplingCreateMessage:
		return "sampling"
	case mcp.MethodRootsList:
		return "roots"
	}
	return ""
}

// inputRequired parks pc and builds the result that asks the client.
func (g *Gateway) inputRequired(pc *parkedCall) *guard.Result {
	tok := g.bridge.put(pc)
	pc.mu.Lock()
	keys := make([]string, 0, len(pc.waiting))
	for k := range pc.waiting {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := []byte(`{"resultType":"input_required","inputRequests":{`)
	for i, k := range keys {
		req := pc.waiting[k]
		if i > 0 {
			out = append(out, ',')
		}
		out, _ = jsontext.AppendQuote(out, k)
		out = append(out, `:{"method":`...)
		out, _ = jsontext.AppendQuote(out, req.Method)
		params := req.Params
		if params == nil {
			params = jsontext.Value(`{}`)
		}
		out = append(out, `,"params":`...)
		out = append(out, params...)
		out = append(out, '}')
	}
	pc.mu.Unlock()
	out = append(out, `},"requestState":`...)
	out, _ = jsontext.AppendQuote(out, tok)
	out = append(out, '}')
	return &guard.Result{Result: out}
}

// withResultType marks a complete result for a modern client.
func withResultType(res jsontext.Value) jsontext.Value {
	if len(res) == 0 {
		return res
	}
	if _, ok, _ := mcp.Lookup(res, "resultType"); ok {
		return res
	}
	out, err := mcp.SetMember(res, "resultType", jsontext.Value(`"complete"`))
	if err != nil {
		return res
	}
	return out
}

// bridgeToModern runs a call of a legacy client on a modern upstream,
// fulfilling input requests by asking the client.
func (g *Gateway) bridgeToModern(ctx context.Context, cc *callCtx, us *USession, c *guard.Call, params jsontext.Value) (*guard.Result, error) {
	s := cc.sess
	for round := 0; round < 16; round++ {
		resp, err := us.call(ctx, s, c.Method, params, func(m *mcp.Message) { cc.relay(us, m) })
		if err != nil {
			return nil, err
		}
		if resp.Error != nil {
			return &guard.Result{Error: resp.Error}, nil
		}
		rt, _, _ := mcp.LookupString(resp.Result, "resultType")
		if rt != "input_required" {
			return &guard.Result{Result: stripResultType(resp.Result)}, nil
		}
		reqs, _, _ := mcp.Lookup(resp.Result, "inputRequests")
		type ask struct {
			key, method string
			params      jsontext.Value
		}
		var asks []ask
		err = mcp.EachMember(reqs, func(key string, v jsontext.Value) error {
			method, _, err := mcp.LookupString(v, "method")
			if err != nil {
				return err
			}
			p, _, _ := mcp.Lookup(v, "params")
			if need := requiredCapability(method); need == "" {
				return errors.New("unsupported input request " + method)
			} else if _, ok, _ := mcp.Lookup(s.caps, need); !ok {
				return &mcp.Error{Code: mcp.CodeInvalidRequest, Message: "the client does not support " + need}
			}
			asks = append(asks, ask{key: key, method: method, params: p})
			return nil
		})
		if err != nil {
			return nil, err
		}
		answers := make([]*mcp.Message, len(asks))
		errs := make([]error, len(asks))
		var wg sync.WaitGroup
		for i, a := range asks {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i], errs[i] = g.askClient(ctx, cc, us, a.method, a.params)
			}()
		}
		wg.Wait()
		obj := []byte{'{'}
		for i, a := range asks {
			if errs[i] != nil {
				return nil, errs[i]
			}
			if answers[i].Error != nil {
				return &guard.Result{Error: answers[i].Error}, nil
			}
			if len(obj) > 1 {
				obj = append(obj, ',')
			}
			obj, _ = jsontext.AppendQuote(obj, a.key)
			obj = append(obj, ':')
			obj = append(obj, answers[i].Result...)
		}
		obj = append(obj, '}')
		params, _ = mcp.SetMember(params, "inputResponses", obj)
		if state, ok, _ := mcp.Lookup(resp.Result, "requestState"); ok {
			params, _ = mcp.SetMember(params, "requestState", state)
		} else {
			params, _ = mcp.DeleteMember(params, "requestState")
		}
	}
	return nil, errors.New("too many input rounds")
}

// askClient puts a request to a legacy client through the guard chain as a
// call towards the client, and returns the client's answer (or the
// denial, as an error response).
func (g *Gateway) askClient(ctx context.Context, cc *callCtx, us *USession, method string, params jsontext.Value) (*mcp.Message, error) {
	s := cc.sess
	p := cc.st.profiles[s.profile]
	if p == nil {
		p = &profile{}
	}
	c := s.newCall(ctx, cc.st, p, us.up.name, method, "", params)
	c.Direction = guard.ToClient
	res, err := cc.st.chain.Handle(ctx, c)
	if err != nil {
		var denied *guard.DeniedError
		if errors.As(err, &denied) {
			return &mcp.Message{Error: g.rpcError(err, method)}, nil
		}
		return nil, err
	}
	return &mcp.Message{Result: res.Result, Error: res.Error}, nil
}
