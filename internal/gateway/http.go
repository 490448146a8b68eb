package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sluicehq/sluice/internal/approval"
	"github.com/sluicehq/sluice/internal/authn"
	"github.com/sluicehq/sluice/internal/guard"
	"github.com/sluicehq/sluice/internal/mcp"
)

// HTTP headers of the Streamable HTTP transport.
const (
	hdrSessionID       = "Mcp-Session-Id"
	hdrProtocolVersion = "Mcp-Protocol-Version"
	hdrMethod          = "Mcp-Method"
	hdrName            = "Mcp-Name"
)

// HTTPOptions configure the downstream HTTP handler.
type HTTPOptions struct {
	// AllowedOrigins and AllowedHosts extend the loopback defaults.
	AllowedOrigins []string
	AllowedHosts   []string
}

// HTTPHandler serves MCP's Streamable HTTP transport at /mcp (the default
// profile) and /mcp/<profile>, in both protocol eras.
type HTTPHandler struct {
	g    *Gateway
	opts HTTPOptions
}

// NewHTTPHandler returns the downstream HTTP handler of g.
func NewHTTPHandler(g *Gateway, opts HTTPOptions) *HTTPHandler {
	return &HTTPHandler{g: g, opts: opts}
}

func (h *HTTPHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, authn.WellKnownPath) {
		h.metadata(w, r)
		return
	}
	profile, ok := strings.CutPrefix(r.URL.Path, "/mcp")
	if !ok || (profile != "" && profile[0] != '/') {
		http.NotFound(w, r)
		return
	}
	st := h.g.st.Load()
	// DNS rebinding defence first, so that a hostile page learns nothing,
	// not even which profiles exist.
	if !h.hostAllowed(st, r.Host) {
		h.g.auditRefusal(r, "http", ReasonHostNotAllowed)
		writeHTTPError(w, http.StatusForbidden, nil, mcp.NewError(mcp.CodeInvalidRequest, "host not allowed"))
		return
	}
	if origin := r.Header.Get("Origin"); origin != "" && !h.originAllowed(origin) {
		h.g.auditRefusal(r, "http", ReasonOriginNotAllowed)
		writeHTTPError(w, http.StatusForbidden, nil, mcp.NewError(mcp.CodeInvalidRequest, "origin not allowed"))
		return
	}
	// Authentication before routing, so that an unauthenticated caller
	// learns nothing about which profiles exist either.
	var principal *guard.Principal
	if st.authn != nil {
		p, err := st.authn.Authenticate(r)
		if err != nil {
			h.g.log.Info("request not authenticated", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
			h.g.auditRefusal(r, "authn", authn.ReasonOf(err))
			st.authn.WriteChallenge(w, r, err)
			return
		}
		principal = p
	}
	ctx := withTransport(r.Context(), httpTransport(r))
	if principal != nil {
		ctx = withPrincipal(ctx, principal)
	}
	r = r.WithContext(ctx)
	profile = strings.Trim(profile, "/")
	if profile == "default" {
		profile = ""
	}
	if !h.g.Profile(profile) {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPost:
		h.post(w, r, profile, principal)
	case http.MethodGet:
		h.get(w, r, profile, principal)
	case http.MethodDelete:
		h.delete(w, r, profile, principal)
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// policyHeaders are the request headers guards may read; credentials and
// cookies are never among them.
var policyHeaders = []string{"User-Agent", "X-Forwarded-For", "X-Request-Id", "Traceparent", hdrProtocolVersion}

// policyHeaderKeys are policyHeaders as guards see them, in lower case.
var policyHeaderKeys = func() []string {
	keys := make([]string, len(policyHeaders))
	for i, k := range policyHeaders {
		keys[i] = strings.ToLower(k)
	}
	return keys
}()

func httpTransport(r *http.Request) *guard.Transport {
	t := &guard.Transport{Kind: "http", RemoteAddr: r.RemoteAddr}
	for i, k := range policyHeaders {
		if v := r.Header[k]; len(v) > 0 {
			if t.Headers == nil {
				t.Headers = make(map[string]string, len(policyHeaders))
			}
			t.Headers[policyHeaderKeys[i]] = v[0]
		}
	}
	return t
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// metadata serves the protected resource metadata (RFC 9728) when OAuth
// is configured, and 404 otherwise.
func (h *HTTPHandler) metadata(w http.ResponseWriter, r *http.Request) {
	st := h.g.st.Load()
	if st.authn == nil {
		http.NotFound(w, r)
		return
	}
	st.authn.Metadata().ServeHTTP(w, r)
}

func (h *HTTPHandler) hostAllowed(st *state, hostport string) bool {
	if slices.Contains(h.opts.AllowedHosts, hostport) || (st.resourceHost != "" && hostport == st.resourceHost) {
		return true
	}
	host := hostport
	if hst, _, err := net.SplitHostPort(hostport); err == nil {
		host = hst
	}
	return isLoopbackHost(host) || slices.Contains(h.opts.AllowedHosts, host)
}

func (h *HTTPHandler) originAllowed(origin string) bool {
	if slices.Contains(h.opts.AllowedOrigins, origin) {
		return true
	}
	rest, ok := strings.CutPrefix(origin, "http://")
	if !ok {
		rest, ok = strings.CutPrefix(origin, "https://")
	}
	if !ok {
		return false
	}
	host := rest
	if hst, _, err := net.SplitHostPort(rest); err == nil {
		host = hst
	}
	return isLoopbackHost(host)
}

func writeHTTPError(w http.ResponseWriter, status int, id jsontext.Value, e *mcp.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(mcp.NewErrorResponse(id, e).Encode())
}

func (h *HTTPHandler) post(w http.ResponseWriter, r *http.Request, profile string, principal *guard.Principal) {
	lim := h.g.Limits()
	max := lim.MaxBytes
	if max <= 0 {
		max = mcp.DefaultMaxBytes
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(max)+1))
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, nil, mcp.NewError(mcp.CodeParseError, "could not read the request body"))
		return
	}
	if len(body) > max {
		writeHTTPError(w, http.StatusRequestEntityTooLarge, nil, mcp.NewError(mcp.CodeMessageTooLarge, "message too large"))
		return
	}
	m, err := mcp.Decode(body, lim)
	if err != nil {
		resp := decodeFailure(err)
		status := http.StatusBadRequest
		if resp.Error.Code == mcp.CodeMessageTooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		writeHTTPError(w, status, resp.ID, resp.Error)
		return
	}
	hdrVersion := r.Header.Get(hdrProtocolVersion)
	metaVersion := ""
	if m.Params != nil {
		if v, ok, _ := mcp.LookupPath(m.Params, "_meta", mcp.MetaProtocolVersion); ok {
			metaVersion, _ = unquote(v)
		}
	}
	sid := r.Header.Get(hdrSessionID)
	modern := m.Method == mcp.MethodDiscover || mcp.IsModernVersion(metaVersion) || (mcp.IsModernVersion(hdrVersion) && sid == "")
	if modern && !(m.Method == mcp.MethodInitialize && metaVersion == "") {
		h.postModern(w, r, profile, principal, m, hdrVersion, metaVersion)
		return
	}
	h.postLegacy(w, r, profile, principal, m, sid, hdrVersion)
}

