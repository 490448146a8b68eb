package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// Stream carries messages that belong to one client request (notifications
// and, for legacy clients, server-to-client requests) before its response.
// The HTTP transport switches the response to SSE on the first Send.
type Stream interface {
	Send(m *mcp.Message) error
}

// Session is one client: a legacy session (initialize .. DELETE, or one
// stdio connection), or the context of one modern request.
type Session struct {
	g         *Gateway
	id        string
	era       mcp.Era
	version   string
	profile   string
	principal *guard.Principal

	caps       jsontext.Value
	clientInfo jsontext.Value
	client     guard.ClientInfo
	logLevel   string

	// out receives messages not tied to a request; the GET stream (HTTP) or
	// the stdio writer drains it.
	out  chan *mcp.Message
	done chan struct{}

	mu         sync.Mutex
	ups        map[string]*USession
	srvReqs    map[string]*srvReq // server-to-client requests by downstream id
	relayed    map[relayKey]context.CancelFunc
	inflight   map[string]context.CancelFunc
	subs       map[string]string // resource URI -> server
	listen     *listenFilter     // set on a modern subscriptions/listen session
	closed     bool
	nextSrvID  atomic.Int64
	lastActive atomic.Int64
	ephemeral  bool
	streamOpen bool
}

// srvReq is a request Sluice sent a legacy client and awaits the answer to.
type srvReq struct {
	reply chan *mcp.Message
}

// SessionOptions describe a new session.
type SessionOptions struct {
	Era       mcp.Era
	Profile   string
	Principal *guard.Principal
	// Ephemeral sessions serve one modern request and hold no state.
	Ephemeral bool
}

// NewSession creates a session. Legacy sessions get an ID and are found
// again with [Gateway.Session].
func (g *Gateway) NewSession(o SessionOptions) *Session {
	s := &Session{
		g:         g,
		era:       o.Era,
		profile:   o.Profile,
		principal: o.Principal,
		out:       make(chan *mcp.Message, 256),
		done:      make(chan struct{}),
		ups:       map[string]*USession{},
		srvReqs:   map[string]*srvReq{},
		relayed:   map[relayKey]context.CancelFunc{},
		inflight:  map[string]context.CancelFunc{},
		subs:      map[string]string{},
		ephemeral: o.Ephemeral,
	}
	if s.principal == nil && g.st.Load().authn == nil {
		// Without authentication every caller is the same nobody. With it,
		// a session without a principal stays without one, and the authn
		// guard refuses its calls. Guards never see the placeholder: see
		// newCall.
		s.principal = anonymous
	}
	s.touch()
	if !o.Ephemeral {
		var b [18]byte
		_, _ = rand.Read(b[:])
		s.id = base64.RawURLEncoding.EncodeToString(b[:])
		g.mu.Lock()
		g.sessions[s.id] = s
		g.mu.Unlock()
	}
	return s
}

// Session finds a legacy session by ID.
func (g *Gateway) Session(id string) *Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sessions[id]
}

// SessionCount reports the number of live legacy sessions.
func (g *Gateway) SessionCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sessions)
}

// ID is the session's Mcp-Session-Id ("" for modern requests).
func (s *Session) ID() string { return s.id }

// Era is the protocol era the client speaks.
func (s *Session) Era() mcp.Era { return s.era }

// Version is the negotiated protocol version.
func (s *Session) Version() string { return s.version }

// Profile is the profile the session was opened on.
func (s *Session) Profile() string { return s.profile }

// Principal is the caller's identity.
func (s *Session) Principal() *guard.Principal { return s.principal }

// Out returns the channel of messages not tied to a request.
func (s *Session) Out() <-chan *mcp.Message { return s.out }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.done }

func (s *Session) touch() { s.lastActive.Store(time.Now().UnixNano()) }

// busy reports whether the session has a call in flight or an open stream.
func (s *Session) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inflight) > 0 || s.streamOpen || s.listen != nil
}

// Close ends the session and releases its upstream sessions.
func (s *Session) Close() {
	if s.id != "" {
		s.g.mu.Lock()
		delete(s.g.sessions, s.id)
		s.g.mu.Unlock()
	}
	s.close()
}

func (s *Session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.g.taint.Forget(s.id)
	ups := s.ups
	s.ups = map[string]*USession{}
	for _, cancel := range s.inflight {
		cancel()
	}
	for _, r := range s.srvReqs {
		close(r.reply)
	}
	s.srvReqs = map[string]*srvReq{}
	s.mu.Unlock()
	close(s.done)
	for name, us := range ups {
		us.detach(s)
		if us.key == s.upstreamKey() {
			us.up.release(us.key)
		}
		_ = name
	}
}

