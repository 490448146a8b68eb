// Package dlp finds secrets and personal data in what agents send and what
// servers return, and handles them by policy.
//
// The [Scanner] reads raw bytes (a message's JSON text, or any text) in a
// few passes, none of which runs a regular expression over the whole
// input:
//
//   - normalisation: JSON string escapes decoded, invisible characters
//     (zero-width, bidirectional controls, tag characters) removed and
//     compatibility characters folded (NFKC), with a map back to the
//     input's offsets, so obfuscation does not hide a value;
//   - a first look, 32 bytes at a time (vector instructions on amd64,
//     masks.go), that marks where a keyword of the secret rules may start
//     (a token's literal prefix, or a word that names a credential), where
//     a personal-data detector may start, and the bytes of base64;
//   - secrets and personal data at the marked positions only: a keyword
//     index checks a mark's first three bytes and the keywords starting
//     with them, and a rule's pattern then runs anchored at its keyword (or
//     in a window around it); personal-data candidates are validated (Luhn
//     and issuer ranges, mod 97, numbering plans, national checksums, words
//     around them);
//   - encoded segments: base64, hex and URL-encoded runs that decode to
//     text are scanned again, to a bounded depth and size.
//
// A [Finding] carries the type, the input offsets, a confidence and,
// unexported, the value in canonical form, from which [Finding.Fingerprint]
// derives a keyed token; the value itself never leaves the package.
package dlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/bits"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Class is what kind of data a finding is.
type Class string

// Classes of findings.
const (
	ClassSecret Class = "secret"
	ClassPII    Class = "pii"
)

// Confidence is how sure a detector is.
type Confidence uint8

// Confidence levels.
const (
	Low Confidence = iota + 1
	Medium
	High
)

func (c Confidence) String() string {
	switch c {
	case Low:
		return "low"
	case Medium:
		return "medium"
	case High:
		return "high"
	}
	return "unknown"
}

// MarshalText writes the level's name.
func (c Confidence) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// ParseConfidence reads a level's name.
func ParseConfidence(s string) (Confidence, error) {
	switch s {
	case "low":
		return Low, nil
	case "medium", "":
		return Medium, nil
	case "high":
		return High, nil
	}
	return 0, fmt.Errorf("unknown confidence %q (low, medium or high)", s)
}

// Finding is one value found. Start and End are byte offsets in the
// scanned input; for a value found inside an encoded segment they span
// the segment, and Encoding says how it was encoded.
type Finding struct {
	Type       string     `json:"type"`
	Class      Class      `json:"class"`
	Start      int        `json:"start"`
	End        int        `json:"end"`
	Confidence Confidence `json:"confidence"`
	Encoding   string     `json:"encoding,omitempty"`
	// value is the value in canonical form (an e-mail address in lower
	// case, a phone number in E.164, a card's digits): what fingerprints
	// are made of.
	value string
}

// Fingerprint returns the keyed token of the finding's value, made with
// token (an HMAC under the deployment's key), so that the same value gives
// the same fingerprint wherever it is found, and the value itself is kept
// nowhere.
func (f *Finding) Fingerprint(token func(string) string) string { return token(f.value) }

// Forms returns value as the built-in detectors write what they find
// before fingerprinting it (an e-mail address in lower case, a phone
// number in E.164, a card's digits), when one of them reads it whole:
// an operator's search for a value as it was written then finds its
// fingerprint.
func Forms(value string) []string {
	var out []string
	for _, f := range defaultScanner().Scan([]byte(value)) {
		if f.Start == 0 && f.End == len(value) && f.value != value && !slices.Contains(out, f.value) {
			out = append(out, f.value)
		}
	}
	return out
}

// Custom is a detector from configuration.
type Custom struct {
	Type  string
	Class Class
	// Pattern finds the value: group 1 when it has groups, else the match.
	Pattern *regexp.Regexp
	// Keywords, when given, make the pattern run only in a window around
	// one of them (case-insensitive), as built-in rules do; without them
	// it runs over the whole text.
	Keywords []string
	// Validator checks the value: "luhn", "mod97" (an IBAN) or "".
	Validator string
	// Entropy is the least Shannon entropy, in bits per byte.
	Entropy    float64
	Confidence Confidence
}

