package dlp_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/dlp"
	"github.com/sluicehq/sluice/internal/dlp/dlptest"
)

var update = flag.Bool("update", false, "rewrite testdata/corpus.jsonl from the generator")

// corpusPath is the labelled corpus: synthetic values in public formats
// (documentation ranges, test card prefixes, generated checksums), in the
// kinds of text tools return, with hard negatives. The generator below
// writes it (go test ./internal/dlp -run TestCorpus -update); the labels
// come from what the generator put in, never from the scanner.
var corpusPath = filepath.Join("testdata", "corpus.jsonl")

type (
	label  = dlptest.Label
	sample = dlptest.Sample
)

// builder assembles a text, recording where labelled values go.
type builder struct {
	b      strings.Builder
	labels []label
}

func (b *builder) s(parts ...string) *builder {
	for _, p := range parts {
		b.b.WriteString(p)
	}
	return b
}

func (b *builder) v(typ, value string) *builder {
	start := b.b.Len()
	b.b.WriteString(value)
	b.labels = append(b.labels, label{Type: typ, Start: start, End: b.b.Len()})
	return b
}

func (b *builder) done(note string) sample {
	return sample{Text: b.b.String(), Labels: b.labels, Note: note}
}

// gen makes the corpus's values.
type gen struct{ dlptest.Gen }

const (
	upperAZ = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowerAZ = "abcdefghijklmnopqrstuvwxyz"
	digits  = "0123456789"
	alnum   = upperAZ + lowerAZ + digits
	hexLow  = "0123456789abcdef"
)

// luhnDigit is the check digit that makes body+digit pass the Luhn test.
func luhnDigit(body string) string {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return strconv.Itoa((10 - sum%10) % 10)
}

func (g gen) card() string {
	prefix, n := "", 16
	switch g.R.IntN(5) {
	case 0:
		prefix = "4111"
	case 1:
		prefix = "5555"
	case 2:
		prefix, n = "3782", 15
	case 3:
		prefix = "6011"
	default:
		prefix = "4242"
	}
	body := prefix + g.Digits(n-1-len(prefix))
	num := body + luhnDigit(body)
	switch g.R.IntN(3) {
	case 0:
		return num
	case 1:
		if n == 15 {
			return num[:4] + " " + num[4:10] + " " + num[10:]
		}
		return num[:4] + " " + num[4:8] + " " + num[8:12] + " " + num[12:]
	}
	if n == 15 {
		return num[:4] + "-" + num[4:10] + "-" + num[10:]
	}
	return num[:4] + "-" + num[4:8] + "-" + num[8:12] + "-" + num[12:]
}

// notCard is 16 digits with a test prefix that fail the Luhn test.
func (g gen) notCard() string {
	body := "4" + g.Digits(14)
	d := (int(luhnDigit(body)[0]-'0') + 1 + g.R.IntN(8)) % 10
	return body + strconv.Itoa(d)
}

func (g gen) imei() string {
	body := "35" + g.Digits(12)
	return body + luhnDigit(body)
}

func ibanCheck(country, bban string) string {
	s := bban + country + "00"
	r := 0
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			r = (r*100 + int(c-'A') + 10) % 97
		} else {
			r = (r*10 + int(c-'0')) % 97
		}
	}
	return fmt.Sprintf("%02d", 98-r)
}

func (g gen) iban() string {
	var country, bban string
	switch g.R.IntN(4) {
	case 0:
		country, bban = "GB", g.Chars(upperAZ, 4)+g.Digits(14)
	case 1:
		country, bban = "DE", g.Digits(18)
	case 2:
		country, bban = "FR", g.Digits(23)
	default:
		country, bban = "NL", g.Chars(upperAZ, 4)+g.Digits(10)
	}
	s := country + ibanCheck(country, bban) + bban
	if g.R.IntN(2) == 0 {
		return s
	}
	var parts []string
	for i := 0; i < len(s); i += 4 {
		parts = append(parts, s[i:min(i+4, len(s))])
	}
	return strings.Join(parts, " ")
}

func (g gen) ssn() string {
	area := 1 + g.R.IntN(898)
	if area == 666 {
		area = 667
	}
	return fmt.Sprintf("%03d-%02d-%04d", area, 1+g.R.IntN(99), 1+g.R.IntN(9999))
}

