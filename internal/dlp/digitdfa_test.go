package dlp

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"
)

// TestDigitDFA holds the automaton of every region's numbering plan to the
// regexp package's matching of the same patterns, on the plan's example
// numbers and on random numbers of its lengths.
func TestDigitDFA(t *testing.T) {
	metadataOnce.Do(loadMetadata)
	r := rand.New(rand.NewPCG(7, 8))
	compiled := 0
	for region, m := range byRegion {
		var alts []string
		var examples []string
		for _, d := range []*phonenumbers.PhoneNumberDesc{m.GetFixedLine(), m.GetMobile(), m.GetTollFree(), m.GetPremiumRate(),
			m.GetSharedCost(), m.GetPersonalNumber(), m.GetVoip(), m.GetPager(), m.GetUan(), m.GetVoicemail()} {
			if pat := d.GetNationalNumberPattern(); pat != "" && pat != "NA" {
				alts = append(alts, "(?:"+pat+")")
			}
			if e := d.GetExampleNumber(); e != "" {
				examples = append(examples, e)
			}
		}
		if len(alts) == 0 {
			continue
		}
		pattern := strings.Join(alts, "|")
		d := newDigitDFA(pattern)
		if d == nil {
			continue
		}
		compiled++
		re := regexp.MustCompile("^(?:" + pattern + ")$")
		check := func(n string) {
			if got, want := d.match([]byte(n)), re.MatchString(n); got != want {
				t.Fatalf("%s: %q: automaton %v, regexp %v", region, n, got, want)
			}
		}
		for _, e := range examples {
			check(e)
			// One digit changed, one more, one fewer.
			for i := range e {
				check(e[:i] + string(rune('0'+r.IntN(10))) + e[i+1:])
			}
			check(e + "1")
			check(e[:len(e)-1])
		}
		for range 200 {
			n := make([]byte, 4+r.IntN(14))
			for i := range n {
				n[i] = byte('0' + r.IntN(10))
			}
			check(string(n))
		}
	}
	if compiled < len(byRegion)*9/10 {
		t.Fatalf("%d of %d plans compiled to an automaton", compiled, len(byRegion))
	}
}

func TestDigitDFANotDigits(t *testing.T) {
	for _, p := range []string{`[a-z]\d`, `\d+x`, `.`} {
		if newDigitDFA(p) != nil {
			t.Errorf("%q compiled, though not over digits", p)
		}
	}
	d := newDigitDFA(`1\d{2}|2(?:0|5)*`)
	for n, want := range map[string]bool{"100": true, "199": true, "1": false, "2": true, "2055": true, "2056": false, "": false, "1000": false} {
		if got := d.match([]byte(n)); got != want {
			t.Errorf("%q: %v, want %v", n, got, want)
		}
	}
}