// Options configure a [Scanner].
type Options struct {
	Custom []Custom
	// Allow are values never reported (documented example keys, test
	// accounts); AllowPatterns likewise, matched against the whole value.
	Allow         []string
	AllowPatterns []*regexp.Regexp
	// MinConfidence drops findings below it (default medium).
	MinConfidence Confidence
	// Disabled names built-in types not to report.
	Disabled []string
}

// Scanner finds secrets and personal data. It is safe for concurrent use.
type Scanner struct {
	opts  Options
	rules []*secretRule
	kw    *keywordIndex
	// kwRules maps each keyword of the index to its rules.
	kwRules [][]int
	// wide are custom detectors without keywords.
	wide     []*secretRule
	custom   map[*secretRule]Custom
	disabled map[string]bool
	allow    map[string]bool
}

// Maximum depth of encoded segments within encoded segments, and the
// smallest runs worth decoding.
const (
	maxDepth     = 2
	minBase64Run = 16
	minHexRun    = 32
)

// New builds a scanner with the built-in detectors and opts.
func New(opts Options) (*Scanner, error) {
	s := &Scanner{opts: opts, custom: map[*secretRule]Custom{}, disabled: map[string]bool{}, allow: map[string]bool{}}
	if s.opts.MinConfidence == 0 {
		s.opts.MinConfidence = Medium
	}
	for _, d := range opts.Disabled {
		s.disabled[d] = true
	}
	for _, a := range opts.Allow {
		s.allow[a] = true
	}
	s.rules = append(s.rules, secretRules...)
	for _, c := range opts.Custom {
		if c.Pattern == nil || c.Type == "" {
			return nil, fmt.Errorf("custom detector %q: a type and a pattern are required", c.Type)
		}
		switch c.Validator {
		case "", "luhn", "mod97":
		default:
			return nil, fmt.Errorf("custom detector %q: unknown validator %q (luhn or mod97)", c.Type, c.Validator)
		}
		conf := c.Confidence
		if conf == 0 {
			conf = Medium
		}
		r := &secretRule{typ: c.Type, keywords: c.Keywords, re: c.Pattern, before: 64, after: 256, entropy: c.Entropy, conf: conf, mid: true}
		s.custom[r] = c
		if len(c.Keywords) == 0 {
			s.wide = append(s.wide, r)
			continue
		}
		s.rules = append(s.rules, r)
	}
	var keywords []string
	index := map[string]int{}
	for ri, r := range s.rules {
		for _, k := range r.keywords {
			lk := strings.ToLower(k[:min(len(k), maxKeyword)])
			i, ok := index[lk]
			if !ok {
				i = len(keywords)
				index[lk] = i
				keywords = append(keywords, lk)
				s.kwRules = append(s.kwRules, nil)
			}
			if !slices.Contains(s.kwRules[i], ri) {
				s.kwRules[i] = append(s.kwRules[i], ri)
			}
		}
	}
	spellings := make([][]string, len(keywords))
	follow := make([]func(byte) bool, len(keywords))
	for kw, k := range keywords {
		exact, follows := true, true
		var fs []func(byte) bool
		for _, ri := range s.kwRules[kw] {
			r := s.rules[ri]
			exact = exact && r.exact
			follows = follows && r.follow != nil
			fs = append(fs, r.follow)
			for _, rk := range r.keywords {
				rk = rk[:min(len(rk), maxKeyword)]
				if strings.ToLower(rk) == k && !slices.Contains(spellings[kw], rk) {
					spellings[kw] = append(spellings[kw], rk)
				}
			}
		}
		if !exact {
			spellings[kw] = nil
		}
		if follows {
			follow[kw] = func(c byte) bool {
				return slices.ContainsFunc(fs, func(f func(byte) bool) bool { return f(c) })
			}
		}
	}
	s.kw = newKeywordIndex(keywords, spellings, follow)
	return s, nil
}

