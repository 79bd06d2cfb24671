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

// TestPrintedStd: printedStd(f) is exactly what strconv.ParseFloat reads
// back from the text appendStd writes, for standard deviations of every
// magnitude, at the powers of ten where the number of decimals changes and
// where the 12 significant digits round up to the next power.
func TestPrintedStd(t *testing.T) {
	seed := seedOf(t)
	r := rand.New(rand.NewPCG(seed, 18))
	check := func(f float64) {
		text := appendStd(nil, f)
		want := math.NaN()
		if string(text) != "null" {
			var err error
			want, err = strconv.ParseFloat(string(text), 64)
			require.NoError(t, err, "parse %s", text)
		}
		got := printedStd(f)
		require.Truef(t, math.Float64bits(got) == math.Float64bits(want) || (math.IsNaN(got) && math.IsNaN(want)),
			"f=%v (%x): printed %q reads %v (%x), printedStd() %v (%x)", f, math.Float64bits(f), text, want, math.Float64bits(want), got, math.Float64bits(got))
	}
	edges := []float64{0, 1, 0.5, stdSigLow, math.Nextafter(stdSigLow, 0), math.Nextafter(1, 0), 0.9999999999995, 0.99999999999949,
		0.007071067811859044, math.NaN(), math.Inf(1), 1.458, 28.743207624263}
	for p := 1e-6; p < 1; p *= 10 {
		edges = append(edges, p, math.Nextafter(p, 0), math.Nextafter(p, 1), p*(1-5e-13), p*(1-4e-13))
	}
	for _, f := range edges {
		check(f)
		check(-f)
	}
	for range 2_000_000 {
		check(math.Ldexp(r.Float64(), r.IntN(30)-22)) // 2^-22 .. 2^7: 2.4e-7 .. 128
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