// upstreamKey names the upstream sessions this session uses: its own for a
// legacy client, its principal's for a modern one.
func (s *Session) upstreamKey() string {
	if s.era == mcp.EraLegacy && s.id != "" {
		return "s:" + s.id
	}
	// A legacy server learns the client's capabilities once, at initialize,
	// and decides by them whether to ask for input; modern clients declare
	// theirs per request, so each distinct set gets its own upstream session.
	sum := sha256.Sum256(s.caps)
	return "p:" + principalKey(s.principal) + "#" + hex.EncodeToString(sum[:6])
}

// anonymous is the principal of every caller when no authentication is
// configured.
var anonymous = &guard.Principal{Subject: "anonymous", Name: "anonymous"}

// principalKey identifies a caller for binding state to it: a legacy
// session to the principal that created it, a parked call to the one that
// started it, upstream sessions of modern clients to theirs. Issuer,
// subject and client id make the identity (a refreshed token with new scopes or groups
// is the same caller); "" stands for no principal.
func principalKey(p *guard.Principal) string {
	if p == nil {
		return ""
	}
	// Each part length-prefixed, so that no two different triples share
	// a key whatever bytes a token's claims hold.
	h := sha256.New()
	for _, part := range [...]string{p.Issuer, p.Subject, p.ClientID} {
		h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(part))))
		h.Write([]byte(part))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ownedBy reports whether p may use the session: it must be the principal
// that created it (the same issuer, subject and client id, the triple that
// [principalKey] digests).
func (s *Session) ownedBy(p *guard.Principal) bool {
	q := s.principal
	if q == p {
		return true
	}
	if q == nil || p == nil {
		return false
	}
	return q.Issuer == p.Issuer && q.Subject == p.Subject && q.ClientID == p.ClientID
}

func (s *Session) clientInit() *clientInit {
	if s.era == mcp.EraLegacy {
		return &clientInit{version: s.version, caps: s.caps, info: s.clientInfo}
	}
	caps := s.caps
	if len(caps) == 0 {
		caps = jsontext.Value(`{}`)
	}
	return &clientInit{caps: caps, info: s.clientInfo}
}

// upstreamSession returns the session with server that serves s.
func (s *Session) upstreamSession(ctx context.Context, server string) (*USession, error) {
	s.mu.Lock()
	us := s.ups[server]
	s.mu.Unlock()
	if us != nil {
		if err := us.ensure(ctx); err != nil {
			return nil, err
		}
		return us, nil
	}
	up := s.g.upstream(server)
	if up == nil {
		return nil, errors.New("unknown server " + server)
	}
	us, err := up.session(ctx, s.upstreamKey(), s.clientInit())
	if err != nil {
		return nil, err
	}
	if !s.ephemeral {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errors.New("session closed")
		}
		s.ups[server] = us
		s.mu.Unlock()
		us.attach(s)
	}
	return us, nil
}

// send queues a message not tied to a request.
func (s *Session) send(m *mcp.Message) {
	select {
	case <-s.done:
		return
	default:
	}
	select {
	case s.out <- m:
	default:
		s.g.log.Warn("client is not reading; message dropped", "session", s.id, "method", m.Method)
	}
}

// upstreamNotification relays a notification from server to this client,
// if it concerns it.
func (s *Session) upstreamNotification(server string, m *mcp.Message) {
	switch m.Method {
	case mcp.NotifResourcesUpdated:
		uri, _, _ := mcp.LookupString(m.Params, "uri")
		s.mu.Lock()
		_, subscribed := s.subs[uri]
		lf := s.listen
		s.mu.Unlock()
		if lf != nil {
			if lf.resource(uri) {
				s.send(lf.tag(m))
			}
			return
		}
		if subscribed {
			s.send(m)
		}
	case mcp.NotifToolsListChanged, mcp.NotifPromptsListChanged, mcp.NotifResourcesListChanged:
		s.mu.Lock()
		lf := s.listen
		s.mu.Unlock()
		if lf != nil {
			if lf.listChanged(m.Method) {
				s.send(lf.tag(m))
			}
			return
		}
		s.send(m)
	case mcp.NotifMessage:
		if s.era == mcp.EraLegacy {
			s.send(m)
		}
	default:
		if s.era == mcp.EraLegacy {
			s.send(m)
		}
	}
}

