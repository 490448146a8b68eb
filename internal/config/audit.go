package config

// Audit configures the audit log: what is recorded of each call, where it
// is written, and how it is protected. Auditing is on unless enabled is
// false; with no sinks, events go to an SQLite database in the data
// directory.
type Audit struct {
	// Enabled turns auditing off when false.
	Enabled *bool `yaml:"enabled,omitempty"`
	// OnFailure says what happens to calls when the primary sink cannot be
	// written: "closed" (default) refuses them, "open" lets them through
	// and drops their events.
	OnFailure string `yaml:"on_failure,omitempty"`
	// Record says what is kept of arguments and results.
	Record AuditRecord `yaml:"record,omitempty"`
	// Sensitive names members whose values are stored only as keyed
	// HMACs, wherever they appear in arguments or results (compared
	// without regard to case).
	Sensitive []string `yaml:"sensitive,omitempty,flow"`
	// HMACKey is the key of those HMACs, in hex (at least 16 bytes); secret.
	// Default: generated on first run in the data directory.
	HMACKey string `yaml:"hmac_key,omitempty"`
	// SigningKey is the path of the Ed25519 key (PEM, PKCS #8) that signs
	// checkpoints. Default: generated on first run in the data directory.
	SigningKey string `yaml:"signing_key,omitempty"`
	// Checkpoint says how often the head of the chain is signed.
	Checkpoint AuditCheckpoint `yaml:"checkpoint,omitempty"`
	// Retention purges events older than this (default: keep everything).
	Retention Duration `yaml:"retention,omitempty"`
	// Sinks receive every event; the first is the primary, which must be a
	// database (sqlite or postgres). Default: one sqlite sink.
	Sinks []*AuditSink `yaml:"sinks,omitempty"`
}

// AuditRecord says what is kept of arguments and results: "none",
// "shape" (structure and types), "redacted" (structure, numbers, booleans,
// and strings as HMACs) or "full" (values, except sensitive ones as HMACs).
type AuditRecord struct {
	Arguments string `yaml:"arguments,omitempty"` // default redacted
	Results   string `yaml:"results,omitempty"`   // default none (their size is recorded)
}

// AuditCheckpoint says how often the head of the chain is signed.
type AuditCheckpoint struct {
	Every    int      `yaml:"every,omitempty"`    // events (default 1000)
	Interval Duration `yaml:"interval,omitempty"` // at least this often while events arrive (default 1s)
}

// AuditSink is one destination of audit events.
type AuditSink struct {
	// Type is sqlite, postgres, jsonl or stdout.
	Type string `yaml:"type"`
	// DSN is the PostgreSQL connection string (URL or keyword/value) of a
	// postgres sink; secret.
	DSN string `yaml:"dsn,omitempty"`
	// Path of the sqlite database (default: audit.db in the data
	// directory) or of the jsonl file (required).
	Path string `yaml:"path,omitempty"`
	// Sync makes the sqlite sink fsync every batch, so that an answered
	// call's event survives a power loss, not only a crash of Sluice.
	Sync bool `yaml:"sync,omitempty"`
	// MaxBytes rotates a jsonl file when it grows past this size;
	// MaxFiles bounds the rotated files kept (0: all).
	MaxBytes int64 `yaml:"max_bytes,omitempty"`
	MaxFiles int   `yaml:"max_files,omitempty"`
}

// Audit sink types and failure modes.
const (
	AuditSQLite   = "sqlite"
	AuditPostgres = "postgres"
	AuditJSONL    = "jsonl"
	AuditStdout   = "stdout"

	AuditFailClosed = "closed"
	AuditFailOpen   = "open"
)

// AuditEnabled reports whether c audits calls.
func (c *Config) AuditEnabled() bool {
	return c.Audit == nil || c.Audit.Enabled == nil || *c.Audit.Enabled
}
