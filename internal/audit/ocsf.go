package audit

import (
	"net"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// OCSFVersion is the version of the Open Cybersecurity Schema Framework
// that [OCSF] writes.
const OCSFVersion = "1.3.0"

// OCSF class and category of MCP calls: API Activity, in the Application
// Activity category.
const (
	ocsfClassAPIActivity = 6003
	ocsfCategoryApp      = 6
)

// OCSF returns the record as an OCSF API Activity event, the shape SIEMs
// ingest. What OCSF has no attribute for (decisions, findings, labels,
// sizes, the chain position) is under "unmapped".
func OCSF(r Record) (jsontext.Value, error) {
	v, err := ParseView(r.Body)
	if err != nil {
		return nil, err
	}
	activity, activityName := ocsfActivity(v.Method)
	status, statusName := 1, "Success"
	severity := 1 // informational
	if v.Outcome != "ok" {
		status, statusName = 2, "Failure"
	}
	if v.Outcome == "denied" {
		severity = 3 // medium
	}
	ev := map[string]any{
		"class_uid":     ocsfClassAPIActivity,
		"class_name":    "API Activity",
		"category_uid":  ocsfCategoryApp,
		"category_name": "Application Activity",
		"activity_id":   activity,
		"activity_name": activityName,
		"type_uid":      ocsfClassAPIActivity*100 + activity,
		"severity_id":   severity,
		"status_id":     status,
		"status":        statusName,
		"time":          v.When().UnixMilli(),
		"duration":      v.LatencyUS / 1000,
		"metadata": map[string]any{
			"version":  OCSFVersion,
			"uid":      v.ID,
			"log_name": "sluice-audit",
			"sequence": r.Seq,
			"product":  map[string]any{"name": "Sluice", "vendor_name": "Sluice"},
		},
		"cloud": map[string]any{"provider": "Sluice"},
		"api": map[string]any{
			"operation": v.Method,
			"service":   map[string]any{"name": v.Server},
			"request":   map[string]any{"uid": string(v.RequestID)},
		},
	}
	if v.Reason != "" {
		ev["status_detail"] = v.Reason
	}
	if v.ErrorCode != 0 {
		ev["status_code"] = strconv.FormatInt(v.ErrorCode, 10)
	}
	actor := map[string]any{}
	if p := v.Principal; p != nil {
		user := map[string]any{"uid": p.Subject}
		if p.Name != "" {
			user["name"] = p.Name
		}
		if len(p.Groups) > 0 {
			groups := make([]map[string]string, len(p.Groups))
			for i, g := range p.Groups {
				groups[i] = map[string]string{"name": g}
			}
			user["groups"] = groups
		}
		if p.Issuer != "" {
			user["org"] = map[string]string{"name": p.Issuer}
		}
		actor["user"] = user
	}
	if v.Client != nil && v.Client.Name != "" {
		actor["app_name"] = v.Client.Name
	}
	if v.Session != "" {
		actor["session"] = map[string]string{"uid": v.Session}
	}
	ev["actor"] = actor
	src := map[string]any{}
	if host, port, err := net.SplitHostPort(v.Remote); err == nil {
		src["ip"] = host
		if n, err := strconv.Atoi(port); err == nil {
			src["port"] = n
		}
	}
	ev["src_endpoint"] = src
	if v.Name != "" {
		ev["resources"] = []map[string]string{{"name": v.Name, "type": ocsfResourceType(v.Method)}}
	}
	unmapped := map[string]any{
		"outcome":      v.Outcome,
		"args_bytes":   v.ArgsBytes,
		"result_bytes": v.ResultBytes,
		"chain_hash":   hexHash(r.Hash),
	}
	for k, val := range map[string]any{"profile": v.Profile, "era": v.Era, "direction": v.Direction, "trace_id": v.TraceID} {
		if val != "" {
			unmapped[k] = val
		}
	}
	if len(v.Decisions) > 0 {
		unmapped["decisions"] = v.Decisions
	}
	if len(v.Findings) > 0 {
		unmapped["findings"] = v.Findings
	}
	if len(v.Labels) > 0 {
		unmapped["labels"] = v.Labels
	}
	ev["unmapped"] = unmapped
	return json.Marshal(ev, json.Deterministic(true))
}

// ocsfActivity maps an MCP method to an API Activity activity.
func ocsfActivity(method string) (int, string) {
	switch {
	case strings.HasSuffix(method, "/list"), method == "resources/read", method == "prompts/get", method == "completion/complete":
		return 2, "Read"
	case method == "resources/subscribe":
		return 1, "Create"
	case method == "resources/unsubscribe":
		return 4, "Delete"
	}
	return 99, "Other"
}

func ocsfResourceType(method string) string {
	switch {
	case strings.HasPrefix(method, "tools/"):
		return "MCP Tool"
	case strings.HasPrefix(method, "prompts/"):
		return "MCP Prompt"
	case strings.HasPrefix(method, "resources/"):
		return "MCP Resource"
	}
	return "MCP"
}
