package dlp

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
)

// Personal data is found in one pass over the text. Most bytes are
// skipped by a table lookup; detectors start only at an '@' (e-mail), a
// digit, '+' or '(' that starts a word (numbers: cards, phones, SSNs, IP
// addresses, national numbers), an upper-case letter that starts a word
// (IBAN, UK National Insurance number, Italian fiscal code, Spanish NIE),
// or a ':' between hex digits (IPv6). Each candidate is then validated:
// checksums, issuer ranges, numbering plans, and words around it.

// byte classes of the personal-data pass.
const (
	cNone = iota
	cDigit
	cUpper
	cAt
	cPlus // '+' or '('
	cColon
)

var piiClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = cUpper
	}
	t['@'] = cAt
	t['+'] = cPlus
	t['('] = cPlus
	t[':'] = cColon
	return t
}()

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// wordStart reports whether v[i] starts a word.
func wordStart(v []byte, i int) bool { return i == 0 || !isAlnum(v[i-1]) }

// wordEnd reports whether v[i:] starts after the end of a word.
func wordEnd(v []byte, i int) bool { return i >= len(v) || !isAlnum(v[i]) }

// scanPII calls add for each piece of personal data in v.
func scanPII(v []byte, add func(f Finding)) {
	n := len(v)
	for i := 0; i < n; {
		for i < n && piiClass[v[i]] == cNone {
			i++
		}
		if i == n {
			return
		}
		i = piiAt(v, i, piiClass[v[i]], add)
	}
}

// piiAt runs the detectors that start at v[i], of class c, and returns
// where the next detector may start.
func piiAt(v []byte, i int, c uint8, add func(f Finding)) int {
	n := len(v)
	next := i + 1
	switch c {
	case cAt:
		if f, ok := email(v, i); ok {
			add(f)
			next = f.End
		}
	case cDigit, cPlus:
		// A group of fewer than four digits: no detector takes it.
		if (c != cDigit || !shortNumber(v, i)) && wordStart(v, i) {
			if end := number(v, i, add); end > i {
				next = end
			}
		}
		if c == cDigit {
			for next < n && isDigit(v[next]) {
				next++
			}
		}
	case cUpper:
		if wordStart(v, i) {
			if f, ok := upperID(v, i); ok {
				add(f)
				next = f.End
			}
		}
	case cColon:
		if i == 0 || i+1 >= n || !isHexByte(v[i-1]) && v[i-1] != ':' {
			break
		}
		if f, ok := ipv6(v, i); ok {
			add(f)
			next = f.End
		}
	}
	return next
}

// shortNumber reports whether the number group starting with the digit at
// i is a single run of fewer than four digits, as readNumber would read it.
func shortNumber(v []byte, i int) bool {
	j := i
	for j < len(v) && j-i < 4 && isDigit(v[j]) {
		j++
	}
	if j-i >= 4 {
		return false
	}
	if j+1 < len(v) {
		switch v[j] {
		case ' ', '-', '.', '/':
			return !isDigit(v[j+1]) && v[j+1] != '('
		}
	}
	return true
}

// near reports whether one of words (lower case) occurs within radius bytes
// before start or half that after end.
func near(v []byte, start, end, radius int, words ...string) bool {
	return around(v, start, end, radius, radius/2, words)
}

// preceded reports whether one of words occurs within radius bytes before
// start: the name a value is given comes before it.
func preceded(v []byte, start, radius int, words ...string) bool {
	return around(v, start, start, radius, 0, words)
}

func around(v []byte, start, end, before, after int, words []string) bool {
	lo, hi := max(0, start-before), min(len(v), end+after)
	var buf [160]byte
	w := buf[:0]
	for _, c := range v[lo:start] {
		w = append(w, lower(c))
	}
	w = append(w, ' ')
	for _, c := range v[end:hi] {
		w = append(w, lower(c))
	}
	for _, word := range words {
		if bytes.Contains(w, []byte(word)) {
			return true
		}
	}
	return false
}

// notFileTLD are file extensions that follow an '@' in names such as
// icon@2x.png and are not top-level domains anyone mails.
var notFileTLD = map[string]bool{"png": true, "jpg": true, "jpeg": true, "gif": true, "svg": true, "webp": true, "js": true, "css": true, "ts": true, "json": true, "yaml": true, "yml": true, "md": true, "txt": true, "go": true, "py": true, "rs": true}

func emailLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

// email finds the address around the '@' at at.
func email(v []byte, at int) (Finding, bool) {
	s := at
	for s > 0 && at-s < 64 && emailLocal(v[s-1]) {
		s--
	}
	for s < at && (v[s] == '.' || v[s] == '+' || v[s] == '-') {
		s++
	}
	if s == at || v[at-1] == '.' {
		return Finding{}, false
	}
	// user:password@host in a URL is a credential, not an address.
	if s >= 3 && v[s-1] == ':' && bytes.Contains(v[max(0, s-80):s], []byte("://")) {
		return Finding{}, false
	}
	e := at + 1
	for e < len(v) && e-at < 255 && (isAlnum(v[e]) || v[e] == '.' || v[e] == '-') {
		e++
	}
	for e > at+1 && (v[e-1] == '.' || v[e-1] == '-') {
		e--
	}
	domain := v[at+1 : e]
	dot := bytes.LastIndexByte(domain, '.')
	if dot <= 0 || bytes.Contains(domain, []byte("..")) || domain[0] == '.' || domain[0] == '-' {
		return Finding{}, false
	}
	tld := domain[dot+1:]
	if len(tld) < 2 || len(tld) > 24 {
		return Finding{}, false
	}
	for _, c := range tld {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return Finding{}, false
		}
	}
	if notFileTLD[strings.ToLower(string(tld))] {
		return Finding{}, false
	}
	return Finding{Type: "email", Class: ClassPII, Start: s, End: e, Confidence: High, value: strings.ToLower(string(v[s:e]))}, true
}

// numberGroup is a run of digits with the separators between them.
type numberGroup struct {
	start, end int
	nd, nr     int
	dbuf       [24]byte
	// runs are the lengths of the digit runs; seps the separator before
	// each run but the first.
	rbuf  [24]uint8
	sbuf  [24]byte
	plus  bool // starts with '+'
	paren bool
	// parenRun is the run the parenthesis opened before.
	parenRun int
}

func (g *numberGroup) digits() []byte { return g.dbuf[:g.nd] }
func (g *numberGroup) runs() []uint8  { return g.rbuf[:g.nr] }
func (g *numberGroup) seps() []byte {
	if g.nr == 0 {
		return nil
	}
	return g.sbuf[:g.nr-1]
}

// readNumber reads the number group starting at i: digits, single
// separators (space, '-', '.', '/') between them, a leading '+' and one
// parenthesised area code.
func readNumber(v []byte, i int, g *numberGroup) {
	g.start = i
	j := i
	if v[j] == '+' {
		g.plus = true
		j++
	}
	sep := byte(0)
	for j < len(v) {
		c := v[j]
		switch {
		case isDigit(c):
			k := j
			for k < len(v) && isDigit(v[k]) {
				k++
			}
			if g.nd+k-j > len(g.dbuf) {
				return
			}
			// Byte by byte: runs are short, shorter than a call to copy.
			for _, c := range v[j:k] {
				g.dbuf[g.nd] = c
				g.nd++
			}
			if g.nr > 0 {
				g.sbuf[g.nr-1] = sep
			}
			g.rbuf[g.nr] = uint8(k - j)
			g.nr++
			j = k
			g.end = j
			sep = 0
			// What may follow: a separator and more digits.
			if j >= len(v) {
				return
			}
			switch s := v[j]; {
			case s == ' ' || s == '-' || s == '.' || s == '/':
				if j+1 < len(v) && (isDigit(v[j+1]) || v[j+1] == '(' && !g.paren) {
					sep = s
					j++
					continue
				}
				return
			case s == ')' && g.paren && g.nr == g.parenRun+1:
				j++
				sep = ')'
				if j < len(v) && (v[j] == ' ' || v[j] == '-') && j+1 < len(v) && isDigit(v[j+1]) {
					j++
				}
				continue
			}
			return
		case c == '(' && !g.paren && g.nr <= 1:
			g.paren = true
			g.parenRun = g.nr
			j++
		default:
			return
		}
	}
}