// postLegacy serves a message of a 2025-11-25-era client.
func (h *HTTPHandler) postLegacy(w http.ResponseWriter, r *http.Request, profile string, principal *guard.Principal, m *mcp.Message, sid, hdrVersion string) {
	var s *Session
	if m.Method == mcp.MethodInitialize {
		if sid != "" {
			writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidRequest, "initialize must not carry a session id"))
			return
		}
		if !m.IsRequest() {
			writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidRequest, "initialize must be a request"))
			return
		}
		s = h.g.NewSession(SessionOptions{Era: mcp.EraLegacy, Profile: profile, Principal: principal})
	} else {
		if sid == "" {
			writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidRequest, "missing "+hdrSessionID+" header"))
			return
		}
		s = h.session(sid, profile, principal)
		if s == nil {
			writeHTTPError(w, http.StatusNotFound, m.ID, mcp.NewError(mcp.CodeInvalidRequest, "session not found"))
			return
		}
		if hdrVersion != "" && hdrVersion != s.version && s.version != "" {
			if !mcp.SupportedVersion(hdrVersion) || mcp.IsModernVersion(hdrVersion) {
				writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidRequest, "unsupported "+hdrProtocolVersion+": "+hdrVersion))
				return
			}
		}
	}
	switch m.Kind() {
	case mcp.KindNotification:
		s.HandleNotification(r.Context(), m)
		w.WriteHeader(http.StatusAccepted)
		return
	case mcp.KindResponse:
		s.HandleResponse(m)
		w.WriteHeader(http.StatusAccepted)
		return
	}
	sw := newSSEWriter(w, acceptsSSE(r))
	resp := s.HandleRequest(r.Context(), m, sw)
	if m.Method == mcp.MethodInitialize {
		if resp.Error != nil {
			s.Close()
		} else {
			w.Header().Set(hdrSessionID, s.ID())
		}
	}
	sw.finish(resp, h.denialStatus(w, resp))
}