func (g gen) nino() string {
	first, second := "ABCEGHJKLMNOPRSTWXYZ", "ABCEGHJKLMNPRSTWXYZ"
	p := g.Chars(first, 1) + g.Chars(second, 1)
	for p == "BG" || p == "GB" || p == "KN" || p == "NK" || p == "NT" || p == "TN" || p == "ZZ" {
		p = g.Chars(first, 1) + g.Chars(second, 1)
	}
	d := g.Digits(6)
	if g.R.IntN(2) == 0 {
		return p + " " + d[:2] + " " + d[2:4] + " " + d[4:] + " " + g.Chars("ABCD", 1)
	}
	return p + d + g.Chars("ABCD", 1)
}

func (g gen) dni() string {
	n := 10000000 + g.R.IntN(89999999)
	return strconv.Itoa(n) + string("TRWAGMYFPDXBNJZSQVHLCKE"[n%23])
}

func (g gen) nie() string {
	p := g.R.IntN(3)
	n := g.R.IntN(10000000)
	return string("XYZ"[p]) + fmt.Sprintf("%07d", n) + string("TRWAGMYFPDXBNJZSQVHLCKE"[(p*10000000+n)%23])
}

func (g gen) fiscalCode() string {
	s := g.Chars(upperAZ, 6) + g.Digits(2) + g.Chars("ABCDEHLMPRST", 1) + g.Digits(2) + g.Chars(upperAZ, 1) + g.Digits(3)
	odd := [...]int{1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23}
	sum := 0
	for i, c := range s {
		x := int(c - 'A')
		if c >= '0' && c <= '9' {
			x = int(c - '0')
		}
		if i%2 == 0 {
			sum += odd[x]
		} else {
			sum += x
		}
	}
	return s + string(rune('A'+sum%26))
}

func (g gen) nir() string {
	body := g.Chars("12", 1) + g.Digits(2) + fmt.Sprintf("%02d", 1+g.R.IntN(12)) + g.Digits(8)
	n, _ := strconv.ParseInt(body, 10, 64)
	return body + fmt.Sprintf("%02d", 97-n%97)
}

func (g gen) bsn() string {
	for {
		d := g.Digits(8)
		sum := 0
		for i := 0; i < 8; i++ {
			sum += int(d[i]-'0') * (9 - i)
		}
		if c := sum % 11; c < 10 {
			return d + strconv.Itoa(c)
		}
	}
}

func (g gen) email() string {
	first := g.Pick("ada", "alan", "grace", "linus", "margaret", "dennis", "barbara", "ken", "radia", "edsger")
	last := g.Pick("lovelace", "turing", "hopper", "torvalds", "hamilton", "ritchie", "liskov", "thompson", "perlman", "dijkstra")
	domain := g.Pick("example.com", "example.org", "example.net", "mail.example", "corp.example.com", "shop.test", "EXAMPLE.COM")
	local := g.Pick(first+"."+last, first, first+"_"+last+strconv.Itoa(g.R.IntN(99)), first+"+news", last)
	return local + "@" + domain
}

func (g gen) phone() string {
	switch g.R.IntN(7) {
	case 6:
		return "+1 (312) 555-01" + g.Digits(2)
	case 0:
		return "+1 415-555-01" + g.Digits(2)
	case 1:
		return "(202) 555-01" + g.Digits(2)
	case 2:
		return "+44 20 7946 0" + g.Digits(3)
	case 3:
		return "020 7946 0" + g.Digits(3)
	case 4:
		return "+33 1 99 00 " + g.Digits(2) + " " + g.Digits(2)
	}
	return "+49 30 " + g.Digits(6)
}

func (g gen) ipv4() string {
	return g.Pick("192.0.2.", "198.51.100.", "203.0.113.") + strconv.Itoa(1+g.R.IntN(254))
}

func (g gen) ipv6() string {
	return fmt.Sprintf("2001:db8:%x::%x", g.R.IntN(0xffff), 1+g.R.IntN(0xfffe))
}