// defaultScanner has the built-in detectors only; built on first use,
// not at every start of the program (a millisecond or two).
var defaultScanner = sync.OnceValue(func() *Scanner {
	s, _ := New(Options{})
	return s
})

// viewPool holds buffers for the normalised text of inputs, up to
// maxPooledView bytes.
var viewPool = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledView = 4 << 20

// Scan returns the findings in b, ordered by offset, without overlaps.
func (s *Scanner) Scan(b []byte) []Finding {
	scratch := viewPool.Get().(*[]byte)
	st := &scan{t: normalize(b, *scratch), budget: len(b) + 64<<10}
	st.dec = decoder{s: s, budget: &st.budget, add: st.add}
	s.scanText(st.t.view, &st.dec)
	// Findings hold copies of their values: the view's memory is used
	// again by the next scan.
	if v := st.t.view; len(v) > 0 && (len(b) == 0 || &v[0] != &b[0]) && cap(v) <= maxPooledView {
		*scratch = v[:0]
	}
	viewPool.Put(scratch)
	return s.resolve(st.out)
}

// scan is the state of one Scan: the text, how many decoded bytes may
// still be scanned, and the findings.
type scan struct {
	t      text
	budget int
	out    []Finding
	dec    decoder // of the text's encoded runs
}

// add keeps a finding in the text, with its offsets in the input.
func (st *scan) add(f Finding) {
	f.Start, f.End = st.t.span(f.Start, f.End)
	st.out = append(st.out, f)
}

// scanText runs every detector over v, a text at d's depth, and d over its
// encoded runs.
func (s *Scanner) scanText(v []byte, d *decoder) {
	add := d.add
	if d.depth >= maxDepth {
		d = nil
	}
	if !s.secretsAndPII(v, add, d) && d != nil {
		for _, r := range base64Runs(v) {
			d.base64Run(v, r[0], r[1])
		}
	}
	for _, r := range s.wide {
		for _, m := range r.re.FindAllSubmatchIndex(v, -1) {
			s.match(r, v, m, add)
		}
	}
	if d != nil {
		d.urlRuns(v)
	}
}

// secretsAndPII runs the secret rules where their keywords occur in v, and
// the personal-data detectors, at the positions marked in a first look at
// each chunk of v. It passes the runs of base64 bytes that look finds to
// d (when not nil), and reports whether it looked (not with keywords of
// one byte).
func (s *Scanner) secretsAndPII(v []byte, add func(Finding), d *decoder) bool {
	h := secretHits{s: s, v: v, add: add}
	hit := h.hit
	x := s.kw
	if x.teddy == nil {
		x.find(v, hit)
		scanPII(v, add)
		return false
	}
	// Marks for a chunk; a short text zeroes fewer.
	var small [8]blockMarks
	marks := small[:]
	if len(v) > 32*len(small) {
		var chunk [maskChunk / 32]blockMarks
		marks = chunk[:]
	}
	runs := runFinder{v: v, d: d}
	carry := uint32(0)
	piiNext := 0
	for start := 0; start < len(v); start += maskChunk {
		end := min(len(v), start+maskChunk)
		carry = x.teddy.mark(v, start, end, marks, carry)
		words := (end - start + 31) / 32
		for w := range words {
			base := start + 32*w
			for m := marks[w].kw; m != 0; m &= m - 1 {
				i := base + bits.TrailingZeros32(m)
				if i+3 > len(v) {
					x.position(v, i, hit)
					continue
				}
				// position's test, here where most marks end.
				if key := key3(v, i); x.filtered(key) {
					x.at(v, i, key, hit)
				}
			}
			for m := marks[w].pii; m != 0; m &= m - 1 {
				if i := base + bits.TrailingZeros32(m); i >= piiNext {
					piiNext = piiAt(v, i, piiClass[v[i]], add)
				}
			}
			if d != nil && !runs.skip(marks[w].b64) {
				runs.add(marks[:words], w, base, end == len(v))
			}
		}
	}
	return true
}

