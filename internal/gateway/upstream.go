package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/config"
	"github.com/sluicehq/sluice/internal/mcp"
	"github.com/sluicehq/sluice/internal/transport/upstream"
)

// Upstream is one configured server and its sessions.
type Upstream struct {
	g    *Gateway
	name string
	cfg  *config.Server

	timeout atomic.Int64 // per-call timeout override in ns, 0 = none

	mu       sync.Mutex
	sessions map[string]*USession
	closed   bool

	// What the server declared the last time a session connected; used to
	// answer initialize and server/discover without connecting for every
	// client.
	infoMu  sync.Mutex
	info    *serverInfo
	catalog *toolCatalog // the server's tools as last listed; nil until listed or after list_changed
}

type serverInfo struct {
	era          mcp.Era
	version      string
	caps         jsontext.Value
	serverInfo   jsontext.Value
	instructions string
}

// keyShared names the session every caller uses when a server is shared;
// it is also the probe session that learns the server's capabilities.
const keyShared = "shared"

func newUpstream(g *Gateway, name string, sc *config.Server) *Upstream {
	u := &Upstream{g: g, name: name, cfg: sc, sessions: map[string]*USession{}}
	u.setTimeout(sc)
	return u
}

func (u *Upstream) setTimeout(sc *config.Server) {
	u.timeout.Store(int64(sc.Timeout))
}

// sameConfig reports whether sc describes the same connection as u's.
func (u *Upstream) sameConfig(sc *config.Server) bool {
	a, b := *u.cfg, *sc
	a.Timeout, b.Timeout = 0, 0
	a.Tools, b.Tools = config.ToolFilter{}, config.ToolFilter{}
	return slices.Equal(a.Command, b.Command) && maps.Equal(a.Env, b.Env) && a.Dir == b.Dir &&
		a.URL == b.URL && a.Transport == b.Transport && a.Era == b.Era &&
		maps.Equal(a.Headers, b.Headers) && a.Shared == b.Shared && a.Restart == b.Restart
}

func (u *Upstream) spec() upstream.Spec {
	sc := u.cfg
	sp := upstream.Spec{Transport: sc.Transport, URL: sc.URL, Client: httpClient}
	if sp.Transport == "" {
		if len(sc.Command) > 0 {
			sp.Transport = config.TransportStdio
		} else {
			sp.Transport = config.TransportStreamableHTTP
		}
	}
	if len(sc.Headers) > 0 {
		sp.Header = http.Header{}
		for k, v := range sc.Headers {
			sp.Header.Set(k, v)
		}
	}
	if len(sc.Command) > 0 {
		env := slices.Clone(u.g.baseEnv())
		for k, v := range sc.Env {
			env = append(env, k+"="+v)
		}
		name := u.name
		log := u.g.log
		sp.Stdio = upstream.StdioConfig{
			Command:      sc.Command,
			Env:          env,
			Dir:          sc.Dir,
			Stderr:       func(line string) { log.Info("upstream stderr", "server", name, "line", line) },
			CloseTimeout: u.g.opts.CloseTimeout,
			TermTimeout:  u.g.opts.TermTimeout,
		}
	}
	return sp
}

// probe connects the shared session, which records the server's
// capabilities for initialize and server/discover answers.
func (u *Upstream) probe(ctx context.Context) (*USession, error) {
	return u.session(ctx, keyShared, nil)
}

func (u *Upstream) probeSession() *USession {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.sessions[keyShared]
}

// serverInfo returns what the server declared, probing if need be.
func (u *Upstream) serverInfo(ctx context.Context) (*serverInfo, error) {
	u.infoMu.Lock()
	info := u.info
	u.infoMu.Unlock()
	if info != nil {
		return info, nil
	}
	if _, err := u.probe(ctx); err != nil {
		return nil, err
	}
	u.infoMu.Lock()
	defer u.infoMu.Unlock()
	if u.info == nil {
		return nil, errors.New("no server information")
	}
	return u.info, nil
}

