package gateway

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
)

// listPageSize is how many items Sluice returns per page of a merged list.
const listPageSize = 500

// cursorKey signs the pagination cursors Sluice hands out. They are opaque
// to clients ("clients MUST treat cursors as opaque tokens"): a position in
// the merged list, bound to the profile and method it was issued for, and
// authenticated so that a client cannot forge one.
type cursorKey []byte

func newCursorKey() cursorKey {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}

func (k cursorKey) mac(profile, method string, offset int) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte(profile + "\x00" + method + "\x00" + strconv.Itoa(offset)))
	return m.Sum(nil)[:16]
}

func (k cursorKey) make(profile, method string, offset int) string {
	return strconv.Itoa(offset) + "." + base64.RawURLEncoding.EncodeToString(k.mac(profile, method, offset))
}

// parse returns the position a cursor names, if it is one Sluice issued
// for this profile and method.
func (k cursorKey) parse(cursor, profile, method string) (int, bool) {
	num, sig, ok := strings.Cut(cursor, ".")
	if !ok {
		return 0, false
	}
	offset, err := strconv.Atoi(num)
	if err != nil || offset < 0 || strconv.Itoa(offset) != num {
		return 0, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac(profile, method, offset)) {
		return 0, false
	}
	return offset, true
}