// denialStatus gives a denied request the HTTP status its denial means:
// 403, except for a rate limit, which answers 200 with a Retry-After
// header next to the JSON-RPC error (whose data carries retryAfterMs).
// Anything else is 200: JSON-RPC errors travel in the body.
//
// A rate limit does not answer 429 because MCP clients treat a 429 as a
// transport failure and drop its body: the go-sdk (v1.8.0) reports only
// "Too Many Requests", so the agent would never learn how long to wait,
// nor that Sluice, not the server, refused the call.
func (h *HTTPHandler) denialStatus(w http.ResponseWriter, resp *mcp.Message) int {
	if resp.Error == nil || resp.Error.Code != mcp.CodeDenied {
		return http.StatusOK
	}
	if v, ok, _ := mcp.Lookup(resp.Error.Data, "retryAfterMs"); ok && v.Kind() == '0' {
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil && ms > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
			return http.StatusOK
		}
	}
	return http.StatusForbidden
}

// postModern serves a request of a 2026-07-28-era client: no session,
// everything Sluice needs travels with the request.
func (h *HTTPHandler) postModern(w http.ResponseWriter, r *http.Request, profile string, principal *guard.Principal, m *mcp.Message, hdrVersion, metaVersion string) {
	mismatch := func(msg string) {
		writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeHeaderMismatch, "header mismatch: "+msg))
	}
	if m.IsResponse() {
		writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidRequest, "clients of this protocol version send no responses"))
		return
	}
	if hdrVersion == "" {
		mismatch("missing " + hdrProtocolVersion + " header")
		return
	}
	if metaVersion == "" && m.IsRequest() {
		writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidParams, "missing _meta."+mcp.MetaProtocolVersion))
		return
	}
	if metaVersion != "" && hdrVersion != metaVersion {
		mismatch(hdrProtocolVersion + " header does not match _meta")
		return
	}
	if !slices.Contains(mcp.ModernVersions, hdrVersion) {
		data := []byte(`{"supported":["` + strings.Join(mcp.ModernVersions, `","`) + `"],"requested":`)
		data, _ = jsontext.AppendQuote(data, hdrVersion)
		data = append(data, '}')
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write(mcp.NewErrorResponse(m.ID, &mcp.Error{Code: mcp.CodeUnsupportedProtocolVersion, Message: "unsupported protocol version", Data: data}).Encode())
		return
	}
	hm, hasMethod := r.Header[http.CanonicalHeaderKey(hdrMethod)]
	if !hasMethod || len(hm) != 1 {
		mismatch("missing " + hdrMethod + " header")
		return
	}
	if hm[0] != m.Method {
		mismatch(hdrMethod + " header does not match the body")
		return
	}
	if field := nameField(m.Method); field != "" {
		bodyName, _, err := mcp.LookupString(m.Params, field)
		if err != nil {
			writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidParams, err.Error()))
			return
		}
		hn, ok := r.Header[http.CanonicalHeaderKey(hdrName)]
		if !ok || len(hn) != 1 {
			mismatch("missing " + hdrName + " header")
			return
		}
		name, ok := mcp.DecodeHeaderValue(hn[0])
		if !ok {
			mismatch(hdrName + " header is malformed")
			return
		}
		if name != bodyName {
			mismatch(hdrName + " header does not match the body")
			return
		}
	}
	if m.Method == mcp.MethodToolsCall {
		if msg := h.checkParams(r, profile, m.Params); msg != "" {
			mismatch(msg)
			return
		}
	}
	if m.IsNotification() {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	caps, ok, err := mcp.LookupPath(m.Params, "_meta", mcp.MetaClientCapabilities)
	if err != nil || !ok || caps.Kind() != '{' {
		writeHTTPError(w, http.StatusBadRequest, m.ID, mcp.NewError(mcp.CodeInvalidParams, "missing _meta."+mcp.MetaClientCapabilities))
		return
	}
	s := h.g.NewSession(SessionOptions{Era: mcp.EraModern, Profile: profile, Principal: principal, Ephemeral: true})
	s.version = metaVersion
	s.caps = caps
	s.clientInfo, _, _ = mcp.LookupPath(m.Params, "_meta", mcp.MetaClientInfo)
	s.client.Name, _, _ = mcp.LookupString(s.clientInfo, "name")
	s.client.Version, _, _ = mcp.LookupString(s.clientInfo, "version")
	s.client.Capabilities = caps
	if lv, ok, _ := mcp.LookupPath(m.Params, "_meta", mcp.MetaLogLevel); ok {
		s.logLevel, _ = unquote(lv)
	}
	defer s.close()
	sw := newSSEWriter(w, acceptsSSE(r))
	resp := s.HandleRequest(r.Context(), m, sw)
	status := http.StatusOK
	if resp.Error != nil {
		switch resp.Error.Code {
		case mcp.CodeMethodNotFound:
			status = http.StatusNotFound
		case mcp.CodeHeaderMismatch, mcp.CodeMissingRequiredClientCapability, mcp.CodeUnsupportedProtocolVersion:
			status = http.StatusBadRequest
		case mcp.CodeDenied:
			status = h.denialStatus(w, resp)
		}
	}
	sw.finish(resp, status)
}