// number tries every numeric detector on the number group starting at i,
// and returns where the group ends (i when there is none).
func number(v []byte, i int, add func(Finding)) int {
	var grp numberGroup
	g := &grp
	readNumber(v, i, g)
	if g.nd < 4 {
		return i
	}
	if !wordEnd(v, g.end) && !spanishLetter(v, g) {
		// Inside a larger token (2026-12-03T10:00). A group starting at
		// one of its later runs ends where it does, as inside a token,
		// and only the last run alone may be a DNI (eight digits and a
		// letter): the rest need not be read again.
		if g.nr < 2 || g.plus || g.paren {
			return i
		}
		if last := int(g.rbuf[g.nr-1]); last == 8 {
			return g.end - last - 1
		}
		return g.end
	}
	// A number inside a larger token (an ID, a UUID, a file name, a
	// decimal) is not one of these.
	joined := func(c byte) bool { return c == '-' || c == '_' || c == '.' || c == '/' }
	if g.start >= 2 && joined(v[g.start-1]) && isAlnum(v[g.start-2]) ||
		g.end+1 < len(v) && joined(v[g.end]) && isAlnum(v[g.end+1]) {
		return g.end
	}
	d := g.digits()
	runs, seps := g.runs(), g.seps()
	found := func(typ string, conf Confidence, value string) int {
		add(Finding{Type: typ, Class: ClassPII, Start: g.start, End: g.end, Confidence: conf, value: value})
		return g.end
	}
	if f, ok := spanishID(v, g); ok {
		add(f)
		return f.End
	}
	sameSeps := func(allowed string) bool {
		for _, s := range seps {
			if s != seps[0] || !strings.ContainsRune(allowed, rune(s)) {
				return false
			}
		}
		return true
	}
	// Words before the number that say it is something else.
	negative := func() bool { return preceded(v, g.start, 32, negativeWords...) }
	// IPv4: four dot-separated numbers up to 255.
	if len(runs) == 4 && sameSeps(".") && !g.plus && !g.paren {
		ok := true
		at := 0
		for _, r8 := range runs {
			r := int(r8)
			n := atoi(d[at : at+r])
			if r > 3 || n > 255 || r > 1 && d[at] == '0' {
				ok = false
			}
			at += r
		}
		if ok {
			conf := Medium
			if negative() {
				conf = Low
			}
			return found("ip-address", conf, string(v[g.start:g.end]))
		}
	}
	if g.plus || g.paren {
		if e164, conf, ok := phone(v, g); ok {
			return found("phone-number", conf, e164)
		}
		return g.end
	}
	// Payment cards: 13 to 19 digits, Luhn, an issuer's range and length.
	if len(d) >= 13 && len(d) <= 19 && sameSeps(" -") && luhn(d) && cardIssuer(d) {
		conf := Medium
		switch {
		case near(v, g.start, g.end, 40, "card", "visa", "mastercard", "amex", "pan", "payment", "credit", "debit"):
			conf = High
		case negative():
			conf = Low
		case len(runs) > 1:
			conf = High
		}
		return found("payment-card", conf, string(d))
	}
	// US Social Security numbers: 3-2-4, in the ranges ever issued.
	if len(d) == 9 && ssnValid(d) {
		switch {
		case len(runs) == 3 && runs[0] == 3 && runs[1] == 2 && sameSeps("- "):
			conf := Medium
			if near(v, g.start, g.end, 40, "ssn", "social security", "social-security") {
				conf = High
			} else if negative() {
				conf = Low
			}
			return found("us-ssn", conf, string(d))
		case len(runs) == 1 && near(v, g.start, g.end, 40, "ssn", "social security"):
			return found("us-ssn", Medium, string(d))
		}
	}
	// French social security number (NIR): 15 digits, key 97 - n mod 97.
	if len(d) == 15 && (d[0] == '1' || d[0] == '2') && nirValid(d) {
		conf := Medium
		if near(v, g.start, g.end, 40, "nir", "sécurité sociale", "securite sociale", "insee", "social security") {
			conf = High
		}
		return found("fr-nir", conf, string(d))
	}
	// Dutch citizen service number: 9 digits, eleven-test, named.
	if len(d) == 9 && len(runs) == 1 && bsnValid(d) && near(v, g.start, g.end, 40, "bsn", "burgerservicenummer", "sofinummer", "citizen service") {
		return found("nl-bsn", High, string(d))
	}
	// German tax ID: 11 digits, ISO 7064 check digit, named.
	if len(d) == 11 && d[0] != '0' && steuerIDValid(d) && near(v, g.start, g.end, 40, "steuer", "tax id", "taxid", "tin", "idnr") {
		return found("de-tax-id", High, string(d))
	}
	// Phone numbers without a '+' or parentheses: separated, or named.
	if len(d) >= 7 && len(d) <= 15 && (len(runs) > 1 && sameSeps(" -") || len(runs) > 2 && sameSeps(".") || near(v, g.start, g.end, 32, "phone", "tel", "mobile", "cell", "fax", "call", "sms", "whatsapp")) {
		if e164, conf, ok := phone(v, g); ok {
			return found("phone-number", conf, e164)
		}
	}
	return g.end
}