// secretHits runs the rules of the keywords found in v.
type secretHits struct {
	s   *Scanner
	v   []byte
	add func(Finding)
	// A rule runs once per window: keyword hits inside a window already
	// searched are skipped.
	done []int // per rule: end of its last window
}

// hit runs the rules of keyword kw, found in v ending at end.
func (h *secretHits) hit(kw, end int) {
	s, v, add := h.s, h.v, h.add
	for _, ri := range s.kwRules[kw] {
		r := s.rules[ri]
		start := end - len(s.kw.keyword(kw))
		if r.exact && !hasExact(v[start:end], r.keywords) {
			continue
		}
		if r.follow != nil && (end >= len(v) || !r.follow(v[end])) {
			continue
		}
		if r.typ == genericType && !assignmentFollows(v, end) {
			continue
		}
		if h.done == nil {
			h.done = make([]int, len(s.rules))
			for i := range h.done {
				h.done[i] = -1
			}
		}
		done := h.done
		if start < done[ri] {
			continue
		}
		if !r.mid {
			// One match, anchored at the keyword.
			if r.boundary && start > 0 && isWordByte(v[start-1]) {
				continue
			}
			hi := min(len(v), end+r.after)
			m := r.anchored.FindSubmatchIndex(v[start:hi])
			if m == nil {
				continue
			}
			for i := range m {
				if m[i] >= 0 {
					m[i] += start
				}
			}
			done[ri] = m[1]
			s.match(r, v, m, add)
			continue
		}
		lo, hi := max(0, start-r.before), min(len(v), end+r.after)
		done[ri] = hi
		for _, m := range r.re.FindAllSubmatchIndex(v[lo:hi], -1) {
			for i := range m {
				if m[i] >= 0 {
					m[i] += lo
				}
			}
			s.match(r, v, m, add)
		}
	}
}

func isWordByte(c byte) bool { return isAlnum(c) || c == '_' }

func hasExact(b []byte, keywords []string) bool {
	for _, k := range keywords {
		if string(b) == k[:min(len(k), maxKeyword)] {
			return true
		}
	}
	return false
}

// assignmentFollows reports whether a name continues after end and is
// assigned a value (':', '=', ':=' or '=>'), as in password = "...".
func assignmentFollows(v []byte, end int) bool {
	i := end
	for i < len(v) && i-end < 20 && (isAlnum(v[i]) || v[i] == '_' || v[i] == '-' || v[i] == '.') {
		i++
	}
	for i < len(v) && i-end < 24 && (v[i] == '"' || v[i] == '\'' || v[i] == filler) {
		i++
	}
	for i < len(v) && i-end < 30 && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i < len(v) && (v[i] == ':' || v[i] == '=')
}

// match checks one match of a rule and reports it.
func (s *Scanner) match(r *secretRule, v []byte, m []int, add func(Finding)) {
	a, b := m[0], m[1]
	if len(m) >= 4 && m[2] >= 0 {
		a, b = m[2], m[3]
	}
	if a >= b {
		return
	}
	val := v[a:b]
	if r.entropy > 0 && entropy(val) < r.entropy {
		return
	}
	if c, ok := s.custom[r]; ok {
		switch c.Validator {
		case "luhn":
			d := digitsOf(val)
			if len(d) < 2 || !luhn(d) {
				return
			}
		case "mod97":
			d := bytes.ToUpper(bytes.ReplaceAll(val, []byte(" "), nil))
			if len(d) < 5 || !mod97(d) {
				return
			}
		}
		class := c.Class
		if class == "" {
			class = ClassSecret
		}
		add(Finding{Type: r.typ, Class: class, Start: a, End: b, Confidence: r.conf, value: string(val)})
		return
	}
	if isPlaceholder(val) {
		return
	}
	if r.typ == genericType && !genericValueOK(val) {
		return
	}
	add(Finding{Type: r.typ, Class: ClassSecret, Start: a, End: b, Confidence: r.conf, value: string(val)})
}

