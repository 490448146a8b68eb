package dlp_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/internal/dlp"
)

// toolOutput builds n bytes of realistic tool output: the JSON text of a
// tools/call result listing records (names, addresses, order lines,
// timestamps, URLs, prose), with a finding every few kilobytes.
func toolOutput(n int) []byte {
	r := rand.New(rand.NewPCG(7, 11))
	g := gen{r}
	var b strings.Builder
	b.WriteString(`{"content":[{"type":"text","text":"`)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{\"id\":\"ord_%s\",\"customer\":\"%s\",\"status\":\"%s\",\"total\":%d.%02d,\"currency\":\"EUR\",\"created_at\":\"2026-%02d-%02dT%02d:%02d:%02dZ\",`,
			g.chars(alnum, 12), g.pick("Ada Lovelace", "Alan Turing", "Grace Hopper", "Linus Torvalds"), g.pick("paid", "shipped", "refunded"),
			r.IntN(999), r.IntN(100), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
		fmt.Fprintf(&b, `\"items\":[{\"sku\":\"SKU-%s\",\"qty\":%d,\"name\":\"%s\"}],\"url\":\"https://shop.example.com/orders/%d?ref=email\",`,
			g.digits(6), 1+r.IntN(5), g.pick("Wireless keyboard", "USB-C cable, 2 m", "Standing desk frame", "Noise-cancelling headphones"), r.IntN(1000000))
		b.WriteString(`\"note\":\"Customer asked to deliver after 5 pm; the parcel may be left with a neighbour. Tracking is updated nightly.\"`)
		if i%8 == 0 {
			fmt.Fprintf(&b, `,\"contact\":\"%s\",\"phone\":\"%s\"`, g.email(), g.phone())
		}
		b.WriteString(`}\n`)
	}
	b.WriteString(`"}],"isError":false}`)
	return []byte(b.String()[:max(n, 0)])
}

func BenchmarkScan(b *testing.B) {
	s, err := dlp.New(dlp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		in := toolOutput(size)
		b.Run(strconv.Itoa(size>>10)+"KiB", func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			for b.Loop() {
				s.Scan(in)
			}
		})
	}
}
