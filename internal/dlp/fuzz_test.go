package dlp_test

import (
	"testing"

	"github.com/sluicehq/sluice/internal/dlp"
)

// FuzzScan: whatever the input, findings lie within it, in order, without
// overlapping, and scanning does not fail.
func FuzzScan(f *testing.F) {
	for _, s := range []string{
		`{"email":"ada@example.com","card":"4111 1111 1111 1111"}`,
		`a\u0040b.example \\u0040 \ud83d\ude00 \u200b`,
		"ＡＫＩＡ１２３ key=\u200bAKIAZ5GMHYJKLQW2XQ7D",
		`token: ZXhhbXBsZSB0ZXh0IGFkYUBleGFtcGxlLmNvbSBoZXJl mailto:a%40b.example`,
		`+1 (415) 555-0132, 020 7946 0958, GB82 WEST 1234 5698 7654 32, 2001:db8::1`,
		`-----BEGIN PRIVATE KEY-----` + "\n" + `abc` + "\n" + `-----END PRIVATE KEY-----`,
		"\\", "\\u12", "\xff\xfe", "%4", "@", "+(", "::",
	} {
		f.Add([]byte(s))
	}
	s, err := dlp.New(dlp.Options{MinConfidence: dlp.Low})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		end := 0
		for _, fd := range s.Scan(in) {
			if fd.Start < end || fd.End <= fd.Start || fd.End > len(in) {
				t.Fatalf("finding %+v out of order or outside the %d-byte input (previous end %d)", fd, len(in), end)
			}
			end = fd.End
		}
	})
}
