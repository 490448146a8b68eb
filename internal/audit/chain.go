package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Record is an event body in the chain.
type Record struct {
	Seq uint64
	// Time is when the event was written, in Unix nanoseconds (the body
	// carries the event's own time).
	Time int64
	Prev [32]byte
	Hash [32]byte
	Body []byte
}

// ComputeHash is the hash r should have.
func (r *Record) ComputeHash() [32]byte { return r.hashAt(r.Seq) }

// hashAt is the hash r would have at sequence number seq.
func (r *Record) hashAt(seq uint64) [32]byte { return ChainHash(seq, r.Time, r.Prev, r.Body) }

// Checkpoint kinds.
const (
	// KindCheckpoint signs the head of the chain.
	KindCheckpoint = "checkpoint"
	// KindRetention signs that records up to Seq were purged on purpose;
	// its Hash is that of record Seq, to which the first kept record links.
	KindRetention = "retention"
	// KindRotation opens a rotated JSON Lines file: records up to Seq are
	// in older files, which may be deleted.
	KindRotation = "rotation"
)

// Checkpoint is a signed statement that the chain's record Seq had Hash.
type Checkpoint struct {
	Kind  string
	Seq   uint64
	Hash  [32]byte
	Time  int64 // Unix nanoseconds
	KeyID string
	Sig   []byte
}

const (
	recordDomain     = "sluice-audit-record-v1\x00"
	checkpointDomain = "sluice-audit-checkpoint-v1\x00"
)

// ChainHash is the hash of a record: SHA-256 over a domain string, the
// sequence number, the write time, the previous record's hash and the body.
func ChainHash(seq uint64, t int64, prev [32]byte, body []byte) [32]byte {
	h := sha256.New()
	var hdr [len(recordDomain) + 16 + 32]byte
	n := copy(hdr[:], recordDomain)
	binary.BigEndian.PutUint64(hdr[n:], seq)
	binary.BigEndian.PutUint64(hdr[n+8:], uint64(t))
	copy(hdr[n+16:], prev[:])
	h.Write(hdr[:])
	h.Write(body)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// signedBytes is what a checkpoint's signature covers.
func (c *Checkpoint) signedBytes() []byte {
	b := make([]byte, 0, len(checkpointDomain)+len(c.Kind)+1+8+32+8)
	b = append(b, checkpointDomain...)
	b = append(b, c.Kind...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = append(b, c.Hash[:]...)
	return binary.BigEndian.AppendUint64(b, uint64(c.Time))
}

// Signer signs checkpoints.
type Signer struct {
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}
}

// Public returns the key that verifies the signer's checkpoints.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Sign fills in c's key ID and signature.
func (s *Signer) Sign(c *Checkpoint) {
	c.KeyID = s.id
	c.Sig = ed25519.Sign(s.key, c.signedBytes())
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// VerifySig reports whether c is signed by pub.
func (c *Checkpoint) VerifySig(pub ed25519.PublicKey) bool {
	return len(c.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, c.signedBytes(), c.Sig)
}

// Key file names in the data directory.
const (
	SigningKeyFile = "audit-signing.key"
	PublicKeyFile  = "audit-signing.pub"
	HMACKeyFile    = "audit-hmac.key"
)

// LoadOrCreateSigningKey reads the PEM (PKCS #8) Ed25519 key at path, or,
// when the file does not exist and create is set, generates one, writes it
// there (mode 0600) and the public key beside it.
func LoadOrCreateSigningKey(path string, create bool) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return nil, err
		}
		if err := writeNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
		pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
		if err != nil {
			return nil, err
		}
		pubPath := filepath.Join(filepath.Dir(path), PublicKeyFile)
		if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
			return nil, err
		}
		return priv, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseSigningKey(data)
}

// ParseSigningKey parses a PEM (PKCS #8) Ed25519 private key.
func ParseSigningKey(data []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("signing key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key: %T is not an Ed25519 key", k)
	}
	return priv, nil
}

// ParsePublicKey parses a PEM Ed25519 public key, or the PEM private key
// whose public half it takes.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil {
		return nil, errors.New("public key: no PEM block")
	}
	if blk.Type == "PRIVATE KEY" {
		priv, err := ParseSigningKey(data)
		if err != nil {
			return nil, err
		}
		return priv.Public().(ed25519.PublicKey), nil
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key: %T is not an Ed25519 key", k)
	}
	return pub, nil
}

// LoadOrCreateHMACKey reads the hex key at path, or generates 32 random
// bytes there (mode 0600) when the file does not exist and create is set.
func LoadOrCreateHMACKey(path string, create bool) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && create {
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		if err := writeNew(path, []byte(hex.EncodeToString(key)+"\n")); err != nil {
			return nil, err
		}
		return key, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseHMACKey(string(data))
}

// ParseHMACKey decodes a key given as hex (at least 16 bytes), the form
// the key file and configuration use.
func ParseHMACKey(s string) ([]byte, error) {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	key, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("hmac key: not hex")
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("hmac key: %d bytes, need at least 16", len(key))
	}
	return key, nil
}

// writeNew creates path with data, mode 0600, failing if it exists (two
// processes starting at once must not each write a different key).
func writeNew(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// nowNano is the clock of the writer (a variable for tests).
var nowNano = func() int64 { return time.Now().UnixNano() }