func nameField(method string) string {
	switch method {
	case mcp.MethodToolsCall, mcp.MethodPromptsGet:
		return "name"
	case mcp.MethodResourcesRead:
		return "uri"
	}
	return ""
}

// checkParams validates Mcp-Param-* headers of a tools/call against the
// tool's x-mcp-header annotations.
func (h *HTTPHandler) checkParams(r *http.Request, profile string, params jsontext.Value) string {
	st := h.g.st.Load()
	p := st.profiles[profile]
	exposed, _, _ := mcp.LookupString(params, "name")
	server, local, ok := st.route(p, exposed)
	if !ok {
		return ""
	}
	up := h.g.upstream(server)
	if up == nil {
		return ""
	}
	bindings := up.toolBindings(r.Context(), local)
	if len(bindings) == 0 {
		return ""
	}
	args, _, _ := mcp.Lookup(params, "arguments")
	return checkParamHeaders(r.Header, bindings, args)
}

func acceptsSSE(r *http.Request) bool {
	for _, a := range r.Header.Values("Accept") {
		if strings.Contains(a, "text/event-stream") || strings.Contains(a, "*/*") {
			return true
		}
	}
	return false
}

// session finds the legacy session sid of profile, if principal may use it:
// a session is bound to the principal that created it, and another
// principal presenting its id is told it does not exist (which tells it
// nothing).
func (h *HTTPHandler) session(sid, profile string, principal *guard.Principal) *Session {
	s := h.g.Session(sid)
	if s == nil || s.profile != profile {
		return nil
	}
	if h.g.st.Load().authn != nil && !s.ownedBy(principal) {
		// The id is the owner's credential for the session: the log gets
		// a digest that correlates, never the id itself.
		sum := sha256.Sum256([]byte(sid))
		h.g.log.Warn("session id presented by another principal", "session_sha256", hex.EncodeToString(sum[:6]), "owner", s.principal.Subject, "caller", principal.Subject)
		return nil
	}
	return s
}

