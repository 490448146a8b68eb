package dlp

import (
	"regexp"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
)

// Phone numbers are validated against the numbering plans of
// libphonenumber's metadata (the nyaruka/phonenumbers port): a national
// number is valid when its length is one the plan allows and it matches
// the pattern of one of the plan's number types (fixed line, mobile, toll
// free, ...). The library's own validation also checks each type's own
// lengths; this checks the plan's. The library parses
// and matches through string concatenation and a locked regexp cache on
// every call, some 17 µs a number; each plan's patterns are compiled here
// once, into one deterministic automaton over digits (digitDFA), or, where
// a pattern is not over digits only, into anchored expressions.

// plan is the numbering plan of a region.
type plan struct {
	// dfa matches the patterns of every number type at once, when they
	// compile to one.
	dfa *digitDFA
	// res are the patterns of the number types, each anchored: small
	// expressions, which the backtracker matches fast, where one large
	// alternation would fall to the slower machine.
	res     []*regexp.Regexp
	lengths uint64 // bit n: a national number of n digits is possible
}

var (
	metadataOnce sync.Once
	byRegion     map[string]*phonenumbers.PhoneMetadata
	byCode       map[int][]*phonenumbers.PhoneMetadata
	plans        sync.Map // region ("GB") -> *plan
)

func loadMetadata() {
	byRegion = map[string]*phonenumbers.PhoneMetadata{}
	byCode = map[int][]*phonenumbers.PhoneMetadata{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return // no plans: no phone number validates
	}
	for _, m := range coll.GetMetadata() {
		byRegion[m.GetId()] = m
		cc := int(m.GetCountryCode())
		if m.GetMainCountryForCode() {
			byCode[cc] = append([]*phonenumbers.PhoneMetadata{m}, byCode[cc]...)
		} else {
			byCode[cc] = append(byCode[cc], m)
		}
	}
}

func planOf(key string, metas []*phonenumbers.PhoneMetadata) *plan {
	if p, ok := plans.Load(key); ok {
		return p.(*plan)
	}
	var alts []string
	var lengths uint64
	for _, m := range metas {
		for _, l := range m.GetGeneralDesc().GetPossibleLength() {
			if l > 0 && l < 64 {
				lengths |= 1 << l
			}
		}
		for _, d := range []*phonenumbers.PhoneNumberDesc{m.GetFixedLine(), m.GetMobile(), m.GetTollFree(), m.GetPremiumRate(),
			m.GetSharedCost(), m.GetPersonalNumber(), m.GetVoip(), m.GetPager(), m.GetUan(), m.GetVoicemail()} {
			if pat := d.GetNationalNumberPattern(); pat != "" && pat != "NA" {
				alts = append(alts, "(?:"+pat+")")
			}
		}
	}
	p := &plan{lengths: lengths}
	if p.dfa = newDigitDFA(strings.Join(alts, "|")); p.dfa != nil {
		actual, _ := plans.LoadOrStore(key, p)
		return actual.(*plan)
	}
	for _, a := range alts {
		if re, err := regexp.Compile("^" + a + "$"); err == nil {
			p.res = append(p.res, re)
		}
	}
	actual, _ := plans.LoadOrStore(key, p)
	return actual.(*plan)
}

func (p *plan) valid(national []byte) bool {
	n := len(national)
	// A string, so that the regexp (which keeps its input) does not keep
	// the caller's buffer.
	if n >= 64 || p.lengths&(1<<n) == 0 {
		return false
	}
	if p.dfa != nil {
		return p.dfa.match(national)
	}
	s := string(national)
	for _, re := range p.res {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// validPhone checks a national number against the plan of region, or,
// with no region, of some region of the country calling code cc.
func validPhone(cc int, national []byte, region string) bool {
	metadataOnce.Do(loadMetadata)
	if region != "" {
		m := byRegion[region]
		if m == nil {
			return false
		}
		return planOf(region, []*phonenumbers.PhoneMetadata{m}).valid(national)
	}
	// The regions of a code, the main one first (the United States for
	// +1): most numbers are valid in it.
	for _, m := range byCode[cc] {
		if planOf(m.GetId(), []*phonenumbers.PhoneMetadata{m}).valid(national) {
			return true
		}
	}
	return false
}

// callingCode returns the country calling code for region.
func callingCode(region string) int {
	metadataOnce.Do(loadMetadata)
	if m := byRegion[region]; m != nil {
		return int(m.GetCountryCode())
	}
	return 0
}

// knownCallingCode reports whether cc is a country calling code.
func knownCallingCode(cc int) bool {
	metadataOnce.Do(loadMetadata)
	return len(byCode[cc]) > 0
}
