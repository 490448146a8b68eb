package config

import (
	"encoding/hex"
	"slices"
	"time"
)

var auditRecordModes = []string{"none", "shape", "redacted", "full"}

func (v *validator) audit() {
	a := v.c.Audit
	if a == nil {
		return
	}
	switch a.OnFailure {
	case "", AuditFailClosed, AuditFailOpen:
	default:
		v.add("audit.on_failure", "must be closed or open, not %q", truncate(a.OnFailure, 20))
	}
	for _, f := range []struct{ key, val string }{{"arguments", a.Record.Arguments}, {"results", a.Record.Results}} {
		if f.val != "" && !slices.Contains(auditRecordModes, f.val) {
			v.add("audit.record."+f.key, "must be none, shape, redacted or full, not %q", truncate(f.val, 20))
		}
	}
	for i, s := range a.Sensitive {
		if s == "" {
			v.add(indexPath("audit.sensitive", i), "must not be empty")
		}
	}
	if a.HMACKey != "" {
		if b, err := hex.DecodeString(a.HMACKey); err != nil || len(b) < 16 {
			// Never quote the value: it is a secret.
			v.add("audit.hmac_key", "must be at least 16 bytes in hex (32 hex digits or more)")
		}
	}
	if a.Checkpoint.Every < 0 {
		v.add("audit.checkpoint.every", "must not be negative")
	}
	if a.Checkpoint.Interval < 0 {
		v.add("audit.checkpoint.interval", "must not be negative")
	}
	if a.Retention < 0 {
		v.add("audit.retention", "must not be negative")
	} else if a.Retention > 0 && time.Duration(a.Retention) < time.Hour {
		v.add("audit.retention", "must be at least 1h: shorter would purge events before anyone could look at them")
	}
	stdout := 0
	for i, s := range a.Sinks {
		p := indexPath("audit.sinks", i)
		if s == nil {
			v.add(p, "sink is empty: set type")
			continue
		}
		if s.Type != AuditPostgres && s.DSN != "" {
			v.add(childPath(p, "dsn"), "is for postgres sinks")
		}
		switch s.Type {
		case AuditSQLite:
		case AuditPostgres:
			if s.DSN == "" {
				v.add(childPath(p, "dsn"), "is required for a postgres sink, such as postgres://sluice@db.internal/audit (put a password in ${VAR})")
			}
			if s.Path != "" {
				v.add(childPath(p, "path"), "a postgres sink has a dsn, not a path")
			}
		case AuditJSONL:
			if s.Path == "" {
				v.add(childPath(p, "path"), "is required for a jsonl sink")
			}
			if i == 0 {
				v.add(childPath(p, "type"), "the first sink is the primary and must be a database (sqlite or postgres): a jsonl file cannot be read back to continue the chain")
			}
		case AuditStdout:
			stdout++
			if stdout == 2 {
				v.add(childPath(p, "type"), "only one stdout sink")
			}
			if i == 0 {
				v.add(childPath(p, "type"), "the first sink is the primary and must be a database (sqlite or postgres)")
			}
		case "":
			v.add(childPath(p, "type"), "is required: sqlite, postgres, jsonl or stdout")
			continue
		default:
			v.add(childPath(p, "type"), "must be sqlite, postgres, jsonl or stdout, not %q", truncate(s.Type, 20))
			continue
		}
		if s.Type != AuditJSONL && (s.MaxBytes != 0 || s.MaxFiles != 0) {
			v.add(p, "max_bytes and max_files are for jsonl sinks")
		}
		if s.Type != AuditSQLite && s.Sync {
			v.add(childPath(p, "sync"), "is for sqlite sinks")
		}
		if s.Type == AuditStdout && s.Path != "" {
			v.add(childPath(p, "path"), "a stdout sink has no path")
		}
		if s.MaxBytes < 0 || s.MaxFiles < 0 {
			v.add(p, "max_bytes and max_files must not be negative")
		}
	}
}
