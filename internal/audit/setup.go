package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluicehq/sluice/internal/config"
)

// DatabaseFile is the default SQLite database in the data directory.
const DatabaseFile = "audit.db"

// ResolveDataDir returns the data directory: dir when set, else
// $SLUICE_DATA_DIR, else $XDG_DATA_HOME/sluice, else ~/.local/share/sluice.
func ResolveDataDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if d := os.Getenv("SLUICE_DATA_DIR"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "sluice"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data directory: set data_dir or SLUICE_DATA_DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "share", "sluice"), nil
}

// KeySet holds the keys of a log.
type KeySet struct {
	Signer *Signer // nil when only the public key is known
	Public ed25519.PublicKey
	HMAC   []byte
}

// LoadKeys loads the keys a configuration names, from the data directory
// by default, generating missing ones when create is set (a server's first
// start). Without create, a missing signing key is looked for as the
// public key file, which is all verification needs.
func LoadKeys(a *config.Audit, dataDir string, create bool) (*KeySet, error) {
	if a == nil {
		a = &config.Audit{}
	}
	k := &KeySet{}
	signPath := a.SigningKey
	if signPath == "" {
		signPath = filepath.Join(dataDir, SigningKeyFile)
	}
	priv, err := LoadOrCreateSigningKey(signPath, create)
	switch {
	case err == nil:
		k.Signer = NewSigner(priv)
		k.Public = k.Signer.Public()
	case errors.Is(err, os.ErrNotExist) && !create:
		pub, perr := os.ReadFile(filepath.Join(filepath.Dir(signPath), PublicKeyFile))
		if perr != nil {
			return nil, fmt.Errorf("audit signing key: %w", err)
		}
		if k.Public, err = ParsePublicKey(pub); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	if a.HMACKey != "" {
		k.HMAC, err = ParseHMACKey(a.HMACKey)
	} else {
		k.HMAC, err = LoadOrCreateHMACKey(filepath.Join(dataDir, HMACKeyFile), create)
	}
	if err != nil && !(errors.Is(err, os.ErrNotExist) && !create) {
		return nil, fmt.Errorf("audit hmac key: %w", err)
	}
	return k, nil
}

// DatabasePath is the primary database of a configuration.
func DatabasePath(a *config.Audit, dataDir string) string {
	if a != nil && len(a.Sinks) > 0 && a.Sinks[0] != nil && a.Sinks[0].Path != "" {
		return a.Sinks[0].Path
	}
	return filepath.Join(dataDir, DatabaseFile)
}

// OpenOptions adjust [Open].
type OpenOptions struct {
	// Alternates lets a process whose default database another Sluice is
	// writing keep a chain of its own beside it (audit-2.db, audit-3.db,
	// ...), rather than wait: several desktop clients each start their
	// own `sluice stdio`.
	Alternates bool
}

// maxAlternates bounds the numbered databases tried.
const maxAlternates = 16

// Open opens the sinks of a configuration and continues its chain.
func Open(ctx context.Context, a *config.Audit, dataDir string, keys *KeySet, logger *slog.Logger, oo OpenOptions) (*Log, error) {
	if a == nil {
		a = &config.Audit{}
	}
	if keys.Signer == nil {
		return nil, errors.New("audit: the signing key is needed to write")
	}
	sinks := a.Sinks
	if len(sinks) == 0 {
		sinks = []*config.AuditSink{{Type: config.AuditSQLite}}
	}
	var (
		primary Store
		others  []Sink
		sync    bool
	)
	closeAll := func() {
		for _, s := range others {
			s.Close()
		}
		if primary != nil {
			primary.Close()
		}
	}
	for i, s := range sinks {
		var (
			sink Sink
			err  error
		)
		switch s.Type {
		case config.AuditSQLite:
			path := s.Path
			if path == "" {
				path = filepath.Join(dataDir, DatabaseFile)
			}
			var st *SQLite
			if i == 0 && s.Path == "" && oo.Alternates {
				st, err = openAlternate(dataDir, s.Sync, logger)
			} else {
				st, err = OpenSQLite(path, SQLiteOptions{Sync: s.Sync})
			}
			if err == nil && i == 0 {
				primary, sync = st, s.Sync
				continue
			}
			sink = st
		case config.AuditPostgres:
			var pg *Postgres
			pg, err = OpenPostgres(ctx, s.DSN, PostgresOptions{})
			if err == nil && i == 0 {
				primary = pg
				continue
			}
			sink = pg
		case config.AuditJSONL:
			sink, err = OpenJSONL(s.Path, s.MaxBytes, s.MaxFiles, keys.Signer)
		case config.AuditStdout:
			sink = NewJSONLWriter(os.Stdout)
		default:
			err = fmt.Errorf("unknown sink type %q", s.Type)
		}
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("audit sink %d: %w", i, err)
		}
		others = append(others, sink)
	}
	if primary == nil {
		closeAll()
		return nil, errors.New("audit: the first sink must be a database")
	}
	journal := ""
	if _, ok := primary.(*Postgres); ok {
		journal = filepath.Join(dataDir, "audit-postgres.pending")
	}
	l, err := OpenLog(ctx, LogOptions{
		Primary:            primary,
		Journal:            journal,
		Sync:               sync,
		Others:             others,
		Signer:             keys.Signer,
		CheckpointEvery:    a.Checkpoint.Every,
		CheckpointInterval: time.Duration(a.Checkpoint.Interval),
		Retention:          time.Duration(a.Retention),
		Logger:             logger,
	})
	if err != nil {
		closeAll()
		return nil, err
	}
	return l, nil
}

// openAlternate opens the default database of dataDir, or when another
// process writes it, the first numbered one nobody writes.
func openAlternate(dataDir string, sync bool, logger *slog.Logger) (*SQLite, error) {
	for n := 1; n <= maxAlternates; n++ {
		path := filepath.Join(dataDir, DatabaseFile)
		if n > 1 {
			path = filepath.Join(dataDir, fmt.Sprintf("audit-%d.db", n))
		}
		st, err := OpenSQLite(path, SQLiteOptions{Sync: sync, NoWait: true})
		if errors.Is(err, ErrInUse) {
			continue
		}
		if err == nil && n > 1 && logger != nil {
			logger.Warn("another Sluice writes the audit database of this data directory; this one keeps its own chain", "database", path)
		}
		return st, err
	}
	return nil, fmt.Errorf("audit: %d Sluice processes already write audit databases in %s", maxAlternates, dataDir)
}

// GuardFor builds the guard for a configuration over an open log.
func GuardFor(l *Log, a *config.Audit, hmacKey []byte) *Guard {
	if a == nil {
		a = &config.Audit{}
	}
	sensitive := map[string]bool{}
	for _, s := range a.Sensitive {
		sensitive[strings.ToLower(s)] = true
	}
	return NewGuard(l, GuardOptions{
		Recorder: &Recorder{Hasher: NewHasher(hmacKey), Sensitive: sensitive},
		Args:     Mode(a.Record.Arguments),
		Results:  Mode(a.Record.Results),
		FailOpen: a.OnFailure == config.AuditFailOpen,
	})
}