// forwardServerRequest passes a server-to-client request (elicitation,
// sampling, roots) to a legacy client under an ID of Sluice's own, on the
// request's stream when there is one. It runs through the guard chain as a
// call towards the client, so guards see what servers ask of users and what
// users answer; the answer (or a denial) goes back to the server.
func (s *Session) forwardServerRequest(ctx context.Context, us *USession, m *mcp.Message, st Stream) {
	g := s.g
	state := g.st.Load()
	p := state.profiles[s.profile]
	if p == nil {
		p = &profile{}
	}
	c := s.newCall(ctx, state, p, us.up.name, m.Method, "", m.Params)
	c.Direction = guard.ToClient
	ctx = withCallCtx(ctx, &callCtx{sess: s, stream: st, st: state})
	ctx, cancel := context.WithTimeout(ctx, state.timeout)
	key := relayKey{us, string(m.ID)}
	s.mu.Lock()
	s.relayed[key] = cancel
	s.mu.Unlock()
	go func() {
		defer func() {
			cancel()
			s.mu.Lock()
			delete(s.relayed, key)
			s.mu.Unlock()
		}()
		var out *mcp.Message
		res, err := state.chain.Handle(ctx, c)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return // the server withdrew its request: no answer is due
		}
		switch {
		case err != nil:
			out = mcp.NewErrorResponse(m.ID, g.rpcError(err, m.Method))
		case res.Error != nil:
			out = mcp.NewErrorResponse(m.ID, res.Error)
		default:
			out = mcp.NewResult(m.ID, res.Result)
		}
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer rcancel()
		if err := us.respond(rctx, out); err != nil {
			g.log.Warn("could not relay the client's answer upstream", "server", us.up.name, "err", err)
		}
	}()
}

// ask sends a request to a legacy client and waits for its answer (used to
// fulfil a modern server's input requests).
func (s *Session) ask(ctx context.Context, st Stream, method string, params jsontext.Value) (*mcp.Message, error) {
	id := "sluice-" + strconv.FormatInt(s.nextSrvID.Add(1), 10)
	qid, _ := jsontext.AppendQuote(nil, id)
	reply := make(chan *mcp.Message, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errors.New("session closed")
	}
	s.srvReqs[string(qid)] = &srvReq{reply: reply}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.srvReqs, string(qid))
		s.mu.Unlock()
	}()
	out := &mcp.Message{ID: qid, Method: method, Params: params}
	sent := false
	if st != nil {
		sent = st.Send(out) == nil
	}
	if !sent {
		s.send(out)
	}
	select {
	case r, ok := <-reply:
		if !ok {
			return nil, errors.New("session closed")
		}
		return r, nil
	case <-ctx.Done():
		cp := append([]byte(`{"requestId":`), qid...)
		cp = append(cp, '}')
		s.sendTo(st, mcp.NewNotification(mcp.NotifCancelled, cp))
		return nil, ctx.Err()
	}
}

func (s *Session) sendTo(st Stream, m *mcp.Message) {
	if st != nil && st.Send(m) == nil {
		return
	}
	s.send(m)
}

// cancelServerRequest relays a server's cancellation of a request it sent.
func (s *Session) cancelServerRequest(us *USession, upID jsontext.Value) {
	s.mu.Lock()
	cancel := s.relayed[relayKey{us, string(upID)}]
	s.mu.Unlock()
	if cancel != nil {
		// Ends the relay: ask sends notifications/cancelled to the client.
		cancel()
	}
}

// relayKey names a server's request that Sluice is relaying to the client.
type relayKey struct {
	us *USession
	id string
}

// HandleResponse takes a client's answer to a server-to-client request.
func (s *Session) HandleResponse(m *mcp.Message) {
	s.touch()
	s.mu.Lock()
	r := s.srvReqs[string(m.ID)]
	delete(s.srvReqs, string(m.ID))
	s.mu.Unlock()
	if r == nil {
		s.g.log.Debug("response to an unknown request", "session", s.id)
		return
	}
	r.reply <- m
}

// HandleNotification takes a client's notification.
func (s *Session) HandleNotification(ctx context.Context, m *mcp.Message) {
	s.touch()
	switch m.Method {
	case mcp.NotifInitialized:
	case mcp.NotifCancelled:
		id, ok, _ := mcp.Lookup(m.Params, "requestId")
		if !ok {
			return
		}
		s.mu.Lock()
		cancel := s.inflight[string(id)]
		s.mu.Unlock()
		if cancel != nil {
			cancel()
		}
	case mcp.NotifRootsListChanged:
		s.mu.Lock()
		ups := make([]*USession, 0, len(s.ups))
		for _, us := range s.ups {
			ups = append(ups, us)
		}
		s.mu.Unlock()
		for _, us := range ups {
			if _, info := us.current(); info != nil && info.era == mcp.EraLegacy {
				_ = us.notify(ctx, m.Method, m.Params)
			}
		}
	default:
		s.g.log.Debug("client notification ignored", "method", m.Method)
	}
}

// track registers an in-flight client request so that
// notifications/cancelled can reach it.
func (s *Session) track(id jsontext.Value, cancel context.CancelFunc) func() {
	if id == nil {
		return func() {}
	}
	key := string(id)
	s.mu.Lock()
	s.inflight[key] = cancel
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.inflight, key)
		s.mu.Unlock()
	}
}