func digitsOf(b []byte) []byte {
	var out []byte
	for _, c := range b {
		if isDigit(c) {
			out = append(out, c)
		}
	}
	return out
}

// b64class tells base64 bytes (1) from those that are hex digits too (3),
// and marks '%' (4).
var b64class = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		switch {
		case isHexByte(b):
			t[c] = 3
		case isAlnum(b) || b == '+' || b == '/' || b == '-' || b == '_' || b == '=':
			t[c] = 1
		case b == '%':
			t[c] = 4
		}
	}
	return t
}()

// decoder decodes base64, hex and URL-encoded runs of a text that decode
// to text, and scans that text; what is found there spans the whole run.
type decoder struct {
	s      *Scanner
	depth  int // of the text whose runs it decodes
	budget *int
	add    func(Finding)
	// scratch is memory for the decoded texts' normalised views, used
	// again from one run to the next.
	scratch []byte
}

// scan scans dec, decoded from v[start:end].
func (d *decoder) scan(start, end int, enc string, dec []byte) {
	if *d.budget < len(dec) || !printable(dec) {
		return
	}
	*d.budget -= len(dec)
	t := normalize(dec, d.scratch)
	if len(t.view) > 0 && &t.view[0] != &dec[0] {
		d.scratch = t.view[:0]
	}
	add := d.add
	d.s.scanText(t.view, &decoder{s: d.s, depth: d.depth + 1, budget: d.budget, add: func(f Finding) {
		f.Start, f.End = start, end
		if f.Encoding == "" {
			f.Encoding = enc
		} else {
			f.Encoding = enc + "+" + f.Encoding
		}
		add(f)
	}})
}

// urlRuns decodes the URL-encoded runs of v. URL escapes are rare: found
// with a fast search.
func (d *decoder) urlRuns(v []byte) {
	n := len(v)
	for i := bytes.IndexByte(v, '%'); i >= 0; {
		if i+2 < n && isHexByte(v[i+1]) && isHexByte(v[i+2]) {
			urlEncoded(v, i, d.scan)
		}
		k := bytes.IndexByte(v[i+1:], '%')
		if k < 0 {
			break
		}
		i += 1 + k
	}
}

// base64Run decodes v[i:j], a run of base64 bytes, as hex or as base64.
func (d *decoder) base64Run(v []byte, i, j int) {
	run := v[i:j]
	hexRun := uint8(2)
	for _, c := range run {
		hexRun &= b64class[c]
	}
	switch {
	case hexRun != 0 && len(run) >= minHexRun && len(run)%2 == 0:
		if textStart(run[:16], true) {
			dec := make([]byte, len(run)/2)
			if _, err := hex.Decode(dec, run); err == nil {
				d.scan(i, j, "hex", dec)
			}
		}
	case hexRun == 0:
		if textStart(run[:8], false) {
			if dec, ok := decodeBase64(run); ok {
				d.scan(i, j, "base64", dec)
			}
		}
	}
}

// base64Runs returns the runs of base64 bytes in v at least minBase64Run
// long. A run that long covers every position minBase64Run apart, so only
// those are looked at until one is in a run, which is then measured whole.
func base64Runs(v []byte) [][2]int {
	var runs [][2]int
	n := len(v)
	runEnd := 0
	for pos := minBase64Run - 1; pos < n; {
		if b64class[v[pos]]&1 == 0 {
			pos += minBase64Run
			continue
		}
		i := pos
		for i > runEnd && b64class[v[i-1]]&1 != 0 {
			i--
		}
		j := pos + 1
		for j < n && b64class[v[j]]&1 != 0 {
			j++
		}
		if j-i >= minBase64Run {
			runs = append(runs, [2]int{i, j})
		}
		runEnd, pos = j, j+minBase64Run
	}
	return runs
}

