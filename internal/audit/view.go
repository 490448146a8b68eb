package audit

import (
	"time"

	"github.com/sluicehq/sluice/internal/guard"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// View is an event body read back, for queries and exports.
type View struct {
	V           int               `json:"v"`
	ID          string            `json:"id"`
	Time        string            `json:"time"`
	Kind        string            `json:"kind,omitempty"`
	Principal   *Principal        `json:"principal,omitempty"`
	Client      *Client           `json:"client,omitempty"`
	Session     string            `json:"session,omitempty"`
	Profile     string            `json:"profile,omitempty"`
	Server      string            `json:"server,omitempty"`
	Era         string            `json:"era,omitempty"`
	Direction   string            `json:"direction,omitempty"`
	Method      string            `json:"method,omitempty"`
	Name        string            `json:"name,omitempty"`
	RequestID   jsontext.Value    `json:"request_id,omitempty"`
	Transport   string            `json:"transport,omitempty"`
	Remote      string            `json:"remote,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Outcome     string            `json:"outcome,omitempty"`
	Reason      string            `json:"reason,omitempty"`
	ErrorCode   int64             `json:"error_code,omitempty"`
	Decisions   []Decision        `json:"decisions,omitempty"`
	Findings    []FindingCount    `json:"findings,omitempty"`
	Labels      []string          `json:"labels,omitempty"`
	Flows       []Flow            `json:"flows,omitempty"`
	ArgsBytes   int               `json:"args_bytes"`
	ResultBytes int               `json:"result_bytes"`
	LatencyUS   int64             `json:"latency_us"`
	TraceID     string            `json:"trace_id,omitempty"`
	Args        jsontext.Value    `json:"args,omitempty"`
	Result      jsontext.Value    `json:"result,omitempty"`
}

// ParseView decodes an event body.
func ParseView(body []byte) (*View, error) {
	var v View
	if err := json.Unmarshal(body, &v, json.RejectUnknownMembers(false)); err != nil {
		return nil, err
	}
	return &v, nil
}

// Call rebuilds what a guard saw of the recorded call: the caller, the
// target and the transport; not its params.
func (v *View) Call() *guard.Call {
	c := &guard.Call{
		ID: v.ID, Session: v.Session, Profile: v.Profile, Server: v.Server, Method: v.Method, Name: v.Name,
		Transport: guard.Transport{Kind: v.Transport, RemoteAddr: v.Remote, Headers: v.Headers},
	}
	if v.Client != nil {
		c.Client = guard.ClientInfo{Name: v.Client.Name, Version: v.Client.Version}
	}
	if p := v.Principal; p != nil {
		c.Principal = &guard.Principal{Issuer: p.Issuer, Subject: p.Subject, Name: p.Name, Groups: p.Groups,
			Scopes: p.Scopes, ClientID: p.Client, Attributes: p.Attributes}
	}
	if v.Direction == guard.ToClient.String() {
		c.Direction = guard.ToClient
	}
	return c
}

// When is the event's time.
func (v *View) When() time.Time {
	t, _ := time.Parse(timeLayout, v.Time)
	return t
}

// Subject is the principal's subject, or "-" for an anonymous caller.
func (v *View) Subject() string {
	if v.Principal == nil || v.Principal.Subject == "" {
		return "-"
	}
	return v.Principal.Subject
}