// negativeWords, before a number, say it is something else.
var negativeWords = []string{"order", "invoice", "tracking", "imei", "serial", "isbn", "sku", "version", "build", "ticket", "ref"}

// phone validates a number group as a phone number with the numbering
// plans of libphonenumber, and returns it in E.164 form.
func phone(v []byte, g *numberGroup) (string, Confidence, bool) {
	d, runs := g.digits(), g.runs()
	if len(d) < 7 || len(d) > 15 {
		return "", 0, false
	}
	// Dates and times read as numbers: 2026-12-03, 12/03/2026, 10.12.2026.
	if !g.plus && len(runs) == 3 && (runs[0] == 4 && runs[1] == 2 && runs[2] == 2 || runs[0] <= 2 && runs[1] <= 2 && runs[2] == 4) {
		return "", 0, false
	}
	var e164 string
	if g.plus {
		// Country calling codes are prefix-free: one length fits.
		for k := 1; k <= 3 && k < len(d); k++ {
			cc := atoi(d[:k])
			if !knownCallingCode(cc) {
				continue
			}
			if validPhone(cc, d[k:], "") {
				e164 = "+" + string(d)
			}
			break
		}
	} else {
		// A national number: valid in one of the numbering plans most
		// often met (the first that takes it gives its E.164 form). Most
		// plans dial a national number with a trunk prefix 0; the North
		// American plan does not.
		for _, nr := range nationalRegions {
			region, nat := nr.region, d
			switch {
			case region == "US":
				if len(nat) == 11 && nat[0] == '1' {
					nat = nat[1:]
				}
			case d[0] != '0':
				continue // elsewhere, a national number starts with 0
			case region != "IT":
				nat = nat[1:]
			}
			if len(nat) < nr.min || len(nat) > nr.max {
				continue
			}
			cc := callingCode(region)
			if validPhone(cc, nat, region) {
				e164 = "+" + strconv.Itoa(cc) + string(nat)
				break
			}
		}
	}
	if e164 == "" {
		return "", 0, false
	}
	conf := Medium
	switch {
	case preceded(v, g.start, 32, negativeWords...):
		conf = Low
	case g.plus || near(v, g.start, g.end, 32, "phone", "tel", "mobile", "cell", "fax", "call", "sms", "whatsapp"):
		conf = High
	}
	return e164, conf, true
}

// nationalRegions are the numbering plans a phone number written without
// its country code is tried in, with the lengths of their national
// significant numbers (after the trunk prefix 0): a number is checked
// against a plan only when its length fits, since each check runs the
// plan's patterns.
var nationalRegions = []struct {
	region   string
	min, max int
}{
	{"US", 10, 10}, {"GB", 9, 10}, {"DE", 6, 13}, {"FR", 9, 9}, {"IT", 6, 11},
	{"NL", 9, 9}, {"AU", 9, 9}, {"IN", 10, 10}, {"BR", 10, 11}, {"JP", 9, 10},
}

// spanishLetter reports whether the group is followed by the check letter
// of a Spanish DNI (12345678Z, 12345678-Z).
func spanishLetter(v []byte, g *numberGroup) bool {
	if g.nd != 8 || g.nr != 1 {
		return false
	}
	j := g.end
	if j < len(v) && v[j] == '-' {
		j++
	}
	return j < len(v) && isUpper(v[j]) && wordEnd(v, j+1)
}