// textStart reports whether the start of an encoded run decodes to
// printable text, so that most runs (IDs, hashes, images) are not decoded
// whole.
func textStart(run []byte, isHex bool) bool {
	var out [12]byte
	var n int
	var err error
	if isHex {
		n, err = hex.Decode(out[:], run)
	} else {
		enc := base64.RawStdEncoding
		for _, c := range run {
			if c == '-' || c == '_' {
				enc = base64.RawURLEncoding
				break
			}
		}
		n, err = enc.Decode(out[:], run)
	}
	if err != nil {
		return false
	}
	for _, c := range out[:n] {
		if c < ' ' && c != '\n' && c != '\r' && c != '\t' || c >= 0x7f && c < 0xc2 {
			return false
		}
	}
	return true
}

// urlEncoded decodes the URL-encoded run around the escape at i.
func urlEncoded(v []byte, i int, inner func(int, int, string, []byte)) {
	urlByte := func(c byte) bool { return c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '<' && c != '>' }
	start := i
	for start > 0 && i-start < 256 && urlByte(v[start-1]) {
		start--
	}
	// Only once per run: at its first escape.
	if bytes.IndexByte(v[start:i], '%') >= 0 {
		return
	}
	end := i
	for end < len(v) && end-i < 4096 && urlByte(v[end]) {
		end++
	}
	dec := make([]byte, 0, end-start)
	for k := start; k < end; k++ {
		if v[k] == '%' && k+2 < end {
			h, ok1 := hexVal(v[k+1])
			l, ok2 := hexVal(v[k+2])
			if ok1 && ok2 {
				dec = append(dec, h<<4|l)
				k += 2
				continue
			}
		}
		dec = append(dec, v[k])
	}
	inner(start, end, "url", dec)
}

func decodeBase64(run []byte) ([]byte, bool) {
	s := bytes.TrimRight(run, "=")
	enc := base64.RawStdEncoding
	if bytes.ContainsAny(s, "-_") {
		if bytes.ContainsAny(s, "+/") {
			return nil, false
		}
		enc = base64.RawURLEncoding
	}
	if len(s)%4 == 1 {
		return nil, false
	}
	dec := make([]byte, enc.DecodedLen(len(s)))
	n, err := enc.Decode(dec, s)
	if err != nil {
		return nil, false
	}
	return dec[:n], true
}

// printable reports whether decoded bytes are text: valid UTF-8 with
// almost no control characters.
func printable(b []byte) bool {
	if len(b) == 0 || !utf8.Valid(b) {
		return false
	}
	bad := 0
	for _, c := range b {
		if c < ' ' && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			bad++
		}
	}
	return bad*20 <= len(b)
}

// resolve orders findings, drops those below the minimum confidence, of
// disabled types or allowed values, and keeps the better of overlapping
// ones: the more confident, then a specific rule over the generic one,
// then the longer.
func (s *Scanner) resolve(fs []Finding) []Finding {
	out := fs[:0]
	for _, f := range fs {
		if f.Confidence < s.opts.MinConfidence || s.disabled[f.Type] || s.allowed(f.value) {
			continue
		}
		out = append(out, f)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	kept := out[:0]
	for _, f := range out {
		if n := len(kept); n > 0 && f.Start < kept[n-1].End {
			if better(f, kept[n-1]) {
				kept[n-1] = f
			}
			continue
		}
		kept = append(kept, f)
	}
	return kept
}

func better(a, b Finding) bool {
	if a.Confidence != b.Confidence {
		return a.Confidence > b.Confidence
	}
	if ag, bg := a.Type == genericType, b.Type == genericType; ag != bg {
		return !ag
	}
	if a.Class != b.Class {
		return a.Class == ClassSecret
	}
	return a.End-a.Start > b.End-b.Start
}

func (s *Scanner) allowed(v string) bool {
	if s.allow[v] {
		return true
	}
	for _, p := range s.opts.AllowPatterns {
		if loc := p.FindStringIndex(v); loc != nil && loc[0] == 0 && loc[1] == len(v) {
			return true
		}
	}
	return false
}