// secrets are generators of synthetic tokens in each built-in format.
func (g gen) secrets() map[string]func() string {
	b64 := alnum + "+/"
	return map[string]func() string{
		"aws-access-key-id": func() string { return g.Pick("AKIA", "ASIA") + g.Chars(upperAZ+"234567", 16) },
		"gcp-api-key":       func() string { return "AIza" + g.Chars(alnum+"_-", 35) },
		"github-token":      func() string { return g.Pick("ghp_", "gho_", "ghs_", "ghu_") + g.Chars(alnum, 36) },
		"github-fine-grained-token": func() string {
			return "github_pat_" + g.Chars(alnum, 22) + "_" + g.Chars(alnum, 59)
		},
		"gitlab-token": func() string { return "glpat-" + g.Chars(alnum+"_-", 20) },
		"slack-token":  func() string { return "xoxb-" + g.Digits(12) + "-" + g.Digits(12) + "-" + g.Chars(alnum, 24) },
		"slack-webhook": func() string {
			return "hooks.slack.com/services/T" + g.Chars(upperAZ+digits, 8) + "/B" + g.Chars(upperAZ+digits, 8) + "/" + g.Chars(alnum, 24)
		},
		"stripe-key":            func() string { return g.Pick("sk_live_", "rk_live_", "sk_test_") + g.Chars(alnum, 24) },
		"npm-token":             func() string { return "npm_" + g.Chars(alnum, 36) },
		"pypi-token":            func() string { return "pypi-AgEIcHlwaS5vcmc" + g.Chars(alnum+"_-", 70) },
		"openai-key":            func() string { return "sk-proj-" + g.Chars(alnum+"_-", 64) },
		"anthropic-key":         func() string { return "sk-ant-api03-" + g.Chars(alnum+"_-", 93) + "AA" },
		"sendgrid-key":          func() string { return "SG." + g.Chars(alnum+"_-", 22) + "." + g.Chars(alnum+"_-", 43) },
		"twilio-key":            func() string { return "SK" + g.Chars(hexLow, 32) },
		"shopify-token":         func() string { return "shpat_" + g.Chars(hexLow, 32) },
		"digitalocean-token":    func() string { return "dop_v1_" + g.Chars(hexLow, 64) },
		"hashicorp-vault-token": func() string { return "hvs." + g.Chars(alnum, 90) },
		"huggingface-token":     func() string { return "hf_" + g.Chars(upperAZ+lowerAZ, 34) },
		"docker-token":          func() string { return "dckr_pat_" + g.Chars(alnum+"_-", 27) },
		"telegram-bot-token":    func() string { return g.Digits(9) + ":AA" + g.Chars(alnum+"_-", 33) },
		"jwt": func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
			p := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"` + g.Digits(8) + `","name":"` + g.Pick("Ada", "Alan") + `"}`))
			return h + "." + p + "." + g.Chars(alnum+"_-", 43)
		},
		"private-key": func() string {
			return "-----BEGIN " + g.Pick("RSA ", "EC ", "OPENSSH ", "") + "PRIVATE KEY-----\n" + g.Chars(b64, 64) + "\n" + g.Chars(b64, 64) + "\n" + g.Chars(b64, 40) + "==\n-----END " + "PRIVATE KEY-----"
		},
		"aws-secret-access-key": func() string { return g.Chars(alnum+"/+", 40) },
		"generic-secret":        func() string { return g.Chars(alnum, 8) + g.Digits(4) + g.Chars(alnum, 12) },
		"database-url-password": func() string { return g.Chars(alnum, 10) + g.Digits(3) },
	}
}

func (g gen) samples() []sample {
	var out []sample
	add := func(s sample) { out = append(out, s) }
	json := func(k, v string) string { return `"` + k + `": "` + v + `"` }
	_ = json
	for range 40 {
		// Tool results: customer records and prose.
		b := &builder{}
		b.s(`{"id":"C-`, g.Digits(4), `","name":"`, g.Pick("Ada Lovelace", "Alan Turing", "Grace Hopper"), `","email":"`).v("email", g.email()).
			s(`","phone":"`).v("phone-number", g.phone()).s(`","city":"`, g.Pick("Berlin", "Paris", "London"), `","orders":`, strconv.Itoa(g.R.IntN(50)), `}`)
		add(b.done("customer record"))

		b = &builder{}
		b.s("Please charge the card ").v("payment-card", g.card()).s(" for order #", g.Digits(8), " and send the receipt to ").v("email", g.email()).s(".")
		add(b.done("payment prose"))

		b = &builder{}
		b.s(`{"type":"text","text":"Account holder: `, g.Pick("Ada", "Alan"), `\nIBAN: `).v("iban", g.iban()).s(`\nReference: INV-`, g.Digits(6), `"}`)
		add(b.done("bank details"))

		b = &builder{}
		b.s("Employee file. SSN: ").v("us-ssn", g.ssn()).s("; NI number ").v("uk-nino", g.nino()).s("; last login from ").v("ip-address", g.ipv4()).s(" and ").v("ip-address", g.ipv6()).s(".")
		add(b.done("hr record"))

		b = &builder{}
		b.s(`{"dni":"`).v("es-dni", g.dni()).s(`","nie":"`).v("es-nie", g.nie()).s(`","codice_fiscale":"`).v("it-fiscal-code", g.fiscalCode()).
			s(`","numero_securite_sociale":"`).v("fr-nir", g.nir()).s(`","bsn":"`).v("nl-bsn", g.bsn()).s(`"}`)
		add(b.done("national identifiers"))
	}
	secrets := g.secrets()
	types := make([]string, 0, len(secrets))
	for t := range secrets {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, typ := range types {
		mk := secrets[typ]
		for i := range 12 {
			b := &builder{}
			switch typ {
			case "aws-secret-access-key":
				b.s("aws_access_key_id = AKIA", g.Chars(upperAZ+"234567", 16), "\naws_secret_access_key = ").v(typ, mk()).s("\n")
				b.labels = nil
				b = &builder{}
				b.s("[default]\naws_secret_access_key = ").v(typ, mk()).s("\nregion = eu-west-1\n")
			case "generic-secret":
				b.s(g.Pick(`{"api_key": "`, `{"client_secret":"`, `{"auth_token": "`, `{"password":"`, `SECRET_KEY=`, `db_password: '`)).v(typ, mk()).s(g.Pick(`"}`, `"}`, `"}`, `"}`, "\n", `'`))
			case "database-url-password":
				b.s(`{"DATABASE_URL":"`, g.Pick("postgres", "mysql", "mongodb+srv", "redis"), "://", g.Pick("app", "admin", "svc"), ":").v(typ, mk()).s("@db", strconv.Itoa(i), ".internal.example:5432/app", `"}`)
			case "slack-webhook":
				b.s(`{"webhook":"https://`).v(typ, mk()).s(`"}`)
			default:
				switch i % 4 {
				case 0:
					b.s(`{"env":{"TOKEN":"`).v(typ, mk()).s(`"}}`)
				case 1:
					b.s("export CREDENTIAL=").v(typ, mk()).s("\n")
				case 2:
					b.s("Here is the key you asked for: ").v(typ, mk()).s(" (keep it safe)")
				default:
					b.s(`config = {'value': '`).v(typ, mk()).s(`'}`)
				}
			}
			add(b.done("secret " + typ))
		}
	}
	// Obfuscation: escapes, invisible characters, encodings.
	for range 10 {
		e := g.email()
		at := strings.IndexByte(e, '@')
		b := &builder{}
		b.s(`{"note":"contact `).v("email", e[:at]+`\u0040`+e[at+1:]).s(`"}`)
		add(b.done("escaped @"))

		tokn := "ghp_" + g.Chars(alnum, 36)
		b = &builder{}
		b.s(`{"text":"token `).v("github-token", tokn[:10]+"\u200b"+tokn[10:]).s(`"}`)
		add(b.done("zero-width space inside a token"))

		b = &builder{}
		b.s(`{"blob":"`).v("aws-access-key-id", base64.StdEncoding.EncodeToString([]byte("key=AKIA"+g.Chars(upperAZ+"234567", 16)+"\n"))).s(`"}`)
		add(b.done("base64-encoded key"))

		b = &builder{}
		b.s("mailto:").v("email", strings.Replace(g.email(), "@", "%40", 1)).s(" ")
		b.labels[0].Start = 0 // the URL-encoded run is the whole link
		add(b.done("url-encoded address"))

		b = &builder{}
		b.s("Card: ").v("payment-card", strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r - '0' + '０'
			}
			return r
		}, g.card()))
		add(b.done("full-width digits"))
	}
	// Hard negatives: values that look like data and are not.
	for range 60 {
		b := &builder{}
		b.s(`{"id":"`, fmt.Sprintf("%s-%s-4%s-a%s-%s", g.Chars(hexLow, 8), g.Chars(hexLow, 4), g.Chars(hexLow, 3), g.Chars(hexLow, 3), g.Chars(hexLow, 12)),
			`","commit":"`, g.Chars(hexLow, 40), `","order":"`, g.notCard(), `","created":"2026-`, fmt.Sprintf("%02d-%02dT%02d:%02d:%02dZ", 1+g.R.IntN(12), 1+g.R.IntN(28), g.R.IntN(24), g.R.IntN(60), g.R.IntN(60)),
			`","price":`, strconv.Itoa(g.R.IntN(9999)), ".", g.Digits(2), `,"version":"`, strconv.Itoa(g.R.IntN(9)), ".", strconv.Itoa(g.R.IntN(20)), ".", strconv.Itoa(g.R.IntN(30)), `"}`)
		add(b.done("ids, hashes, an order number failing Luhn, times, prices, versions"))

		b = &builder{}
		b.s("Device IMEI ", g.imei(), " registered; serial ", g.Digits(12), "; tracking number ", g.Digits(22), "; color #", g.Chars(hexLow, 6), "; coordinates 52.", g.Digits(6), ", 13.", g.Digits(6), ".")
		add(b.done("device numbers"))

		img := make([]byte, 300+g.R.IntN(600))
		for i := range img {
			img[i] = byte(g.R.IntN(256))
		}
		b = &builder{}
		b.s(`{"type":"image","mimeType":"image/png","data":"`, base64.StdEncoding.EncodeToString(img), `"}`)
		add(b.done("base64 image"))

		b = &builder{}
		b.s(`{"tokens_used": `, strconv.Itoa(g.R.IntN(100000)), `, "max_tokens": 4096, "key": "customer_name", "password_hint": "first pet", "api_version": "2026-07-28", "auth": "oauth2", "secret_ref": "vault:kv/app#db"}`)
		add(b.done("names of secrets without secrets"))

		b = &builder{}
		b.s("See icon@2x.png and @scope/package@1.2.3; call at 10:30:45; build ", g.Digits(10), "; ISBN 978-", g.Digits(1), "-", g.Digits(3), "-", g.Digits(5), "-", g.Digits(1), ".")
		add(b.done("at signs and numbers that are not data"))
	}
	return out
}