const dniLetters = "TRWAGMYFPDXBNJZSQVHLCKE"

// spanishID finds a Spanish DNI: 8 digits and their check letter.
func spanishID(v []byte, g *numberGroup) (Finding, bool) {
	if !spanishLetter(v, g) {
		return Finding{}, false
	}
	j := g.end
	if v[j] == '-' {
		j++
	}
	if dniLetters[atoi(g.digits())%23] != v[j] {
		return Finding{}, false
	}
	return Finding{Type: "es-dni", Class: ClassPII, Start: g.start, End: j + 1, Confidence: High, value: string(g.digits()) + string(v[j])}, true
}

// upperID tries the identifiers that start with a capital letter.
func upperID(v []byte, i int) (Finding, bool) {
	// Every one of them but the NIE has two capitals first; most
	// capitalised words do not.
	if i+1 >= len(v) || !isUpper(v[i+1]) && v[i] != 'X' && v[i] != 'Y' && v[i] != 'Z' {
		return Finding{}, false
	}
	// Each is tried only when its third byte (and the IBAN's fourth) can
	// be what it needs there, or, for the NIE, its first.
	third := byte(0)
	if i+2 < len(v) {
		third = v[i+2]
	}
	if isDigit(third) && i+3 < len(v) && isDigit(v[i+3]) {
		if f, ok := iban(v, i); ok {
			return f, true
		}
	}
	if isDigit(third) || third == ' ' {
		if f, ok := nino(v, i); ok {
			return f, true
		}
	}
	if isUpper(third) {
		if f, ok := codiceFiscale(v, i); ok {
			return f, true
		}
	}
	if v[i] < 'X' {
		return Finding{}, false
	}
	return nie(v, i)
}

// ibanLengths are the lengths of IBANs per country (ISO 13616 registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28,
	"CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
	"FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
	"IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20,
	"LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
	"NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
	"SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26,
	"UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// iban finds an IBAN, written whole or in groups of four.
func iban(v []byte, i int) (Finding, bool) {
	if i+4 > len(v) || !isUpper(v[i+1]) || !isDigit(v[i+2]) || !isDigit(v[i+3]) {
		return Finding{}, false
	}
	want, ok := ibanLengths[string(v[i:i+2])]
	if !ok {
		return Finding{}, false
	}
	var buf [40]byte
	s := buf[:0]
	j := i
	for j < len(v) && len(s) < want {
		c := v[j]
		switch {
		case isDigit(c) || isUpper(c):
			s = append(s, c)
			j++
		case c == ' ' && len(s)%4 == 0 && j+1 < len(v) && isAlnum(v[j+1]):
			j++
		default:
			return Finding{}, false
		}
	}
	if len(s) != want || !wordEnd(v, j) || !mod97(s) {
		return Finding{}, false
	}
	return Finding{Type: "iban", Class: ClassPII, Start: i, End: j, Confidence: High, value: string(s)}, true
}

// nino finds a UK National Insurance number: two letters (not every pair
// is issued), six digits, a letter A to D.
func nino(v []byte, i int) (Finding, bool) {
	if i+9 > len(v) || !isUpper(v[i+1]) {
		return Finding{}, false
	}
	a, b := v[i], v[i+1]
	if strings.IndexByte("DFIQUV", a) >= 0 || strings.IndexByte("DFIOQUV", b) >= 0 {
		return Finding{}, false
	}
	switch string(v[i : i+2]) {
	case "BG", "GB", "KN", "NK", "NT", "TN", "ZZ":
		return Finding{}, false
	}
	var digits [6]byte
	n := 0
	j := i + 2
	spaced := j < len(v) && v[j] == ' '
	for n < 6 && j < len(v) {
		if spaced && n%2 == 0 {
			if v[j] != ' ' {
				return Finding{}, false
			}
			j++
		}
		if j >= len(v) || !isDigit(v[j]) {
			return Finding{}, false
		}
		digits[n] = v[j]
		n++
		j++
	}
	if n != 6 {
		return Finding{}, false
	}
	if spaced && j < len(v) && v[j] == ' ' {
		j++
	}
	if j >= len(v) || v[j] < 'A' || v[j] > 'D' || !wordEnd(v, j+1) {
		return Finding{}, false
	}
	conf := Medium
	if near(v, i, j+1, 40, "national insurance", "nino", "ni number", "ni no") {
		conf = High
	}
	return Finding{Type: "uk-nino", Class: ClassPII, Start: i, End: j + 1, Confidence: conf, value: string(v[i:i+2]) + string(digits[:]) + string(v[j])}, true
}