// clientInit is what Sluice declares to an upstream on the client's behalf.
type clientInit struct {
	version string         // the client's protocol version
	caps    jsontext.Value // the client's capabilities
	info    jsontext.Value // the client's clientInfo object
}

// sluiceCaps are the client capabilities Sluice declares when it speaks for
// several clients at once: it can carry every server-to-client feature,
// bridging to modern clients as input requests.
var sluiceCaps = jsontext.Value(`{"elicitation":{"form":{},"url":{}},"sampling":{},"roots":{"listChanged":true}}`)

// session returns the upstream session for key, connecting it if need be.
func (u *Upstream) session(ctx context.Context, key string, ci *clientInit) (*USession, error) {
	if u.cfg.Shared {
		key, ci = keyShared, nil
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil, fmt.Errorf("%w: server %s is closed", errUpstream, u.name)
	}
	us := u.sessions[key]
	if us == nil {
		us = &USession{up: u, key: key, ci: ci, pending: map[string]*inflight{}, attached: map[*Session]struct{}{}}
		u.sessions[key] = us
	}
	u.mu.Unlock()
	if err := us.ensure(ctx); err != nil {
		return nil, err
	}
	return us, nil
}

// release drops a session that served one downstream session.
func (u *Upstream) release(key string) {
	u.mu.Lock()
	us := u.sessions[key]
	if us != nil && key != keyShared {
		delete(u.sessions, key)
	} else {
		us = nil
	}
	u.mu.Unlock()
	if us != nil {
		go us.close()
	}
}

func (u *Upstream) close() {
	u.mu.Lock()
	u.closed = true
	ss := slices.Collect(maps.Values(u.sessions))
	u.sessions = map[string]*USession{}
	u.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() { defer wg.Done(); s.close() }()
	}
	wg.Wait()
}

// USession is one MCP session with an upstream server: one connection, its
// handshake, and the routing of what the server sends.
type USession struct {
	up  *Upstream
	key string
	ci  *clientInit

	connMu   sync.Mutex // serialises (re)connection
	conn     upstream.Conn
	info     *serverInfo
	failures int
	lastFail time.Time
	closed   bool

	nextID atomic.Int64

	mu       sync.Mutex
	pending  map[string]*inflight // in-flight calls by upstream request id
	newest   *inflight
	attached map[*Session]struct{}
	listMu   sync.Mutex
	lists    map[string][]jsontext.Value
	// listen is the subscriptions/listen stream Sluice holds open on a
	// modern server for its legacy clients' resource subscriptions.
	listenMu     sync.Mutex
	listenURIs   map[string]int
	listenCancel context.CancelFunc
}

// inflight is one request Sluice has sent upstream and awaits.
type inflight struct {
	sess    *Session
	related func(*mcp.Message)
	seq     uint64
}

var inflightSeq atomic.Uint64

// ensure connects (or reconnects after a crash) with backoff.
func (us *USession) ensure(ctx context.Context) error {
	_, _, err := us.connected(ctx)
	return err
}

// connected returns the live connection and what the server declared,
// connecting (or reconnecting after a crash, with backoff) if need be.
func (us *USession) connected(ctx context.Context) (upstream.Conn, *serverInfo, error) {
	us.connMu.Lock()
	defer us.connMu.Unlock()
	if us.closed {
		return nil, nil, fmt.Errorf("%w: session closed", errUpstream)
	}
	if us.conn != nil {
		select {
		case <-us.conn.Done():
			us.up.g.log.Warn("upstream connection lost; restarting", "server", us.up.name, "err", us.conn.Err())
			us.conn.Close()
			us.conn = nil
			us.failures++
			us.lastFail = time.Now()
		default:
			return us.conn, us.info, nil
		}
	}
	if us.failures > 0 {
		wait := us.backoff() - time.Since(us.lastFail)
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, nil, ctx.Err()
			}
		}
	}
	if err := us.connect(ctx); err != nil {
		us.failures++
		us.lastFail = time.Now()
		return nil, nil, fmt.Errorf("%w: %s: %v", errUpstream, us.up.name, err)
	}
	return us.conn, us.info, nil
}