// inToolResult puts a sample where tools return text: as the JSON string
// of a text content block, escaped, the labels moved with it.
func inToolResult(s sample) sample {
	esc := func(t string) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(t)
		out := strings.TrimSuffix(b.String(), "\n")
		return out[1 : len(out)-1]
	}
	const head = `{"content":[{"type":"text","text":"`
	out := sample{Text: head + esc(s.Text) + `"}],"isError":false}`, Note: s.Note + ", in a tool result"}
	for _, l := range s.Labels {
		out.Labels = append(out.Labels, label{Type: l.Type, Start: len(head) + len(esc(s.Text[:l.Start])), End: len(head) + len(esc(s.Text[:l.End]))})
	}
	return out
}

func writeCorpus(t *testing.T, samples []sample) {
	var buf bytes.Buffer
	for _, s := range samples {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.MkdirAll(filepath.Dir(corpusPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(corpusPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCorpus(t testing.TB) []sample {
	out, err := dlptest.ReadCorpus(corpusPath)
	if err != nil {
		t.Fatalf("%v (write it with go test ./internal/dlp -run TestCorpus -update)", err)
	}
	return out
}

// TestCorpus measures precision and recall per type over the labelled
// corpus and fails below 0.97 for either. A finding counts when its type
// is the label's and its span overlaps the label's.
func TestCorpus(t *testing.T) {
	if *update {
		samples := gen{dlptest.NewGen(1, 2)}.samples()
		n := len(samples)
		for i := 0; i < n; i += 3 {
			samples = append(samples, inToolResult(samples[i]))
		}
		writeCorpus(t, samples)
	}
	samples := readCorpus(t)
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	type score struct{ tp, fp, fn int }
	scores := map[string]*score{}
	at := func(typ string) *score {
		if scores[typ] == nil {
			scores[typ] = &score{}
		}
		return scores[typ]
	}
	overlap := func(f dlp.Finding, l label) bool { return f.Type == l.Type && f.Start < l.End && l.Start < f.End }
	for _, smp := range samples {
		fs := s.Scan([]byte(smp.Text))
		for _, l := range smp.Labels {
			found := false
			for _, f := range fs {
				found = found || overlap(f, l)
			}
			if found {
				at(l.Type).tp++
			} else {
				at(l.Type).fn++
				t.Logf("missed %s %q in %s", l.Type, smp.Text[l.Start:l.End], smp.Note)
			}
		}
		for _, f := range fs {
			if f.Start < 0 || f.End > len(smp.Text) || f.Start >= f.End {
				t.Errorf("finding %+v outside the input (%d bytes)", f, len(smp.Text))
				continue
			}
			matched := false
			for _, l := range smp.Labels {
				matched = matched || overlap(f, l)
			}
			if !matched {
				at(f.Type).fp++
				t.Logf("false %s %q in %s", f.Type, smp.Text[f.Start:f.End], smp.Note)
			}
		}
	}
	names := make([]string, 0, len(scores))
	for n := range scores {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sc := scores[n]
		p := float64(sc.tp) / float64(max(1, sc.tp+sc.fp))
		r := float64(sc.tp) / float64(max(1, sc.tp+sc.fn))
		t.Logf("%-26s precision %.3f recall %.3f (tp %d, fp %d, fn %d)", n, p, r, sc.tp, sc.fp, sc.fn)
		if p < 0.97 || r < 0.97 {
			t.Errorf("%s: precision %.3f, recall %.3f; both must be at least 0.97", n, p, r)
		}
	}
	if len(names) < 30 {
		t.Errorf("the corpus covers %d types", len(names))
	}
}
