package approval

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"

	"github.com/go-json-experiment/json"

	"github.com/sluicehq/sluice/internal/guard"
)

// The approvals endpoint. Every request is authenticated by the function
// the gateway passes to [Manager.Handler] and must come from a configured
// approver:
//
//	GET  /approvals       {"approvals":[Pending...]}, oldest first
//	GET  /approvals/{id}  one Pending
//	POST /approvals/{id}  body DecisionRequest, answer DecisionResponse
//
// Errors are {"error":"..."} with 400 (bad body), 401 (not authenticated),
// 403 (not an approver, or approving one's own call), 404 (no such waiting
// call: unknown, already decided or expired) or 415 (body not JSON).

// ListResponse is the body of GET /approvals.
type ListResponse struct {
	Approvals []Pending `json:"approvals"`
}

// DecisionRequest is the body of POST /approvals/{id}.
type DecisionRequest struct {
	// Decision is "approve" or "deny".
	Decision string `json:"decision"`
	// Reason is shown to the agent on a denial (at most 200 bytes are kept).
	Reason string `json:"reason,omitempty"`
}

// DecisionResponse is the answer to a decision.
type DecisionResponse struct {
	ID       string `json:"id"`
	Decision string `json:"decision"`
	Approver string `json:"approver"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Decisions an approver can post.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// maxDecisionBody bounds the body of a decision.
const maxDecisionBody = 8 << 10

type principalKey struct{}

// Authenticator returns the verified principal of an HTTP request, or an
// error (or nil) when the request is not authenticated. The gateway wires
// the one of internal/authn.
type Authenticator func(r *http.Request) (*guard.Principal, error)

// errNoAuthenticator is the answer to every request when no
// [Authenticator] is configured.
const errNoAuthenticator = "the approvals endpoint needs authentication, and none is configured"

// Handler returns the approvals endpoint, serving the paths /approvals and
// /approvals/{id} as they are (mount it at both, without stripping the
// prefix). authenticate returns a request's principal; an error or a nil
// principal is answered 401 without detail. Only configured approvers get
// further. With a nil authenticate the endpoint fails closed: every
// request is answered 401, since anyone who can reach it could otherwise
// approve calls.
func (m *Manager) Handler(authenticate Authenticator) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /approvals", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ListResponse{Approvals: m.List()})
	})
	mux.HandleFunc("GET /approvals/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := m.Get(r.PathValue("id"))
		if !ok {
			writeJSON(w, http.StatusNotFound, ErrorResponse{ErrNotFound.Error()})
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /approvals/{id}", m.serveDecision)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if authenticate == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{errNoAuthenticator})
			return
		}
		p, err := authenticate(r)
		if err != nil || p == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeJSON(w, http.StatusUnauthorized, ErrorResponse{"authentication required"})
			return
		}
		if !m.set.Load().isApprover(p) {
			writeJSON(w, http.StatusForbidden, ErrorResponse{ErrNotApprover.Error()})
			return
		}
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (m *Manager) serveDecision(w http.ResponseWriter, r *http.Request) {
	approver, _ := r.Context().Value(principalKey{}).(*guard.Principal)
	// A JSON content type keeps plain HTML forms of other sites out.
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, ErrorResponse{"the body must be application/json"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDecisionBody))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{"the body is too large or could not be read"})
		return
	}
	var req DecisionRequest
	if err := json.Unmarshal(body, &req, json.RejectUnknownMembers(true)); err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{`the body must be {"decision":"approve"|"deny","reason":"..."}`})
		return
	}
	var approve bool
	switch req.Decision {
	case DecisionApprove:
		approve = true
	case DecisionDeny:
	default:
		writeJSON(w, http.StatusBadRequest, ErrorResponse{`decision must be "approve" or "deny"`})
		return
	}
	id := r.PathValue("id")
	err = m.Decide(r.Context(), id, approver, approve, req.Reason)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, ErrorResponse{err.Error()})
	case errors.Is(err, ErrSelfApproval), errors.Is(err, ErrNotApprover):
		writeJSON(w, http.StatusForbidden, ErrorResponse{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{"the decision could not be recorded"})
	default:
		writeJSON(w, http.StatusOK, DecisionResponse{ID: id, Decision: req.Decision, Approver: approver.Subject})
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
