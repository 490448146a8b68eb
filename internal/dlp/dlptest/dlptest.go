// Package dlptest makes realistic tool output for the DLP scanner's
// benchmarks, so that Sluice's and other scanners' measurements read the
// same input.
package dlptest

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

type gen struct{ r *rand.Rand }

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g gen) chars(alphabet string, n int) string {
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[g.r.IntN(len(alphabet))]
	}
	return string(out)
}

func (g gen) digits(n int) string { return g.chars("0123456789", n) }

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (g gen) email() string {
	first := g.pick("ada", "alan", "grace", "linus", "margaret")
	last := g.pick("lovelace", "turing", "hopper", "torvalds", "hamilton")
	return first + "." + last + strconv.Itoa(g.r.IntN(100)) + "@" + g.pick("example.com", "example.org", "mail.example")
}

func (g gen) phone() string {
	switch g.r.IntN(4) {
	case 0:
		return "+1 415-555-01" + g.digits(2)
	case 1:
		return "(202) 555-01" + g.digits(2)
	case 2:
		return "+44 20 7946 0" + g.digits(3)
	}
	return "+49 30 " + g.digits(6)
}

// ToolOutput builds n bytes (at least 1 KiB) of realistic tool output: the JSON text of a
// tools/call result listing records (names, addresses, order lines,
// timestamps, URLs, prose), with a finding every few kilobytes.
func ToolOutput(n int) []byte {
	r := rand.New(rand.NewPCG(7, 11))
	g := gen{r}
	var b strings.Builder
	b.WriteString(`{"content":[{"type":"text","text":"`)
	const tail = `"}],"isError":false}`
	for i := 0; ; i++ {
		var rec strings.Builder
		fmt.Fprintf(&rec, `{\"id\":\"ord_%s\",\"customer\":\"%s\",\"status\":\"%s\",\"total\":%d.%02d,\"currency\":\"EUR\",\"created_at\":\"2026-%02d-%02dT%02d:%02d:%02dZ\",`,
			g.chars(alnum, 12), g.pick("Ada Lovelace", "Alan Turing", "Grace Hopper", "Linus Torvalds"), g.pick("paid", "shipped", "refunded"),
			r.IntN(999), r.IntN(100), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
		fmt.Fprintf(&rec, `\"items\":[{\"sku\":\"SKU-%s\",\"qty\":%d,\"name\":\"%s\"}],\"url\":\"https://shop.example.com/orders/%d?ref=email\",`,
			g.digits(6), 1+r.IntN(5), g.pick("Wireless keyboard", "USB-C cable, 2 m", "Standing desk frame", "Noise-cancelling headphones"), r.IntN(1000000))
		rec.WriteString(`\"note\":\"Customer asked to deliver after 5 pm; the parcel may be left with a neighbour. Tracking is updated nightly.\"`)
		if i%8 == 0 {
			fmt.Fprintf(&rec, `,\"contact\":\"%s\",\"phone\":\"%s\"`, g.email(), g.phone())
		}
		rec.WriteString(`}\n`)
		if b.Len()+rec.Len()+len(tail) > n {
			break
		}
		b.WriteString(rec.String())
	}
	// Filler up to the size, then the end: the result is valid JSON.
	b.WriteString(strings.Repeat(" ", max(0, n-b.Len()-len(tail))))
	b.WriteString(tail)
	return []byte(b.String())
}