// codiceFiscale finds an Italian fiscal code: 16 characters in a fixed
// pattern of letters and digits, the last a check character.
func codiceFiscale(v []byte, i int) (Finding, bool) {
	if i+16 > len(v) || !wordEnd(v, i+16) {
		return Finding{}, false
	}
	s := v[i : i+16]
	const omocodia = "LMNPQRSTUV" // letters that replace digits
	digitish := func(c byte) bool { return isDigit(c) || strings.IndexByte(omocodia, c) >= 0 }
	for k, c := range s {
		switch k {
		case 0, 1, 2, 3, 4, 5, 8, 11, 15:
			if !isUpper(c) {
				return Finding{}, false
			}
		default:
			if !digitish(c) {
				return Finding{}, false
			}
		}
	}
	if strings.IndexByte("ABCDEHLMPRST", s[8]) < 0 || !isDigit(s[6]) && !isDigit(s[7]) && !isDigit(s[9]) {
		return Finding{}, false
	}
	odd := [...]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23}
	sum := 0
	for k, c := range s[:15] {
		var x int
		if isDigit(c) {
			x = int(c - '0')
		} else {
			x = int(c - 'A')
		}
		if k%2 == 0 {
			sum += odd[x]
		} else {
			sum += x
		}
	}
	if byte('A'+sum%26) != s[15] {
		return Finding{}, false
	}
	return Finding{Type: "it-fiscal-code", Class: ClassPII, Start: i, End: i + 16, Confidence: High, value: string(s)}, true
}

// nie finds a Spanish foreigner's number: X, Y or Z, seven digits, the
// check letter.
func nie(v []byte, i int) (Finding, bool) {
	p := int(v[i]) - 'X'
	if p < 0 || p > 2 || i+9 > len(v) {
		return Finding{}, false
	}
	j := i + 1
	if v[j] == '-' {
		j++
	}
	if j+8 > len(v) {
		return Finding{}, false
	}
	n := p
	for k := 0; k < 7; k++ {
		if !isDigit(v[j+k]) {
			return Finding{}, false
		}
		n = n*10 + int(v[j+k]-'0')
	}
	j += 7
	if v[j] == '-' && j+1 < len(v) {
		j++
	}
	if dniLetters[n%23] != v[j] || !wordEnd(v, j+1) {
		return Finding{}, false
	}
	return Finding{Type: "es-nie", Class: ClassPII, Start: i, End: j + 1, Confidence: High, value: string(v[i : j+1])}, true
}

// ipv6 finds an IPv6 address around the ':' at i.
func ipv6(v []byte, i int) (Finding, bool) {
	hexOrColon := func(c byte) bool { _, ok := hexVal(c); return ok || c == ':' }
	if i == 0 || i+1 >= len(v) || !hexOrColon(v[i-1]) || !hexOrColon(v[i+1]) {
		return Finding{}, false
	}
	s := i
	for s > 0 && i-s < 45 && (hexOrColon(v[s-1]) || v[s-1] == '.') {
		s--
	}
	e := i
	for e < len(v) && e-s < 45 && (hexOrColon(v[e]) || v[e] == '.') {
		e++
	}
	for e > i && v[e-1] == '.' {
		e--
	}
	if !wordStart(v, s) || !wordEnd(v, e) || bytes.Count(v[s:e], []byte(":")) < 2 {
		return Finding{}, false
	}
	a, err := netip.ParseAddr(string(v[s:e]))
	if err != nil || !a.Is6() || a.Is4In6() || a.IsUnspecified() || a.IsLoopback() {
		return Finding{}, false
	}
	return Finding{Type: "ip-address", Class: ClassPII, Start: s, End: e, Confidence: Medium, value: a.String()}, true
}