func (us *USession) backoff() time.Duration {
	initial := time.Duration(us.up.cfg.Restart.InitialBackoff)
	if initial <= 0 {
		initial = 250 * time.Millisecond
	}
	max := time.Duration(us.up.cfg.Restart.MaxBackoff)
	if max <= 0 {
		max = 30 * time.Second
	}
	d := initial
	for i := 1; i < us.failures && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

func (us *USession) connect(ctx context.Context) error {
	g := us.up.g
	opts := upstream.Options{Inbound: us.inbound, Limits: g.st.Load().limits, Logger: g.log.With("server", us.up.name)}
	conn, err := upstream.Dial(ctx, us.up.spec(), opts)
	if err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := us.handshake(hctx, conn)
	if err != nil {
		conn.Close()
		return err
	}
	us.conn = conn
	us.info = info
	us.failures = 0
	us.listMu.Lock()
	us.lists = nil
	us.listMu.Unlock()
	us.up.infoMu.Lock()
	us.up.info = info
	us.up.infoMu.Unlock()
	g.log.Debug("upstream session ready", "server", us.up.name, "era", info.era, "version", info.version)
	return nil
}

// handshake runs server/discover (modern) or initialize (legacy), as the
// server's configured era says; "auto" tries discover first.
func (us *USession) handshake(ctx context.Context, conn upstream.Conn) (*serverInfo, error) {
	era := us.up.cfg.Era
	if era == "" {
		era = config.EraAuto
	}
	if era == config.EraAuto && us.ci != nil && us.ci.version != "" {
		// A legacy client: speak its era when the server does, so that
		// everything the server offers that era works as it would directly.
		info, err := us.initialize(ctx, conn)
		if err == nil || ctx.Err() != nil {
			return info, err
		}
		us.up.g.log.Debug("initialize failed; trying server/discover", "server", us.up.name, "err", err)
		return us.discover(ctx, conn)
	}
	if era != config.EraLegacy {
		info, err := us.discover(ctx, conn)
		if err == nil {
			return info, nil
		}
		if era == config.EraModern {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, err
		}
		us.up.g.log.Debug("server/discover failed; falling back to initialize", "server", us.up.name, "err", err)
	}
	return us.initialize(ctx, conn)
}

func (us *USession) clientInfo() jsontext.Value {
	if us.ci != nil && len(us.ci.info) > 0 {
		return us.ci.info
	}
	v, _ := jsontext.AppendQuote([]byte(`{"name":"sluice","version":`), us.up.g.opts.Version)
	return append(v, '}')
}

func (us *USession) clientCaps() jsontext.Value {
	if us.ci != nil && len(us.ci.caps) > 0 {
		return us.ci.caps
	}
	if !us.up.cfg.Shared {
		// The probe session serves no client: it must not invite requests
		// (roots/list, elicitation) that nobody could answer.
		return jsontext.Value(`{}`)
	}
	return sluiceCaps
}

func (us *USession) discover(ctx context.Context, conn upstream.Conn) (*serverInfo, error) {
	if hc, ok := conn.(*upstream.HTTPConn); ok {
		hc.SetProtocolVersion(mcp.LatestModern)
	}
	params := us.modernMeta(jsontext.Value(`{}`), mcp.LatestModern)
	resp, err := conn.Call(ctx, mcp.NewRequest(us.newID(), mcp.MethodDiscover, params), nil)
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	var versions []string
	if v, ok, _ := mcp.Lookup(resp.Result, "supportedVersions"); ok && v.Kind() == '[' {
		for _, s := range splitArray(v) {
			if str, err := unquote(s); err == nil {
				versions = append(versions, str)
			}
		}
	}
	version := ""
	for _, v := range versions {
		if slices.Contains(mcp.ModernVersions, v) {
			version = v
			break
		}
	}
	if version == "" {
		return nil, fmt.Errorf("server supports no modern version Sluice speaks (it offers %v)", versions)
	}
	info := &serverInfo{era: mcp.EraModern, version: version}
	info.caps, _, _ = mcp.Lookup(resp.Result, "capabilities")
	info.serverInfo, _, _ = mcp.LookupPath(resp.Result, "_meta", mcp.MetaServerInfo)
	if len(info.serverInfo) == 0 {
		info.serverInfo, _, _ = mcp.Lookup(resp.Result, "serverInfo")
	}
	info.instructions, _, _ = mcp.LookupString(resp.Result, "instructions")
	if hc, ok := conn.(*upstream.HTTPConn); ok {
		hc.SetProtocolVersion(version)
	}
	return info, nil
}

func (us *USession) initialize(ctx context.Context, conn upstream.Conn) (*serverInfo, error) {
	version := mcp.LatestLegacy
	if us.ci != nil && us.ci.version != "" && !mcp.IsModernVersion(us.ci.version) && mcp.SupportedVersion(us.ci.version) {
		version = us.ci.version
	}
	p := []byte(`{"protocolVersion":`)
	p, _ = jsontext.AppendQuote(p, version)
	p = append(p, `,"capabilities":`...)
	p = append(p, us.clientCaps()...)
	p = append(p, `,"clientInfo":`...)
	p = append(p, us.clientInfo()...)
	p = append(p, '}')
	if hc, ok := conn.(*upstream.HTTPConn); ok {
		hc.SetProtocolVersion("")
	}
	resp, err := conn.Call(ctx, mcp.NewRequest(us.newID(), mcp.MethodInitialize, p), nil)
	if err != nil {
		return nil, err
	}
	if resp.Error != nil {
		return nil, resp.Error
	}
	info := &serverInfo{era: mcp.EraLegacy}
	info.version, _, _ = mcp.LookupString(resp.Result, "protocolVersion")
	if !mcp.SupportedVersion(info.version) || mcp.IsModernVersion(info.version) {
		return nil, fmt.Errorf("server chose protocol version %q, which Sluice does not speak", info.version)
	}
	info.caps, _, _ = mcp.Lookup(resp.Result, "capabilities")
	info.serverInfo, _, _ = mcp.Lookup(resp.Result, "serverInfo")
	info.instructions, _, _ = mcp.LookupString(resp.Result, "instructions")
	if hc, ok := conn.(*upstream.HTTPConn); ok {
		hc.SetProtocolVersion(info.version)
	}
	if err := conn.Send(ctx, mcp.NewNotification(mcp.NotifInitialized, nil)); err != nil {
		return nil, err
	}
	if hc, ok := conn.(*upstream.HTTPConn); ok {
		hc.OpenStream(context.WithoutCancel(ctx))
	}
	return info, nil
}

func (us *USession) newID() jsontext.Value {
	return strconv.AppendInt(nil, us.nextID.Add(1), 10)
}

// modernMeta sets the per-request metadata of the modern era in params.
func (us *USession) modernMeta(params jsontext.Value, version string) jsontext.Value {
	meta, _, _ := mcp.Lookup(params, "_meta")
	if meta.Kind() != '{' {
		meta = jsontext.Value(`{}`)
	}
	v, _ := jsontext.AppendQuote(nil, version)
	meta, _ = mcp.SetMember(meta, mcp.MetaProtocolVersion, v)
	meta, _ = mcp.SetMember(meta, mcp.MetaClientInfo, us.clientInfo())
	if c, ok, _ := mcp.Lookup(meta, mcp.MetaClientCapabilities); !ok || c.Kind() != '{' {
		meta, _ = mcp.SetMember(meta, mcp.MetaClientCapabilities, us.clientCaps())
	}
	out, err := mcp.SetMember(params, "_meta", meta)
	if err != nil {
		return params
	}
	return out
}

func (us *USession) current() (upstream.Conn, *serverInfo) {
	us.connMu.Lock()
	defer us.connMu.Unlock()
	return us.conn, us.info
}

// call sends one request upstream and waits for its response. params must
// already be in the upstream's terms (local names); for a modern upstream
// the per-request metadata is filled in here.
func (us *USession) call(ctx context.Context, sess *Session, method string, params jsontext.Value, related func(*mcp.Message)) (*mcp.Message, error) {
	conn, info, err := us.connected(ctx)
	if err != nil {
		return nil, err
	}
	if info.era == mcp.EraLegacy && sess != nil && sess.era == mcp.EraModern {
		params = stripModernMeta(params)
	}
	if info.era == mcp.EraModern {
		if sess != nil && sess.era == mcp.EraModern && len(params) > 0 {
			// A modern client's own metadata passes through; only the
			// version is pinned to what the upstream speaks.
			params = us.pinVersion(params, info.version, sess)
		} else {
			if params == nil {
				params = jsontext.Value(`{}`)
			}
			params = us.withClientMeta(params, info.version, sess)
		}
	}
	if err := ctx.Err(); err != nil {
		// The client gave up before its request could leave: there is
		// nothing to send and nothing to cancel upstream.
		us.up.g.log.Debug("upstream call not sent: the client gave up", "server", us.up.name, "method", method, "in_sluice", sinceRequest(ctx), "why", context.Cause(ctx))
		return nil, err
	}
	id := us.newID()
	fl := &inflight{sess: sess, related: related, seq: inflightSeq.Add(1)}
	key := string(id)
	us.mu.Lock()
	us.pending[key] = fl
	us.newest = fl
	us.mu.Unlock()
	defer func() {
		us.mu.Lock()
		delete(us.pending, key)
		if us.newest == fl {
			us.newest = nil
			for _, p := range us.pending {
				if us.newest == nil || p.seq > us.newest.seq {
					us.newest = p
				}
			}
		}
		us.mu.Unlock()
	}()
	var rel func(*mcp.Message)
	if related != nil {
		rel = func(m *mcp.Message) { us.handleRelated(fl, m) }
	}
	began := time.Now()
	resp, err := conn.Call(ctx, mcp.NewRequest(id, method, params), rel)
	if err != nil {
		if ctx.Err() != nil {
			// in_sluice against waited tells where the time went: in
			// the gateway before the call, or waiting for the server.
			us.up.g.log.Debug("upstream call abandoned", "server", us.up.name, "method", method, "upstream_id", string(id),
				"waited", time.Since(began), "in_sluice", sinceRequest(ctx), "why", context.Cause(ctx))
			if _, http := conn.(*upstream.HTTPConn); info.era == mcp.EraLegacy || !http {
				// Tell the server; on modern HTTP closing the stream is the
				// signal, everywhere else notifications/cancelled is.
				cp := append([]byte(`{"requestId":`), id...)
				cp = append(cp, `,"reason":"cancelled by client or timeout"}`...)
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				_ = conn.Send(sctx, mcp.NewNotification(mcp.NotifCancelled, cp))
				cancel()
			}
			return nil, ctx.Err()
		}
		if errors.Is(err, upstream.ErrSessionExpired) {
			us.connMu.Lock()
			if us.conn == conn {
				us.conn.Close()
				us.conn = nil
			}
			us.connMu.Unlock()
		}
		return nil, fmt.Errorf("%w: %s: %w", errUpstream, us.up.name, err)
	}
	return resp, nil
}

func (us *USession) withClientMeta(params jsontext.Value, version string, sess *Session) jsontext.Value {
	meta, _, _ := mcp.Lookup(params, "_meta")
	if meta.Kind() != '{' {
		meta = jsontext.Value(`{}`)
	}
	v, _ := jsontext.AppendQuote(nil, version)
	meta, _ = mcp.SetMember(meta, mcp.MetaProtocolVersion, v)
	info, caps := us.clientInfo(), us.clientCaps()
	if sess != nil {
		if len(sess.clientInfo) > 0 {
			info = sess.clientInfo
		}
		if len(sess.caps) > 0 {
			caps = sess.caps
		}
	}
	meta, _ = mcp.SetMember(meta, mcp.MetaClientInfo, info)
	meta, _ = mcp.SetMember(meta, mcp.MetaClientCapabilities, caps)
	if sess != nil && sess.logLevel != "" {
		lv, _ := jsontext.AppendQuote(nil, sess.logLevel)
		meta, _ = mcp.SetMember(meta, mcp.MetaLogLevel, lv)
	}
	out, err := mcp.SetMember(params, "_meta", meta)
	if err != nil {
		return params
	}
	return out
}

func (us *USession) pinVersion(params jsontext.Value, version string, sess *Session) jsontext.Value {
	cur, _, _ := mcp.LookupPath(params, "_meta", mcp.MetaProtocolVersion)
	want, _ := jsontext.AppendQuote(nil, version)
	if string(cur) == string(want) {
		return params
	}
	return us.withClientMeta(params, version, sess)
}

// notify sends a notification upstream.
func (us *USession) notify(ctx context.Context, method string, params jsontext.Value) error {
	conn, _ := us.current()
	if conn == nil {
		return fmt.Errorf("%w: %s: not connected", errUpstream, us.up.name)
	}
	return conn.Send(ctx, mcp.NewNotification(method, params))
}

// respond answers a server-to-client request.
func (us *USession) respond(ctx context.Context, m *mcp.Message) error {
	conn, _ := us.current()
	if conn == nil {
		return fmt.Errorf("%w: %s: not connected", errUpstream, us.up.name)
	}
	return conn.Send(ctx, m)
}

func (us *USession) attach(s *Session) {
	us.mu.Lock()
	us.attached[s] = struct{}{}
	us.mu.Unlock()
}

func (us *USession) detach(s *Session) {
	us.mu.Lock()
	delete(us.attached, s)
	us.mu.Unlock()
}

// handleRelated receives what the server sent on a call's response stream.
func (us *USession) handleRelated(fl *inflight, m *mcp.Message) {
	if m.IsNotification() && m.Method == mcp.NotifProgress {
		us.up.g.routeProgress(us, m)
		return
	}
	if m.IsRequest() && m.Method == mcp.MethodPing {
		us.answerPing(m)
		return
	}
	fl.related(m)
}

// inbound receives what the server sent outside any response stream.
func (us *USession) inbound(m *mcp.Message) {
	g := us.up.g
	switch {
	case m.IsNotification():
		switch m.Method {
		case mcp.NotifProgress:
			g.routeProgress(us, m)
			return
		case mcp.NotifToolsListChanged, mcp.NotifPromptsListChanged, mcp.NotifResourcesListChanged:
			us.listMu.Lock()
			us.lists = nil
			us.listMu.Unlock()
			if m.Method == mcp.NotifToolsListChanged {
				us.up.forgetTools()
			}
		case mcp.NotifCancelled:
			us.forwardCancel(m)
			return
		default:
			if us.crossesPrincipals() {
				// Log messages and resource updates may carry one
				// caller's data; with several principals on one
				// connection nobody can tell whose.
				g.log.Debug("dropping upstream notification on a shared session", "server", us.up.name, "method", m.Method)
				return
			}
		}
		us.broadcast(m)
	case m.IsRequest():
		if m.Method == mcp.MethodPing {
			us.answerPing(m)
			return
		}
		if us.crossesPrincipals() {
			// A request outside any call's response stream cannot be tied
			// to the principal whose call caused it: the newest call, or
			// any attached session, may be someone else's.
			e := mcp.NewError(mcp.CodeMethodNotFound, "this server is shared between callers; its requests reach a client only within the response to that client's own call")
			_ = us.respond(context.Background(), mcp.NewErrorResponse(m.ID, e))
			return
		}
		us.mu.Lock()
		fl := us.newest
		us.mu.Unlock()
		if fl != nil && fl.related != nil {
			fl.related(m)
			return
		}
		// Not tied to a call: hand it to a session that can take it.
		for _, s := range us.attachedSessions() {
			if s.era == mcp.EraLegacy {
				s.forwardServerRequest(context.Background(), us, m, nil)
				return
			}
		}
		e := mcp.NewError(mcp.CodeMethodNotFound, "no client can answer this request now")
		_ = us.respond(context.Background(), mcp.NewErrorResponse(m.ID, e))
	default:
		g.log.Debug("unexpected message from upstream", "server", us.up.name)
	}
}

// crossesPrincipals reports whether the session may carry the calls of
// several authenticated principals: a shared upstream (shared: true) while
// authentication is configured. Without authentication every caller is the
// same nobody; unshared sessions belong to one downstream session or one
// principal.
func (us *USession) crossesPrincipals() bool {
	return us.up.cfg.Shared && us.up.g.st.Load().authn != nil
}

func (us *USession) answerPing(m *mcp.Message) {
	_ = us.respond(context.Background(), mcp.NewResult(m.ID, jsontext.Value(`{}`)))
}

func (us *USession) attachedSessions() []*Session {
	us.mu.Lock()
	defer us.mu.Unlock()
	return slices.Collect(maps.Keys(us.attached))
}

// broadcast sends an upstream notification to the sessions it concerns.
func (us *USession) broadcast(m *mcp.Message) {
	for _, s := range us.attachedSessions() {
		s.upstreamNotification(us.up.name, m)
	}
}

// forwardCancel relays a server's cancellation of its own request to the
// client that received it.
func (us *USession) forwardCancel(m *mcp.Message) {
	id, ok, _ := mcp.Lookup(m.Params, "requestId")
	if !ok {
		return
	}
	for _, s := range us.attachedSessions() {
		s.cancelServerRequest(us, id)
	}
}

// list fetches every page of a list method and caches the items.
func (us *USession) list(ctx context.Context, method string) ([]jsontext.Value, jsontext.Value, error) {
	member := listMember(method)
	var (
		items  []jsontext.Value
		cursor jsontext.Value
		extra  jsontext.Value
	)
	for page := 0; page < 1000; page++ {
		params := jsontext.Value(`{}`)
		if cursor != nil {
			params, _ = mcp.SetMember(params, "cursor", cursor)
		}
		resp, err := us.call(ctx, nil, method, params, nil)
		if err != nil {
			return nil, nil, err
		}
		if resp.Error != nil {
			return nil, nil, resp.Error
		}
		arr, ok, err := mcp.Lookup(resp.Result, member)
		if err != nil {
			return nil, nil, err
		}
		if ok && arr.Kind() == '[' {
			items = append(items, splitArray(arr)...)
		}
		if extra == nil {
			extra = resp.Result
		}
		next, ok, _ := mcp.Lookup(resp.Result, "nextCursor")
		if !ok || next.Kind() != '"' || string(next) == `""` {
			break
		}
		cursor = next
	}
	if method == mcp.MethodToolsList {
		us.up.rememberTools(items)
	}
	us.listMu.Lock()
	if us.lists == nil {
		us.lists = map[string][]jsontext.Value{}
	}
	us.lists[method] = items
	us.listMu.Unlock()
	return items, extra, nil
}

// cachedList returns the last fetched items of a list method.
func (us *USession) cachedList(method string) ([]jsontext.Value, bool) {
	us.listMu.Lock()
	defer us.listMu.Unlock()
	items, ok := us.lists[method]
	return items, ok
}

func (us *USession) close() {
	us.listenMu.Lock()
	if us.listenCancel != nil {
		us.listenCancel()
	}
	us.listenMu.Unlock()
	us.connMu.Lock()
	us.closed = true
	conn := us.conn
	us.conn = nil
	us.connMu.Unlock()
	if conn != nil {
		conn.Close()
	}
}

func listMember(method string) string {
	switch method {
	case mcp.MethodToolsList:
		return "tools"
	case mcp.MethodPromptsList:
		return "prompts"
	case mcp.MethodResourcesList:
		return "resources"
	case mcp.MethodResourceTemplatesList:
		return "resourceTemplates"
	}
	return ""
}

// splitArray returns the raw elements of a JSON array.
func splitArray(arr jsontext.Value) []jsontext.Value {
	var out []jsontext.Value
	_ = mcp.EachElement(arr, func(v jsontext.Value) error {
		out = append(out, v)
		return nil
	})
	return out
}

func unquote(v jsontext.Value) (string, error) {
	b, err := jsontext.AppendUnquote(nil, v)
	return string(b), err
}

// minimalEnv is the base environment of launched servers: enough to find
// programs and a home directory, nothing secret.
func MinimalEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// stripModernMeta removes the per-request metadata of the modern era, which
// a legacy server would take for a version it does not speak.
func stripModernMeta(params jsontext.Value) jsontext.Value {
	meta, ok, _ := mcp.Lookup(params, "_meta")
	if !ok || meta.Kind() != '{' {
		return params
	}
	var drop []string
	_ = mcp.EachMember(meta, func(name string, _ jsontext.Value) error {
		if strings.HasPrefix(name, "io.modelcontextprotocol/") {
			drop = append(drop, name)
		}
		return nil
	})
	if len(drop) == 0 {
		return params
	}
	for _, k := range drop {
		meta, _ = mcp.DeleteMember(meta, k)
	}
	var out jsontext.Value
	var err error
	if string(meta) == "{}" {
		out, err = mcp.DeleteMember(params, "_meta")
	} else {
		out, err = mcp.SetMember(params, "_meta", meta)
	}
	if err != nil {
		return params
	}
	return out
}

// subscribe adds (or, with delta -1, removes) a legacy client's resource
// subscription on a modern server, which has no resources/subscribe: Sluice
// keeps one subscriptions/listen stream per upstream session for all of
// them, reopened whenever the set of URIs changes.
func (us *USession) subscribe(uri string, delta int) {
	us.listenMu.Lock()
	defer us.listenMu.Unlock()
	if us.listenURIs == nil {
		us.listenURIs = map[string]int{}
	}
	us.listenURIs[uri] += delta
	if us.listenURIs[uri] <= 0 {
		delete(us.listenURIs, uri)
	}
	if us.listenCancel != nil {
		us.listenCancel()
		us.listenCancel = nil
	}
	if len(us.listenURIs) == 0 {
		return
	}
	uris := make([]string, 0, len(us.listenURIs))
	for u := range us.listenURIs {
		uris = append(uris, u)
	}
	slices.Sort(uris)
	p := []byte(`{"notifications":{"toolsListChanged":true,"promptsListChanged":true,"resourcesListChanged":true,"resourceSubscriptions":[`)
	for i, u := range uris {
		if i > 0 {
			p = append(p, ',')
		}
		p, _ = jsontext.AppendQuote(p, u)
	}
	p = append(p, `]}}`...)
	ctx, cancel := context.WithCancel(context.Background())
	us.listenCancel = cancel
	acked := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := us.call(ctx, nil, mcp.MethodSubscriptionsListen, p, func(m *mcp.Message) {
			if m.Method == mcp.NotifSubscriptionsAcknowledged {
				once.Do(func() { close(acked) })
				return
			}
			us.inbound(m)
		})
		if err != nil && ctx.Err() == nil {
			us.up.g.log.Warn("subscription stream to the upstream ended", "server", us.up.name, "err", err)
		}
	}()
	// Wait briefly for the acknowledgement so that an update right after
	// the subscribe call is not missed.
	select {
	case <-acked:
	case <-time.After(2 * time.Second):
	}
}

// sinceRequest is how long the client's request has been inside the
// gateway, or 0 when ctx carries no client request.
func sinceRequest(ctx context.Context) time.Duration {
	if cc := callCtxFrom(ctx); cc != nil && !cc.start.IsZero() {
		return time.Since(cc.start)
	}
	return 0
}
