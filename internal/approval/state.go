package approval

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// StatePrefix starts every requestState the approval guard mints, so it can
// tell its own from an upstream server's (which it leaves alone).
const StatePrefix = "sluice-approval1."

// idLen is the number of random bytes in an approval ID.
const idLen = 8

// stateLen is the length of a state's payload: ID, expiry in Unix
// milliseconds, and the raw binding key.
const stateLen = idLen + 8 + sha256.Size

// maxStateLen bounds what is decoded of a requestState.
const maxStateLen = 256

var errState = errors.New("requestState is not one Sluice minted")

// newID returns a fresh approval ID such as "apr_3f2a9c0b1d4e5f60".
func newID() string {
	var b [idLen]byte
	_, _ = rand.Read(b[:])
	return formatID(b[:])
}

func formatID(b []byte) string { return "apr_" + hex.EncodeToString(b) }

// claims is what a requestState carries.
type claims struct {
	id      string
	expires time.Time
	key     string // Binding.Key
}

// sealer mints and opens requestState values with a per-process key. A
// state cannot be forged or moved to another call: its MAC covers the
// approval ID, the expiry and the key of the binding it was minted for.
type sealer struct{ key [32]byte }

func newSealer() *sealer {
	s := &sealer{}
	_, _ = rand.Read(s.key[:])
	return s
}

// seal mints the state for an approval. key must be a [Binding.Key].
func (s *sealer) seal(id string, bindingKey string, expires time.Time) string {
	var p [stateLen]byte
	if raw, err := hex.DecodeString(strings.TrimPrefix(id, "apr_")); err == nil && len(raw) == idLen {
		copy(p[:idLen], raw)
	}
	binary.BigEndian.PutUint64(p[idLen:idLen+8], uint64(expires.UnixMilli()))
	if raw, err := hex.DecodeString(bindingKey); err == nil && len(raw) == sha256.Size {
		copy(p[idLen+8:], raw)
	}
	enc := base64.RawURLEncoding
	return StatePrefix + enc.EncodeToString(p[:]) + "." + enc.EncodeToString(s.mac(p[:]))
}

func (s *sealer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.key[:])
	m.Write([]byte(StatePrefix))
	m.Write(payload)
	return m.Sum(nil)
}

// open verifies a state and returns its claims. It does not check expiry.
func (s *sealer) open(state string) (claims, error) {
	if len(state) > maxStateLen || !strings.HasPrefix(state, StatePrefix) {
		return claims{}, errState
	}
	body, sig, ok := strings.Cut(state[len(StatePrefix):], ".")
	if !ok {
		return claims{}, errState
	}
	enc := base64.RawURLEncoding.Strict()
	p, err := enc.DecodeString(body)
	if err != nil || len(p) != stateLen {
		return claims{}, errState
	}
	mac, err := enc.DecodeString(sig)
	if err != nil || !hmac.Equal(mac, s.mac(p)) {
		return claims{}, errState
	}
	return claims{
		id:      formatID(p[:idLen]),
		expires: time.UnixMilli(int64(binary.BigEndian.Uint64(p[idLen : idLen+8]))),
		key:     hex.EncodeToString(p[idLen+8:]),
	}, nil
}
