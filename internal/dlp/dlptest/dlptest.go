// Package dlptest holds what the DLP scanner's tests and benchmarks share
// with measurements of other scanners: a generator of synthetic values,
// realistic tool output, and the labelled corpus's format.
package dlptest

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Gen makes synthetic values from a seeded source, so that what it makes
// is the same on every run.
type Gen struct{ R *rand.Rand }

// NewGen returns a generator seeded with a and b.
func NewGen(a, b uint64) Gen { return Gen{rand.New(rand.NewPCG(a, b))} }

// Pick returns one of xs.
func (g Gen) Pick(xs ...string) string { return xs[g.R.IntN(len(xs))] }

// Chars returns n characters of alphabet.
func (g Gen) Chars(alphabet string, n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[g.R.IntN(len(alphabet))]
	}
	return string(out)
}

// Digits returns n decimal digits.
func (g Gen) Digits(n int) string { return g.Chars("0123456789", n) }

// Token makes fingerprints as the gateway does, an HMAC-SHA256 under a
// key, here a fixed one, with the HMAC states pooled as the gateway's are.
func Token(v string) string {
	m := tokenPool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(v))
	t := "hmac:" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	tokenPool.Put(m)
	return t
}

var tokenPool = sync.Pool{New: func() any { return hmac.New(sha256.New, []byte("dlptest fingerprint key")) }}

// Label is where a labelled value is in a sample's text, and its type.
type Label struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

// Sample is a text of the labelled corpus with its labels.
type Sample struct {
	Text   string  `json:"text"`
	Labels []Label `json:"labels"`
	Note   string  `json:"note,omitempty"`
}

// ReadCorpus reads a labelled corpus, one JSON sample per line.
func ReadCorpus(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s Sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (g Gen) email() string {
	first := g.Pick("ada", "alan", "grace", "linus", "margaret")
	last := g.Pick("lovelace", "turing", "hopper", "torvalds", "hamilton")
	return first + "." + last + strconv.Itoa(g.R.IntN(100)) + "@" + g.Pick("example.com", "example.org", "mail.example")
}

func (g Gen) phone() string {
	switch g.R.IntN(4) {
	case 0:
		return "+1 415-555-01" + g.Digits(2)
	case 1:
		return "(202) 555-01" + g.Digits(2)
	case 2:
		return "+44 20 7946 0" + g.Digits(3)
	}
	return "+49 30 " + g.Digits(6)
}

// record is order record i of the output ToolOutput and Records make:
// one line of JSON, with an e-mail address and a phone number every eighth
// record.
func (g Gen) record(i int) string {
	r := g.R
	var rec strings.Builder
	fmt.Fprintf(&rec, `{"id":"ord_%s","customer":"%s","status":"%s","total":%d.%02d,"currency":"EUR","created_at":"2026-%02d-%02dT%02d:%02d:%02dZ",`,
		g.Chars(alnum, 12), g.Pick("Ada Lovelace", "Alan Turing", "Grace Hopper", "Linus Torvalds"), g.Pick("paid", "shipped", "refunded"),
		r.IntN(999), r.IntN(100), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	fmt.Fprintf(&rec, `"items":[{"sku":"SKU-%s","qty":%d,"name":"%s"}],"url":"https://shop.example.com/orders/%d?ref=email",`,
		g.Digits(6), 1+r.IntN(5), g.Pick("Wireless keyboard", "USB-C cable, 2 m", "Standing desk frame", "Noise-cancelling headphones"), r.IntN(1000000))
	rec.WriteString(`"note":"Customer asked to deliver after 5 pm; the parcel may be left with a neighbour. Tracking is updated nightly."`)
	if i%8 == 0 {
		fmt.Fprintf(&rec, `,"contact":"%s","phone":"%s"`, g.email(), g.phone())
	}
	rec.WriteString("}\n")
	return rec.String()
}

// Records returns n bytes of order records, as a tool lists them in a text
// block: lines of JSON, padded with spaces to the size.
func Records(n int) string {
	g := NewGen(7, 11)
	var b strings.Builder
	for i := 0; ; i++ {
		rec := g.record(i)
		if b.Len()+len(rec) > n {
			break
		}
		b.WriteString(rec)
	}
	b.WriteString(strings.Repeat(" ", max(0, n-b.Len())))
	return b.String()
}

// ToolOutput builds n bytes (at least 1 KiB) of realistic tool output: the
// JSON text of a tools/call result whose text block holds the records of
// Records, escaped.
func ToolOutput(n int) []byte {
	g := NewGen(7, 11)
	escape := strings.NewReplacer(`"`, `\"`, "\n", `\n`)
	var b strings.Builder
	b.WriteString(`{"content":[{"type":"text","text":"`)
	const tail = `"}],"isError":false}`
	for i := 0; ; i++ {
		rec := escape.Replace(g.record(i))
		if b.Len()+len(rec)+len(tail) > n {
			break
		}
		b.WriteString(rec)
	}
	// Filler up to the size, then the end: the result is valid JSON.
	b.WriteString(strings.Repeat(" ", max(0, n-b.Len()-len(tail))))
	b.WriteString(tail)
	return []byte(b.String())
}
