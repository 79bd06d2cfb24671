package btc

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPrinted: printed(f) is exactly what strconv.ParseFloat reads back from
// the text appendFixed writes, for prices, standard deviations and z-scores
// of every magnitude, near the 1e12 rounding boundaries and at the limits.
func TestPrinted(t *testing.T) {
	const seed = 17
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, seed))
	check := func(f, minAbs float64) {
		text := appendFixed(nil, f, minAbs)
		want := math.NaN()
		if string(text) != "null" {
			var err error
			want, err = strconv.ParseFloat(string(text), 64)
			require.NoError(t, err, "parse %s", text)
		}
		got := printed(f, minAbs)
		require.Truef(t, math.Float64bits(got) == math.Float64bits(want) || (math.IsNaN(got) && math.IsNaN(want)),
			"f=%v (%x) minAbs=%v: printed %q reads %v (%x), printed() %v (%x)", f, math.Float64bits(f), minAbs, text, want, math.Float64bits(want), got, math.Float64bits(got))
	}
	edges := []float64{0, 1, -1, 0.5, 1e-13, 5e-13, 99190.48, 99012.80000000002, 1.4580000000001, fixedLimit, fixedLimit - 1e-6,
		math.Nextafter(fixedLimit, 0), 8999999.999999999, 1e-300, math.Inf(1), math.NaN(), -3.14159, 123456.7890123456}
	for _, f := range edges {
		check(f, 1)
		check(f, 0)
	}
	for range 2_000_000 {
		var f float64
		switch r.IntN(5) {
		case 0: // prices in cents around 1e5
			f = float64(r.IntN(20_000_000)) / 100
		case 1: // means: any double near a price
			f = 99_000 + r.Float64()*1000
		case 2: // standard deviations
			f = math.Ldexp(r.Float64(), r.IntN(30)-10)
		case 3: // z-scores
			f = (r.Float64() - 0.5) * 20
		default: // anything below the limit
			f = math.Ldexp(r.Float64(), r.IntN(60)-36)
		}
		if r.IntN(2) == 0 {
			f = -f
		}
		check(f, 1)
		check(f, 0)
	}
}

func BenchmarkPrinted(b *testing.B) {
	xs := []float64{99012.80000000002, 1.4580000000001, 99190.4812345, 0.27431234, 99013.123456789, 12.3456789012}
	var s float64
	for b.Loop() {
		for _, x := range xs {
			s += printed(x, 1)
		}
	}
	_ = s
}