func (h *HTTPHandler) get(w http.ResponseWriter, r *http.Request, profile string, principal *guard.Principal) {
	sid := r.Header.Get(hdrSessionID)
	if sid == "" {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := h.session(sid, profile, principal)
	if s == nil {
		writeHTTPError(w, http.StatusNotFound, nil, mcp.NewError(mcp.CodeInvalidRequest, "session not found"))
		return
	}
	if !acceptsSSE(r) {
		http.Error(w, "the GET stream needs Accept: text/event-stream", http.StatusNotAcceptable)
		return
	}
	if !s.claimStream() {
		http.Error(w, "a stream is already open for this session", http.StatusConflict)
		return
	}
	defer s.releaseStream()
	sw := newSSEWriter(w, true)
	sw.start()
	for {
		select {
		case m := <-s.Out():
			if err := sw.Send(m); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.Done():
			return
		case <-h.g.closing():
			return
		}
	}
}

func (h *HTTPHandler) delete(w http.ResponseWriter, r *http.Request, profile string, principal *guard.Principal) {
	sid := r.Header.Get(hdrSessionID)
	if sid == "" {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s := h.session(sid, profile, principal)
	if s == nil {
		writeHTTPError(w, http.StatusNotFound, nil, mcp.NewError(mcp.CodeInvalidRequest, "session not found"))
		return
	}
	s.Close()
	w.WriteHeader(http.StatusNoContent)
}

// hvJSON is a shared header value, never modified.
var hvJSON = []string{"application/json"}

// sseWriter answers one POST: plain JSON unless something is sent before
// the response, in which case it switches to an SSE stream.
type sseWriter struct {
	w       http.ResponseWriter
	canSSE  bool
	mu      sync.Mutex
	started bool
	done    bool
	buf     []byte
}

func newSSEWriter(w http.ResponseWriter, canSSE bool) *sseWriter {
	return &sseWriter{w: w, canSSE: canSSE}
}

var errStreamClosed = errors.New("stream closed")

func (sw *sseWriter) start() {
	if sw.started {
		return
	}
	sw.started = true
	h := sw.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	sw.w.WriteHeader(http.StatusOK)
	if f, ok := sw.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Send writes a message related to the request as an SSE event.
func (sw *sseWriter) Send(m *mcp.Message) error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.done || !sw.canSSE {
		return errStreamClosed
	}
	sw.start()
	return sw.event(m)
}

func (sw *sseWriter) event(m *mcp.Message) error {
	b := append(sw.buf[:0], "event: message\ndata: "...)
	b = m.Append(b)
	b = append(b, "\n\n"...)
	sw.buf = b
	if _, err := sw.w.Write(b); err != nil {
		return err
	}
	if f, ok := sw.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

// finish writes the response and closes the stream.
func (sw *sseWriter) finish(resp *mcp.Message, status int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if sw.done {
		return
	}
	sw.done = true
	if sw.started {
		_ = sw.event(resp)
		return
	}
	h := sw.w.Header()
	h["Content-Type"] = hvJSON
	if resp.Error == nil && len(resp.Result) > 4096 {
		// Write a large result where it lies instead of copying it into a
		// new envelope.
		head := append(append([]byte(`{"jsonrpc":"2.0","id":`), resp.ID...), `,"result":`...)
		tail := append(resp.Extra[:len(resp.Extra):len(resp.Extra)], '}')
		h.Set("Content-Length", strconv.Itoa(len(head)+len(resp.Result)+len(tail)))
		sw.w.WriteHeader(status)
		_, _ = sw.w.Write(head)
		_, _ = sw.w.Write(resp.Result)
		_, _ = sw.w.Write(tail)
		return
	}
	b := resp.Encode()
	h.Set("Content-Length", strconv.Itoa(len(b)))
	sw.w.WriteHeader(status)
	_, _ = sw.w.Write(b)
}

// claimStream marks the session's GET stream as open.
func (s *Session) claimStream() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streamOpen {
		return false
	}
	s.streamOpen = true
	return true
}

func (s *Session) releaseStream() {
	s.mu.Lock()
	s.streamOpen = false
	s.mu.Unlock()
	s.touch()
}

// Authenticate returns the verified principal of r under the current
// configuration's authentication, for endpoints beside /mcp (the approvals
// endpoint). Without authentication configured it refuses every request:
// such endpoints have no anonymous mode.
func (h *HTTPHandler) Authenticate(r *http.Request) (*guard.Principal, error) {
	st := h.g.st.Load()
	if st.authn == nil {
		return nil, errors.New("authentication is not configured")
	}
	return st.authn.Authenticate(r)
}

// Approvals returns the approvals endpoint (/approvals, /approvals/{id};
// see [approval.Manager.Handler]) behind the same Host and Origin checks as
// /mcp. authenticate returns a request's verified principal; nil refuses
// every request, so the endpoint is closed until an authenticator is
// wired.
func (h *HTTPHandler) Approvals(authenticate approval.Authenticator) http.Handler {
	inner := h.g.approvals.Handler(authenticate)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.hostAllowed(h.g.st.Load(), r.Host) {
			http.Error(w, "host not allowed", http.StatusForbidden)
			return
		}
		if origin := r.Header.Get("Origin"); origin != "" && !h.originAllowed(origin) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		inner.ServeHTTP(w, r)
	})
}
